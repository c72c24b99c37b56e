"""Trace search and trace detail: summaries of agent runs, and every span of one with its priced cost.

A trace's spans come from `spans` (a span stored twice by a retry counts once); its model calls,
tokens, cost and owning agents from `priced_calls`. A scoped reader sees a trace when one of its
model calls was attributed inside its scope; an unscoped reader also sees traces without model
calls. Values travel as parameters only.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import date, datetime
from typing import Any

import duckdb

from warehouse.inventory_store import money_text

Cursor = duckdb.DuckDBPyConnection

# A call inside the reader's scope: the calls of other departments in a shared trace stay hidden.
_IN_SCOPE = """($departments::VARCHAR[] IS NULL OR list_contains($departments::VARCHAR[], department_id))
  AND ($agents::VARCHAR[] IS NULL OR list_contains($agents::VARCHAR[], agent_id))"""

# Traces that have a model call inside the scope and matching the agent / model filters. The agent
# filter takes a registered agent id or an observed identity (for unregistered agents).
_MATCHING_CALLS = f"""
SELECT DISTINCT trace_id FROM priced_calls
WHERE {_IN_SCOPE}
  AND ($agent::VARCHAR IS NULL OR agent_id = $agent OR observed_identity = $agent)
  AND ($model::VARCHAR IS NULL OR model = $model)
"""  # noqa: S608 - composed of constant SQL only

# Calls count only when filtered on: with no scope and no call filter every trace may show.
_NEEDS_CALLS = "($departments::VARCHAR[] IS NOT NULL OR $agents::VARCHAR[] IS NOT NULL OR $agent::VARCHAR IS NOT NULL OR $model::VARCHAR IS NOT NULL)"  # noqa: E501

_SUMMARIES = f"""
WITH in_range AS (
    SELECT DISTINCT trace_id FROM spans
    WHERE ($start::TIMESTAMP IS NULL OR start_time >= $start::TIMESTAMP)
      AND ($end::TIMESTAMP IS NULL OR start_time < $end::TIMESTAMP)
      AND ($environment::VARCHAR IS NULL OR environment = $environment)
),
candidates AS (
    SELECT trace_id FROM in_range
    WHERE NOT {_NEEDS_CALLS} OR trace_id IN ({_MATCHING_CALLS})
),
unique_spans AS (
    SELECT trace_id, span_id, parent_span_id, name, start_time, end_time, status_code FROM spans
    WHERE trace_id IN (SELECT trace_id FROM candidates)
    QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY ingest_seq) = 1
),
shape AS (
    SELECT trace_id,
           coalesce(arg_min(name, start_time) FILTER (WHERE parent_span_id IS NULL),
                    arg_min(name, start_time)) AS root_name,
           min(start_time) AS start_time,
           max(end_time) AS end_time,
           count(*) AS spans,
           bool_or(status_code = 'error') AS error
    FROM unique_spans GROUP BY trace_id
),
calls AS (
    SELECT trace_id,
           arg_min(coalesce(agent_id, observed_identity), start_time) AS agent,
           arg_min(department_id, start_time) AS department_id,
           list(DISTINCT coalesce(agent_id, observed_identity) ORDER BY coalesce(agent_id, observed_identity))
               AS agents,
           list(DISTINCT model ORDER BY model) FILTER (WHERE model IS NOT NULL) AS models,
           count(*) AS model_calls,
           coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
           coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
           sum(cost_usd) AS cost_usd,
           count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls
    FROM priced_calls WHERE trace_id IN (SELECT trace_id FROM candidates) AND {_IN_SCOPE}
    GROUP BY trace_id
)
SELECT s.trace_id, s.root_name, c.agent, c.department_id, coalesce(c.agents, []), coalesce(c.models, []),
       s.start_time, (epoch_ns(s.end_time) - epoch_ns(s.start_time)) / 1e6 AS duration_ms,
       s.spans, coalesce(c.model_calls, 0), coalesce(c.input_tokens, 0), coalesce(c.output_tokens, 0),
       c.cost_usd, coalesce(c.unpriced_calls, 0), s.error,
       count(*) OVER () AS total
FROM shape s LEFT JOIN calls c USING (trace_id)
WHERE ($start::TIMESTAMP IS NULL OR s.start_time >= $start::TIMESTAMP)
  AND ($status::VARCHAR IS NULL OR s.error = ($status::VARCHAR = 'error'))
ORDER BY s.start_time DESC, s.trace_id
LIMIT $limit OFFSET $offset
"""  # noqa: S608 - composed of constant SQL only

_SUMMARY_COLUMNS = (
    "trace_id",
    "root_name",
    "agent",
    "department_id",
    "agents",
    "models",
    "start_time",
    "duration_ms",
    "spans",
    "model_calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "unpriced_calls",
    "error",
)


def trace_summaries(
    cur: Cursor,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    agent: str | None = None,
    model: str | None = None,
    status: str | None = None,
    environment: str | None = None,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """One page of traces that started in [`start`, `end`), newest first, and how many there are.

    `status` is "ok" (no span failed) or "error" (one did); `environment`: a span of the trace
    ran in that deployment environment. Scope as elsewhere: None means all,
    an empty collection nothing. Each summary: root span name, the agent owning its first model
    call, every agent and model involved, start, duration, spans, model calls, tokens, cost (an
    exact decimal string) and whether a span failed.
    """
    params = {
        "start": start,
        "end": end,
        "agent": agent,
        "model": model,
        "status": status,
        "environment": environment,
        "departments": _listed(department_ids),
        "agents": _listed(agent_ids),
        "limit": limit,
        "offset": offset,
    }
    rows = cur.execute(_SUMMARIES, params).fetchall()
    total = rows[0][-1] if rows else 0
    if not rows and offset:  # past the last page: still say how many there are
        first = cur.execute(_SUMMARIES, params | {"limit": 1, "offset": 0}).fetchall()
        total = first[0][-1] if first else 0
    return [_summary(row[:-1]) for row in rows], int(total)


_VISIBLE = f"""
SELECT count(*) FROM spans WHERE trace_id = $trace
  AND (NOT {_NEEDS_CALLS} OR $trace IN ({_MATCHING_CALLS}))
"""  # noqa: S608 - composed of constant SQL only

_SPANS = f"""
WITH unique_spans AS (
    SELECT * FROM spans LEFT JOIN resources USING (resource_id) WHERE trace_id = $trace
    QUALIFY row_number() OVER (PARTITION BY span_id ORDER BY ingest_seq) = 1
)
SELECT s.span_id, s.parent_span_id, s.name, s.kind, s.start_time, s.end_time, s.duration_ns / 1e6,
       s.status_code, s.status_message, s.service_namespace, s.service_name, s.environment,
       s.operation, s.provider, coalesce(s.response_model, s.request_model), s.agent_name, s.tool_name,
       s.input_tokens, s.output_tokens, s.total_tokens,
       p.cost_usd, p.price_source, p.agent_id, p.observed_identity, p.match_status, p.department_id,
       s.attributes, s.resource_attributes
FROM unique_spans s
LEFT JOIN (SELECT * FROM priced_calls WHERE trace_id = $trace AND {_IN_SCOPE}) p ON p.span_id = s.span_id
ORDER BY s.start_time, s.span_id
"""  # noqa: S608 - composed of constant SQL only

_SPAN_COLUMNS = (
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_time",
    "end_time",
    "duration_ms",
    "status_code",
    "status_message",
    "service_namespace",
    "service_name",
    "environment",
    "operation",
    "provider",
    "model",
    "agent_name",
    "tool_name",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost_usd",
    "price_source",
    "agent_id",
    "observed_identity",
    "match_status",
    "department_id",
    "attributes",
    "resource_attributes",
)


def trace_spans(
    cur: Cursor,
    trace_id: str,
    *,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
) -> list[dict[str, Any]] | None:
    """Every span of the trace in start order, with its priced cost when it is a model call.

    None when the trace does not exist or lies outside the scope (a scoped reader sees a trace
    when one of its model calls is in scope). `cost_usd` is an exact decimal string for priced
    calls and None for other spans; attributes come back as objects.
    """
    scope = {
        "trace": trace_id,
        "departments": _listed(department_ids),
        "agents": _listed(agent_ids),
        "agent": None,
        "model": None,
    }
    if not cur.execute(_VISIBLE, scope).fetchall()[0][0]:
        return None
    params = {key: scope[key] for key in ("trace", "departments", "agents")}
    return [_span(row) for row in cur.execute(_SPANS, params).fetchall()]


_RUNS = f"""
SELECT count(DISTINCT trace_id), count(DISTINCT conv) FROM (
    SELECT trace_id,
           unnest(CASE WHEN len(conversations) = 0 THEN [NULL::VARCHAR] ELSE conversations END) AS conv
    FROM trace_agents
    WHERE ($start::DATE IS NULL OR day >= $start::DATE) AND ($end::DATE IS NULL OR day <= $end::DATE)
      AND {_IN_SCOPE}
      AND ($environments::VARCHAR[] IS NULL OR list_contains($environments::VARCHAR[], environment))
)
"""  # noqa: S608 - composed of constant SQL only


def run_counts(
    cur: Cursor,
    *,
    start: date | None = None,
    end: date | None = None,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
    environments: Collection[str] | None = None,
) -> dict[str, int]:
    """How many traces (agent runs) and distinct conversations agents of the scope took part in.

    Over the UTC days `start`..`end` (both included) by the day each agent was first seen in the
    trace: the denominators of the unit costs per run and per conversation. `environments` narrows
    to the agents that ran in one of them (None: all), as spend by environment is narrowed.
    """
    params = {
        "start": start,
        "end": end,
        "departments": _listed(department_ids),
        "agents": _listed(agent_ids),
        "environments": _listed(environments),
    }
    traces, conversations = cur.execute(_RUNS, params).fetchall()[0]
    return {"traces": int(traces), "conversations": int(conversations)}


def _listed(values: Collection[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    found = dict(zip(_SUMMARY_COLUMNS, row, strict=True))
    found["start_time"] = found["start_time"].isoformat()
    found["cost_usd"] = money_text(found["cost_usd"])
    return found


def _span(row: tuple[Any, ...]) -> dict[str, Any]:
    found = dict(zip(_SPAN_COLUMNS, row, strict=True))
    for key in ("start_time", "end_time"):
        found[key] = found[key].isoformat()
    if found["cost_usd"] is not None:
        found["cost_usd"] = money_text(found["cost_usd"])
    for key in ("attributes", "resource_attributes"):
        found[key] = json.loads(found[key]) if found[key] else {}
    return found
