"""Spend and the jobs that compute it over HTTP: run the cost job, read spend by any dimension.

Spend is scoped like the registry: a finance token of one department sees only that department's
calls, an owner token only its agent's; spend that no registered agent owns (unregistered or
ambiguous identities) is visible to unscoped tokens alone. Running the job needs the
`write_registry` permission, as it rewrites what every report reads.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from analytics.jobs import JobResult
from analytics.scheduler import JobScheduler
from muster.api.deps import cursor, job_scheduler, reader, registry_writer
from muster.api.scope import agent_filter, department_filter, narrowed
from muster.auth import Principal
from warehouse import cost_store, trace_queries

router = APIRouter(prefix="/api/v1", tags=["costs"])

SpendDimension = Literal["department", "agent", "model", "provider", "cost_centre", "day", "environment"]
_ENVIRONMENT = "Only spend in this deployment environment; repeat it for several. Never widens your scope."


@router.post(
    "/jobs/run",
    responses={status.HTTP_202_ACCEPTED: {"description": "With `wait=false`: the run has started."}},
)
def run_jobs(
    response: Response,
    full: bool = False,
    wait: bool = Query(True, description="Answer when the run ends (false: 202 at once; see GET /jobs)."),
    _: Principal = Depends(registry_writer),
    jobs: JobScheduler = Depends(job_scheduler),
) -> dict[str, Any]:
    """Run the cost job now: the traces touched since its last run, or every trace with `full`.

    With `wait=false` the run goes on in the server after the answer (202); `GET /jobs` tells when
    it ended and how. A run already under way is followed by one more, never by a pile of them."""
    if not wait:
        jobs.run_soon(full=full)
        response.status_code = status.HTTP_202_ACCEPTED
        return {"started": True, "full": full, "status": "/api/v1/jobs"}
    try:
        result: JobResult = jobs.run_now(full=full)
    except Exception as exc:  # every failure is reported the same way, with its cause
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            f"the cost job failed, previous results stay: {type(exc).__name__}: {exc}",
        ) from exc
    return result.to_dict()


@router.get("/jobs")
def job_states(
    _: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> list[dict[str, Any]]:
    """Each job's watermark and last run: when, how long, and the error if it failed."""
    state = cost_store.job_state(cur)
    return [state] if state else []


@router.get("/spend")
def spend(
    by: SpendDimension = "department",
    start: date | None = Query(None, alias="from", description="First UTC day included (YYYY-MM-DD)."),
    end: date | None = Query(None, alias="to", description="Last UTC day included (YYYY-MM-DD)."),
    department: str | None = Query(None, description="Only this department's spend (within your scope)."),
    agent: str | None = Query(None, description="Only this registered agent's spend (within your scope)."),
    environment: list[str] | None = Query(None, description=_ENVIRONMENT),
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> list[dict[str, Any]]:
    """Spend per department, agent, model, provider, cost centre, day or environment, inside your scope.

    Costs are exact USD decimals as strings; `unpriced_calls` counts calls no price was found for
    (never counted as $0 silently). `department`, `agent` and `environment` narrow it, so one
    agent's spend can be had by day or by model; they never widen a scoped token's view.
    """
    if start and end and start > end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"from ({start}) is after to ({end})")
    return cost_store.spend_by(
        cur,
        by=by,
        start=start,
        end=end,
        department_ids=narrowed(department_filter(who), department),
        agent_ids=narrowed(agent_filter(who), agent),
        environments=environment,
    )


@router.get("/spend/runs")
def spend_runs(
    start: date | None = Query(None, alias="from", description="First UTC day included (YYYY-MM-DD)."),
    end: date | None = Query(None, alias="to", description="Last UTC day included (YYYY-MM-DD)."),
    department: str | None = Query(None, description="Only this department (within your scope)."),
    agent: str | None = Query(None, description="Only this registered agent (within your scope)."),
    environment: list[str] | None = Query(
        None, description="Only agent runs in this environment; repeatable."
    ),
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> dict[str, int]:
    """Agent runs (traces) and distinct conversations in your scope: the unit costs' denominators."""
    if start and end and start > end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"from ({start}) is after to ({end})")
    return trace_queries.run_counts(
        cur,
        start=start,
        end=end,
        department_ids=narrowed(department_filter(who), department),
        agent_ids=narrowed(agent_filter(who), agent),
        environments=environment,
    )
