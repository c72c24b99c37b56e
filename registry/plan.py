"""What applying a desired registry would change: entities added, changed (field by field) or removed.

A plan is plain data: the HTTP API sends it as JSON (`Plan.to_dict`) and the CLI prints it with
`render_plan`, the same text either way. The store applies a plan in one transaction and refuses
it if the registry moved on since the plan was made.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from registry.model import KINDS, Entity, Registry, document_data


class Action(StrEnum):
    ADD = "add"
    CHANGE = "change"
    REMOVE = "remove"


@dataclass(frozen=True)
class FieldChange:
    """One field's value before and after, by its document path (`spec.lifecycle`); None when absent."""

    path: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Change:
    """One entity added, changed or removed; `fields` lists what differs for a change."""

    action: Action
    kind: str
    id: str
    before: Entity | None
    after: Entity | None
    fields: tuple[FieldChange, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "kind": self.kind,
            "id": self.id,
            "fields": [field.to_dict() for field in self.fields],
            "before": document_data(self.before) if self.before is not None else None,
            "after": document_data(self.after) if self.after is not None else None,
        }


@dataclass(frozen=True)
class Plan:
    """The changes that turn the current registry into the desired one, departments first."""

    changes: tuple[Change, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        return {action.value: sum(change.action is action for change in self.changes) for action in Action}

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts(), "changes": [change.to_dict() for change in self.changes]}

    def __str__(self) -> str:
        return render_plan(self.to_dict())


def plan_changes(current: Registry, desired: Registry, *, prune: bool = True) -> Plan:
    """The plan from `current` to `desired`.

    With `prune` (the default) whatever is in `current` and not in `desired` is removed: the YAML
    is the whole registry. Without it, entities missing from `desired` are left alone, which is how
    a single file can be applied on its own.
    """
    changes = []
    for kind in KINDS:
        before, after = current.of_kind(kind), desired.of_kind(kind)
        ids = sorted(set(after) | (set(before) if prune else set()))
        changes += [
            c for entity_id in ids if (c := entity_change(before.get(entity_id), after.get(entity_id)))
        ]
    return Plan(tuple(changes))


def entity_change(before: Entity | None, after: Entity | None) -> Change | None:
    """The change from one version of an entity to another (None for either: absent); None if equal."""
    if before == after:
        return None
    entity = after if after is not None else before
    assert entity is not None
    if before is None:
        return Change(Action.ADD, entity.kind, entity.id, None, after)
    if after is None:
        return Change(Action.REMOVE, entity.kind, entity.id, before, None)
    fields = diff_documents(document_data(before), document_data(after))
    return Change(Action.CHANGE, entity.kind, entity.id, before, after, fields)


def diff_documents(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> tuple[FieldChange, ...]:
    """Field-level differences of two JSON documents; mappings are compared key by key, lists whole."""
    old, new = dict(_leaves(before or {})), dict(_leaves(after or {}))
    return tuple(
        FieldChange(path, old.get(path), new.get(path))
        for path in sorted(set(old) | set(new), key=_document_order(old, new))
        if old.get(path) != new.get(path)
    )


def _leaves(document: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in document.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):  # an empty mapping has no fields to differ in
            yield from _leaves(value, path)
        else:
            yield path, value


def _document_order(old: dict[str, Any], new: dict[str, Any]):
    """Sort paths as they appear in the documents; a path only `old` has goes where it stood there."""
    merged = list(new)
    previous = None
    for path in old:
        if path not in new:
            merged.insert(merged.index(previous) + 1 if previous is not None else 0, path)
        previous = path
    order = {path: index for index, path in enumerate(merged)}
    return order.__getitem__


# Rendering


_SIGN = {"add": "+", "change": "~", "remove": "-"}


def render_plan(plan: Mapping[str, Any]) -> str:
    """A plan (as `Plan.to_dict` gives it) as text a reviewer reads, one entity per block."""
    lines = []
    for change in plan["changes"]:
        lines.append(f"{_SIGN[change['action']]} {change['kind']} {change['id']}")
        lines += [
            f"    {field['path']}: {_shown(field['before'])} → {_shown(field['after'])}"
            for field in change["fields"]
        ]
    counts = plan["counts"]
    if not lines:
        return "No changes: the registry already matches."
    summary = f"Plan: {counts['add']} to add, {counts['change']} to change, {counts['remove']} to remove."
    return "\n".join([*lines, "", summary])


def _shown(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)
