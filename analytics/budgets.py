"""Budgets against spend: every monthly budget of the registry with its actual, forecast and thresholds.

Budgets come from three places in the registry: Budget documents (a scope of department, cost
centre, agent, provider and model patterns, all of which must hold), a department's
`monthlyBudget` and an agent's `monthlyBudget`. Each budget's daily spend is the priced spend that
falls in its scope; `analytics.forecast` projects it to month end and `budget_status` compares.
Actual spend includes today so far; the forecast starts from the last complete day (yesterday).
Budgets in a currency other than USD are not evaluated (spend is priced in USD and Muster keeps
no exchange rates); quarterly and annual budgets neither (their forecast horizon is not built).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from analytics.forecast import MONEY, budget_status, month_end_forecast
from registry import Registry
from registry.model import BudgetPeriod, BudgetScope, matches_any

__all__ = ["BudgetLine", "budget_lines", "budget_statuses"]

_USD = "USD"


@dataclass(frozen=True)
class BudgetLine:
    """One monthly budget to evaluate, whichever document it came from."""

    budget_id: str
    source: str  # budget, department, agent
    scope: BudgetScope
    amount: float
    thresholds_actual: tuple[float, ...]  # percentages, as the registry writes them
    thresholds_forecast: tuple[float, ...]

    @property
    def department_id(self) -> str | None:
        return self.scope.department

    @property
    def agent_id(self) -> str | None:
        return self.scope.agent


def budget_lines(registry: Registry) -> list[BudgetLine]:
    """Every monthly USD budget in the registry; implicit ones are `department:<id>` and `agent:<id>`."""
    default = (50.0, 80.0, 100.0)
    lines = [
        BudgetLine(
            b.id,
            "budget",
            b.spec.scope,
            b.spec.amount,
            tuple(b.spec.thresholds.actual),
            tuple(b.spec.thresholds.forecast),
        )
        for b in registry.budgets.values()
        if b.spec.period == BudgetPeriod.MONTHLY and b.spec.currency == _USD
    ]
    lines += [
        BudgetLine(
            f"department:{d.id}",
            "department",
            BudgetScope(department=d.id),
            d.spec.monthly_budget,
            default,
            default,
        )
        for d in registry.departments.values()
        if d.spec.monthly_budget is not None and d.spec.currency == _USD
    ]
    for agent in registry.agents.values():
        department = registry.departments.get(agent.spec.department)
        currency = department.spec.currency if department else _USD
        if agent.spec.monthly_budget is not None and currency == _USD:
            scope = BudgetScope(agent=agent.id, department=agent.spec.department)
            lines.append(
                BudgetLine(f"agent:{agent.id}", "agent", scope, agent.spec.monthly_budget, default, default)
            )
    return sorted(lines, key=lambda line: line.budget_id)


def _in_scope(daily: pl.DataFrame, scope: BudgetScope) -> pl.DataFrame:
    frame = daily
    for column, value in (
        ("department_id", scope.department),
        ("cost_centre", scope.cost_centre),
        ("agent_id", scope.agent),
    ):
        if value is not None:
            frame = frame.filter(pl.col(column) == value)
    for column, pattern in (("provider", scope.provider), ("model", scope.model)):
        if pattern is not None:
            values = frame[column].drop_nulls().unique().to_list()
            frame = frame.filter(pl.col(column).is_in([v for v in values if matches_any(v, [pattern])]))
    return frame


def budget_statuses(registry: Registry, daily: pl.DataFrame, today: date) -> list[dict[str, Any]]:
    """Per budget: actual this month (today included), forecast month-end and range, shares, thresholds.

    `daily` is priced spend per day and dimension (`warehouse.detection_store.daily_spend`), covering
    at least four weeks before today.
    """
    lines = budget_lines(registry)
    if not lines:
        return []
    # the forecast learns from complete days; on the 1st, today's part is all this month has
    as_of = today - timedelta(days=1) if today.day > 1 else today
    month_start = today.replace(day=1)
    month_end = (month_start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    spend = pl.concat(
        [
            _in_scope(daily, line.scope)
            .group_by("day")
            .agg(pl.col("spend").sum().cast(MONEY))
            .select(pl.lit(line.budget_id).alias("budget"), "day", "spend")
            for line in lines
        ]
    )
    this_month = spend.filter(pl.col("day") >= month_start).group_by("budget").agg(pl.col("spend").sum())
    actual = dict(this_month.iter_rows())
    forecasts, statuses = _forecasts(spend.filter(pl.col("day") <= as_of), lines, as_of)
    return [
        _status_row(
            line,
            statuses.get(line.budget_id),
            forecasts.get(line.budget_id),
            actual.get(line.budget_id),
            month_start,
            month_end,
        )
        for line in lines
    ]


def _forecasts(history: pl.DataFrame, lines: list[BudgetLine], as_of: date) -> tuple[dict, dict]:
    """Per budget id: its month-end forecast row and its budget_status row (exhaustion day)."""
    if history.is_empty():
        return {}, {}
    forecast = month_end_forecast(history, as_of=as_of, key="budget")
    amounts = pl.DataFrame(
        {"budget": [line.budget_id for line in lines], "amount": [line.amount for line in lines]}
    )
    status = budget_status(forecast, amounts)
    return (
        {row["budget"]: row for row in forecast.iter_rows(named=True)},
        {row["budget"]: row for row in status.iter_rows(named=True)},
    )


def _status_row(
    line: BudgetLine,
    status: dict | None,
    forecast: dict | None,
    actual: Decimal | None,
    start: date,
    end: date,
) -> dict[str, Any]:
    amount = Decimal(str(line.amount))
    actual = actual or Decimal(0)
    same_month = forecast is not None and forecast["month"] == start
    projected = max(forecast["forecast_total"], actual) if same_month else actual
    low = max(forecast["forecast_low"], actual) if same_month else actual
    high = max(forecast["forecast_high"], actual) if same_month else actual
    actual_pct = _pct(actual, amount)
    forecast_pct = _pct(projected, amount)
    actual_reached = _reached(actual, amount, actual_pct, line.thresholds_actual)
    forecast_reached = _reached(projected, amount, forecast_pct, line.thresholds_forecast)
    return {
        "budget_id": line.budget_id,
        "source": line.source,
        "scope": line.scope.model_dump(mode="json", exclude_none=True),
        "department_id": line.department_id,
        "agent_id": line.agent_id,
        "amount": _text(amount),
        "currency": _USD,
        "period": str(BudgetPeriod.MONTHLY),
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "actual": _text(actual),
        "forecast": _text(projected),
        "forecast_low": _text(low),
        "forecast_high": _text(high),
        "actual_pct": actual_pct,
        "forecast_pct": forecast_pct,
        "actual_threshold": actual_reached,
        "forecast_threshold": forecast_reached,
        "exhausted_on": status["exhausted_on"].isoformat()
        if status and status["exhausted_on"] and same_month
        else None,
        "thresholds": {"actual": list(line.thresholds_actual), "forecast": list(line.thresholds_forecast)},
        "status": _verdict(actual, projected, amount),
    }


def _pct(spend: Decimal, amount: Decimal) -> float | None:
    """Spend as a percentage of the amount; None for a zero budget (any spend is over it)."""
    return round(float(spend / amount * 100), 2) if amount > 0 else None


def _reached(
    spend: Decimal, amount: Decimal, pct: float | None, thresholds: tuple[float, ...]
) -> float | None:
    """The highest threshold (percent) reached, compared in Decimal so 80.00 of 100 is exactly 80 %."""
    if spend <= 0:
        return None
    crossed = [t for t in thresholds if spend * 100 >= amount * Decimal(str(t))]
    return max(crossed) if crossed else None


def _verdict(actual: Decimal, forecast: Decimal, amount: Decimal) -> str:
    if actual > amount or (actual > 0 and actual == amount):
        return "over"
    return "warning" if forecast > amount or (actual > 0 and actual * 100 >= amount * 80) else "ok"


def _text(value: Decimal) -> str:
    return str(Decimal(value).quantize(Decimal("0.01")))
