"""The inventory of observed agents: every identity seen in telemetry, its registry verdict and spend.

Built on `trace_agents` (one row per trace × owning identity, written by the cost job), so an
identity is observed as soon as it owns a span — an agent that only calls tools is in the
inventory too — with its model calls and spend summed from the same rows. `identity_spend` gives
each identity's keys with the spend the job attributed, so the registry's verdict as it stands now
can be put beside it (`analytics.inventory`); the sprawl counts stay as the job decided them.
Values travel as parameters only.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

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

# Per observed identity (its keys) and the verdict the cost job gave it: the spend so attributed.
# No scope here: who may see an identity follows the registry's verdict now, decided by the caller.
_IDENTITY_SPEND = """
SELECT credential_agent_id, gen_ai_agent_id, main_agent_id, agent_name, service_namespace,
       service_name, environment,
       match_status AS attributed_status, agent_id AS attributed_agent_id,
       any_value(observed_identity) AS observed_identity,
       min(first_seen) AS first_seen, max(last_seen) AS last_seen,
       sum(model_calls)::BIGINT AS calls, sum(cost_usd) AS cost_usd,
       sum(unpriced_calls)::BIGINT AS unpriced_calls
FROM trace_agents
WHERE ($start::DATE IS NULL OR day >= $start::DATE)
  AND ($end::DATE IS NULL OR day <= $end::DATE)
GROUP BY ALL
"""

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


def identity_spend(cur: Cursor, *, start: date | None = None, end: date | None = None) -> pl.DataFrame:
    """Per observed identity and the verdict the cost job last gave it, over the UTC days
    `start`..`end` (both included): its calls and spend as the job attributed them.

    Columns: the identity keys (`registry.IDENTITY_COLUMNS`), `attributed_status`,
    `attributed_agent_id`, `observed_identity`, `first_seen`, `last_seen`, `calls`, `cost_usd`
    (exact decimal, null when none was priced) and `unpriced_calls`. An identity has one row per
    verdict: two only while a run re-attributing it is part-way through its batches.
    """
    return cur.sql(_IDENTITY_SPEND, params={"start": start, "end": end}).pl()


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


def money_text(value: Decimal | None) -> str:
    """An exact decimal as text without trailing zeros ("0" for none): JSON numbers round through floats."""
    if value is None:
        return "0"
    return format(value.normalize(), "f")
