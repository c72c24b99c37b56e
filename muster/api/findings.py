"""Findings, budgets and forecasts over HTTP: what the rules found, and where spend is heading.

Findings are scoped like spend: a token confined to a department sees that department's findings,
an owner token its agent's; findings about no department (an unregistered identity, the fleet)
are for unscoped tokens. Acknowledging and silencing need the `triage` permission and stay inside
the same scope. Running the rules needs `write_registry`, like running the cost job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import duckdb
import polars as pl
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field, model_validator

from analytics.budgets import budget_statuses, daily_spend_since, unevaluated_budgets
from analytics.forecast import month_end_forecast
from analytics.rules import RULES
from analytics.rules.evidence import money
from analytics.scheduler import JobScheduler
from muster.api.deps import cursor, job_scheduler, not_found, reader, registry_writer, triager
from muster.api.scope import agent_filter, department_filter
from muster.auth import Principal
from warehouse import detection_store, findings_store
from warehouse.registry_store import load_registry

router = APIRouter(prefix="/api/v1", tags=["findings"])

StatusFilter = Literal["active", "open", "acknowledged", "silenced", "resolved", "all"]
ForecastDimension = Literal["department", "agent", "cost_centre", "provider"]
_FORECAST_KEYS = {
    "department": "department_id",
    "agent": "agent_id",
    "cost_centre": "cost_centre",
    "provider": "provider",
}
_HISTORY = timedelta(days=35)  # four weeks of weekday pattern before this week


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("/findings/rules", dependencies=[Depends(reader)])
def rules() -> list[dict[str, str]]:
    """Every detection rule: id, category, default severity, what triggers it and how to resolve it."""
    return [
        {
            "id": rule.id,
            "category": str(rule.category),
            "severity": str(rule.severity),
            "description": rule.description,
            "resolution": rule.resolution,
        }
        for rule in RULES
    ]


@router.get("/findings")
def list_findings(
    status_: StatusFilter = Query("active", alias="status"),
    category: str | None = None,
    severity: str | None = None,
    rule: str | None = None,
    department: str | None = None,
    agent: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> dict[str, Any]:
    """Findings inside your scope, most severe and most recent first; `active` means not resolved."""
    found, total = findings_store.list_findings(
        cur,
        _now(),
        status=status_,
        category=category,
        severity=severity,
        rule=rule,
        department=department,
        agent=agent,
        department_ids=department_filter(who),
        agent_ids=agent_filter(who),
        limit=limit,
        offset=offset,
    )
    return {"findings": found, "total": total}


@router.get("/findings/summary")
def summary(who: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)) -> list[dict]:
    """Active findings counted by category, severity and status, inside your scope."""
    return findings_store.summary(
        cur, _now(), department_ids=department_filter(who), agent_ids=agent_filter(who)
    )


@router.post("/findings/run")
def run_findings(
    _: Principal = Depends(registry_writer), jobs: JobScheduler = Depends(job_scheduler)
) -> dict[str, Any]:
    """Run every detection rule now and reconcile the findings."""
    try:
        return jobs.run_findings_now().to_dict()
    except Exception as exc:
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            f"the findings job failed, previous findings stay: {type(exc).__name__}: {exc}",
        ) from exc


def _visible(cur: duckdb.DuckDBPyConnection, who: Principal, key: str) -> dict[str, Any]:
    found = findings_store.get_finding(cur, key, _now())
    departments, agents = department_filter(who), agent_filter(who)
    if (
        found is None
        or (departments is not None and found["department_id"] not in departments)
        or (agents is not None and found["agent_id"] not in agents)
    ):
        raise not_found(f"finding {key}")
    return found


@router.get("/findings/{key}")
def get_finding(
    key: str, who: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> dict[str, Any]:
    """One finding with its evidence."""
    return _visible(cur, who, key)


class Acknowledgement(BaseModel):
    comment: str | None = Field(None, max_length=2000)


class Silence(BaseModel):
    """For how long (`duration_hours`) or until when (`until`), and why."""

    comment: str = Field(min_length=1, max_length=2000)
    duration_hours: float | None = Field(None, gt=0, le=24 * 366)
    until: datetime | None = None

    @model_validator(mode="after")
    def _one_end(self) -> Silence:
        if (self.duration_hours is None) == (self.until is None):
            raise ValueError("give either duration_hours or until")
        return self

    def ends(self, now: datetime) -> datetime:
        if self.until is not None:
            until = self.until if self.until.tzinfo else self.until.replace(tzinfo=UTC)
            if until <= now:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "until is in the past")
            return until
        return now + timedelta(hours=self.duration_hours or 0)


@router.post("/findings/{key}/acknowledge")
def acknowledge(
    key: str,
    body: Acknowledgement,
    who: Principal = Depends(triager),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> dict[str, Any]:
    """Acknowledge a firing finding: it stays acknowledged until it resolves."""
    _visible(cur, who, key)
    if not findings_store.acknowledge(cur, key, by=who.name, comment=body.comment, now=_now()):
        raise HTTPException(status.HTTP_409_CONFLICT, f"finding {key} is resolved: nothing to acknowledge")
    return _visible(cur, who, key)


@router.post("/findings/{key}/silence")
def silence(
    key: str,
    body: Silence,
    who: Principal = Depends(triager),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> dict[str, Any]:
    """Silence a finding until a time, with a reason; it shows as silenced and alerts stay quiet."""
    _visible(cur, who, key)
    now = _now()
    findings_store.silence(cur, key, by=who.name, until=body.ends(now), comment=body.comment, now=now)
    return _visible(cur, who, key)


@router.post("/findings/{key}/unsilence")
def unsilence(
    key: str, who: Principal = Depends(triager), cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> dict[str, Any]:
    """End a silence now."""
    _visible(cur, who, key)
    findings_store.unsilence(cur, key, now=_now())
    return _visible(cur, who, key)


@router.get("/budgets/status")
def budgets_status(
    request: Request, who: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> dict[str, Any]:
    """Every budget inside your scope: actual this period, forecast at its end, thresholds.

    Monthly, quarterly and annual budgets, each in its own currency. `not_evaluated` lists the
    budgets whose currency has no exchange rate (the `exchange_rates` setting), with the reason.
    """
    now = _now()
    registry = load_registry(cur)
    rates = request.app.state.settings.exchange_rates
    since = daily_spend_since(registry, (now - _HISTORY).replace(tzinfo=None), now.date())
    rows = budget_statuses(registry, detection_store.daily_spend(cur, since), now.date(), rates)
    departments, agents = department_filter(who), agent_filter(who)

    def visible(row: dict[str, Any]) -> bool:
        return (departments is None or row["department_id"] in departments) and (
            agents is None or row["agent_id"] in agents
        )

    return {
        "budgets": [row for row in rows if visible(row)],
        "not_evaluated": [row for row in unevaluated_budgets(registry, rates) if visible(row)],
    }


@router.get("/forecast")
def forecast(
    by: ForecastDimension = "department",
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> dict[str, Any]:
    """Month-end spend forecast per department, agent, cost centre or provider, inside your scope."""
    now = _now()
    as_of = now.date() - timedelta(days=1)
    daily = detection_store.daily_spend(cur, (now - _HISTORY).replace(tzinfo=None))
    departments, agents = department_filter(who), agent_filter(who)
    if departments is not None:
        daily = daily.filter(pl.col("department_id").is_in(sorted(departments)))
    if agents is not None:
        daily = daily.filter(pl.col("agent_id").is_in(sorted(agents)))
    column = _FORECAST_KEYS[by]
    per_day = daily.filter(pl.col("day") <= as_of).group_by(column, "day").agg(pl.col("spend").sum())
    if per_day.is_empty():
        return {"month": as_of.strftime("%Y-%m"), "as_of": as_of.isoformat(), "rows": []}
    projected = month_end_forecast(per_day, as_of=as_of, key=column)
    return {
        "month": as_of.strftime("%Y-%m"),
        "as_of": as_of.isoformat(),
        "rows": [
            {
                "key": row[column],
                **{
                    name: money(row[name])
                    for name in ("mtd_actual", "forecast_total", "forecast_low", "forecast_high")
                },
            }
            for row in projected.iter_rows(named=True)
        ],
    }
