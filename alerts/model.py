"""An alert: a finding as routing, silences and receivers see it — labels, annotations, times, state.

Labels are the finding's own `labels` plus `rule`, `category`, `severity`, `department` and
`agent`, so routes and silences can select on any of them, and `alertname` (the rule again):
every Alertmanager alert has one, and the tools that read its webhook key their titles on it.
A finding fires while it has no `resolved_at`. People's decisions on the finding count too: a
finding silenced (until its `silenced_until`) is not notified, one acknowledged is notified once
and not repeated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

FIRING = "firing"
RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None  # when it resolved; None while firing
    episode: int  # the finding's occurrences: which time it opened
    acknowledged: bool = False  # on the finding or through `muster alerts ack`
    finding_silenced: bool = False  # silenced on the finding itself
    silenced_by: tuple[str, ...] = field(default=())  # ids of the alert silences that mute it

    @property
    def firing(self) -> bool:
        return self.ends_at is None

    @property
    def status(self) -> str:
        return FIRING if self.firing else RESOLVED

    @property
    def muted(self) -> bool:
        return self.finding_silenced or bool(self.silenced_by)

    @property
    def department(self) -> str | None:
        return self.labels.get("department")

    @property
    def agent(self) -> str | None:
        return self.labels.get("agent")

    def snapshot(self, external_url: str) -> dict[str, Any]:
        """What a notification records of this alert (receivers render it at send time)."""
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "generator_url": alert_url(external_url, self.fingerprint),
        }


def alert_url(external_url: str, fingerprint: str) -> str:
    return f"{external_url.rstrip('/')}/?finding={quote(fingerprint)}"


def alert_from_finding(row: dict[str, Any], now: datetime, *, acked: bool = False) -> Alert:
    """The alert of one `findings` row (a dict of its columns)."""
    return Alert(
        fingerprint=row["fingerprint"],
        labels=finding_labels(row),
        annotations=_annotations(row),
        starts_at=row["first_seen"],
        ends_at=row["resolved_at"],
        episode=int(row["occurrences"]),
        acknowledged=acked or row["status"] == "acknowledged",
        finding_silenced=row["status"] == "silenced"
        and (row.get("silenced_until") is None or row["silenced_until"] > now),
    )


def finding_labels(row: dict[str, Any]) -> dict[str, str]:
    try:
        own = json.loads(row["labels"] or "{}")
    except ValueError:
        own = {}
    labels = {str(k): str(v) for k, v in own.items()} if isinstance(own, dict) else {}
    fixed = {
        "alertname": row["rule"],
        "rule": row["rule"],
        "category": row["category"],
        "severity": row["severity"],
        "department": row.get("department_id"),
        "agent": row.get("agent_id"),
    }
    labels.update({k: str(v) for k, v in fixed.items() if v is not None})
    return dict(sorted(labels.items()))


def _annotations(row: dict[str, Any]) -> dict[str, str]:
    annotations = {"summary": row["title"]}
    description = _evidence_text(row.get("evidence"))
    if description:
        annotations["description"] = description
    for key in ("spend_usd", "spend_days"):  # what a group's headline adds up, and over how long
        value = _evidence_value(row.get("evidence"), key)
        if value is not None:
            annotations[key] = value
    return annotations


def _evidence_value(evidence: str | None, key: str) -> str | None:
    try:
        value = json.loads(evidence or "{}").get(key)
    except (ValueError, AttributeError):
        return None
    return str(value) if value is not None else None


def _evidence_text(evidence: str | None) -> str:
    """The evidence as `key: value` lines, scalars only: receivers show text, not nested JSON."""
    try:
        data = json.loads(evidence or "{}")
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    lines = [f"{k}: {v}" for k, v in data.items() if isinstance(v, str | int | float | bool)]
    return "\n".join(lines[:20])
