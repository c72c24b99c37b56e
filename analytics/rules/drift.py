"""Drift rules: registered agents doing what their registration or their department's policies do not allow.

Per agent they read what it used in the drift window (`DetectionContext.usage`: models, providers,
tools, data sources, endpoints, environments) and how its telemetry looked (`drift_identities`:
resource attribute keys, captured content); fleet-wide, the first sightings of providers and
endpoints that no policy approves. An allow-list left out of a registration restricts nothing;
an empty one allows nothing (registry/model.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import polars as pl

from analytics.findings import Finding, Rule, Severity
from analytics.rules.context import DetectionContext, matches_any
from analytics.rules.evidence import money, timestamp
from registry.model import Agent, Lifecycle

MODEL_NOT_ALLOWED = Rule(
    "drift.model_not_allowed",
    Severity.WARNING,
    "An agent calls a model outside its registration's allowedModels.",
    "Switch the agent back to an allowed model, or add the model to allowedModels after review.",
)
MODEL_FORBIDDEN = Rule(
    "drift.model_forbidden",
    Severity.CRITICAL,
    "An agent calls a model that a policy forbids (forbiddenModels).",
    "Stop using the model; policies override registrations.",
)
PROVIDER_NOT_ALLOWED = Rule(
    "drift.provider_not_allowed",
    Severity.WARNING,
    "An agent calls a provider outside its allowedProviders or its policies' approvedProviders.",
    "Route the agent through an approved provider, or approve the provider in the registry.",
)
TOOL_NOT_ALLOWED = Rule(
    "drift.tool_not_allowed",
    Severity.WARNING,
    "An agent uses a tool outside its registration's allowedTools.",
    "Remove the tool from the agent, or add it to allowedTools after review.",
)
DATA_SOURCE_NOT_ALLOWED = Rule(
    "drift.data_source_not_allowed",
    Severity.CRITICAL,
    "An agent reads a data source outside its registration's allowedDataSources.",
    "Cut the agent's access to the data source, or add it to allowedDataSources after review.",
)
ENVIRONMENT_NOT_ALLOWED = Rule(
    "drift.environment_not_allowed",
    Severity.WARNING,
    "An agent runs in an environment its registration does not list.",
    "Stop the deployment, or add the environment to the agent's environments.",
)
PROTOTYPE_IN_PRODUCTION = Rule(
    "drift.prototype_in_production",
    Severity.CRITICAL,
    "A prototype or pilot agent serves production traffic, which its policies do not allow.",
    "Promote the agent to production through review, or take it out of production.",
)
UNAPPROVED_PROVIDER = Rule(
    "drift.unapproved_provider",
    Severity.WARNING,
    "A provider is in use that no policy approves (approvedProviders).",
    "Approve the provider in a policy after review, or stop the agents that use it.",
)
UNAPPROVED_ENDPOINT = Rule(
    "drift.unapproved_endpoint",
    Severity.WARNING,
    "An LLM endpoint (server.address) is in use that no policy approves (approvedEndpoints).",
    "Approve the endpoint in a policy after review, or point the agents at an approved one.",
)
REQUIRED_ATTRIBUTE_MISSING = Rule(
    "drift.required_attribute_missing",
    Severity.WARNING,
    "An agent's telemetry lacks a resource attribute its policies require.",
    "Set the attribute in the agent's OTEL_RESOURCE_ATTRIBUTES.",
)
CONTENT_CAPTURED = Rule(
    "drift.content_captured",
    Severity.WARNING,
    "An agent's telemetry carries prompts or responses where its policies forbid content capture.",
    "Turn off content capture in the instrumentation"
    " (e.g. OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=false).",
)
COST_PER_CALL = Rule(
    "drift.cost_per_call_exceeded",
    Severity.WARNING,
    "An agent made calls that cost more than its policies' maxCostPerCall.",
    "Use a cheaper model or smaller prompts, or raise the cap after review.",
)
RULES = (
    MODEL_NOT_ALLOWED,
    MODEL_FORBIDDEN,
    PROVIDER_NOT_ALLOWED,
    TOOL_NOT_ALLOWED,
    DATA_SOURCE_NOT_ALLOWED,
    ENVIRONMENT_NOT_ALLOWED,
    PROTOTYPE_IN_PRODUCTION,
    UNAPPROVED_PROVIDER,
    UNAPPROVED_ENDPOINT,
    REQUIRED_ATTRIBUTE_MISSING,
    CONTENT_CAPTURED,
    COST_PER_CALL,
)

PRODUCTION_ENVIRONMENTS = ("production", "prod", "prd")


def detect(ctx: DetectionContext) -> Iterator[Finding]:
    if ctx.usage is not None:
        for row in ctx.usage.iter_rows(named=True):
            agent = ctx.agent(row["agent_id"])
            if agent is not None:
                yield from _usage_findings(ctx, agent, row)
    if ctx.drift_identities is not None:
        yield from _telemetry_findings(ctx, ctx.drift_identities)
    yield from _unapproved(
        ctx, UNAPPROVED_PROVIDER, ctx.providers_first_seen, "provider", "approved_providers"
    )
    yield from _unapproved(
        ctx, UNAPPROVED_ENDPOINT, ctx.endpoints_first_seen, "endpoint", "approved_endpoints"
    )
    if ctx.expensive_calls is not None:
        yield from _expensive(ctx, ctx.expensive_calls)


def _usage_findings(ctx: DetectionContext, agent: Agent, row: dict) -> Iterator[Finding]:
    spec = agent.spec
    policy = ctx.policy_for(spec.department)
    kind, value = row["kind"], row["value"]
    verdicts: list[tuple[Rule, Sequence[str] | None, str]] = []
    if kind == "model":
        if spec.allowed_models is not None and not matches_any(value, spec.allowed_models):
            verdicts.append((MODEL_NOT_ALLOWED, spec.allowed_models, "registration"))
        if policy.forbidden_models and matches_any(value, policy.forbidden_models):
            verdicts.append((MODEL_FORBIDDEN, policy.forbidden_models, "policy"))
    elif kind == "provider":
        for allowed, source in (
            (spec.allowed_providers, "registration"),
            (policy.approved_providers, "policy"),
        ):
            if allowed is not None and not matches_any(value, allowed):
                verdicts.append((PROVIDER_NOT_ALLOWED, allowed, source))
                break
    elif kind == "tool" and spec.allowed_tools is not None and value not in spec.allowed_tools:
        verdicts.append((TOOL_NOT_ALLOWED, spec.allowed_tools, "registration"))
    elif (
        kind == "data_source"
        and spec.allowed_data_sources is not None
        and value not in spec.allowed_data_sources
    ):
        verdicts.append((DATA_SOURCE_NOT_ALLOWED, spec.allowed_data_sources, "registration"))
    elif kind == "environment":
        if spec.environments is not None and value not in spec.environments:
            verdicts.append((ENVIRONMENT_NOT_ALLOWED, spec.environments, "registration"))
        if _prototype_in_production(spec.lifecycle, value, policy.prototypes_may_serve_production):
            verdicts.append((PROTOTYPE_IN_PRODUCTION, [str(spec.lifecycle)], "lifecycle"))
    for rule, allowed, source in verdicts:
        yield Finding(
            rule,
            "agent",
            agent.id,
            f"{spec.name} uses {kind.replace('_', ' ')} {value}, which its {source} does not allow",
            dimension=f"{kind}={value}",
            agent_id=agent.id,
            department_id=spec.department,
            evidence={
                "observed": value,
                "allowed": list(allowed),
                "allowed_by": source,
                "policies": list(policy.sources) if source == "policy" else [],
                "first_seen": timestamp(row["first_seen"]),
                "last_seen": timestamp(row["last_seen"]),
                "traces": int(row["traces"]),
                "sample_traces": row["sample_traces"],
            },
            labels={kind: value},
        )


def _prototype_in_production(lifecycle: Lifecycle, environment: str, may: bool | None) -> bool:
    early = lifecycle in (Lifecycle.PROTOTYPE, Lifecycle.PILOT)
    return early and environment.lower() in PRODUCTION_ENVIRONMENTS and not may


def _telemetry_findings(ctx: DetectionContext, identities: pl.DataFrame) -> Iterator[Finding]:
    for row in identities.filter(pl.col("agent_id").is_not_null()).iter_rows(named=True):
        agent = ctx.agent(row["agent_id"])
        if agent is None:
            continue
        policy = ctx.policy_for(agent.spec.department)
        scope = {"agent_id": agent.id, "department_id": agent.spec.department}
        for attribute in policy.required_resource_attributes or []:
            lacking = [keys for keys in row["resource_key_sets"] if attribute not in (keys or [])]
            if lacking:
                yield Finding(
                    REQUIRED_ATTRIBUTE_MISSING,
                    "agent",
                    agent.id,
                    f"{agent.spec.name} sends telemetry without the required resource attribute {attribute}",
                    dimension=attribute,
                    **scope,
                    evidence={
                        "missing": attribute,
                        "policies": list(policy.sources),
                        "resources_without_it": len(lacking),
                        "resources_seen": len(row["resource_key_sets"]),
                        "sample_traces": row["sample_traces"],
                    },
                )
        if policy.allow_content_capture is False and row["content_captured"]:
            yield Finding(
                CONTENT_CAPTURED,
                "agent",
                agent.id,
                f"{agent.spec.name} captures prompts or responses in telemetry, which its policies forbid",
                **scope,
                evidence={"policies": list(policy.sources), "sample_traces": row["sample_traces"]},
            )


def _unapproved(
    ctx: DetectionContext, rule: Rule, seen: pl.DataFrame | None, kind: str, field: str
) -> Iterator[Finding]:
    lists = [
        getattr(p.spec, field) for p in ctx.registry.policies.values() if getattr(p.spec, field) is not None
    ]
    if seen is None or not lists:
        return  # no policy approves any: nothing to be outside of
    approved = [pattern for patterns in lists for pattern in patterns]
    for row in seen.filter(pl.col("last_seen") >= ctx.since(ctx.config.drift_window)).iter_rows(named=True):
        if not matches_any(row["value"], approved):
            yield Finding(
                rule,
                kind,
                row["value"],
                f"{kind.capitalize()} {row['value']} is in use, and no policy approves it",
                evidence={
                    "observed": row["value"],
                    "approved": approved,
                    "first_seen": timestamp(row["first_seen"]),
                    "last_seen": timestamp(row["last_seen"]),
                    "identities": row["identities"],
                    "sample_traces": row["sample_traces"],
                },
                labels={kind: row["value"]},
            )


def _expensive(ctx: DetectionContext, calls: pl.DataFrame) -> Iterator[Finding]:
    for (agent_id,), group in calls.group_by("agent_id", maintain_order=True):
        agent = ctx.agent(agent_id)
        if agent is None:
            continue
        policy = ctx.policy_for(agent.spec.department)
        cap_usd = ctx.cap_usd(policy)
        if cap_usd is None:  # no cap, or no rate for its currency (hygiene.policy_not_evaluated)
            continue
        over = group.filter(pl.col("cost_usd").cast(pl.Float64) > float(cap_usd))
        if over.is_empty():
            continue
        currency = policy.max_cost_per_call_currency
        cap = f"${policy.max_cost_per_call}"
        if currency != "USD":
            cap = f"{policy.max_cost_per_call} {currency} (${money(cap_usd)})"
        yield Finding(
            COST_PER_CALL,
            "agent",
            agent.id,
            f"{agent.spec.name} made {len(over)} calls above the {cap} per-call cap",
            agent_id=agent.id,
            department_id=agent.spec.department,
            evidence={
                "cap": str(policy.max_cost_per_call),
                "currency": currency,
                "cap_usd": money(cap_usd),
                "calls_over": len(over),
                "max_cost_usd": money(over["cost_usd"].max()),
                "models": sorted(set(over["model"].drop_nulls().to_list())),
                "sample_traces": over["trace_id"].head(3).to_list(),
            },
        )
