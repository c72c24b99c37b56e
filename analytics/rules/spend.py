"""Spend rules: budgets crossed (actual and forecast), anomalous days, runaway loops, calls we cannot price.

Budget findings name the period (`2026-11`, `2026-Q4`, `2026`) and the highest threshold reached, so
crossing 80 % and then 100 % are two notifications, the 80 % one resolves when the 100 % one opens,
and a new month, quarter or year is a new occurrence. Budgets in a currency without an exchange
rate are not judged here: `hygiene.budget_not_evaluated` says so. Anomalies are judged on
yesterday and on today so far; runaway loops over the last day of calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import polars as pl

from analytics.anomaly import daily_anomalies
from analytics.budgets import USD, budget_statuses
from analytics.findings import Finding, Rule, Severity
from analytics.rules.context import DetectionContext
from analytics.rules.evidence import money, timestamp
from analytics.runaway import runaway_conversations, runaway_rates

BUDGET_ACTUAL = Rule(
    "spend.budget_threshold",
    Severity.WARNING,
    "Spend this period (month, quarter or year) reached a threshold of a budget"
    " (50/80/100 % by default; 100 % and over is critical).",
    "Cut the spend in scope, or raise the budget in the registry.",
)
BUDGET_FORECAST = Rule(
    "spend.budget_forecast",
    Severity.WARNING,
    "Spend at the end of the budget's period (month, quarter or year) is forecast to reach a threshold"
    " that actual spend has not reached yet.",
    "Act before the period ends: cut the spend in scope, or raise the budget.",
)
ANOMALY = Rule(
    "spend.anomaly",
    Severity.WARNING,
    "A day's spend of an agent or department is far above what its recent weekday pattern predicts.",
    "Look at the sample traces of the day; acknowledge if the rise is expected.",
)
RUNAWAY = Rule(
    "spend.runaway_agent",
    Severity.CRITICAL,
    "An agent makes far more calls or burns far more tokens per conversation or per minute"
    " than its norm: a loop.",
    "Stop the looping conversations; add a step or token limit to the agent.",
)
UNPRICED = Rule(
    "spend.unpriced_model",
    Severity.WARNING,
    "Calls to a model that cannot be priced: their spend is unknown, never counted as $0.",
    "Add the model to data/prices.yaml (an alias of a catalogue model or a custom price).",
)
COST_MISMATCH = Rule(
    "spend.reported_cost_mismatch",
    Severity.INFO,
    "Calls whose own reported cost (e.g. gen_ai.usage.cost) disagrees with Muster's price.",
    "Check negotiated prices in data/prices.yaml, or the instrumentation's price table.",
)
RULES = (BUDGET_ACTUAL, BUDGET_FORECAST, ANOMALY, RUNAWAY, UNPRICED, COST_MISMATCH)

_SAMPLE_CONVERSATIONS = 5


def detect(ctx: DetectionContext) -> Iterator[Finding]:
    if ctx.daily_spend is not None:
        yield from _budgets(ctx, ctx.daily_spend)
        # the frame may reach back to the start of an annual budget; anomalies need their window only
        recent = ctx.daily_spend.filter(pl.col("day") >= ctx.since(ctx.config.spend_history).date())
        yield from _anomalies(ctx, recent)
    if ctx.recent_calls is not None and not ctx.recent_calls.is_empty():
        yield from _runaways(ctx, ctx.recent_calls)
    if ctx.unpriced is not None:
        yield from _unpriced(ctx.unpriced)
    if ctx.mismatches is not None:
        yield from _mismatches(ctx.mismatches)


def _budgets(ctx: DetectionContext, daily: pl.DataFrame) -> Iterator[Finding]:
    for status in budget_statuses(ctx.registry, daily, ctx.today, ctx.config.exchange_rates):
        period = status["period_label"]
        scope = {"agent_id": status["agent_id"], "department_id": status["department_id"]}
        amount, spent = _money(status["amount"], status), _money(status["actual"], status)
        evidence = {
            key: status[key]
            for key in (
                "scope",
                "amount",
                "currency",
                "exchange_rate",
                "period",
                "period_start",
                "period_end",
                "actual",
                "forecast",
                "forecast_low",
                "forecast_high",
                "actual_pct",
                "forecast_pct",
                "exhausted_on",
            )
        }
        actual, forecast = status["actual_threshold"], status["forecast_threshold"]
        if actual is not None:
            yield Finding(
                BUDGET_ACTUAL,
                "budget",
                status["budget_id"],
                f"Budget {status['budget_id']}: {spent} of {amount} spent in {period} "
                f"({_share(status['actual_pct'])})",
                dimension=f"{period}:{actual:g}",
                severity=Severity.CRITICAL if actual >= 100 else None,
                **scope,
                evidence=evidence | {"threshold_pct": actual},
                labels={
                    "budget": status["budget_id"],
                    "period": status["period"],
                    "threshold": f"{actual:g}",
                },
            )
        if forecast is not None and (actual is None or forecast > actual):
            yield Finding(
                BUDGET_FORECAST,
                "budget",
                status["budget_id"],
                f"Budget {status['budget_id']} is forecast to reach {_money(status['forecast'], status)}"
                f" of {amount} "
                f"by the end of {period} ({_share(status['forecast_pct'])})",
                dimension=f"{period}:{forecast:g}",
                severity=Severity.CRITICAL if forecast >= 100 else None,
                **scope,
                evidence=evidence | {"threshold_pct": forecast},
                labels={
                    "budget": status["budget_id"],
                    "period": status["period"],
                    "threshold": f"{forecast:g}",
                },
            )


def _money(value: str, status: dict) -> str:
    """`$120.00` for USD budgets, as before; `120.00 EUR` for the others."""
    return f"${value}" if status["currency"] == USD else f"{value} {status['currency']}"


def _share(pct: float | None) -> str:
    return f"{pct:.0f} %" if pct is not None else "over a zero budget"


def _anomalies(ctx: DetectionContext, daily: pl.DataFrame) -> Iterator[Finding]:
    keyed = daily.with_columns(agent=pl.coalesce("agent_id", "observed_identity"))
    owners = {
        row[0]: row[1:]
        for row in keyed.select("agent", "agent_id", "department_id").unique("agent").iter_rows()
    }
    for kind, key in (("agent", "agent"), ("department", "department_id")):
        per_day = keyed.filter(pl.col(key).is_not_null()).group_by(key, "day").agg(pl.col("spend").sum())
        for as_of in (ctx.today - timedelta(days=1), ctx.today):
            for row in daily_anomalies(per_day, key=key, as_of=as_of).iter_rows(named=True):
                subject = row[key]
                agent_id, department_id = (
                    owners.get(subject, (None, None)) if kind == "agent" else (None, subject)
                )
                yield Finding(
                    ANOMALY,
                    kind,
                    subject,
                    f"{subject} spent ${money(row['actual'])} on {row['day']},"
                    f" expected about ${money(row['expected'])}",
                    dimension=row["day"].isoformat(),
                    agent_id=agent_id,
                    department_id=department_id,
                    evidence={
                        "day": row["day"].isoformat(),
                        "actual_usd": money(row["actual"]),
                        "expected_usd": money(row["expected"]),
                        "impact_usd": money(row["impact_usd"]),
                        "impact_pct": round(row["impact_pct"], 1) if row["impact_pct"] is not None else None,
                        "upper_bound_usd": money(row["upper_bound"]),
                        "baseline": row["baseline"],
                        "partial_day": row["day"] == ctx.today,
                    },
                )


def _runaways(ctx: DetectionContext, calls: pl.DataFrame) -> Iterator[Finding]:
    owners = calls.group_by("agent").agg(pl.col("agent_id").first(), pl.col("department_id").first())
    conversations = runaway_conversations(calls, key="agent")
    rates = runaway_rates(calls, key="agent")
    loops: dict[str, dict] = {}
    for row in conversations.iter_rows(named=True):
        entry = loops.setdefault(row["agent"], {"conversations": [], "episodes": []})
        if len(entry["conversations"]) < _SAMPLE_CONVERSATIONS:
            entry["conversations"].append(
                {
                    "conversation_id": row["conversation_id"],
                    "metric": row["metric"],
                    "observed": row["observed"],
                    "norm": row["norm"],
                    "ratio": round(row["ratio"], 1) if row["ratio"] is not None else None,
                    "last_call": timestamp(row["last_call"]),
                    "sample_traces": row.get("sample_trace_ids") or [],
                }
            )
    for row in rates.iter_rows(named=True):
        loops.setdefault(row["agent"], {"conversations": [], "episodes": []})["episodes"].append(
            {
                "metric": row["metric"],
                "first_minute": timestamp(row["first_minute"]),
                "last_minute": timestamp(row["last_minute"]),
                "peak": row["peak"],
                "norm": row["norm"],
                "sample_conversations": row["sample_conversation_ids"] or [],
            }
        )
    owner_of = {row["agent"]: row for row in owners.iter_rows(named=True)}
    for agent, evidence in sorted(loops.items()):
        owner = owner_of.get(agent, {})
        yield Finding(
            RUNAWAY,
            "agent" if owner.get("agent_id") else "identity",
            agent,
            f"{agent} is looping: {len(evidence['conversations'])} runaway conversation(s), "
            f"{len(evidence['episodes'])} runaway episode(s) in the last day",
            agent_id=owner.get("agent_id"),
            department_id=owner.get("department_id"),
            evidence=evidence,
        )


def _unpriced(unpriced: pl.DataFrame) -> Iterator[Finding]:
    for row in unpriced.iter_rows(named=True):
        model = f"{row['provider'] or '?'}/{row['model'] or '?'}"
        yield Finding(
            UNPRICED,
            "model",
            model,
            f"{row['calls']} calls to {model} cannot be priced: {row['reason'] or 'no price'}",
            evidence={
                "calls": int(row["calls"]),
                "reason": row["reason"],
                "agents": row["agents"],
                "first_seen": timestamp(row["first_seen"]),
                "last_seen": timestamp(row["last_seen"]),
                "sample_traces": row["sample_traces"],
            },
            labels={"provider": row["provider"] or "", "model": row["model"] or ""},
        )


def _mismatches(mismatches: pl.DataFrame) -> Iterator[Finding]:
    for row in mismatches.iter_rows(named=True):
        model = f"{row['provider'] or '?'}/{row['model'] or '?'}"
        yield Finding(
            COST_MISMATCH,
            "model",
            model,
            f"{row['calls']} calls to {model} report a cost that disagrees with Muster's price",
            evidence={
                "calls": int(row["calls"]),
                "our_cost_usd": money(row["our_cost"]),
                "sample_traces": row["sample_traces"],
            },
            labels={"provider": row["provider"] or "", "model": row["model"] or ""},
        )
