"""The inventory of observed agents: every identity seen in telemetry, its registry verdict and spend.

Built on `trace_agents` (one row per trace × owning identity, written by the cost job), so an
identity is observed as soon as it owns a span — an agent that only calls tools is in the
inventory too — with its model calls and spend summed from the same rows. Values travel as
parameters only.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb

Cursor = duckdb.DuckDBPyConnection

# Where observed identities come from, with the scope and time filters applied.
_OBSERVED_CALLS = """
SELECT observed_identity, match_status, agent_id, department_id, first_seen, last_seen, day,
       cost_usd, model_calls, unpriced_calls, environment
FROM trace_agents
WHERE ($start::DATE IS NULL OR day >= $start::DATE)
  AND ($end::DATE IS NULL OR day <= $end::DATE)
  AND ($departments::VARCHAR[] IS NULL OR list_contains($departments::VARCHAR[], department_id))
  AND ($agents::VARCHAR[] IS NULL OR list_contains($agents::VARCHAR[], agent_id))
"""

_INVENTORY = f"""
WITH observed AS ({_OBSERVED_CALLS})
SELECT o.observed_identity, o.match_status, o.agent_id, o.department_id, a.name AS agent_name,
       a.owner, a.platform, a.lifecycle, any_value(o.environment) AS environment,
       min(o.first_seen) AS first_seen, max(o.last_seen) AS last_seen,
       sum(o.model_calls) AS calls, sum(o.cost_usd) AS cost_usd,
       sum(o.unpriced_calls) AS unpriced_calls
FROM observed o LEFT JOIN agents a ON a.id = o.agent_id
GROUP BY o.observed_identity, o.match_status, o.agent_id, o.department_id,
         a.name, a.owner, a.platform, a.lifecycle
ORDER BY o.match_status = 'registered', cost_usd DESC NULLS LAST, o.observed_identity
"""  # noqa: S608 - composed of constant SQL only

_INVENTORY_COLUMNS = (
    "observed_identity",
    "match_status",
    "agent_id",
    "department_id",
    "agent_name",
    "owner",
    "platform",
    "lifecycle",
    "environment",
    "first_seen",
    "last_seen",
    "calls",
    "cost_usd",
    "unpriced_calls",
)

_SPRAWL = f"""
WITH observed AS ({_OBSERVED_CALLS})
SELECT date_trunc('week', day)::DATE AS week,
       count(DISTINCT observed_identity) FILTER (WHERE match_status = 'registered') AS registered,
       count(DISTINCT observed_identity) FILTER (WHERE match_status = 'unregistered') AS unregistered,
       count(DISTINCT observed_identity) FILTER (WHERE match_status = 'ambiguous') AS ambiguous,
       count(DISTINCT agent_id) AS registered_agents
FROM observed
GROUP BY week
ORDER BY week
"""  # noqa: S608 - composed of constant SQL only

_SPRAWL_COLUMNS = ("week", "registered", "unregistered", "ambiguous", "registered_agents")


def observed_identities(
    cur: Cursor,
    *,
    start: date | None = None,
    end: date | None = None,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Every identity observed over the UTC days `start`..`end` (both included), inside the scope.

    Unregistered and ambiguous identities come first, then by spend. Registered ones carry their
    agent's owner, platform and lifecycle from the registry; `cost_usd` is an exact decimal string.
    Scope: None means all, an empty collection nothing; identities without a department (not
    registered) are outside every department's scope.
    """
    rows = cur.execute(_INVENTORY, _params(start, end, department_ids, agent_ids)).fetchall()
    return [_inventory_row(row) for row in rows]


def sprawl_by_week(
    cur: Cursor,
    *,
    start: date | None = None,
    end: date | None = None,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Per ISO week (its Monday): distinct identities observed that were registered, unregistered,
    ambiguous, and how many registered agents they were."""
    rows = cur.execute(_SPRAWL, _params(start, end, department_ids, agent_ids)).fetchall()
    return [
        {
            key: value.isoformat() if key == "week" else value
            for key, value in zip(_SPRAWL_COLUMNS, row, strict=True)
        }
        for row in rows
    ]


def _params(
    start: date | None,
    end: date | None,
    department_ids: Collection[str] | None,
    agent_ids: Collection[str] | None,
) -> dict[str, Any]:
    return {
        "start": start,
        "end": end,
        "departments": None if department_ids is None else sorted(department_ids),
        "agents": None if agent_ids is None else sorted(agent_ids),
    }


def _inventory_row(row: tuple[Any, ...]) -> dict[str, Any]:
    found = dict(zip(_INVENTORY_COLUMNS, row, strict=True))
    found["cost_usd"] = money_text(found["cost_usd"])
    for key in ("first_seen", "last_seen"):
        found[key] = _iso(found[key])
    return found


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def money_text(value: Decimal | None) -> str:
    """An exact decimal as text without trailing zeros ("0" for none): JSON numbers round through floats."""
    if value is None:
        return "0"
    return format(value.normalize(), "f")
