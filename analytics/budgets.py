"""Budgets against spend: every budget of the registry with its actual, forecast and thresholds.

Budgets come from three places in the registry: Budget documents (a scope of department, cost
centre, agent, provider and model patterns, all of which must hold; a period of a calendar month,
quarter or year; a currency), a department's `monthlyBudget` and an agent's `monthlyBudget` (both
in the department's currency). Each budget's daily spend is the priced spend that falls in its
scope; `analytics.forecast.period_end_forecast` projects it to the end of the budget's period and
`budget_status` compares. Actual spend includes today so far; the forecast starts from the last
complete day (yesterday), or from today on the period's first day.

Spend is priced in USD. A budget in another currency is evaluated in its own currency when the
user gave an exchange rate for it (the `exchange_rates` setting, USD per unit): thresholds are
compared in USD against the amount times the rate, in Decimal, and the figures shown are divided
back by the rate. A budget in a currency without a rate is not evaluated; `unevaluated_budgets`
lists it with the reason, so it is never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from analytics.forecast import MONEY, budget_status, period_end_forecast
from registry import Registry
from registry.model import BudgetPeriod, BudgetScope, matches_any

__all__ = [
    "BudgetLine",
    "budget_lines",
    "budget_statuses",
    "daily_spend_since",
    "earliest_period_start",
    "exchange_rate",
    "period_bounds",
    "period_label",
    "unevaluated_budgets",
]

USD = "USD"
# What the forecast reads before `as_of`: four weeks of weekday pattern, and this week.
_FORECAST_HISTORY = timedelta(days=35)
_MONTHS = {BudgetPeriod.MONTHLY: 1, BudgetPeriod.QUARTERLY: 3, BudgetPeriod.ANNUAL: 12}

ExchangeRates = Mapping[str, Decimal | str | float]


@dataclass(frozen=True)
class BudgetLine:
    """One budget to evaluate, whichever document it came from."""

    budget_id: str
    source: str  # budget, department, agent
    scope: BudgetScope
    amount: float
    thresholds_actual: tuple[float, ...]  # percentages, as the registry writes them
    thresholds_forecast: tuple[float, ...]
    period: BudgetPeriod = BudgetPeriod.MONTHLY
    currency: str = USD

    @property
    def department_id(self) -> str | None:
        return self.scope.department

    @property
    def agent_id(self) -> str | None:
        return self.scope.agent


def period_bounds(period: BudgetPeriod, day: date) -> tuple[date, date]:
    """The first and last day of the calendar month, quarter or year that holds `day`."""
    months = _MONTHS[BudgetPeriod(period)]
    start = date(day.year, (day.month - 1) // months * months + 1, 1)
    after = start.month - 1 + months
    return start, date(start.year + after // 12, after % 12 + 1, 1) - timedelta(days=1)


def period_label(period: BudgetPeriod, start: date) -> str:
    """How findings and titles name a period: `2026-11`, `2026-Q4`, `2026`."""
    if period == BudgetPeriod.QUARTERLY:
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return str(start.year) if period == BudgetPeriod.ANNUAL else start.strftime("%Y-%m")


def exchange_rate(currency: str, rates: ExchangeRates | None) -> Decimal | None:
    """USD per unit of `currency`: 1 for USD, the user's rate otherwise, None when there is none."""
    if currency == USD:
        return Decimal(1)
    rate = (rates or {}).get(currency)
    if rate is None:
        return None
    if Decimal(str(rate)) <= 0:
        raise ValueError(f"the exchange rate of {currency} is {rate}: give a positive number of USD per unit")
    return Decimal(str(rate))


def budget_lines(registry: Registry) -> list[BudgetLine]:
    """Every budget in the registry; implicit ones are `department:<id>` and `agent:<id>` (monthly)."""
    default = (50.0, 80.0, 100.0)
    lines = [
        BudgetLine(
            b.id,
            "budget",
            b.spec.scope,
            b.spec.amount,
            tuple(b.spec.thresholds.actual),
            tuple(b.spec.thresholds.forecast),
            BudgetPeriod(b.spec.period),
            b.spec.currency,
        )
        for b in registry.budgets.values()
    ]
    lines += [
        BudgetLine(
            f"department:{d.id}",
            "department",
            BudgetScope(department=d.id),
            d.spec.monthly_budget,
            default,
            default,
            currency=d.spec.currency,
        )
        for d in registry.departments.values()
        if d.spec.monthly_budget is not None
    ]
    for agent in registry.agents.values():
        department = registry.departments.get(agent.spec.department)
        if agent.spec.monthly_budget is not None:
            scope = BudgetScope(agent=agent.id, department=agent.spec.department)
            currency = department.spec.currency if department else USD
            lines.append(
                BudgetLine(
                    f"agent:{agent.id}",
                    "agent",
                    scope,
                    agent.spec.monthly_budget,
                    default,
                    default,
                    currency=currency,
                )
            )
    return sorted(lines, key=lambda line: line.budget_id)


def earliest_period_start(registry: Registry, today: date) -> date | None:
    """The first day of the longest current budget period (None without budgets).

    Readers of daily spend go back to it, or to the forecast's four weeks if that is earlier, so a
    registry of monthly budgets reads five weeks and one annual budget makes it read the year.
    """
    starts = [period_bounds(line.period, today)[0] for line in budget_lines(registry)]
    return min(starts, default=None)


def daily_spend_since(registry: Registry, since: datetime, today: date) -> datetime:
    """`since`, or the start of the longest current budget period if earlier (a quarter, a year).

    A registry of monthly budgets reads the five weeks anomalies and forecasts need and no more.
    """
    start = earliest_period_start(registry, today)
    return since if start is None else min(since, datetime(start.year, start.month, start.day))


def unevaluated_budgets(registry: Registry, exchange_rates: ExchangeRates | None) -> list[dict[str, Any]]:
    """The budgets `budget_statuses` cannot evaluate, each with the reason: a currency without a rate."""
    return [
        {
            **_identity(line),
            "amount": _text(Decimal(str(line.amount))),
            "status": "not_evaluated",
            "reason": f"no exchange rate for {line.currency}: spend is priced in USD; add {line.currency}"
            f" (USD per {line.currency}) to the exchange_rates setting to evaluate this budget",
        }
        for line in budget_lines(registry)
        if exchange_rate(line.currency, exchange_rates) is None
    ]


def _identity(line: BudgetLine) -> dict[str, Any]:
    return {
        "budget_id": line.budget_id,
        "source": line.source,
        "scope": line.scope.model_dump(mode="json", exclude_none=True),
        "department_id": line.department_id,
        "agent_id": line.agent_id,
        "currency": line.currency,
        "period": str(line.period),
    }


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


def budget_statuses(
    registry: Registry, daily: pl.DataFrame, today: date, exchange_rates: ExchangeRates | None = None
) -> list[dict[str, Any]]:
    """Per budget with a known rate: actual this period (today included), forecast period end, thresholds.

    `daily` is priced spend in USD per day and dimension (`warehouse.detection_store.daily_spend`),
    covering at least five weeks before today and the period of every budget
    (`earliest_period_start`). Figures are in the budget's currency; `exchange_rate` (USD per unit)
    and the `_usd` fields say how they were converted. Budgets without a rate are
    `unevaluated_budgets`.
    """
    lines, usd_rates = [], {}
    for line in budget_lines(registry):
        rate = exchange_rate(line.currency, exchange_rates)
        if rate is not None:
            lines.append(line)
            usd_rates[line.budget_id] = rate
    rows = []
    for period in BudgetPeriod:
        group = [line for line in lines if line.period == period]
        if group:
            rows += _period_statuses(group, daily, today, period, usd_rates)
    return sorted(rows, key=lambda row: row["budget_id"])


def _period_statuses(
    lines: list[BudgetLine],
    daily: pl.DataFrame,
    today: date,
    period: BudgetPeriod,
    usd_rates: dict[str, Decimal],
) -> list[dict[str, Any]]:
    """The status rows of budgets that share one period; `usd_rates` is USD per unit, per budget id."""
    start, end = period_bounds(period, today)
    # the forecast learns from complete days; on the first day, today's part is all the period has
    as_of = today - timedelta(days=1) if today > start else today
    # monthly budgets, the many implicit ones, scan five weeks even when an annual budget reads a year
    window = daily.filter(pl.col("day") >= min(start, today - _FORECAST_HISTORY))
    spend = pl.concat(
        [
            _in_scope(window, line.scope)
            .group_by("day")
            .agg(pl.col("spend").sum().cast(MONEY))
            .select(pl.lit(line.budget_id).alias("budget"), "day", "spend")
            for line in lines
        ]
    )
    this_period = spend.filter(pl.col("day") >= start).group_by("budget").agg(pl.col("spend").sum())
    actual = dict(this_period.iter_rows())
    forecasts, statuses = _forecasts(
        spend.filter(pl.col("day") <= as_of), lines, usd_rates, as_of, start, end
    )
    return [
        _status_row(
            line,
            statuses.get(line.budget_id),
            forecasts.get(line.budget_id),
            actual.get(line.budget_id),
            usd_rates[line.budget_id],
            start,
            end,
        )
        for line in lines
    ]


def _forecasts(
    history: pl.DataFrame,
    lines: list[BudgetLine],
    rates: dict[str, Decimal],
    as_of: date,
    start: date,
    end: date,
) -> tuple[dict, dict]:
    """Per budget id: its period-end forecast row and its budget_status row (exhaustion day), in USD."""
    if history.is_empty():
        return {}, {}
    forecast = period_end_forecast(history, as_of=as_of, key="budget", period_start=start, period_end=end)
    amounts = pl.DataFrame(
        {
            "budget": [line.budget_id for line in lines],
            "amount": [Decimal(str(line.amount)) * rates[line.budget_id] for line in lines],
        },
        schema={"budget": pl.String, "amount": MONEY},
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
    rate: Decimal,
    start: date,
    end: date,
) -> dict[str, Any]:
    """One budget's row; money is compared in USD (exact: amount × rate) and shown in its currency."""
    amount = Decimal(str(line.amount)) * rate
    actual = actual or Decimal(0)
    same_period = forecast is not None and forecast["period_start"] == start
    projected = max(forecast["forecast_total"], actual) if same_period else actual
    low = max(forecast["forecast_low"], actual) if same_period else actual
    high = max(forecast["forecast_high"], actual) if same_period else actual
    actual_pct = _pct(actual, amount)
    forecast_pct = _pct(projected, amount)
    actual_reached = _reached(actual, amount, actual_pct, line.thresholds_actual)
    forecast_reached = _reached(projected, amount, forecast_pct, line.thresholds_forecast)
    return {
        **_identity(line),
        "amount": _text(Decimal(str(line.amount))),
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "period_label": period_label(line.period, start),
        "exchange_rate": str(rate),
        "actual": _text(actual / rate),
        "forecast": _text(projected / rate),
        "forecast_low": _text(low / rate),
        "forecast_high": _text(high / rate),
        "amount_usd": _text(amount),
        "actual_usd": _text(actual),
        "forecast_usd": _text(projected),
        "actual_pct": actual_pct,
        "forecast_pct": forecast_pct,
        "actual_threshold": actual_reached,
        "forecast_threshold": forecast_reached,
        "exhausted_on": status["exhausted_on"].isoformat()
        if status and status["exhausted_on"] and same_period
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
