"""Traces over HTTP: search agent runs by agent, time, status and model; one trace with every span.

Scoped like spend: a finance token of one department sees the traces with a model call of that
department (and only those calls' cost), an owner token its agent's traces; a trace outside the
scope is "not found".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Query, status

from muster.api.deps import cursor, not_found, reader
from muster.api.scope import agent_filter, department_filter, narrowed
from muster.auth import Principal
from warehouse import trace_queries

router = APIRouter(prefix="/api/v1", tags=["traces"])


@router.get("/traces")
def traces(
    agent: str | None = Query(None, description="A registered agent id, or an observed identity."),
    start: datetime | None = Query(None, alias="from", description="Traces that started at or after (UTC)."),
    end: datetime | None = Query(None, alias="to", description="Traces that started before (UTC)."),
    state: Literal["ok", "error"] | None = Query(None, alias="status", description="error: a span failed."),
    model: str | None = Query(None, description="Traces with a call to this model."),
    department: str | None = Query(
        None, description="Traces with a call of this department (within your scope)."
    ),
    environment: str | None = Query(None, description="Traces with a span in this deployment environment."),
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**62),
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> dict[str, Any]:
    """Trace summaries, newest first: root, agent, start, duration, spans, model calls, tokens, cost."""
    start, end = _utc(start), _utc(end)
    if start and end and start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"from ({start}) is not before to ({end})")
    found, total = trace_queries.trace_summaries(
        cur,
        start=start,
        end=end,
        agent=agent,
        model=model,
        status=state,
        environment=environment,
        department_ids=narrowed(department_filter(who), department),
        agent_ids=agent_filter(who),
        limit=limit,
        offset=offset,
    )
    return {"traces": found, "total": total, "limit": limit, "offset": offset}


@router.get("/traces/{trace_id}")
def trace(
    trace_id: str, who: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> dict[str, Any]:
    """Every span of a trace with its parent, times, status, attributes, tokens and priced cost."""
    spans = trace_queries.trace_spans(
        cur, trace_id.lower(), department_ids=department_filter(who), agent_ids=agent_filter(who)
    )
    if spans is None:
        raise not_found(f"trace {trace_id!r}")
    return {"trace_id": trace_id.lower(), "spans": spans}


def _utc(moment: datetime | None) -> datetime | None:
    """Naive UTC, as the warehouse stores span times; a time with an offset is converted."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
