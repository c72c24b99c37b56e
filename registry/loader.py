"""Reading registry YAML: files and directories → validated entities that remember file and line.

YAML is composed into nodes (PyYAML), which carry their line, and turned into plain data while the
line of every key and list item is noted by its path. Validation errors (pydantic's, and the
cross-document checks in `validate`) are then reported at the line of the field they are about.
Every problem in every file is collected before anything is raised, so one run shows them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from registry.errors import PathPart, Problem, Source, ValidationFailed, path_text
from registry.model import API_VERSION, KINDS, Entity, Registry, parse_entity_data
from registry.validate import LoadedDocument, cross_document_problems

YAML_SUFFIXES = (".yaml", ".yml")

_MAX_NODES = 100_000  # per document; aliases can blow a small file up ("billion laughs")
_MAX_DEPTH = 64  # far deeper than any registry document; keeps recursion bounded
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Reading files


def read_sources(paths: Iterable[Path | str]) -> dict[str, str]:
    """The text of every registry file named, directories searched recursively for *.yaml and *.yml.

    Files inside hidden directories (`.git`, `.github`) are skipped. Raises ValidationFailed for a
    path that does not exist, a directory without YAML files, or a file that is not UTF-8 text.
    """
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    for given in paths:
        for file, problem in _files_under(Path(given)):
            if problem:
                problems.append(problem)
                continue
            try:
                texts[str(file)] = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(str(file), None, "", f"cannot read the file: {exc}"))
    if problems:
        raise ValidationFailed(problems)
    return texts


def _files_under(path: Path) -> list[tuple[Path, Problem | None]]:
    if path.is_file():
        return [(path, None)]
    if not path.is_dir():
        return [(path, Problem(str(path), None, "", "no such file or directory"))]
    found = sorted(
        file
        for file in path.rglob("*")
        if file.suffix in YAML_SUFFIXES
        and file.is_file()
        and not any(part.startswith(".") for part in file.relative_to(path).parts)
    )
    if not found:
        return [(path, Problem(str(path), None, "", "no *.yaml or *.yml files in this directory"))]
    return [(file, None) for file in found]


def load_paths(paths: Iterable[Path | str]) -> Registry:
    """The registry written in these files and directories; ValidationFailed lists every problem."""
    return load_texts(read_sources(paths))


def load_texts(sources: Mapping[str, str]) -> Registry:
    """The registry written in these texts (file name → YAML), checked within and across documents.

    This is what the API calls with the files a CLI sent, so errors still name the user's files.
    """
    documents: list[LoadedDocument] = []
    problems: list[Problem] = []
    broken: set[tuple[str, str]] = set()
    for file, text in sources.items():
        parsed = parse_documents(text, file)
        documents += parsed.documents
        problems += parsed.problems
        broken |= parsed.broken
    problems += cross_document_problems(documents, also_defined=broken)
    if problems:
        raise ValidationFailed(problems)
    return Registry.of(document.entity for document in documents)


def parse_entity(data: Any, *, file: str | None = None) -> Entity:
    """One entity from parsed data (a JSON body); ValidationFailed names each bad field by its path."""
    source = Source(file)
    entity, problems = _entity_or_problems(data, source)
    if entity is None:
        raise ValidationFailed(problems)
    return entity


# Parsing one file


@dataclass
class ParsedFile:
    """The valid documents of one file, its problems, and (kind, id) of documents that were invalid."""

    documents: list[LoadedDocument] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    broken: set[tuple[str, str]] = field(default_factory=set)


def parse_documents(text: str, file: str) -> ParsedFile:
    """Every document of a YAML text (documents separated by `---`), validated one by one."""
    parsed = ParsedFile()
    try:
        for node in yaml.compose_all(text, Loader=_COMPOSER):
            if node is not None:
                _add_document(parsed, node, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        parsed.problems.append(Problem(file, line, "", f"not valid YAML: {exc.problem or exc}"))
    except yaml.reader.ReaderError as exc:
        # a character YAML refuses, e.g. the zeroed tail of a file cut short by a crash: PyYAML gives
        # only its offset, so say the line, and the character without the "<unicode string>" noise
        line = text.count("\n", 0, exc.position) + 1
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        parsed.problems.append(
            Problem(file, line, "", f"not valid YAML: {exc.reason} ({character}); was the file cut short?")
        )
    except yaml.YAMLError as exc:
        parsed.problems.append(Problem(file, None, "", f"not valid YAML: {exc}"))
    return parsed


def _add_document(parsed: ParsedFile, node: yaml.Node, file: str) -> None:
    lines: dict[tuple[PathPart, ...], int] = {}
    walk = _NodeWalk(file, lines)
    try:
        data = walk.data(node, ())
    except _TooLarge:
        parsed.problems += walk.problems
        return
    source = Source(file, lines)
    entity, problems = _entity_or_problems(data, source)
    if entity is not None and not walk.problems:
        parsed.documents.append(LoadedDocument(entity, source))
        return
    parsed.problems += walk.problems + problems
    metadata = data.get("metadata") if isinstance(data, dict) else None
    if isinstance(metadata, dict) and isinstance(metadata.get("id"), str):
        parsed.broken.add((str(data.get("kind")), metadata["id"]))


class _TooLarge(Exception):
    """Raised to stop walking a document that has grown past the limits."""


class _NodeWalk:
    """Turns a composed YAML node into plain data, noting the line of every key and list item."""

    def __init__(self, file: str, lines: dict[tuple[PathPart, ...], int]) -> None:
        self.file, self.lines = file, lines
        self.problems: list[Problem] = []
        self._scalars = yaml.SafeLoader("")  # its constructor turns scalar nodes into values
        self._nodes = 0
        self._open: set[int] = set()

    def data(self, node: yaml.Node, path: tuple[PathPart, ...]) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        self._nodes += 1
        if self._nodes > _MAX_NODES or len(path) > _MAX_DEPTH:
            self._fail(node, path, "the document is too large or too deeply nested (YAML aliases?)")
            raise _TooLarge
        if id(node) in self._open:
            return self._fail(node, path, "a YAML alias refers to a node that contains it")
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self.data(item, (*path, index)) for index, item in enumerate(node.value)]
            return self._scalars.construct_object(node)
        except yaml.YAMLError as exc:
            return self._fail(node, path, f"cannot read this value: {getattr(exc, 'problem', None) or exc}")
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: tuple[PathPart, ...]) -> dict[str, Any]:
        self._scalars.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._fail(key_node, path, "a key must be plain text, not a list or a mapping")
                continue
            key = key_node.value  # the text as written: `on:` and `no:` stay keys, not booleans
            child = (*path, key)
            if key in result:
                self._fail(key_node, child, f"the key {key!r} appears twice in this mapping")
                continue
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self.data(value_node, child)
        return result

    def _fail(self, node: yaml.Node, path: tuple[PathPart, ...], message: str) -> None:
        self.problems.append(Problem(self.file, node.start_mark.line + 1, path_text(path), message))


# Validating one document


def _entity_or_problems(data: Any, source: Source) -> tuple[Entity | None, list[Problem]]:
    header = _header_problems(data, source)
    if header:
        return None, header
    model = KINDS[data["kind"]]
    try:
        return parse_entity_data(data), []
    except ValidationError as exc:
        return None, [_problem_from(error, model, source) for error in exc.errors(include_url=False)]


def _header_problems(data: Any, source: Source) -> list[Problem]:
    if not isinstance(data, dict):
        return [source.problem((), "a document is a mapping with apiVersion, kind, metadata and spec")]
    problems = []
    if data.get("apiVersion") != API_VERSION:
        found = f"found {data['apiVersion']!r}" if "apiVersion" in data else "it is missing"
        problems.append(source.problem(("apiVersion",), f"apiVersion must be {API_VERSION!r} ({found})"))
    if data.get("kind") not in KINDS:
        found = f"found {data['kind']!r}" if "kind" in data else "it is missing"
        problems.append(source.problem(("kind",), f"kind must be one of {', '.join(KINDS)} ({found})"))
    return problems


def _problem_from(error: Any, model: type[BaseModel], source: Source) -> Problem:
    loc = tuple(error["loc"])
    return source.problem(loc, _message(error, model))


def _message(error: Any, model: type[BaseModel]) -> str:
    kind, loc = error["type"], tuple(error["loc"])
    if kind == "extra_forbidden":
        return _unknown_field_message(str(loc[-1]), _model_at(model, loc[:-1]))
    if kind == "missing":
        return f"the required field {loc[-1]!r} is missing"
    message = error["msg"].removeprefix("Value error, ")
    given = error.get("input")
    if kind == "string_type" and isinstance(given, bool | int | float | date):
        return f"{message} (YAML read {given!r}; put the value in quotes to make it text)"
    if isinstance(given, str | int | float | bool | date) and kind != "value_error":
        return f"{message} (found {given!r})"
    return message


def _unknown_field_message(name: str, model: type[BaseModel] | None) -> str:
    message = f"unknown field {name!r}"
    if model is None:
        return message
    allowed = [info.alias or key for key, info in model.model_fields.items()]
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{message}{hint} (allowed here: {', '.join(allowed)})"


def _model_at(model: type[BaseModel], loc: Sequence[PathPart]) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` (list indices are stepped over)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = {info.alias or key: info for key, info in current.model_fields.items()}
        info = fields.get(part)
        current = _model_in(info.annotation) if info else None
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None
