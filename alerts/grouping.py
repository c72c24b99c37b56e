"""Alert groups and their lifecycle: when a group is told what, following Alertmanager.

A group collects the alerts of one route and receiver that share their group-by labels. Its first
alert starts `group_wait`; after that the group is looked at every `group_interval`. A look
notifies when an alert fires that the receiver was not told of, or one it was told of resolved,
or — when nothing changed — once `repeat_interval` has passed since the last notification and
some firing alert is not acknowledged. Muted alerts (silenced) are left out. A group with nothing
left firing goes idle; its next alert starts a fresh group_wait.

`step` is a pure function of the group's stored state, its alerts and the time, so the dispatcher
can persist the result in one transaction and tests can drive it with any clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from alerts.model import FIRING, RESOLVED, Alert
from alerts.routing import Destination


@dataclass(frozen=True)
class GroupState:
    """One row of `alert_groups`."""

    group_key: str
    route: str
    receiver: str
    group_labels: dict[str, str]
    created_at: datetime
    next_flush_at: datetime
    last_notified_at: datetime | None
    notified_firing: frozenset[str]
    seq: int
    active: bool = True


@dataclass(frozen=True)
class Notification:
    """A notification to record in the outbox: one group's state, told to one receiver."""

    group_key: str
    seq: int
    receiver: str
    status: str  # firing while any alert in it fires, else resolved
    group_labels: dict[str, str]
    alerts: tuple[Alert, ...]

    @property
    def id(self) -> str:
        import hashlib

        return "ntf_" + hashlib.sha256(f"{self.group_key}#{self.seq}".encode()).hexdigest()[:16]

    def payload(self, external_url: str) -> dict[str, Any]:
        """The neutral record of the notification that each receiver renders in its format."""
        alerts = [a.snapshot(external_url) for a in self.alerts]
        return {
            "receiver": self.receiver,
            "group_key": self.group_key,
            "status": self.status,
            "group_labels": self.group_labels,
            "common_labels": _common([a.labels for a in self.alerts]),
            "common_annotations": _common([a.annotations for a in self.alerts]),
            "external_url": external_url,
            "alerts": alerts,
        }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def step(
    destination: Destination,
    group_key: str,
    group_labels: dict[str, str],
    state: GroupState | None,
    alerts: Sequence[Alert],
    now: datetime,
) -> tuple[GroupState | None, Notification | None]:
    """The group's next state and, when it is time to tell the receiver something, the notification."""
    firing = sorted((a for a in alerts if a.firing and not a.muted), key=_order)
    if state is None or not state.active:
        if not firing:
            return state, None
        state = _fresh(destination, group_key, group_labels, state, now)
    if now < state.next_flush_at:
        return state, None
    told = state.notified_firing
    resolved = sorted((a for a in alerts if not a.firing and a.fingerprint in told), key=_order)
    later = replace(state, next_flush_at=now + destination.group_interval)
    if not firing and not resolved:
        return replace(later, active=False, notified_firing=frozenset()), None
    if not _needs_notification(destination, state, firing, resolved, now):
        return replace(later, notified_firing=frozenset(a.fingerprint for a in firing)), None
    seq = state.seq + 1
    notification = Notification(
        group_key,
        seq,
        destination.receiver,
        FIRING if firing else RESOLVED,
        group_labels,
        tuple(firing + resolved),
    )
    after = replace(
        later,
        seq=seq,
        last_notified_at=now,
        notified_firing=frozenset(a.fingerprint for a in firing),
        active=bool(firing),
    )
    return after, notification


def _fresh(
    destination: Destination,
    group_key: str,
    group_labels: dict[str, str],
    idle: GroupState | None,
    now: datetime,
) -> GroupState:
    """A group starting (again): group_wait from now; an idle group keeps its notification count."""
    return GroupState(
        group_key=group_key,
        route=destination.route,
        receiver=destination.receiver,
        group_labels=group_labels,
        created_at=now,
        next_flush_at=now + destination.group_wait,
        last_notified_at=None,
        notified_firing=frozenset(),
        seq=idle.seq if idle else 0,
        active=True,
    )


def _needs_notification(
    destination: Destination,
    state: GroupState,
    firing: list[Alert],
    resolved: list[Alert],
    now: datetime,
) -> bool:
    if resolved or {a.fingerprint for a in firing} - state.notified_firing:
        return True
    if state.last_notified_at is None:
        return True
    repeat_due = now - state.last_notified_at >= destination.repeat_interval
    return repeat_due and any(not a.acknowledged for a in firing)


def _order(alert: Alert) -> tuple:
    return (alert.starts_at, alert.fingerprint)
