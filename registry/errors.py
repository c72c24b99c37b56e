"""The registry's own exceptions, and where a problem is: `Problem` (file, line, field path, message)
and `Source` (a document's file and the line of each of its fields), which makes them.

RegistryError
├── ValidationFailed   documents or changes break the rules; `problems` lists every one of them
├── NotFound           no such entity (or it is outside the caller's scope)
├── PlanOutdated       the registry changed after the plan was made; nothing was applied
└── ApplyFailed        the store refused a change; it was rolled back and nothing was stored
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PathPart = str | int


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (file, 1-based line, field path such as `spec.match[0].agentId`) and what.

    `file` and `line` are None for entities that did not come from a file (the HTTP API).
    """

    file: str | None
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.file, self.line) if part is not None)
        parts = [part for part in (where, self.path, self.message) if part]
        return ": ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message}


def path_text(path: Sequence[PathPart]) -> str:
    """`('spec', 'match', 0, 'agentId')` → `spec.match[0].agentId`."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass(frozen=True)
class Source:
    """Where a document came from: its file and the line of each field path, to locate problems.

    Entities that came from no file (the HTTP API, the store) have `file` None and name their
    `subject` (`Agent claims-triage`) in each problem instead.
    """

    file: str | None
    lines: Mapping[tuple[PathPart, ...], int] = field(default_factory=dict)
    subject: str | None = None

    def line_of(self, path: Sequence[PathPart]) -> int | None:
        """The line of `path`, or of its nearest ancestor written in the file (for a missing field)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: Sequence[PathPart], message: str) -> Problem:
        if self.file is None and self.subject:
            message = f"{message} ({self.subject})"
        return Problem(self.file, self.line_of(path), path_text(path), message)

    def where(self, path: Sequence[PathPart] = ()) -> str:
        """`file:line` of a field, for messages that point at another document."""
        if self.file is None:
            return self.subject or "the registry"
        line = self.line_of(path)
        return f"{self.file}:{line}" if line else self.file


class RegistryError(Exception):
    """Something about the registry went wrong; the message says what and what to do."""


class ValidationFailed(RegistryError):
    """The registry documents (or a change to the registry) break its rules; nothing was changed."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems, key=_reading_order)
        super().__init__(self._describe())

    def _describe(self) -> str:
        count = len(self.problems)
        heading = f"{count} problem{'s' if count != 1 else ''} in the registry; nothing was changed:"
        return "\n".join([heading, *(f"  {problem}" for problem in self.problems)])


class NotFound(RegistryError):
    """No entity of that kind and id (or it is outside the caller's scope, which looks the same)."""


class PlanOutdated(RegistryError):
    """The registry changed between `plan` and `apply`; run plan again and review the new changes."""


class ApplyFailed(RegistryError):
    """The warehouse refused a change; the whole transaction was rolled back and nothing was stored."""


def _reading_order(problem: Problem) -> tuple[str, int, str]:
    return (problem.file or "", problem.line or 0, problem.path)
