"""The SQL of exports: the priced calls of one billing month, only the columns an export reads.

Scoped like `cost_store.spend_by`: a set of departments and a set of agents (None: all; empty:
none), so a department's finance token exports exactly the calls its spend report sums. Values
travel as parameters only.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

import duckdb
import polars as pl

Cursor = duckdb.DuckDBPyConnection

# What a FOCUS export reads of a priced call (analytics.focus maps these to FOCUS columns).
EXPORT_COLUMNS = (
    "day",
    "agent_id",
    "observed_identity",
    "department_id",
    "cost_centre",
    "environment",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "price_source",
)

_CALLS_OF_MONTH = f"""
SELECT {", ".join(EXPORT_COLUMNS)}
FROM priced_calls
WHERE day >= $month::DATE AND day < $month::DATE + INTERVAL 1 MONTH
  AND ($departments::VARCHAR[] IS NULL OR list_contains($departments::VARCHAR[], department_id))
  AND ($agents::VARCHAR[] IS NULL OR list_contains($agents::VARCHAR[], agent_id))
"""  # noqa: S608 - composed of constant SQL only


def priced_calls_of_month(
    cur: Cursor,
    month: date,
    *,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
) -> pl.DataFrame:
    """The priced calls of the UTC calendar month starting on `month` (its first day), inside the scope."""
    if month.day != 1:
        raise ValueError(f"a billing month starts on its first day, not on {month.isoformat()}")
    params = {
        "month": month,
        "departments": None if department_ids is None else sorted(department_ids),
        "agents": None if agent_ids is None else sorted(agent_ids),
    }
    return cur.sql(_CALLS_OF_MONTH, params=params).pl()
