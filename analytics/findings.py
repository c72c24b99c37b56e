"""What a finding is: a rule's verdict on a subject, with the evidence and the key that dedupes it.

A rule (`Rule`) has an id such as `drift.model_not_allowed`, a category, a default severity and a
one-line description; `docs/rules.md` lists them all. Each run of the findings job asks every rule
for the findings that hold *now*; `warehouse.findings_store.reconcile` turns the difference with
the previous run into opened, refreshed and resolved findings. The fingerprint is a digest of rule,
subject and dimension only — never of the evidence — so a finding keeps its identity, its first
sighting and people's acknowledgements while its numbers move.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Category", "Finding", "Rule", "Severity", "fingerprint"]


class Category(StrEnum):
    SPRAWL = "sprawl"
    DRIFT = "drift"
    SPEND = "spend"
    HYGIENE = "hygiene"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Rule:
    """A detection rule: its id (`<category>.<name>`), what it looks for, and how to resolve it."""

    id: str
    severity: Severity
    description: str
    resolution: str

    @property
    def category(self) -> Category:
        return Category(self.id.split(".", 1)[0])


def fingerprint(rule: str, subject_kind: str, subject_id: str, dimension: str | None) -> str:
    """The dedupe key of a finding: the same rule, subject and dimension is the same finding."""
    text = "\x1f".join([rule, subject_kind, subject_id, dimension or ""])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Finding:
    """One verdict that holds now. `evidence` is JSON-ready: numbers as text or numbers, lists of ids."""

    rule: Rule
    subject_kind: str
    subject_id: str
    title: str
    dimension: str | None = None
    severity: Severity | None = None  # None: the rule's default
    agent_id: str | None = None
    department_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule.id, self.subject_kind, self.subject_id, self.dimension)

    @property
    def effective_severity(self) -> Severity:
        return self.severity or self.rule.severity

    def all_labels(self) -> dict[str, str]:
        """What alert routes match on: the rule's identity, the scope, then the rule's own labels."""
        base = {
            "rule": self.rule.id,
            "category": str(self.rule.category),
            "severity": str(self.effective_severity),
            "subject_kind": self.subject_kind,
            "subject": self.subject_id,
        }
        if self.department_id:
            base["department"] = self.department_id
        if self.agent_id:
            base["agent"] = self.agent_id
        return base | {key: str(value) for key, value in self.labels.items() if value is not None}
