"""Polars jobs: price every model call, attribute it to an agent, detect sprawl, drift and overspend.

The stages are pure functions over Polars frames, each with its own module:

    pricing      price_calls: genai-prices per distinct (provider, model, day), overrides, unpriced
    attribution  model_calls, owning_agents, attribute, agent_costs: call → agent → department
    forecast     month_end_forecast, budget_status: month-end spend against budgets
    anomaly      daily_anomalies: spend above a robust, weekday-seasonal baseline
    runaway      runaway_conversations, runaway_rates: loops far above an agent's own norm
    budgets      budget_statuses: every monthly budget against actual and forecast spend
    findings     Finding, Rule: a rule's verdict on a subject, and its fingerprint
    rules        RULES, detect: the detection rules (sprawl, drift, spend, hygiene) over a context
    activity     trace_agents: per (trace, owning identity), what the agent did, used and cost
    inventory    live_inventory: observed identities against the registry as it is now

Jobs read and write the warehouse through `warehouse.cost_store` and run the stages:

    jobs          run_cost_job: new traces → priced, attributed calls (pandera contracts at the edges)
    findings_job  run_findings_job: every rule over its window → findings opened, refreshed, resolved
    scheduler     JobScheduler: both jobs every few seconds inside `muster serve`, and on demand
"""

from analytics.activity import trace_agents
from analytics.anomaly import daily_anomalies, daily_baseline
from analytics.attribution import (
    AGENT_KEY_COLUMNS,
    ATTRIBUTION_COLUMNS,
    COST_COLUMN,
    MODEL_CALL_OPERATIONS,
    NOT_MODEL_CALL_OPERATIONS,
    OWNER_COLUMNS,
    agent_costs,
    agent_departments,
    agent_span_costs,
    attribute,
    model_calls,
    owning_agents,
)
from analytics.budgets import budget_statuses
from analytics.findings import Finding, Rule
from analytics.findings_job import FindingsResult, run_findings_job
from analytics.forecast import FORECAST_COLUMNS, budget_status, month_end_forecast
from analytics.inventory import live_inventory
from analytics.jobs import (
    PRICED_CALL_ROWS_SCHEMA,
    SPANS_SCHEMA,
    ContractViolation,
    JobResult,
    run_cost_job,
)
from analytics.pricing import (
    CALLS_SCHEMA,
    COST_DTYPE,
    PRICED_CALLS_SCHEMA,
    PRICED_COLUMNS,
    Alias,
    CustomModel,
    OverridesError,
    PriceOverrides,
    PriceSource,
    catalogue_provider_id,
    load_overrides,
    price_calls,
)
from analytics.rules import RULES
from analytics.runaway import runaway_conversations, runaway_rates
from analytics.scheduler import JobScheduler

__all__: list[str] = [
    "AGENT_KEY_COLUMNS",
    "ATTRIBUTION_COLUMNS",
    "CALLS_SCHEMA",
    "COST_COLUMN",
    "COST_DTYPE",
    "FORECAST_COLUMNS",
    "MODEL_CALL_OPERATIONS",
    "NOT_MODEL_CALL_OPERATIONS",
    "OWNER_COLUMNS",
    "PRICED_CALLS_SCHEMA",
    "PRICED_CALL_ROWS_SCHEMA",
    "PRICED_COLUMNS",
    "RULES",
    "SPANS_SCHEMA",
    "Alias",
    "ContractViolation",
    "CustomModel",
    "Finding",
    "FindingsResult",
    "JobResult",
    "JobScheduler",
    "OverridesError",
    "PriceOverrides",
    "PriceSource",
    "Rule",
    "agent_costs",
    "agent_departments",
    "agent_span_costs",
    "attribute",
    "budget_status",
    "budget_statuses",
    "catalogue_provider_id",
    "daily_anomalies",
    "daily_baseline",
    "live_inventory",
    "load_overrides",
    "model_calls",
    "month_end_forecast",
    "owning_agents",
    "price_calls",
    "run_cost_job",
    "run_findings_job",
    "runaway_conversations",
    "runaway_rates",
    "trace_agents",
]
