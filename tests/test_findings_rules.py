"""Each detection rule fires on a crafted case and stays quiet on its near miss.

Rules are pure functions of a DetectionContext, so the cases are the frames the warehouse queries
return, written by hand: one identity, one usage row, one day of spend at a time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from analytics.rules import RULES, DetectionConfig, DetectionContext, detect
from registry import load_texts

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday
NAIVE_NOW = NOW.replace(tzinfo=None)

REGISTRY_YAML = """
apiVersion: muster/v1
kind: Department
metadata: {id: research}
spec: {name: Research, costCentre: CC-100, monthlyBudget: 1000}
---
apiVersion: muster/v1
kind: Policy
metadata: {id: global}
spec:
  approvedProviders: [openai, anthropic]
  approvedEndpoints: ["api.openai.com", "api.anthropic.com"]
  forbiddenModels: ["gpt-3.5*"]
  requiredResourceAttributes: [team]
  maxCostPerCall: 1.0
---
apiVersion: muster/v1
kind: Policy
metadata: {id: research-policy}
spec: {department: research, allowContentCapture: false}
---
apiVersion: muster/v1
kind: Agent
metadata: {id: triage}
spec:
  name: Triage
  owner: ana@example.com
  department: research
  lifecycle: production
  environments: [production]
  allowedModels: ["gpt-4o*"]
  allowedTools: [search]
  allowedDataSources: [kb]
  match: [{agentName: triage}]
---
apiVersion: muster/v1
kind: Agent
metadata: {id: sketch}
spec:
  name: Sketch
  owner: ben@example.com
  department: research
  lifecycle: prototype
  reviewDue: 2026-12-01
  match: [{agentName: sketch}]
---
apiVersion: muster/v1
kind: Agent
metadata: {id: old}
spec: {name: Old, owner: cy@example.com, department: research, lifecycle: retired, match: [{agentName: old}]}
---
apiVersion: muster/v1
kind: Agent
metadata: {id: orphan}
spec: {name: Orphan, owner: unknown, department: research, lifecycle: production,
       match: [{agentName: orphan}]}
"""
REGISTRY = load_texts({"r.yaml": REGISTRY_YAML})


def identity(**values) -> dict:
    row = {
        "match_status": "registered",
        "agent_id": "triage",
        "observed_identity": "agent.name=triage",
        "department_id": "research",
        "gen_ai_agent_id": None,
        "main_agent_id": None,
        "agent_name": "triage",
        "service_namespace": None,
        "service_name": "triage-svc",
        "first_seen": NAIVE_NOW - timedelta(days=2),
        "last_seen": NAIVE_NOW - timedelta(hours=1),
        "traces": 10,
        "spans": 50,
        "model_calls": 20,
        "cost_usd": Decimal("12.5"),
        "environments": ["production"],
        "services": ["triage-svc"],
        "hosts": ["h1"],
        "tools": ["search"],
        "resource_key_sets": [["service.name", "team"]],
        "content_captured": False,
        "sample_traces": ["t1"],
    }
    return row | values


def identities(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), infer_schema_length=None)


def usage(agent: str, kind: str, value: str) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "agent_id": agent,
                "kind": kind,
                "value": value,
                "first_seen": NAIVE_NOW - timedelta(days=1),
                "last_seen": NAIVE_NOW - timedelta(hours=1),
                "traces": 3,
                "sample_traces": ["t9"],
            }
        ]
    )


def seen(value: str, last_seen: datetime = NAIVE_NOW) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "value": value,
                "first_seen": last_seen,
                "last_seen": last_seen,
                "identities": ["x"],
                "sample_traces": ["t"],
            }
        ]
    )


def run(**frames) -> dict[str, list]:
    """The findings of `frames`, by rule id."""
    ctx = DetectionContext(registry=frames.pop("registry", REGISTRY), now=frames.pop("now", NOW), **frames)
    found: dict[str, list] = {}
    for finding in detect(ctx):
        found.setdefault(finding.rule.id, []).append(finding)
    return found


def beyond_hygiene(found: dict[str, list]) -> set[str]:
    """The rules that fired, but for the registration checks that every run of this registry makes."""
    return {rule for rule in found if not rule.startswith("hygiene.")}


def test_every_rule_has_a_known_category_and_a_resolution():
    assert len({rule.id for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.category and rule.description and rule.resolution


# Sprawl


def test_an_unregistered_identity_is_a_shadow_agent_with_its_spend():
    row = identity(
        match_status="unregistered", agent_id=None, observed_identity="agent.name=ghost", agent_name="ghost"
    )
    found = run(identities=identities(row))["sprawl.unregistered_agent"]
    assert [f.subject_id for f in found] == ["agent.name=ghost"]
    assert found[0].evidence["spend_usd"] == "12.5000" and found[0].evidence["calls"] == 20
    assert "sprawl.unregistered_agent" not in run(identities=identities(identity()))


def test_an_unregistered_agent_goes_to_the_department_its_service_namespace_names():
    row = identity(
        match_status="unregistered",
        agent_id=None,
        observed_identity="service=research/ghost",
        agent_name=None,
        service_namespace="research",
        service_name="ghost",
    )
    assert run(identities=identities(row))["sprawl.unregistered_agent"][0].department_id == "research"
    elsewhere = row | {"service_namespace": "no-such-department"}
    assert run(identities=identities(elsewhere))["sprawl.unregistered_agent"][0].department_id is None


def test_default_service_name_without_agent_keys_is_unidentified_traffic():
    row = identity(
        match_status="unregistered", agent_id=None, agent_name=None, service_name="unknown_service:python"
    )
    found = run(identities=identities(row))
    assert "sprawl.unidentified_traffic" in found and "sprawl.unregistered_agent" not in found
    named = identity(
        match_status="unregistered", agent_id=None, agent_name="x", service_name="unknown_service"
    )
    assert "sprawl.unidentified_traffic" not in run(identities=identities(named))


def test_an_ambiguous_identity_is_a_finding():
    row = identity(match_status="ambiguous", agent_id=None)
    assert "sprawl.ambiguous_identity" in run(identities=identities(row))


def test_one_service_under_two_registered_agents_is_a_duplicate():
    pair = identities(identity(), identity(agent_id="sketch", observed_identity="agent.name=sketch"))
    assert run(identities=pair)["sprawl.duplicate_service"][0].evidence["agents"] == ["sketch", "triage"]
    apart = identities(identity(), identity(agent_id="sketch", services=["other"]))
    assert "sprawl.duplicate_service" not in run(identities=apart)


def test_identical_tool_sets_are_duplicates_only_when_large_enough():
    tools = ["a", "b", "c"]
    pair = identities(
        identity(tools=tools, services=["s1"]),
        identity(
            agent_id=None, match_status="unregistered", observed_identity="agent.name=copy", tools=tools
        ),
    )
    assert "sprawl.duplicate_toolset" in run(identities=pair)
    small = identities(
        identity(tools=["a", "b"]), identity(agent_id="sketch", tools=["a", "b"], services=["x"])
    )
    assert "sprawl.duplicate_toolset" not in run(identities=small)


def test_a_retired_agent_that_ran_today_is_running():
    recent = identity(agent_id="old", observed_identity="agent.name=old")
    assert run(identities=identities(recent))["sprawl.retired_agent_running"][0].agent_id == "old"
    quiet = identity(agent_id="old", last_seen=NAIVE_NOW - timedelta(days=3))
    assert "sprawl.retired_agent_running" not in run(identities=identities(quiet))


def first_seen(*rows: tuple[str, str | None, str, datetime]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"observed_identity": o, "agent_id": a, "match_status": m, "first_seen": t, "last_seen": t}
            for o, a, m, t in rows
        ],
        schema={
            "observed_identity": pl.String,
            "agent_id": pl.String,
            "match_status": pl.String,
            "first_seen": pl.Datetime("us"),
            "last_seen": pl.Datetime("us"),
        },
    )


def test_registered_agents_silent_for_the_dormant_period_are_dormant_once_muster_has_watched_that_long():
    long_ago = NAIVE_NOW - timedelta(days=60)
    history = first_seen(
        ("agent.name=triage", "triage", "registered", NAIVE_NOW - timedelta(days=1)),
        ("agent.name=sketch", "sketch", "registered", NAIVE_NOW - timedelta(days=31)),
    )
    dormant = {
        f.subject_id
        for f in run(identity_first_seen=history, telemetry_start=long_ago)["sprawl.dormant_agent"]
    }
    assert dormant == {"sketch", "orphan"}  # old is retired; triage ran yesterday
    young = run(identity_first_seen=history, telemetry_start=NAIVE_NOW - timedelta(days=5))
    assert "sprawl.dormant_agent" not in young


def test_many_new_unregistered_identities_in_a_week_are_a_sprawl_trend():
    day = NAIVE_NOW - timedelta(days=2)
    three = first_seen(*[(f"agent.name=n{i}", None, "unregistered", day) for i in range(3)])
    assert "sprawl.new_unregistered_rate" in run(identity_first_seen=three, telemetry_start=day)
    old = first_seen(
        *[(f"agent.name=n{i}", None, "unregistered", day - timedelta(days=i * 4)) for i in range(3)]
    )
    assert "sprawl.new_unregistered_rate" not in run(identity_first_seen=old, telemetry_start=day)


# Drift


@pytest.mark.parametrize(
    ("agent", "kind", "value", "rule"),
    [
        ("triage", "model", "claude-3-opus", "drift.model_not_allowed"),
        ("sketch", "model", "gpt-3.5-turbo", "drift.model_forbidden"),
        ("triage", "provider", "mistral_ai", "drift.provider_not_allowed"),
        ("triage", "tool", "shell", "drift.tool_not_allowed"),
        ("triage", "data_source", "hr-db", "drift.data_source_not_allowed"),
        ("triage", "environment", "staging", "drift.environment_not_allowed"),
        ("sketch", "environment", "production", "drift.prototype_in_production"),
    ],
)
def test_usage_outside_the_registration_or_policy_is_drift(agent, kind, value, rule):
    found = run(usage=usage(agent, kind, value))[rule]
    assert found[0].agent_id == agent and found[0].evidence["observed"] == value
    assert found[0].dimension == f"{kind}={value}"


@pytest.mark.parametrize(
    ("agent", "kind", "value"),
    [
        ("triage", "model", "gpt-4o-mini"),
        ("sketch", "model", "gpt-4o"),  # no allowedModels: unrestricted, and not forbidden
        ("triage", "provider", "OpenAI"),
        ("triage", "tool", "search"),
        ("triage", "data_source", "kb"),
        ("triage", "environment", "production"),
        ("sketch", "environment", "staging"),
    ],
)
def test_usage_inside_the_registration_and_policy_is_quiet(agent, kind, value):
    assert beyond_hygiene(run(usage=usage(agent, kind, value))) == set()


def test_a_provider_or_endpoint_no_policy_approves_is_drift_fleet_wide():
    found = run(providers_first_seen=seen("deepseek"), endpoints_first_seen=seen("llm.internal:8000"))
    assert found["drift.unapproved_provider"][0].subject_id == "deepseek"
    assert found["drift.unapproved_endpoint"][0].subject_id == "llm.internal:8000"
    assert (
        beyond_hygiene(run(providers_first_seen=seen("openai"), endpoints_first_seen=seen("api.openai.com")))
        == set()
    )
    stale = NAIVE_NOW - timedelta(days=30)  # not seen in the drift window any more
    assert beyond_hygiene(run(providers_first_seen=seen("deepseek", stale))) == set()


def test_missing_required_resource_attributes_and_forbidden_content_capture():
    row = identity(resource_key_sets=[["service.name", "team"], ["service.name"]], content_captured=True)
    found = run(drift_identities=identities(row))
    assert found["drift.required_attribute_missing"][0].dimension == "team"
    assert found["drift.content_captured"][0].agent_id == "triage"
    assert beyond_hygiene(run(drift_identities=identities(identity()))) == set()


def triage_calls(*costs: str) -> pl.DataFrame:
    """Triage's gpt-4o calls, traces t1, t2, …, costing `costs` in USD."""
    n = len(costs)
    return pl.DataFrame(
        {
            "agent_id": ["triage"] * n,
            "department_id": ["research"] * n,
            "provider": ["openai"] * n,
            "model": ["gpt-4o"] * n,
            "trace_id": [f"t{i + 1}" for i in range(n)],
            "start_time": [NAIVE_NOW] * n,
            "cost_usd": [Decimal(cost) for cost in costs],
        }
    )


def test_calls_above_the_policy_cap_per_call():
    calls = triage_calls("1.50", "1.00")
    found = run(expensive_calls=calls)["drift.cost_per_call_exceeded"]
    assert found[0].evidence["calls_over"] == 1 and found[0].evidence["max_cost_usd"] == "1.5000"
    assert beyond_hygiene(run(expensive_calls=calls.filter(pl.col("trace_id") == "t2"))) == set()


def test_a_cap_per_call_in_another_currency_is_converted_or_reported_unchecked():
    # Research's own policy caps calls at 1.20 EUR, overriding the global $1.00.
    eur_cap = REGISTRY_YAML.replace(
        "spec: {department: research, allowContentCapture: false}",
        "spec: {department: research, allowContentCapture: false, maxCostPerCall: 1.2, currency: EUR}",
    )
    registry = load_texts({"r.yaml": eur_cap})
    calls = triage_calls("1.50", "1.30")  # the cap is $1.32 at 1.10 USD per EUR
    rated = DetectionConfig(exchange_rates={"EUR": Decimal("1.10")})
    found = run(registry=registry, config=rated, expensive_calls=calls)
    (over,) = found["drift.cost_per_call_exceeded"]
    assert over.evidence["calls_over"] == 1 and over.evidence["sample_traces"] == ["t1"]
    assert over.evidence["cap"] == "1.2" and over.evidence["currency"] == "EUR"
    assert over.evidence["cap_usd"] == "1.3200"
    assert "1.2 EUR ($1.3200) per-call cap" in over.title
    assert "hygiene.policy_not_evaluated" not in found

    unrated = run(registry=registry, expensive_calls=calls)
    assert "drift.cost_per_call_exceeded" not in unrated  # never compared as if it were USD
    (unchecked,) = unrated["hygiene.policy_not_evaluated"]
    assert (unchecked.subject_kind, unchecked.subject_id) == ("policy", "research-policy")
    assert unchecked.dimension == "EUR" and unchecked.department_id == "research"


# Spend


def spend_days(amounts: list[float], *, end: date, agent: str = "triage") -> pl.DataFrame:
    days = [end - timedelta(days=len(amounts) - 1 - i) for i in range(len(amounts))]
    return pl.DataFrame(
        {
            "day": days,
            "agent_id": [agent] * len(days),
            "match_status": ["registered"] * len(days),
            "observed_identity": [f"agent.name={agent}"] * len(days),
            "department_id": ["research"] * len(days),
            "cost_centre": ["CC-100"] * len(days),
            "provider": ["openai"] * len(days),
            "model": ["gpt-4o"] * len(days),
            "spend": [Decimal(str(a)) for a in amounts],
            "calls": [10] * len(days),
        },
        schema_overrides={"spend": pl.Decimal(38, 12)},
    )


def test_budget_thresholds_on_actual_and_forecast_spend():
    # Nov 1-18 at $40/day: $720 of $1000 so far (reached 50 %); forecast ~ $1200 (over 100 %)
    found = run(daily_spend=spend_days([40.0] * 48, end=NOW.date()))
    actual = found["spend.budget_threshold"][0]
    assert actual.subject_id == "department:research" and actual.dimension == "2026-11:50"
    forecast = found["spend.budget_forecast"][0]
    assert forecast.dimension == "2026-11:100" and forecast.effective_severity == "critical"
    calm = run(daily_spend=spend_days([10.0] * 48, end=NOW.date()))  # $180 so far, ~$300 forecast
    assert "spend.budget_threshold" not in calm and "spend.budget_forecast" not in calm


def test_a_day_far_above_the_weekday_pattern_is_an_anomaly_and_a_normal_day_is_not():
    steady = [100.0 + (i % 7) for i in range(35)]
    spiky = run(daily_spend=spend_days([*steady[:-1], 900.0], end=NOW.date() - timedelta(days=1)))
    found = [f for f in spiky["spend.anomaly"] if f.subject_kind == "agent"]
    assert found[0].dimension == (NOW.date() - timedelta(days=1)).isoformat()
    assert found[0].evidence["actual_usd"] == "900.0000"
    assert "spend.anomaly" not in run(daily_spend=spend_days(steady, end=NOW.date() - timedelta(days=1)))


def calls_frame(conversations: dict[str, int], agent: str = "triage") -> pl.DataFrame:
    rows = []
    for conversation, count in conversations.items():
        for i in range(count):
            rows.append(
                {
                    "agent": agent,
                    "agent_id": agent,
                    "department_id": "research",
                    "trace_id": f"t-{conversation}",
                    "start_time": NAIVE_NOW - timedelta(hours=2, seconds=-i),
                    "total_tokens": 500,
                    "conversation_id": conversation,
                }
            )
    return pl.DataFrame(rows)


def test_a_looping_conversation_is_a_runaway_agent():
    normal = {f"c{i}": 3 + i % 3 for i in range(30)}
    found = run(recent_calls=calls_frame(normal | {"loop": 200}))["spend.runaway_agent"]
    assert found[0].agent_id == "triage"
    assert found[0].evidence["conversations"][0]["conversation_id"] == "loop"
    assert "spend.runaway_agent" not in run(recent_calls=calls_frame(normal | {"long": 12}))


def test_unpriced_models_and_reported_cost_mismatches_are_findings():
    unpriced = pl.DataFrame(
        [
            {
                "provider": "acme",
                "model": "m1",
                "reason": "unknown model",
                "calls": 4,
                "first_seen": NAIVE_NOW,
                "last_seen": NAIVE_NOW,
                "agents": ["triage"],
                "sample_traces": ["t"],
            }
        ]
    )
    mismatches = pl.DataFrame(
        [
            {
                "provider": "openai",
                "model": "gpt-4o",
                "calls": 2,
                "our_cost": Decimal("0.5"),
                "sample_traces": ["t"],
            }
        ]
    )
    found = run(unpriced=unpriced, mismatches=mismatches)
    assert found["spend.unpriced_model"][0].subject_id == "acme/m1"
    assert found["spend.reported_cost_mismatch"][0].evidence["calls"] == 2
    assert beyond_hygiene(run(unpriced=unpriced.clear(), mismatches=mismatches.clear())) == set()


# Hygiene


def test_overdue_reviews_and_placeholder_owners():
    found = run(now=datetime(2026, 12, 2, tzinfo=UTC))
    assert [f.subject_id for f in found["hygiene.review_overdue"]] == ["sketch"]
    assert [f.subject_id for f in found["hygiene.missing_owner"]] == ["orphan"]
    assert "hygiene.review_overdue" not in run()


def test_the_rules_reference_lists_every_rule_as_the_code_defines_it():
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "rules.md").read_text()
    for rule in RULES:
        assert f"### `{rule.id}`" in page and rule.description in page and rule.resolution in page, rule.id
