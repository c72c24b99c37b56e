"""Hygiene rules: registrations that need attention from people, whatever the telemetry says."""

from __future__ import annotations

from collections.abc import Iterator

from analytics.budgets import exchange_rate, unevaluated_budgets
from analytics.findings import Finding, Rule, Severity
from analytics.rules.context import DetectionContext
from registry.model import Lifecycle

REVIEW_OVERDUE = Rule(
    "hygiene.review_overdue",
    Severity.INFO,
    "A registration is past its reviewDue date.",
    "Review the agent and set a new reviewDue (or retire it).",
)
NO_OWNER = Rule(
    "hygiene.missing_owner",
    Severity.WARNING,
    "An agent has no real owner (a placeholder such as 'unknown') or its department is not registered.",
    "Set the accountable owner and an existing department in the registration.",
)
BUDGET_NOT_EVALUATED = Rule(
    "hygiene.budget_not_evaluated",
    Severity.INFO,
    "A budget is not evaluated: its currency has no exchange rate, and spend is priced in USD.",
    "Add the currency's rate (USD per unit) to the exchange_rates setting, or declare the budget in USD.",
)
POLICY_NOT_EVALUATED = Rule(
    "hygiene.policy_not_evaluated",
    Severity.INFO,
    "A policy's maxCostPerCall is not checked: its currency has no exchange rate; calls are priced in USD.",
    "Add the currency's rate (USD per unit) to the exchange_rates setting, or state the policy in USD.",
)
RULES = (REVIEW_OVERDUE, NO_OWNER, BUDGET_NOT_EVALUATED, POLICY_NOT_EVALUATED)

_PLACEHOLDER_OWNERS = {"unknown", "tbd", "todo", "none", "n/a", "na", "-", "nobody", "unassigned"}


def detect(ctx: DetectionContext) -> Iterator[Finding]:
    yield from _agents(ctx)
    yield from _budgets(ctx)
    yield from _policies(ctx)


def _budgets(ctx: DetectionContext) -> Iterator[Finding]:
    for budget in unevaluated_budgets(ctx.registry, ctx.config.exchange_rates):
        yield Finding(
            BUDGET_NOT_EVALUATED,
            "budget",
            budget["budget_id"],
            f"Budget {budget['budget_id']} ({budget['amount']} {budget['currency']} {budget['period']})"
            f" is not evaluated: no exchange rate for {budget['currency']}",
            # a rate resolves it; a change to another currency without a rate is a new finding
            dimension=budget["currency"],
            agent_id=budget["agent_id"],
            department_id=budget["department_id"],
            evidence={
                key: budget[key] for key in ("scope", "amount", "currency", "period", "source", "reason")
            },
            labels={"budget": budget["budget_id"], "currency": budget["currency"]},
        )


def _policies(ctx: DetectionContext) -> Iterator[Finding]:
    for policy in ctx.registry.policies.values():
        spec = policy.spec
        rate = exchange_rate(spec.currency, ctx.config.exchange_rates)
        if spec.max_cost_per_call is None or rate is not None:
            continue
        yield Finding(
            POLICY_NOT_EVALUATED,
            "policy",
            policy.id,
            f"Policy {policy.id}'s cap of {spec.max_cost_per_call} {spec.currency} per call is not checked:"
            f" no exchange rate for {spec.currency}",
            dimension=spec.currency,  # as for budgets: a rate resolves it
            department_id=spec.department,
            evidence={"max_cost_per_call": str(spec.max_cost_per_call), "currency": spec.currency},
            labels={"policy": policy.id, "currency": spec.currency},
        )


def _agents(ctx: DetectionContext) -> Iterator[Finding]:
    for agent in ctx.registry.agents.values():
        spec = agent.spec
        if spec.lifecycle == Lifecycle.RETIRED:
            continue
        scope = {"agent_id": agent.id, "department_id": spec.department}
        if spec.review_due is not None and spec.review_due < ctx.today:
            yield Finding(
                REVIEW_OVERDUE,
                "agent",
                agent.id,
                f"{spec.name} was due for review on {spec.review_due.isoformat()}",
                **scope,
                evidence={"review_due": spec.review_due.isoformat(), "owner": spec.owner},
            )
        problems = []
        if spec.owner.strip().lower() in _PLACEHOLDER_OWNERS:
            problems.append(f"owner is {spec.owner!r}")
        if spec.department not in ctx.registry.departments:
            problems.append(f"department {spec.department!r} is not registered")
        if problems:
            yield Finding(
                NO_OWNER,
                "agent",
                agent.id,
                f"{spec.name}: {'; '.join(problems)}",
                **scope,
                evidence={"owner": spec.owner, "department": spec.department, "problems": problems},
            )
