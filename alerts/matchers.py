"""Label matchers, as Alertmanager writes them: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.

Routes and silences both select alerts with them. A regex must match the whole value (anchored,
as in Alertmanager), and a label an alert does not carry counts as the empty string, so
`agent=""` selects alerts about no particular agent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$")
_SYNTAX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.:/-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class MatcherError(ValueError):
    """A matcher is not written as name=value, name!=value, name=~regex or name!~regex."""


class Matcher(BaseModel):
    """One condition on one label."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The label name, e.g. department, severity, rule.")
    value: str = Field(max_length=1024, description="The value, or a regular expression when regex.")
    regex: bool = Field(False, description="Treat value as a regular expression matching the whole value.")
    negative: bool = Field(False, description="Select alerts that do NOT match (!= or !~).")

    @field_validator("name")
    @classmethod
    def _label_name(cls, name: str) -> str:
        if not _LABEL_NAME.match(name):
            raise ValueError(f"{name!r} is not a label name: use letters, digits, '_', '.', ':', '/', '-'")
        return name

    @model_validator(mode="after")
    def _compiles(self) -> Matcher:
        if self.regex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"{self.value!r} is not a valid regular expression: {exc}") from None
        return self

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.value) if self.regex else None

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        hit = self._pattern.fullmatch(value) is not None if self._pattern else value == self.value
        return hit != self.negative

    def __str__(self) -> str:
        op = {(False, False): "=", (True, False): "=~", (False, True): "!=", (True, True): "!~"}
        return f"{self.name}{op[(self.regex, self.negative)]}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """A matcher from its written form; MatcherError says what is wrong."""
    found = _SYNTAX.match(text)
    if not found:
        raise MatcherError(
            f"{text!r} is not a matcher: write name=value, name!=value, name=~regex or name!~regex"
        )
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # Alertmanager quotes values
        value = value[1:-1]
    try:
        return Matcher(name=name, value=value, regex="~" in op, negative=op.startswith("!"))
    except ValueError as exc:
        raise MatcherError(f"{text!r}: {exc}") from None


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher holds for these labels (no matchers: everything matches)."""
    return all(matcher.matches(labels) for matcher in matchers)
