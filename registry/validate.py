"""Checks across documents: duplicate ids, references, one policy per scope, and identity claims.

Each document on its own is checked by its pydantic model; what needs the whole registry is here.
An identity (a selector's key and value, an agent's id or a former id) may belong to one agent
only: two agents claiming it in overlapping environments would make attribution ambiguous, so
that is refused before it is stored rather than discovered in the spend reports.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

from registry.errors import PathPart, Problem, Source, ValidationFailed
from registry.model import Agent, Budget, Entity, Policy, Registry, SelectorKey


@dataclass(frozen=True)
class LoadedDocument:
    """A valid entity and where it was written."""

    entity: Entity
    source: Source


def validate_registry(registry: Registry) -> None:
    """Raise ValidationFailed listing every cross-document problem of a registry held in the store."""
    problems = registry_problems(registry)
    if problems:
        raise ValidationFailed(problems)


def registry_problems(registry: Registry) -> list[Problem]:
    """The cross-document problems of a registry whose entities came from no file."""
    documents = [
        LoadedDocument(entity, Source(None, subject=f"{entity.kind} {entity.id}"))
        for entity in registry.entities()
    ]
    return cross_document_problems(documents)


def cross_document_problems(
    documents: Sequence[LoadedDocument], *, also_defined: Collection[tuple[str, str]] = ()
) -> list[Problem]:
    """Every problem that needs more than one document to see, reported at the later document.

    `also_defined` holds (kind, id) of documents that were invalid on their own: they were reported
    already, so references to them are not reported a second time as missing.
    """
    known = _ids_by_kind(documents, also_defined)
    return [
        *_duplicate_ids(documents),
        *_missing_references(documents, known),
        *_policies_sharing_a_scope(documents),
        *_alias_problems(documents),
        *_conflicting_claims(documents),
        *_selector_environments(documents),
    ]


def _ids_by_kind(
    documents: Sequence[LoadedDocument], also_defined: Collection[tuple[str, str]]
) -> dict[str, set[str]]:
    known: dict[str, set[str]] = defaultdict(set)
    for document in documents:
        known[document.entity.kind].add(document.entity.id)
    for kind, entity_id in also_defined:
        known[kind].add(entity_id)
    return known


def _duplicate_ids(documents: Sequence[LoadedDocument]) -> Iterator[Problem]:
    first: dict[tuple[str, str], LoadedDocument] = {}
    for document in documents:
        key = (document.entity.kind, document.entity.id)
        if key in first:
            where = first[key].source.where(("metadata", "id"))
            yield document.source.problem(
                ("metadata", "id"), f"duplicate {key[0]} id {key[1]!r}: it is already defined at {where}"
            )
        else:
            first[key] = document


# References


def _missing_references(documents: Sequence[LoadedDocument], known: dict[str, set[str]]) -> Iterator[Problem]:
    former_ids = {
        alias: document.entity.id
        for document in documents
        if isinstance(document.entity, Agent)
        for alias in document.entity.spec.aliases
    }
    for document in documents:
        for path, kind, target in _references(document.entity):
            if target not in known[kind]:
                message = _missing_message(kind, target, known[kind], former_ids if kind == "Agent" else {})
                yield document.source.problem(path, message)


def _references(entity: Entity) -> Iterator[tuple[tuple[PathPart, ...], str, str]]:
    """(field path, kind, id) of every other entity this one refers to."""
    if isinstance(entity, Agent | Policy) and entity.spec.department is not None:
        yield ("spec", "department"), "Department", entity.spec.department
    elif isinstance(entity, Budget):
        scope = entity.spec.scope
        if scope.department is not None:
            yield ("spec", "scope", "department"), "Department", scope.department
        if scope.agent is not None:
            yield ("spec", "scope", "agent"), "Agent", scope.agent


def _missing_message(kind: str, target: str, known: set[str], former_ids: dict[str, str]) -> str:
    if target in former_ids:
        return f"agent {target!r} was renamed: refer to it by its current id {former_ids[target]!r}"
    close = difflib.get_close_matches(target, sorted(known), n=1)
    hint = (
        f"; did you mean {close[0]!r}?" if close else f"; define a {kind} with this id or fix the reference"
    )
    return f"{kind.lower()} {target!r} is not defined{hint}"


def _policies_sharing_a_scope(documents: Sequence[LoadedDocument]) -> Iterator[Problem]:
    first: dict[str | None, LoadedDocument] = {}
    for document in documents:
        if not isinstance(document.entity, Policy):
            continue
        scope = document.entity.spec.department
        if scope in first:
            what = f"department {scope!r}" if scope else "the whole organisation"
            yield document.source.problem(
                ("spec", "department") if scope else ("metadata", "id"),
                f"{what} already has a policy ({first[scope].entity.id!r} at {first[scope].source.where()});"
                " merge the two: one policy per scope, so it is clear which rule applies",
            )
        else:
            first[scope] = document


def _alias_problems(documents: Sequence[LoadedDocument]) -> Iterator[Problem]:
    for document in documents:
        if isinstance(document.entity, Agent):
            for index, alias in enumerate(document.entity.spec.aliases):
                if alias == document.entity.id:
                    yield document.source.problem(
                        ("spec", "aliases", index), "an agent's alias is a former id, not its own id"
                    )


# Identity claims


@dataclass(frozen=True)
class _Claim:
    """An identity an agent claims: explicitly by a selector, or implicitly by its id or a former id."""

    agent: str
    key: SelectorKey
    value: str
    namespace: str | None
    environment: str | None
    document: LoadedDocument
    path: tuple[PathPart, ...]
    implicit: str | None = None  # "id" or "former id"

    def identity(self) -> tuple[SelectorKey, str, str | None]:
        return self.key, self.value, self.namespace

    def overlaps(self, other: _Claim) -> bool:
        return self.environment is None or other.environment is None or self.environment == other.environment

    def describe(self) -> str:
        if self.implicit:
            return f"its {self.implicit} {self.value!r}"
        what = {
            SelectorKey.AGENT_ID: f"agentId {self.value!r}",
            SelectorKey.AGENT_NAME: f"agentName {self.value!r}",
            SelectorKey.SERVICE: f"service {self.namespace + '/' if self.namespace else ''}{self.value}",
        }[self.key]
        return f"{what} in {f'environment {self.environment!r}' if self.environment else 'every environment'}"


def _agent_claims(document: LoadedDocument) -> Iterator[_Claim]:
    """Every identity an agent document claims, implicit ones (its id, its former ids) first."""
    agent = document.entity
    assert isinstance(agent, Agent)
    yield _Claim(agent.id, SelectorKey.AGENT_ID, agent.id, None, None, document, ("metadata", "id"), "id")
    for index, alias in enumerate(agent.spec.aliases):
        path = ("spec", "aliases", index)
        yield _Claim(agent.id, SelectorKey.AGENT_ID, alias, None, None, document, path, "former id")
    for index, selector in enumerate(agent.spec.match):
        yield _Claim(
            agent.id,
            selector.key,
            selector.value,
            selector.namespace,
            selector.environment,
            document,
            ("spec", "match", index),
        )


def _conflicting_claims(documents: Sequence[LoadedDocument]) -> Iterator[Problem]:
    seen: dict[tuple[SelectorKey, str, str | None], list[_Claim]] = defaultdict(list)
    for document in documents:
        if not isinstance(document.entity, Agent):
            continue
        for claim in _agent_claims(document):
            earlier = seen[claim.identity()]
            clash = next((c for c in earlier if c.agent != claim.agent and c.overlaps(claim)), None)
            if clash is not None:
                yield claim.document.source.problem(claim.path, _clash_message(claim, clash))
            earlier.append(claim)


def _clash_message(claim: _Claim, clash: _Claim) -> str:
    where = clash.document.source.where(clash.path)
    if claim.implicit == "former id" and clash.implicit == "id":
        return (
            f"{claim.value!r} is the id of agent {clash.agent!r} ({where}), so it cannot be a former id here"
        )
    return (
        f"{claim.describe()} is already claimed by agent {clash.agent!r} through {clash.describe()}"
        f" ({where}): one identity must lead to one agent; remove one claim or narrow both to different"
        " environments"
    )


def _selector_environments(documents: Sequence[LoadedDocument]) -> Iterator[Problem]:
    for document in documents:
        agent = document.entity
        if not isinstance(agent, Agent) or agent.spec.environments is None:
            continue
        for index, selector in enumerate(agent.spec.match):
            if selector.environment is not None and selector.environment not in agent.spec.environments:
                yield document.source.problem(
                    ("spec", "match", index, "environment"),
                    f"environment {selector.environment!r} is not one of this agent's environments"
                    f" ({', '.join(agent.spec.environments) or 'none'})",
                )
