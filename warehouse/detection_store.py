"""All SQL the findings job reads: who was seen doing what, and what it cost, over a window.

Everything comes from the tables the cost job derives — `trace_agents` (one row per trace and
owning identity, with what it used), `priced_calls` and their daily sums `daily_costs` — never
from raw spans, except the few recent calls whose conversation ids the runaway rules need. Each
query aggregates in DuckDB so the rules receive one row per identity, per usage or per day, not
per span. Values travel as parameters; the usage kinds are a constant table of list columns.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import polars as pl

Cursor = duckdb.DuckDBPyConnection

__all__ = [
    "USAGE_KINDS",
    "cost_mismatches",
    "daily_spend",
    "expensive_calls",
    "identities",
    "identity_first_seen",
    "recent_calls",
    "telemetry_start",
    "unpriced_calls",
    "usage",
    "usage_first_seen",
]

# The list columns of trace_agents that say what an identity used, by the name rules give them.
USAGE_KINDS = {
    "model": "models",
    "provider": "providers",
    "tool": "tools",
    "data_source": "data_sources",
    "endpoint": "endpoints",
}
_SAMPLES = 3  # sample trace ids quoted as evidence
# Samples are taken with arg_max(trace_id, time, n), the n latest, and distinct values with
# list(DISTINCT ...): both keep a few values per group, where list(...) first gathered every trace
# id and every list of the group — at 10M spans more than the warehouse's 256MB (identities over
# 30 days held ~420k lists of resource keys).


def identities(cur: Cursor, since: datetime) -> pl.DataFrame:
    """Per observed identity seen since `since`: its verdict, keys, activity, spend and where it ran."""
    return cur.sql(
        """SELECT match_status, agent_id, observed_identity,
                any_value(department_id) AS department_id,
                any_value(gen_ai_agent_id) AS gen_ai_agent_id, any_value(main_agent_id) AS main_agent_id,
                any_value(agent_name) AS agent_name, any_value(service_namespace) AS service_namespace,
                any_value(service_name) AS service_name,
                min(first_seen) AS first_seen, max(last_seen) AS last_seen,
                count(*) AS traces, sum(spans) AS spans, sum(model_calls) AS model_calls,
                sum(cost_usd) AS cost_usd,
                list_sort(list_distinct(list(DISTINCT environment))) AS environments,
                list_sort(list_distinct(flatten(list(DISTINCT services)))) AS services,
                list_sort(list_distinct(flatten(list(DISTINCT hosts)))) AS hosts,
                list_sort(list_distinct(flatten(list(DISTINCT tools)))) AS tools,
                list(DISTINCT resource_keys) AS resource_key_sets,
                bool_or(content_captured) AS content_captured,
                arg_max(trace_id, last_seen, $samples) AS sample_traces
           FROM trace_agents WHERE last_seen >= $since
           GROUP BY match_status, agent_id, observed_identity
           ORDER BY observed_identity""",
        params={"since": since, "samples": _SAMPLES},
    ).pl()


def usage(cur: Cursor, since: datetime) -> pl.DataFrame:
    """Per registered agent, kind (model, tool, ...) and value used since `since`: when, how often, samples.

    Environments count as a kind too, so lifecycle rules see where an agent ran.
    """
    parts = [
        f"SELECT agent_id, '{kind}' AS kind, unnest({column}) AS value, first_seen, last_seen, trace_id"  # noqa: S608
        " FROM trace_agents WHERE agent_id IS NOT NULL AND last_seen >= $since"
        for kind, column in USAGE_KINDS.items()
    ]
    parts.append(
        "SELECT agent_id, 'environment', environment, first_seen, last_seen, trace_id FROM trace_agents"
        " WHERE agent_id IS NOT NULL AND environment IS NOT NULL AND last_seen >= $since"
    )
    return cur.sql(
        f"""SELECT agent_id, kind, value, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
                count(*) AS traces, arg_max(trace_id, last_seen, $samples) AS sample_traces
           FROM ({" UNION ALL ".join(parts)}) GROUP BY ALL ORDER BY ALL""",  # noqa: S608 - constant text
        params={"since": since, "samples": _SAMPLES},
    ).pl()


def usage_first_seen(cur: Cursor, kind: str) -> pl.DataFrame:
    """Every value of a usage kind ever seen (any identity): first and last seen, identities, samples."""
    column = USAGE_KINDS[kind]
    return cur.sql(
        f"""SELECT value, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
                list_sort(coalesce(
                    list(DISTINCT observed_identity) FILTER (observed_identity IS NOT NULL), []))
                    AS identities,
                arg_max(trace_id, last_seen, $samples) AS sample_traces
           FROM (SELECT unnest({column}) AS value, first_seen, last_seen, observed_identity, trace_id
                 FROM trace_agents)
           GROUP BY value ORDER BY value""",  # noqa: S608 - column from a constant table
        params={"samples": _SAMPLES},
    ).pl()


def identity_first_seen(cur: Cursor) -> pl.DataFrame:
    """Per observed identity ever seen: its verdict now and when it was first and last seen."""
    return cur.sql(
        """SELECT observed_identity, arg_max(match_status, last_seen) AS match_status,
                arg_max(agent_id, last_seen) AS agent_id,
                min(first_seen) AS first_seen, max(last_seen) AS last_seen
           FROM trace_agents GROUP BY observed_identity ORDER BY observed_identity"""
    ).pl()


def telemetry_start(cur: Cursor) -> datetime | None:
    """When the oldest telemetry the jobs know of began; None before any."""
    return cur.execute("SELECT min(first_seen) FROM trace_agents").fetchall()[0][0]


# Whole days come from the daily sums the cost job keeps; the day `since` falls in, unless it begins
# there, from its priced calls after `since`. daily_costs is also keyed by environment, which budgets
# and anomalies are not kept on: its rows are summed over it, one row per day and dimension.
_DAILY_SPEND = """
SELECT day, agent_id, match_status, observed_identity, department_id, cost_centre, provider, model,
       sum(cost_usd) AS spend, sum(calls - unpriced_calls)::BIGINT AS calls
FROM daily_costs WHERE day::TIMESTAMP >= $since AND calls > unpriced_calls
GROUP BY ALL
UNION ALL
SELECT day, agent_id, match_status, observed_identity, department_id, cost_centre, provider, model,
       sum(cost_usd) AS spend, count(*) AS calls
FROM priced_calls
WHERE day = $since::DATE AND day::TIMESTAMP < $since AND start_time >= $since AND cost_usd IS NOT NULL
GROUP BY ALL
ORDER BY ALL
"""


def daily_spend(cur: Cursor, since: datetime) -> pl.DataFrame:
    """Priced spend per UTC day and every dimension a budget or anomaly is kept on, since `since`."""
    return cur.sql(_DAILY_SPEND, params={"since": since}).pl()


def unpriced_calls(cur: Cursor, since: datetime) -> pl.DataFrame:
    """Calls that could not be priced since `since`, per provider, model and reason."""
    return cur.sql(
        """SELECT provider, model, any_value(unpriced_reason) AS reason, count(*) AS calls,
                min(start_time) AS first_seen, max(start_time) AS last_seen,
                list_sort(coalesce(list(DISTINCT coalesce(agent_id, observed_identity))
                    FILTER (coalesce(agent_id, observed_identity) IS NOT NULL), [])) AS agents,
                arg_max(trace_id, start_time, $samples) AS sample_traces
           FROM priced_calls WHERE start_time >= $since AND cost_usd IS NULL
           GROUP BY provider, model ORDER BY ALL""",
        params={"since": since, "samples": _SAMPLES},
    ).pl()


def cost_mismatches(cur: Cursor, since: datetime) -> pl.DataFrame:
    """Calls whose own reported cost disagrees with ours since `since`, per provider and model."""
    return cur.sql(
        """SELECT provider, model, count(*) AS calls, sum(cost_usd) AS our_cost,
                arg_max(trace_id, start_time, $samples) AS sample_traces
           FROM priced_calls WHERE start_time >= $since AND reported_cost_mismatch
           GROUP BY provider, model ORDER BY ALL""",
        params={"since": since, "samples": _SAMPLES},
    ).pl()


def expensive_calls(cur: Cursor, since: datetime, floor: float) -> pl.DataFrame:
    """Registered agents' calls since `since` that cost more than `floor`, the lowest cap any policy sets."""
    return cur.sql(
        """SELECT agent_id, department_id, provider, model, trace_id, start_time, cost_usd
           FROM priced_calls
           WHERE start_time >= $since AND agent_id IS NOT NULL AND cost_usd > $floor
           ORDER BY cost_usd DESC LIMIT 10000""",
        params={"since": since, "floor": floor},
    ).pl()


def recent_calls(cur: Cursor, since: datetime) -> pl.DataFrame:
    """Every model call since `since` with its owner, tokens and conversation (else its trace)."""
    return cur.sql(
        """SELECT coalesce(c.agent_id, c.observed_identity) AS agent, c.agent_id, c.department_id,
                c.trace_id, c.start_time, c.total_tokens,
                coalesce(s.conversation_id, c.trace_id) AS conversation_id
           FROM priced_calls c
           LEFT JOIN spans s ON s.trace_id = c.trace_id AND s.span_id = c.span_id AND s.start_time >= $since
           WHERE c.start_time >= $since
           QUALIFY row_number() OVER (PARTITION BY c.trace_id, c.span_id) = 1""",
        params={"since": since},
    ).pl()
