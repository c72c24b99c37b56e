"""A registry written back as YAML: the same documents `apply` reads, in a stable order and layout.

Departments come first, then policies, budgets and agents, each kind by id; keys follow the model's
order; fields left at their default are left out. Exporting, loading the text and exporting again
gives the same bytes, so an export committed to a repository only changes where the registry did.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import yaml

from registry.model import Entity, Registry

_WIDTH = 100


class _Dumper(yaml.SafeDumper):
    """SafeDumper with lists indented under their key, as most registry YAML is written by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


def _number(dumper: yaml.SafeDumper, value: float) -> yaml.Node:
    # 500.0 reads back as the same float when written 500, and people write budgets that way
    if value.is_integer() and abs(value) < 1e15:
        return dumper.represent_int(int(value))
    return dumper.represent_float(value)


def _sequence(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    scalars_only = all(not isinstance(item, dict | list) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=scalars_only)


def _mapping(dumper: yaml.SafeDumper, value: dict[str, Any]) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value, flow_style=False)


def _enum(dumper: yaml.SafeDumper, value: Enum) -> yaml.Node:
    return _text(dumper, str(value.value))


_Dumper.add_representer(str, _text)
_Dumper.add_representer(float, _number)
_Dumper.add_representer(list, _sequence)
_Dumper.add_representer(dict, _mapping)
_Dumper.add_multi_representer(Enum, _enum)


def export_yaml(registry: Registry) -> str:
    """The registry as one YAML stream of documents separated by `---` (empty text for no entities)."""
    documents = [exported_document(entity) for entity in registry.entities()]
    if not documents:
        return ""
    return yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=_WIDTH, explicit_start=True
    )


def exported_document(entity: Entity) -> dict[str, Any]:
    """An entity as its YAML document: apiVersion, kind, metadata, spec; defaults left out."""
    metadata = entity.metadata.model_dump(by_alias=True, exclude_defaults=True)
    if "labels" in metadata:
        metadata["labels"] = dict(sorted(metadata["labels"].items()))
    return {
        "apiVersion": entity.api_version,
        "kind": entity.kind,
        "metadata": metadata,
        "spec": entity.spec.model_dump(by_alias=True, exclude_defaults=True),
    }
