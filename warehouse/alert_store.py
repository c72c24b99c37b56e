"""All SQL of alerts: the findings they come from, group state, the notification outbox, silences, acks.

The dispatcher reads `findings` and never writes it. A tick's decisions — group states and the
notifications they produce — are written in one transaction (`save_tick`), so a notification is
on record before it is sent, and a restart can neither lose it nor record the same group state a
second time (the outbox is unique on group and sequence number). Values travel as parameters
only; no SQL text is built from input.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb

Cursor = duckdb.DuckDBPyConnection

FINDING_COLUMNS = (
    "fingerprint",
    "rule",
    "category",
    "severity",
    "subject_kind",
    "subject_id",
    "agent_id",
    "department_id",
    "title",
    "labels",
    "evidence",
    "status",
    "first_seen",
    "last_seen",
    "resolved_at",
    "occurrences",
    "silenced_until",
)
_FINDING_LIST = ", ".join(f"f.{c}" for c in FINDING_COLUMNS)

# An empty scope list means "nothing"; NULL means "no restriction".
_FINDING_SCOPE = """
    ($departments::VARCHAR[] IS NULL OR list_contains($departments::VARCHAR[], f.department_id))
    AND ($agents::VARCHAR[] IS NULL OR list_contains($agents::VARCHAR[], f.agent_id))
"""

_ACKED = """
EXISTS (SELECT 1 FROM alert_acks k WHERE k.fingerprint = f.fingerprint AND k.episode = f.occurrences)
"""


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def _dicts(cur: Cursor, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    result = cur.execute(sql, params or {})
    names = [d[0] for d in result.description]
    return [{n: _utc(v) for n, v in zip(names, row, strict=True)} for row in result.fetchall()]


def _listed(values: Collection[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


# What the dispatcher reads


_CANDIDATES = f"""
SELECT {_FINDING_LIST}, {_ACKED} AS acked FROM findings f
WHERE f.resolved_at IS NULL
   OR f.fingerprint IN (SELECT unnest(notified_firing) FROM alert_groups WHERE active)
ORDER BY f.first_seen, f.fingerprint
"""  # noqa: S608 - composed of constant SQL only


def alert_candidates(cur: Cursor) -> list[dict[str, Any]]:
    """Findings that fire, and resolved ones a receiver was told fire (it must hear they resolved)."""
    return _dicts(cur, _CANDIDATES)


_GROUPS = """
SELECT group_key, route, receiver, group_labels, created_at, next_flush_at, last_notified_at,
       notified_firing, seq, active
FROM alert_groups
"""


def group_states(cur: Cursor) -> list[dict[str, Any]]:
    """Every alert group's stored state; `group_labels` decoded."""
    rows = _dicts(cur, _GROUPS)
    for row in rows:
        row["group_labels"] = json.loads(row["group_labels"])
    return rows


_UPSERT_GROUP = """
INSERT INTO alert_groups (group_key, route, receiver, group_labels, created_at, next_flush_at,
                          last_notified_at, notified_firing, seq, active)
VALUES ($group_key, $route, $receiver, $group_labels, $created_at, $next_flush_at,
        $last_notified_at, $notified_firing::VARCHAR[], $seq, $active)
ON CONFLICT (group_key) DO UPDATE SET
    route = excluded.route, receiver = excluded.receiver, group_labels = excluded.group_labels,
    created_at = excluded.created_at, next_flush_at = excluded.next_flush_at,
    last_notified_at = excluded.last_notified_at, notified_firing = excluded.notified_firing,
    seq = excluded.seq, active = excluded.active
"""

_INSERT_NOTIFICATION = """
INSERT INTO alert_notifications (id, group_key, seq, receiver, status, group_status, fingerprints,
                                 payload, created_at, attempts, next_attempt_at)
VALUES ($id, $group_key, $seq, $receiver, 'pending', $group_status, $fingerprints::VARCHAR[],
        $payload, $now, 0, $now)
"""


def save_tick(
    cur: Cursor, groups: Sequence[dict[str, Any]], notifications: Sequence[dict[str, Any]], now: datetime
) -> None:
    """In one transaction: the groups' new states and the notifications they decided to send.

    Each group dict has the columns of alert_groups (`group_labels` a dict, `notified_firing` a
    list); each notification: id, group_key, seq, receiver, group_status, fingerprints, payload
    (a dict). A failure rolls all of it back, so the next tick decides again from the same state.
    """
    cur.execute("BEGIN")
    try:
        for group in groups:
            params = dict(group)
            params["group_labels"] = json.dumps(group["group_labels"], sort_keys=True)
            params["notified_firing"] = sorted(group["notified_firing"])
            cur.execute(_UPSERT_GROUP, params)
        for note in notifications:
            params = {k: note[k] for k in ("id", "group_key", "seq", "receiver", "group_status")}
            params |= {"fingerprints": list(note["fingerprints"]), "payload": json.dumps(note["payload"])}
            cur.execute(_INSERT_NOTIFICATION, params | {"now": now})
        cur.execute("COMMIT")
    except BaseException:
        _roll_back(cur)
        raise


def _roll_back(cur: Cursor) -> None:
    with contextlib.suppress(duckdb.Error):
        cur.execute("ROLLBACK")


# The outbox

_NOTIFICATION_COLUMNS = """
id, group_key, seq, receiver, status, group_status, fingerprints, payload, created_at, attempts,
next_attempt_at, last_attempt_at, last_error, delivered_at
"""

_DUE = f"""
SELECT {_NOTIFICATION_COLUMNS} FROM alert_notifications
WHERE status = 'pending' AND next_attempt_at <= $now AND receiver = $receiver
ORDER BY created_at, group_key, seq
LIMIT $limit
"""  # noqa: S608 - composed of constant SQL only

_DUE_RECEIVERS = """
SELECT DISTINCT receiver FROM alert_notifications WHERE status = 'pending' AND next_attempt_at <= $now
ORDER BY receiver
"""


def receivers_with_due(cur: Cursor, now: datetime) -> list[str]:
    """The receivers that have pending notifications due by `now`."""
    return [row[0] for row in cur.execute(_DUE_RECEIVERS, {"now": now}).fetchall()]


def due_notifications(cur: Cursor, receiver: str, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """A receiver's pending notifications due by `now`, oldest first; `payload` decoded."""
    rows = _dicts(cur, _DUE, {"now": now, "receiver": receiver, "limit": limit})
    for row in rows:
        row["payload"] = json.loads(row["payload"])
    return rows


_RECORD_ATTEMPT = """
UPDATE alert_notifications
SET status = $status, attempts = $attempts, next_attempt_at = $next_attempt_at,
    last_attempt_at = $now, last_error = $error,
    delivered_at = CASE WHEN $status = 'delivered' THEN $now ELSE NULL END
WHERE id = $id
"""


def record_attempt(
    cur: Cursor,
    notification_id: str,
    *,
    status: str,
    attempts: int,
    now: datetime,
    next_attempt_at: datetime,
    error: str | None,
) -> None:
    """Note one delivery attempt: delivered, pending again (a retry at next_attempt_at) or failed."""
    params = {
        "id": notification_id,
        "status": status,
        "attempts": attempts,
        "now": now,
        "next_attempt_at": next_attempt_at,
        "error": error,
    }
    cur.execute(_RECORD_ATTEMPT, params)


_NOTIFICATIONS = f"""
SELECT {_NOTIFICATION_COLUMNS} FROM alert_notifications n
WHERE ($status::VARCHAR IS NULL OR n.status = $status)
  AND ($fingerprint::VARCHAR IS NULL OR list_contains(n.fingerprints, $fingerprint))
  AND (($departments::VARCHAR[] IS NULL AND $agents::VARCHAR[] IS NULL) OR EXISTS (
        SELECT 1 FROM findings f WHERE list_contains(n.fingerprints, f.fingerprint) AND {_FINDING_SCOPE}))
ORDER BY n.created_at DESC, n.group_key, n.seq DESC
LIMIT $limit
"""  # noqa: S608 - composed of constant SQL only


def list_notifications(
    cur: Cursor,
    *,
    status: str | None = None,
    fingerprint: str | None = None,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Notifications newest first, of one status and/or about one alert, inside a scope."""
    params = {
        "status": status,
        "fingerprint": fingerprint,
        "departments": _listed(department_ids),
        "agents": _listed(agent_ids),
        "limit": limit,
    }
    rows = _dicts(cur, _NOTIFICATIONS, params)
    for row in rows:
        row["payload"] = json.loads(row["payload"])
    return rows


# Alerts as people list them


_ALERTS = f"""
SELECT {_FINDING_LIST}, {_ACKED} AS acked,
       (SELECT k.acked_by FROM alert_acks k
        WHERE k.fingerprint = f.fingerprint AND k.episode = f.occurrences) AS acked_by,
       (SELECT k.comment FROM alert_acks k
        WHERE k.fingerprint = f.fingerprint AND k.episode = f.occurrences) AS ack_comment
FROM findings f
WHERE ($state = 'all' OR ($state = 'firing') = (f.resolved_at IS NULL))
  AND {_FINDING_SCOPE}
ORDER BY f.resolved_at IS NULL DESC, f.last_seen DESC, f.fingerprint
LIMIT $limit
"""  # noqa: S608 - composed of constant SQL only


def list_alert_findings(
    cur: Cursor,
    *,
    state: str = "firing",
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Findings as alerts (firing, resolved or all) inside a scope, with their acknowledgement."""
    params = {
        "state": state,
        "departments": _listed(department_ids),
        "agents": _listed(agent_ids),
        "limit": limit,
    }
    return _dicts(cur, _ALERTS, params)


_FIND = f"""
SELECT {_FINDING_LIST} FROM findings f
WHERE (f.fingerprint = $id OR (length($id) >= 6 AND starts_with(f.fingerprint, $id)))
  AND {_FINDING_SCOPE}
ORDER BY f.fingerprint
LIMIT 2
"""  # noqa: S608 - composed of constant SQL only


def find_finding(
    cur: Cursor,
    alert_id: str,
    *,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """The findings whose fingerprint is `alert_id` or starts with it (6+ characters), inside a scope.

    At most two: more than one means the prefix is ambiguous.
    """
    params = {"id": alert_id, "departments": _listed(department_ids), "agents": _listed(agent_ids)}
    exact = [row for row in _dicts(cur, _FIND, params) if row["fingerprint"] == alert_id]
    return exact or _dicts(cur, _FIND, params)


_GROUPS_OF = """
SELECT group_key, receiver, active, last_notified_at FROM alert_groups
WHERE list_contains(notified_firing, $fingerprint)
ORDER BY group_key
"""


def groups_of(cur: Cursor, fingerprint: str) -> list[dict[str, Any]]:
    """The groups whose receivers were last told this alert fires."""
    return _dicts(cur, _GROUPS_OF, {"fingerprint": fingerprint})


_INSERT_ACK = """
INSERT INTO alert_acks (fingerprint, episode, acked_by, acked_at, comment)
VALUES ($fingerprint, $episode, $by, $now, $comment)
ON CONFLICT (fingerprint, episode) DO UPDATE SET
    acked_by = excluded.acked_by, acked_at = excluded.acked_at, comment = excluded.comment
"""


def acknowledge(cur: Cursor, fingerprint: str, episode: int, *, by: str, comment: str, now: datetime) -> None:
    """Record that `by` acknowledged this episode of the alert (again: the latest reason stands)."""
    params = {"fingerprint": fingerprint, "episode": episode, "by": by, "comment": comment, "now": now}
    cur.execute(_INSERT_ACK, params)


# Silences


_SILENCE_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at, ended_by"

_INSERT_SILENCE = """
INSERT INTO alert_silences (id, matchers, starts_at, ends_at, created_by, comment, created_at)
VALUES ($id, $matchers, $starts_at, $ends_at, $created_by, $comment, $created_at)
"""


def insert_silence(cur: Cursor, silence: dict[str, Any]) -> None:
    """Store a silence: id, matchers (dicts), starts_at, ends_at, created_by, comment, created_at."""
    params = {k: silence[k] for k in ("id", "starts_at", "ends_at", "created_by", "comment", "created_at")}
    cur.execute(_INSERT_SILENCE, params | {"matchers": json.dumps(silence["matchers"])})


_SILENCES = f"""
SELECT {_SILENCE_COLUMNS} FROM alert_silences
WHERE ($now::TIMESTAMPTZ IS NULL OR ends_at > $now::TIMESTAMPTZ)
ORDER BY starts_at, id
"""  # noqa: S608 - composed of constant SQL only


def list_silences(cur: Cursor, *, unexpired_at: datetime | None = None) -> list[dict[str, Any]]:
    """Silences, oldest first: all of them, or those not yet expired at `unexpired_at`."""
    rows = _dicts(cur, _SILENCES, {"now": unexpired_at})
    for row in rows:
        row["matchers"] = json.loads(row["matchers"])
    return rows


_GET_SILENCE = f"SELECT {_SILENCE_COLUMNS} FROM alert_silences WHERE id = $id"  # noqa: S608


def get_silence(cur: Cursor, silence_id: str) -> dict[str, Any] | None:
    rows = _dicts(cur, _GET_SILENCE, {"id": silence_id})
    if not rows:
        return None
    rows[0]["matchers"] = json.loads(rows[0]["matchers"])
    return rows[0]


_END_SILENCE = """
UPDATE alert_silences SET ends_at = least(ends_at, $now), ended_by = $by
WHERE id = $id AND ends_at > $now
"""


def end_silence(cur: Cursor, silence_id: str, *, by: str, now: datetime) -> None:
    """End a silence now (a pending one ends before it starts); an expired one stays as it was."""
    cur.execute(_END_SILENCE, {"id": silence_id, "by": by, "now": now})
