"""Sprawl rules: agents nobody registered, traffic nobody can name, duplicates, dormant and retired agents.

Each reads the per-identity activity of the identity window (`DetectionContext.identities`) or the
first sightings of every identity, and the registry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta

import polars as pl

from analytics.findings import Finding, Rule, Severity
from analytics.rules.context import DetectionContext
from analytics.rules.evidence import money, timestamp
from registry.model import Lifecycle

UNREGISTERED = Rule(
    "sprawl.unregistered_agent",
    Severity.WARNING,
    "An identity sends telemetry but matches no registered agent (a shadow agent).",
    "Register it (`muster registry apply`, or Register on the Inventory page) or stop it.",
)
UNIDENTIFIED = Rule(
    "sprawl.unidentified_traffic",
    Severity.WARNING,
    "Telemetry with no usable identity: service.name is the SDK default `unknown_service…`"
    " and there is no agent id or name.",
    "Set OTEL_SERVICE_NAME (and gen_ai.agent.name) in the agent's OpenTelemetry configuration.",
)
AMBIGUOUS = Rule(
    "sprawl.ambiguous_identity",
    Severity.WARNING,
    "An identity matches two or more registered agents, so its spend cannot be attributed.",
    "Narrow the agents' match selectors (add environment or a namespace) so that one matches.",
)
DUPLICATE_SERVICE = Rule(
    "sprawl.duplicate_service",
    Severity.INFO,
    "One service is seen under two or more registered agents.",
    "Merge the agents (keep one, list the other's id under aliases) or give each its own service.",
)
DUPLICATE_TOOLSET = Rule(
    "sprawl.duplicate_toolset",
    Severity.INFO,
    "Two or more identities use exactly the same set of tools: likely copies of one agent.",
    "Check whether they are the same agent; merge or register them as one.",
)
DORMANT = Rule(
    "sprawl.dormant_agent",
    Severity.INFO,
    "A registered agent (not retired) has sent no telemetry for the dormant period.",
    "Retire it in the registry if it is no longer used, or check its exporter configuration.",
)
RETIRED_RUNNING = Rule(
    "sprawl.retired_agent_running",
    Severity.CRITICAL,
    "An agent registered as retired is still sending telemetry.",
    "Shut the agent down, or move its lifecycle back to production if it is meant to run.",
)
SPRAWL_RATE = Rule(
    "sprawl.new_unregistered_rate",
    Severity.WARNING,
    "Many new unregistered identities appeared in the last 7 days.",
    "Remind teams to register agents before deployment; require ingest credentials.",
)
RULES = (
    UNREGISTERED,
    UNIDENTIFIED,
    AMBIGUOUS,
    DUPLICATE_SERVICE,
    DUPLICATE_TOOLSET,
    DORMANT,
    RETIRED_RUNNING,
    SPRAWL_RATE,
)

_DEFAULT_SERVICE = "unknown_service"


def detect(ctx: DetectionContext) -> Iterator[Finding]:
    if ctx.identities is not None:
        yield from _unmatched(ctx, ctx.identities)
        yield from _duplicate_services(ctx, ctx.identities)
        yield from _duplicate_toolsets(ctx, ctx.identities)
        yield from _retired_running(ctx, ctx.identities)
    if ctx.identity_first_seen is not None:
        yield from _dormant(ctx, ctx.identity_first_seen)
        yield from _sprawl_rate(ctx, ctx.identity_first_seen)


def _unidentified(row: dict) -> bool:
    service = row.get("service_name") or ""
    named = row.get("gen_ai_agent_id") or row.get("main_agent_id") or row.get("agent_name")
    return not named and (not service or service.startswith(_DEFAULT_SERVICE))


def _activity(ctx: DetectionContext, row: dict) -> dict:
    return {
        "spend_usd": money(row["cost_usd"]),
        "spend_days": ctx.config.identity_window.days,  # the window spend and calls are summed over
        "calls": int(row["model_calls"] or 0),
        "traces": int(row["traces"]),
        "first_seen": timestamp(row["first_seen"]),
        "last_seen": timestamp(row["last_seen"]),
        "services": row["services"],
        "hosts": row["hosts"],
        "environments": [env for env in row["environments"] if env],
        "sample_traces": row["sample_traces"],
    }


def _unmatched(ctx: DetectionContext, identities: pl.DataFrame) -> Iterator[Finding]:
    for row in identities.filter(pl.col("match_status") != "registered").iter_rows(named=True):
        identity = row["observed_identity"] or "(no identity)"
        evidence = _activity(ctx, row)
        if row["match_status"] == "ambiguous":
            yield Finding(
                AMBIGUOUS,
                "identity",
                identity,
                f"{identity} matches several registered agents",
                evidence=evidence,
            )
        elif _unidentified(row):
            yield Finding(
                UNIDENTIFIED,
                "identity",
                identity,
                f"Telemetry without an identity: {evidence['calls']} calls, ${evidence['spend_usd']}",
                evidence=evidence,
            )
        else:
            yield Finding(
                UNREGISTERED,
                "identity",
                identity,
                f"Unregistered agent {identity}: {evidence['calls']} calls, ${evidence['spend_usd']}",
                department_id=_namespace_department(ctx, row),
                evidence=evidence,
                labels={"service": row["service_name"] or ""},
            )


def _namespace_department(ctx: DetectionContext, row: dict) -> str | None:
    """The department an unregistered agent most likely belongs to: the one its service namespace names.

    Teams commonly set service.namespace to their department; when it names a registered department,
    the finding goes to that department's people (and scope) rather than to nobody.
    """
    namespace = row.get("service_namespace")
    return namespace if namespace in ctx.registry.departments else None


def _duplicate_services(ctx: DetectionContext, identities: pl.DataFrame) -> Iterator[Finding]:
    agents_by_service: dict[str, set[str]] = defaultdict(set)
    for row in identities.filter(pl.col("agent_id").is_not_null()).iter_rows(named=True):
        for service in row["services"]:
            agents_by_service[service].add(row["agent_id"])
    for service, agents in sorted(agents_by_service.items()):
        if len(agents) > 1:
            yield Finding(
                DUPLICATE_SERVICE,
                "service",
                service,
                f"Service {service} runs as {len(agents)} registered agents: {', '.join(sorted(agents))}",
                evidence={"service": service, "agents": sorted(agents)},
            )


def _duplicate_toolsets(ctx: DetectionContext, identities: pl.DataFrame) -> Iterator[Finding]:
    who_by_tools: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for row in identities.iter_rows(named=True):
        tools = tuple(row["tools"])
        if len(tools) >= ctx.config.duplicate_min_tools:
            who_by_tools[tools].add(row["agent_id"] or row["observed_identity"])
    for tools, who in sorted(who_by_tools.items()):
        if len(who) > 1:
            subject = ", ".join(sorted(who))
            yield Finding(
                DUPLICATE_TOOLSET,
                "identities",
                subject,
                f"{len(who)} agents use the same {len(tools)} tools: {subject}",
                evidence={"agents": sorted(who), "tools": list(tools)},
            )


def _retired_running(ctx: DetectionContext, identities: pl.DataFrame) -> Iterator[Finding]:
    since = ctx.since(ctx.config.retired_window)
    recent = identities.filter(pl.col("agent_id").is_not_null() & (pl.col("last_seen") >= since))
    for row in recent.iter_rows(named=True):
        agent = ctx.agent(row["agent_id"])
        if agent and agent.spec.lifecycle == Lifecycle.RETIRED:
            yield Finding(
                RETIRED_RUNNING,
                "agent",
                agent.id,
                f"Retired agent {agent.spec.name} is still running (last seen {timestamp(row['last_seen'])})",
                agent_id=agent.id,
                department_id=agent.spec.department,
                evidence=_activity(ctx, row) | {"lifecycle": str(agent.spec.lifecycle)},
            )


def _dormant(ctx: DetectionContext, first_seen: pl.DataFrame) -> Iterator[Finding]:
    start = ctx.telemetry_start
    horizon = ctx.since(ctx.config.dormant_after)
    if start is None or start > horizon:
        return  # Muster has not watched long enough to call anything dormant
    last_seen = dict(
        first_seen.filter(pl.col("agent_id").is_not_null())
        .group_by("agent_id")
        .agg(pl.col("last_seen").max())
        .iter_rows()
    )
    for agent in ctx.registry.agents.values():
        seen = last_seen.get(agent.id)
        if agent.spec.lifecycle == Lifecycle.RETIRED or (seen is not None and seen >= horizon):
            continue
        yield Finding(
            DORMANT,
            "agent",
            agent.id,
            f"{agent.spec.name} has sent no telemetry for {ctx.config.dormant_after.days} days",
            agent_id=agent.id,
            department_id=agent.spec.department,
            evidence={
                "dormant_days": ctx.config.dormant_after.days,
                "last_seen": timestamp(seen),
                "lifecycle": str(agent.spec.lifecycle),
            },
        )


def _sprawl_rate(ctx: DetectionContext, first_seen: pl.DataFrame) -> Iterator[Finding]:
    week_ago = ctx.since(timedelta(days=7))
    new = first_seen.filter((pl.col("match_status") == "unregistered") & (pl.col("first_seen") >= week_ago))
    if len(new) >= ctx.config.sprawl_rate_per_week:
        yield Finding(
            SPRAWL_RATE,
            "fleet",
            "all",
            f"{len(new)} new unregistered agents in the last 7 days",
            evidence={
                "new_identities": new["observed_identity"].to_list(),
                "threshold": ctx.config.sprawl_rate_per_week,
            },
        )
