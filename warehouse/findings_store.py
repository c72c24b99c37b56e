"""All SQL of findings: reconcile a run's verdicts with the stored findings, list them, triage them.

Lifecycle (DESIGN "Findings"): a verdict with a new fingerprint opens a finding; one already firing
is refreshed (last_seen, title, severity, labels, evidence); a resolved one that holds again
reopens and counts another occurrence; a firing finding that a run no longer finds is resolved.
People's decisions — acknowledged, silenced until a time, with a comment — are kept across runs;
an acknowledgement ends when the finding resolves (a new episode needs a new look), a silence
when its time is up. `status` is derived from those facts on every write, so it is never stale by
more than one run. Values travel as parameters only.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from analytics.findings import Finding

Cursor = duckdb.DuckDBPyConnection

__all__ = [
    "FINDING_STATUSES",
    "ReconcileResult",
    "acknowledge",
    "get_finding",
    "list_findings",
    "reconcile",
    "silence",
    "summary",
    "unsilence",
]

FINDING_STATUSES = ("open", "acknowledged", "silenced", "resolved")
# `active` (every finding that still holds) and `all` are the two status filters beyond the four.
STATUS_FILTERS = (*FINDING_STATUSES, "active", "all")

_COLUMNS = (
    "fingerprint",
    "rule",
    "category",
    "severity",
    "subject_kind",
    "subject_id",
    "dimension",
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
    "acknowledged_by",
    "acknowledged_at",
    "silenced_by",
    "silenced_until",
    "comment",
    "updated_at",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM findings"  # noqa: S608 - constant column list

# The status of a stored row at time $now, from the facts it holds.
_STATUS = """CASE
    WHEN resolved_at IS NOT NULL THEN 'resolved'
    WHEN silenced_until > $now THEN 'silenced'
    WHEN acknowledged_at IS NOT NULL THEN 'acknowledged'
    ELSE 'open' END"""


@dataclass(frozen=True)
class ReconcileResult:
    opened: int
    reopened: int
    refreshed: int
    resolved: int

    def to_dict(self) -> dict[str, int]:
        return {
            "opened": self.opened,
            "reopened": self.reopened,
            "refreshed": self.refreshed,
            "resolved": self.resolved,
        }


def reconcile(
    cur: Cursor, found: Iterable[Finding], now: datetime, *, rules: Collection[str]
) -> ReconcileResult:
    """Make the stored findings of `rules` match `found` at `now`, in one transaction.

    Findings of rules not in `rules` are left alone (a rule that did not run says nothing).
    """
    verdicts = {finding.fingerprint: finding for finding in found}
    cur.execute("BEGIN")
    try:
        known = dict(
            cur.execute(
                "SELECT fingerprint, resolved_at IS NULL FROM findings WHERE list_contains($rules, rule)",
                {"rules": sorted(rules)},
            ).fetchall()
        )
        new = [f for key, f in verdicts.items() if key not in known]
        back = [f for key, f in verdicts.items() if known.get(key) is False]
        still = [f for key, f in verdicts.items() if known.get(key) is True]
        gone = [key for key, firing in known.items() if firing and key not in verdicts]
        _insert(cur, new, now)
        _refresh(cur, back, now, reopen=True)
        _refresh(cur, still, now, reopen=False)
        if gone:
            cur.execute(
                "UPDATE findings SET resolved_at = $now, acknowledged_at = NULL, acknowledged_by = NULL,"
                " updated_at = $now WHERE list_contains($gone, fingerprint)",
                {"now": now, "gone": gone},
            )
        _restatus(cur, now)
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    return ReconcileResult(opened=len(new), reopened=len(back), refreshed=len(still), resolved=len(gone))


def _verdict(f: Finding) -> list[Any]:
    """What a run says about a finding, in `_VERDICT_COLUMNS` order: written on insert and refresh."""
    return [
        str(f.effective_severity),
        f.agent_id,
        f.department_id,
        f.title,
        _json(f.all_labels()),
        _json(f.evidence),
    ]


_VERDICT_COLUMNS = ("severity", "agent_id", "department_id", "title", "labels", "evidence")


def _insert(cur: Cursor, findings: list[Finding], now: datetime) -> None:
    if not findings:
        return
    cur.executemany(
        "INSERT INTO findings (fingerprint, rule, category, subject_kind, subject_id, dimension,"  # noqa: S608
        f" {', '.join(_VERDICT_COLUMNS)}, status, first_seen, last_seen, occurrences, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, 1, ?)",
        [
            [
                f.fingerprint,
                f.rule.id,
                str(f.rule.category),
                f.subject_kind,
                f.subject_id,
                f.dimension,
                *_verdict(f),
                now,
                now,
                now,
            ]
            for f in findings
        ],
    )


def _refresh(cur: Cursor, findings: list[Finding], now: datetime, *, reopen: bool) -> None:
    if not findings:
        return
    episode = ", resolved_at = NULL, occurrences = occurrences + 1" if reopen else ""
    assignments = ", ".join(f"{column} = ?" for column in _VERDICT_COLUMNS)
    cur.executemany(
        f"UPDATE findings SET {assignments}, last_seen = ?, updated_at = ?{episode}"  # noqa: S608
        " WHERE fingerprint = ?",
        [[*_verdict(f), now, now, f.fingerprint] for f in findings],
    )


def _restatus(cur: Cursor, now: datetime) -> None:
    """Status from the facts: silences that ended turn back into open or acknowledged findings."""
    cur.execute(
        f"UPDATE findings SET status = {_STATUS} WHERE status IS DISTINCT FROM ({_STATUS})",  # noqa: S608
        {"now": now},
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def list_findings(
    cur: Cursor,
    now: datetime,
    *,
    status: str = "active",
    category: str | None = None,
    severity: str | None = None,
    rule: str | None = None,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
    department: str | None = None,
    agent: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Findings matching every filter given, most severe and most recent first, and their total count.

    `department_ids`/`agent_ids` confine to a token's scope (None: everything); `department` and
    `agent` are the caller's own filters. Status is evaluated at `now`, so an expired silence shows
    as open even before the next run.
    """
    if status not in STATUS_FILTERS:
        raise ValueError(f"unknown status {status!r}: use one of {', '.join(STATUS_FILTERS)}")
    where = f"""
        FROM (SELECT * REPLACE ({_STATUS} AS status) FROM findings)
        WHERE ($status = 'all' OR ($status = 'active' AND status <> 'resolved') OR status = $status)
          AND ($category IS NULL OR category = $category)
          AND ($severity IS NULL OR severity = $severity)
          AND ($rule IS NULL OR rule = $rule)
          AND ($department IS NULL OR department_id = $department)
          AND ($agent IS NULL OR agent_id = $agent)
          AND ($departments IS NULL OR list_contains($departments, department_id))
          AND ($agents IS NULL OR list_contains($agents, agent_id))"""  # noqa: S608 - constant text
    params = {
        "now": now,
        "status": status,
        "category": category,
        "severity": severity,
        "rule": rule,
        "department": department,
        "agent": agent,
        "departments": sorted(department_ids) if department_ids is not None else None,
        "agents": sorted(agent_ids) if agent_ids is not None else None,
    }
    total = cur.execute(f"SELECT count(*) {where}", params).fetchall()[0][0]
    rows = cur.execute(
        f"SELECT {', '.join(_COLUMNS)} {where}"
        " ORDER BY resolved_at IS NOT NULL, CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1"
        " ELSE 2 END, last_seen DESC, fingerprint LIMIT $limit OFFSET $offset",
        params | {"limit": limit, "offset": offset},
    ).fetchall()
    return [_finding_row(row) for row in rows], total


def get_finding(cur: Cursor, key: str, now: datetime) -> dict[str, Any] | None:
    rows = cur.execute(
        f"SELECT * REPLACE ({_STATUS} AS status) FROM ({_SELECT} WHERE fingerprint = $key)",  # noqa: S608
        {"key": key, "now": now},
    ).fetchall()
    return _finding_row(rows[0]) if rows else None


def _finding_row(row: tuple[Any, ...]) -> dict[str, Any]:
    found = dict(zip(_COLUMNS, row, strict=True))
    found["labels"] = json.loads(found["labels"])
    found["evidence"] = json.loads(found["evidence"])
    return found


def acknowledge(cur: Cursor, key: str, *, by: str, comment: str | None, now: datetime) -> bool:
    """Acknowledge a firing finding; False when there is no such finding or it is resolved."""
    return _triage(
        cur,
        "acknowledged_by = $by, acknowledged_at = $now, comment = coalesce($comment, comment)",
        key,
        {"by": by, "comment": comment, "now": now},
        firing_only=True,
    )


def silence(cur: Cursor, key: str, *, by: str, until: datetime, comment: str, now: datetime) -> bool:
    """Silence a finding until `until` (it may resolve and reopen meanwhile and stays silent)."""
    return _triage(
        cur,
        "silenced_by = $by, silenced_until = $until, comment = $comment",
        key,
        {"by": by, "until": until, "comment": comment, "now": now},
        firing_only=False,
    )


def unsilence(cur: Cursor, key: str, *, now: datetime) -> bool:
    return _triage(cur, "silenced_until = NULL, silenced_by = NULL", key, {"now": now}, firing_only=False)


def _triage(cur: Cursor, assignments: str, key: str, params: dict[str, Any], *, firing_only: bool) -> bool:
    condition = " AND resolved_at IS NULL" if firing_only else ""
    params = params | {"key": key}
    changed = cur.execute(
        f"UPDATE findings SET {assignments}, updated_at = $now WHERE fingerprint = $key{condition}"  # noqa: S608
        " RETURNING fingerprint",
        params,
    ).fetchall()
    if changed:
        cur.execute(
            f"UPDATE findings SET status = {_STATUS} WHERE fingerprint = $key",  # noqa: S608
            {"key": key, "now": params["now"]},
        )
    return bool(changed)


def summary(
    cur: Cursor,
    now: datetime,
    *,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Active findings counted by category, severity and status, within the scope given."""
    rows = cur.execute(
        f"""SELECT category, severity, status, count(*) FROM (
                SELECT * REPLACE ({_STATUS} AS status) FROM findings)
            WHERE status <> 'resolved'
              AND ($departments IS NULL OR list_contains($departments, department_id))
              AND ($agents IS NULL OR list_contains($agents, agent_id))
            GROUP BY ALL ORDER BY ALL""",  # noqa: S608 - constant text
        {
            "now": now,
            "departments": sorted(department_ids) if department_ids is not None else None,
            "agents": sorted(agent_ids) if agent_ids is not None else None,
        },
    ).fetchall()
    return [{"category": c, "severity": s, "status": st, "count": n} for c, s, st, n in rows]


FINDINGS_JOB = "findings"


def record_run(cur: Cursor, *, duration_s: float, error: str | None = None) -> None:
    """Note the findings job's last run in job_state (it reads windows, so its watermark stays 0)."""
    cur.execute(
        """INSERT INTO job_state (job, watermark, last_run_at, last_duration_s, last_error)
           VALUES ($job, 0, now(), $duration, $error)
           ON CONFLICT (job) DO UPDATE SET last_run_at = excluded.last_run_at,
               last_duration_s = excluded.last_duration_s, last_error = excluded.last_error""",
        {"job": FINDINGS_JOB, "duration": duration_s, "error": error},
    )
