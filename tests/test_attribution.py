"""Attribution: model calls → owning agent span → registered agent → department and cost centre → costs."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest

from analytics.attribution import (
    ATTRIBUTION_COLUMNS,
    OWNER_COLUMNS,
    agent_costs,
    agent_departments,
    agent_span_costs,
    attribute,
    model_calls,
    owning_agents,
)
from analytics.pricing import price_calls
from collector.normalise import normalise_traces
from registry import Agent, Registry, load_texts
from tests.otlp_builders import span as otlp_span
from tests.otlp_builders import trace_request
from warehouse.writer import WriteBatch, Writer

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
COST = pl.Decimal(38, 12)

REGISTRY_YAML = """
apiVersion: muster/v1
kind: Department
metadata: {id: research}
spec: {name: Research, costCentre: CC-100}
---
apiVersion: muster/v1
kind: Department
metadata: {id: sales}
spec: {name: Sales, costCentre: CC-200}
---
apiVersion: muster/v1
kind: Agent
metadata: {id: supervisor}
spec:
  name: Supervisor
  owner: ana
  department: research
  lifecycle: production
  match: [{agentName: supervisor}, {agentId: asst_sup}]
---
apiVersion: muster/v1
kind: Agent
metadata: {id: researcher}
spec:
  name: Researcher
  owner: ben
  department: research
  costCentre: CC-999
  lifecycle: production
  match: [{agentName: researcher}]
---
apiVersion: muster/v1
kind: Agent
metadata: {id: writer}
spec:
  name: Writer
  owner: cy
  department: sales
  lifecycle: production
  match: [{agentName: writer}]
---
apiVersion: muster/v1
kind: Agent
metadata: {id: billing}
spec:
  name: Billing
  owner: di
  department: sales
  lifecycle: pilot
  match: [{service: {namespace: shop, name: billing}}]
"""
REGISTRY = load_texts({"t.yaml": REGISTRY_YAML})


def sid(number: int) -> str:
    return f"{number:016x}"


def span(
    number: int,
    parent: int | None,
    operation: str | None = None,
    *,
    trace: str = TRACE,
    agent_name: str | None = None,
    agent_id: str | None = None,
    credential: str | None = None,
    service: str = "agents",
    namespace: str | None = "acme",
    main_agent_id: str | None = None,
    tokens: tuple[int, int] | None = None,
    cost: str | None = None,
    model: str | None = None,
) -> dict:
    """A row as the warehouse stores it (ids as hex), after normalisation."""
    resource = {"service.name": service, **({"gen_ai.main_agent.id": main_agent_id} if main_agent_id else {})}
    return {
        "trace_id": trace,
        "span_id": sid(number),
        "parent_span_id": None if parent is None else sid(parent),
        "name": operation or "span",
        "operation": operation,
        "request_model": model or ("gpt-4o" if tokens else None),
        "input_tokens": tokens[0] if tokens else None,
        "output_tokens": tokens[1] if tokens else None,
        "total_tokens": sum(tokens) if tokens else None,
        # like the normaliser: the span's gen_ai.agent.id, else the resource's main agent
        "agent_id": agent_id or main_agent_id,
        "agent_name": agent_name,
        "credential_agent_id": credential,
        "service_namespace": namespace,
        "service_name": service,
        "environment": "prod",
        "resource_attributes": json.dumps(resource),
        "cost_usd": None if cost is None else Decimal(cost),
    }


SCHEMA = {
    "trace_id": pl.String,
    "span_id": pl.String,
    "parent_span_id": pl.String,
    "name": pl.String,
    "operation": pl.String,
    "request_model": pl.String,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "total_tokens": pl.Int64,
    "agent_id": pl.String,
    "agent_name": pl.String,
    "credential_agent_id": pl.String,
    "service_namespace": pl.String,
    "service_name": pl.String,
    "environment": pl.String,
    "resource_attributes": pl.String,
    "cost_usd": COST,
}


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def run(rows: list[dict], registry: Registry = REGISTRY):
    spans = frame(rows)
    owners = owning_agents(spans)
    attributed = attribute(model_calls(spans), owners, registry)
    return spans, owners, attributed


def by_span(attributed: pl.DataFrame, *columns: str) -> dict[str, tuple]:
    return {row[0]: row[1:] for row in attributed.select("span_id", *columns).iter_rows()}


# The multi-agent trace: a workflow → supervisor → researcher and writer → model calls and tools.
# Workflow and agent spans carry their children's usage rolled up, as some instrumentations do.
MULTI_AGENT = [
    span(1, None, "invoke_workflow", tokens=(850, 420), cost="0.50"),
    span(2, 1, "invoke_agent", agent_name="supervisor", tokens=(850, 420), cost="0.50"),
    span(3, 2, "chat", tokens=(100, 50), cost="0.01"),  # the supervisor's own planning call
    span(4, 2, "invoke_agent", agent_name="researcher", tokens=(500, 250), cost="0.05"),
    span(5, 4, "chat", tokens=(200, 100), cost="0.02"),
    span(6, 4, "execute_tool", tokens=(7, 7)),  # a tool reporting usage is still no model call
    span(7, 4, "chat", tokens=(300, 150), cost="0.03"),
    span(8, 2, "invoke_agent", agent_name="writer", tokens=(250, 120), cost="0.04"),
    span(9, 8, "chat", tokens=(250, 120), cost="0.04"),
    span(10, 8, "execute_tool"),
    span(11, 2, "execute_tool"),
]


def test_a_multi_agent_trace_bills_sub_agents_rolls_up_to_the_supervisor_and_counts_nothing_twice():
    _, owners, attributed = run(MULTI_AGENT)

    assert sorted(attributed["span_id"]) == [sid(3), sid(5), sid(7), sid(9)]
    assert by_span(attributed, "agent_id", "agent_span_id", "department_id", "cost_centre") == {
        sid(3): ("supervisor", sid(2), "research", "CC-100"),
        sid(5): ("researcher", sid(4), "research", "CC-999"),
        sid(7): ("researcher", sid(4), "research", "CC-999"),
        sid(9): ("writer", sid(8), "sales", "CC-200"),
    }

    per_span = agent_span_costs(attributed, owners, REGISTRY)
    rows = {
        row["agent_span_id"]: row
        for row in per_span.select(
            "agent_span_id",
            "parent_agent_span_id",
            "agent_id",
            "exclusive_calls",
            "exclusive_cost_usd",
            "exclusive_total_tokens",
            "inclusive_calls",
            "inclusive_cost_usd",
            "inclusive_total_tokens",
        ).iter_rows(named=True)
    }
    assert rows[sid(2)] == {
        "agent_span_id": sid(2),
        "parent_agent_span_id": None,
        "agent_id": "supervisor",
        "exclusive_calls": 1,
        "exclusive_cost_usd": Decimal("0.01"),
        "exclusive_total_tokens": 150,
        "inclusive_calls": 4,
        "inclusive_cost_usd": Decimal("0.10"),
        "inclusive_total_tokens": 150 + 300 + 450 + 370,
    }
    assert {span_id: row["agent_id"] for span_id, row in rows.items()} == {
        sid(2): "supervisor",
        sid(4): "researcher",
        sid(8): "writer",
    }
    assert rows[sid(4)]["parent_agent_span_id"] == rows[sid(8)]["parent_agent_span_id"] == sid(2)
    assert (rows[sid(4)]["exclusive_cost_usd"], rows[sid(4)]["inclusive_cost_usd"]) == (
        Decimal("0.05"),
        Decimal("0.05"),
    )
    assert (rows[sid(8)]["exclusive_total_tokens"], rows[sid(8)]["inclusive_total_tokens"]) == (370, 370)

    # nothing twice: exclusive over agent spans and over agents both sum to the calls themselves
    assert per_span["exclusive_cost_usd"].sum() == Decimal("0.10") == attributed["cost_usd"].sum()
    per_agent = agent_costs(attributed, owners, REGISTRY)
    assert per_agent["exclusive_cost_usd"].sum() == Decimal("0.10")
    assert per_agent["exclusive_input_tokens"].sum() == 850
    assert per_agent["exclusive_output_tokens"].sum() == 420
    assert {
        row[0]: row[1:]
        for row in per_agent.select(
            "agent_id", "department_id", "cost_centre", "exclusive_cost_usd", "inclusive_cost_usd"
        ).iter_rows()
    } == {
        "supervisor": ("research", "CC-100", Decimal("0.01"), Decimal("0.10")),
        "researcher": ("research", "CC-999", Decimal("0.05"), Decimal("0.05")),
        "writer": ("sales", "CC-200", Decimal("0.04"), Decimal("0.04")),
    }


def test_usage_rolled_up_on_agent_workflow_and_tool_spans_is_not_counted():
    calls = model_calls(frame(MULTI_AGENT))
    assert calls["operation"].unique().to_list() == ["chat"]
    assert calls["total_tokens"].sum() == 1270  # not 1270 + 1270 (workflow) + 1270 + 750 + 370 (agents) + 14


def test_an_agent_that_made_no_calls_costs_zero():
    spans = frame([span(1, None, "invoke_agent", agent_name="writer"), span(2, 1, "execute_tool")])
    owners = owning_agents(spans)
    attributed = attribute(model_calls(spans), owners, REGISTRY)
    assert attributed.is_empty()
    for costs in (agent_span_costs(attributed, owners, REGISTRY), agent_costs(attributed, owners, REGISTRY)):
        assert costs.select("agent_id", "exclusive_calls", "inclusive_cost_usd").rows() == [
            ("writer", 0, Decimal(0))
        ]


def test_a_legacy_span_without_operation_counts_when_it_carries_usage():
    rows = [
        span(1, None, "invoke_agent", agent_name="writer"),
        span(2, 1, None, tokens=(40, 10), model="gpt-3.5-turbo"),  # legacy: model and tokens, no operation
        span(3, 1, None),  # a plain HTTP span: no usage, no model call
        span(4, 1, "some_new_llm_operation", tokens=(5, 5)),  # outside the vocabulary, with usage
        span(5, 1, "embeddings"),  # a model call by its operation, usage or not
        span(6, 1, "retrieval", tokens=(3, 3)),  # a known non-model operation never counts
    ]
    _, _, attributed = run(rows)
    assert sorted(attributed["span_id"]) == [sid(2), sid(4), sid(5)]
    assert set(attributed["agent_id"]) == {"writer"}


def test_nested_model_spans_of_one_call_count_once():
    rows = [
        span(1, None, "invoke_agent", agent_name="writer"),
        span(2, 1, "chat", tokens=(100, 10)),  # a framework's LLM span ...
        span(3, 2, "chat", tokens=(100, 10), cost="0.01"),  # ... around the SDK's: the inner one counts
        span(4, 1, "chat", tokens=(60, 6), cost="0.02"),  # a call with usage ...
        span(5, 4, "chat"),  # ... and a usage-less fragment of it inside
        span(6, 1, "chat"),  # a usage-less wrapper ...
        span(7, 6, "chat"),
        span(8, 7, "chat", tokens=(30, 3), cost="0.03"),  # ... with the usage two levels down
    ]
    calls = model_calls(frame(rows))
    assert sorted(calls["span_id"]) == [sid(3), sid(4), sid(8)]
    assert calls["total_tokens"].sum() == 110 + 66 + 33


# Identity


def test_the_ingest_credential_beats_agent_id_name_and_service():
    rows = [
        span(
            1,
            None,
            "invoke_agent",
            credential="writer",
            agent_name="researcher",
            main_agent_id="asst_sup",
            namespace="shop",
            service="billing",
        ),
        span(2, 1, "chat", credential="writer", namespace="shop", service="billing", tokens=(1, 1)),
    ]
    _, _, attributed = run(rows)
    assert by_span(attributed, "agent_id", "matched_by", "match_status") == {
        sid(2): ("writer", "credential", "registered")
    }
    observed = attributed["observed_identity"][0]
    assert observed.startswith("credential=writer, ") and "agent.name=researcher" in observed


def test_a_call_exported_with_another_credential_is_that_agents_even_under_a_foreign_agent_span():
    rows = [
        span(1, None, "invoke_agent", credential="supervisor", agent_name="supervisor"),
        span(2, 1, None, credential="supervisor"),  # the supervisor's HTTP client span
        span(3, 2, "chat", credential="writer", service="writer-svc", tokens=(10, 10), cost="0.20"),
    ]
    _, owners, attributed = run(rows)
    assert by_span(attributed, "agent_id", "agent_span_id", "enclosing_agent_span_id") == {
        sid(3): ("writer", None, sid(1))
    }
    per_span = agent_span_costs(attributed, owners, REGISTRY).row(0, named=True)
    assert (per_span["exclusive_cost_usd"], per_span["inclusive_cost_usd"]) == (Decimal(0), Decimal("0.20"))
    per_agent = agent_costs(attributed, owners, REGISTRY)
    assert dict(per_agent.select("agent_id", "exclusive_cost_usd").iter_rows()) == {
        "writer": Decimal("0.20"),
        "supervisor": Decimal(0),
    }
    assert per_agent["exclusive_cost_usd"].sum() == Decimal("0.20")


def test_sub_agents_in_the_supervisors_process_are_not_claimed_by_its_credential_or_main_agent():
    process = {"credential": "supervisor", "main_agent_id": "asst_sup", "service": "orchestrator"}
    rows = [
        span(1, None, "invoke_agent", agent_name="supervisor", **process),
        span(2, 1, "chat", tokens=(1, 1), **process),
        span(3, 1, "invoke_agent", agent_name="researcher", **process),  # names itself
        span(4, 3, "chat", tokens=(1, 1), **process),
        span(5, 1, "invoke_agent", **process),  # an anonymous nested agent: the process's agent
        span(6, 5, "chat", tokens=(1, 1), **process),
    ]
    _, _, attributed = run(rows)
    assert by_span(attributed, "agent_id", "matched_by") == {
        sid(2): ("supervisor", "credential"),
        sid(4): ("researcher", "agent_name"),
        sid(6): ("supervisor", "credential"),
    }


def test_registered_unregistered_and_ambiguous_identities():
    twin = {"apiVersion": "muster/v1", "kind": "Agent", "metadata": {"id": "twin-b"}}
    twin["spec"] = {"name": "B", "owner": "o", "department": "sales", "lifecycle": "pilot"}
    twin["spec"]["match"] = [{"agentName": "writer"}]  # validation refuses this; matching must cope
    clashing = Registry.of([*REGISTRY.entities(), Agent.model_validate(twin)])
    rows = [
        span(1, None, "invoke_agent", agent_name="researcher"),
        span(2, 1, "chat", tokens=(1, 1), cost="0.01"),
        span(3, None, "invoke_agent", agent_name="shadow", namespace=None, service="side-project"),
        span(4, 3, "chat", tokens=(1, 1), cost="0.02"),
        span(5, None, "invoke_agent", agent_name="writer"),
        span(6, 5, "chat", tokens=(1, 1), cost="0.04"),
    ]
    _, owners, attributed = run(rows, clashing)
    assert by_span(
        attributed, "agent_id", "match_status", "candidates", "department_id", "observed_identity"
    ) == {
        sid(2): (
            "researcher",
            "registered",
            ["researcher"],
            "research",
            "agent.name=researcher, service=acme/agents, env=prod",
        ),
        sid(4): (None, "unregistered", [], None, "agent.name=shadow, service=side-project, env=prod"),
        sid(6): (
            None,
            "ambiguous",
            ["twin-b", "writer"],
            None,
            "agent.name=writer, service=acme/agents, env=prod",
        ),
    }
    per_agent = agent_costs(attributed, owners, clashing)
    assert per_agent.select("agent_id", "match_status", "observed_identity", "exclusive_cost_usd").rows() == [
        ("researcher", "registered", None, Decimal("0.01")),
        (None, "ambiguous", "agent.name=writer, service=acme/agents, env=prod", Decimal("0.04")),
        (None, "unregistered", "agent.name=shadow, service=side-project, env=prod", Decimal("0.02")),
    ]


def test_a_resource_main_agent_id_identifies_calls_no_agent_span_encloses():
    _, owners, attributed = run([span(1, None, "chat", main_agent_id="asst_sup", tokens=(1, 1))])
    assert owners.select("agent_span_id", "main_agent_id", "gen_ai_agent_id").row(0) == (
        None,
        "asst_sup",
        None,
    )
    assert by_span(attributed, "agent_id", "matched_by") == {sid(1): ("supervisor", "agent_id")}


def test_cost_centre_is_the_agents_override_else_its_departments():
    assert dict(agent_departments(REGISTRY).select("agent_id", "cost_centre").iter_rows()) == {
        "supervisor": "CC-100",
        "researcher": "CC-999",
        "writer": "CC-200",
        "billing": "CC-200",
    }


# Malformed and partial traces


def test_a_partial_trace_ends_the_walk_at_a_missing_parent():
    rows = [
        span(2, 1, "invoke_agent", agent_name="researcher"),  # its parent, span 1, never arrived
        span(3, 2, "chat", tokens=(1, 1)),
        span(5, 4, "chat", namespace="shop", service="billing", tokens=(1, 1)),  # parent 4 is missing
    ]
    _, owners, attributed = run(rows)
    assert by_span(attributed, "agent_id", "agent_span_id", "matched_by") == {
        sid(3): ("researcher", sid(2), "agent_name"),
        sid(5): ("billing", None, "service"),  # owned by its own resource identity
    }
    assert owners.filter(pl.col("span_id") == sid(2))["enclosing_agent_span_id"].to_list() == [None]


@pytest.mark.timeout(20)
def test_a_malformed_cycle_terminates_and_counts_nothing_twice():
    rows = [
        span(1, 2, None),  # 1 → 2 → 1: a loop of plain spans ...
        span(2, 1, None),
        span(
            3, 1, "chat", namespace="shop", service="billing", tokens=(1, 1), cost="0.01"
        ),  # ... above a call
        span(4, 5, "invoke_agent", agent_name="researcher"),  # 4 → 5 → 4: a loop of agent spans
        span(5, 4, "invoke_agent", agent_name="writer"),
        span(6, 4, "chat", tokens=(1, 1), cost="0.02"),
        span(7, 5, "chat", tokens=(1, 1), cost="0.04"),
        span(8, 8, "chat", agent_name="writer", tokens=(1, 1), cost="0.08"),  # its own parent
    ]
    _, owners, attributed = run(rows)
    assert by_span(attributed, "agent_id", "agent_span_id") == {
        sid(3): ("billing", None),
        sid(6): ("researcher", sid(4)),
        sid(7): ("writer", sid(5)),
        sid(8): ("writer", None),
    }
    per_span = agent_span_costs(attributed, owners, REGISTRY)
    # the loop is cut: neither agent span's inclusive cost contains the other's
    assert dict(per_span.select("agent_span_id", "inclusive_cost_usd").iter_rows()) == {
        sid(4): Decimal("0.02"),
        sid(5): Decimal("0.04"),
    }
    assert agent_costs(attributed, owners, REGISTRY)["exclusive_cost_usd"].sum() == Decimal("0.15")


def test_a_remote_sub_agent_in_another_service_owns_its_calls_and_rolls_up_to_the_caller():
    rows = [
        span(1, None, "invoke_agent", agent_name="supervisor", service="orchestrator"),
        span(2, 1, None, service="orchestrator"),  # HTTP client span in the caller's service
        span(3, 2, None, service="research-svc"),  # HTTP server span in the sub-agent's service
        span(4, 3, "invoke_agent", agent_name="researcher", service="research-svc"),
        span(5, 4, "chat", service="research-svc", tokens=(10, 5), cost="0.02"),
        span(6, 2, "chat", service="summariser", tokens=(4, 2), cost="0.01"),  # a service with no agent span
    ]
    _, owners, attributed = run(rows)
    assert by_span(attributed, "agent_id", "agent_span_id") == {
        sid(5): ("researcher", sid(4)),
        sid(6): ("supervisor", sid(1)),  # the nearest enclosing invoke_agent, across the boundary
    }
    per_span = agent_span_costs(attributed, owners, REGISTRY)
    assert per_span.select("agent_span_id", "parent_agent_span_id", "inclusive_cost_usd").rows() == [
        (sid(1), None, Decimal("0.03")),
        (sid(4), sid(1), Decimal("0.02")),
    ]


# Recursion, cost columns, contracts


def test_an_agent_calling_itself_counts_each_call_once_in_its_inclusive_cost():
    rows = [
        span(1, None, "invoke_agent", agent_name="researcher"),
        span(2, 1, "chat", tokens=(1, 1), cost="0.01"),
        span(3, 1, "invoke_agent", agent_name="researcher"),
        span(4, 3, "chat", tokens=(1, 1), cost="0.02"),
    ]
    _, owners, attributed = run(rows)
    per_agent = agent_costs(attributed, owners, REGISTRY).row(0, named=True)
    assert (per_agent["exclusive_cost_usd"], per_agent["inclusive_cost_usd"]) == (
        Decimal("0.03"),
        Decimal("0.03"),
    )
    assert per_agent["inclusive_calls"] == 2
    per_span = agent_span_costs(attributed, owners, REGISTRY)
    assert dict(per_span.select("agent_span_id", "inclusive_cost_usd").iter_rows()) == {
        sid(1): Decimal("0.03"),
        sid(3): Decimal("0.02"),
    }


def test_any_numeric_cost_column_and_unpriced_calls_are_counted():
    spans = frame(MULTI_AGENT).with_columns(
        reported=pl.when(pl.col("span_id") == sid(9))
        .then(None)
        .otherwise(pl.col("cost_usd").cast(pl.Float64))
    )
    owners = owning_agents(spans)
    attributed = attribute(model_calls(spans), owners, REGISTRY)
    per_agent = agent_costs(attributed, owners, REGISTRY, cost="reported")
    writer = per_agent.filter(pl.col("agent_id") == "writer").row(0, named=True)
    assert (writer["exclusive_reported"], writer["exclusive_unpriced_calls"]) == (0.0, 1)
    supervisor = per_agent.filter(pl.col("agent_id") == "supervisor").row(0, named=True)
    assert supervisor["inclusive_reported"] == pytest.approx(0.06)
    assert supervisor["inclusive_unpriced_calls"] == 1
    with pytest.raises(ValueError, match="no 'price' column"):
        agent_costs(attributed, owners, REGISTRY, cost="price")


def test_output_columns_and_contracts():
    spans, owners, attributed = run(MULTI_AGENT)
    assert owners.columns == list(OWNER_COLUMNS)
    assert owners["span_id"].to_list() == spans["span_id"].to_list()
    assert attributed.columns == [
        *["span_agent_id" if name == "agent_id" else name for name in spans.columns],
        *ATTRIBUTION_COLUMNS,
    ]
    assert attributed.schema["cost_usd"] == COST
    with pytest.raises(ValueError, match="no row in owners"):
        attribute(model_calls(spans), owners.head(3), REGISTRY)
    with pytest.raises(ValueError, match="already have"):
        attribute(attributed, owners, REGISTRY)


# End to end: OTLP → normaliser → writer → warehouse → pricing → attribution


def test_spans_through_ingest_the_warehouse_and_pricing_are_attributed(warehouse):
    trace = bytes.fromhex(TRACE)

    def at(number: int, parent: int | None, **attributes: object):
        parent_id = b"" if parent is None else number_id(parent)
        return otlp_span(
            trace_id=trace, span_id=number_id(number), parent_span_id=parent_id, attributes=attributes
        )

    def number_id(number: int) -> bytes:
        return number.to_bytes(8, "big")

    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
    }
    orchestrator = trace_request(
        {"service.name": "orchestrator", "service.namespace": "acme", "gen_ai.main_agent.id": "asst_sup"},
        [
            at(1, None, **{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "supervisor"}),
            at(2, 1, **chat, **{"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 50}),
            at(3, 1, **{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"}),
            at(
                4,
                3,
                **{
                    "openinference.span.kind": "LLM",
                    "llm.provider": "openai",
                    "llm.model_name": "gpt-4o",
                    "llm.token_count.prompt": 300,
                    "llm.token_count.completion": 150,
                },
            ),
            at(5, 3, **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
            at(6, 1, **{"http.request.method": "POST"}),  # the call to the remote writer
        ],
    )
    writer_service = trace_request(
        {"service.name": "writer-svc", "service.namespace": "acme"},
        [
            at(7, 6, **{"http.request.method": "POST"}),
            at(8, 7, **{"openinference.span.kind": "AGENT", "agent.name": "writer"}),
            at(  # a legacy instrumentation: no operation name, older usage names
                9,
                8,
                **{
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.prompt_tokens": 500,
                    "gen_ai.usage.completion_tokens": 250,
                },
            ),
        ],
    )
    writer = Writer(warehouse.cursor())
    writer.start()
    try:
        for request in (orchestrator, writer_service):
            writer.submit(WriteBatch("spans", normalise_traces(request).table)).result(10)
    finally:
        writer.shutdown()
    stored = warehouse.sql("SELECT * FROM spans LEFT JOIN resources USING (resource_id)")
    spans = pl.from_arrow(stored.to_arrow_table())

    owners = owning_agents(spans)
    priced = price_calls(model_calls(spans))
    attributed = attribute(priced, owners, REGISTRY)
    assert by_span(attributed, "agent_id", "matched_by", "agent_span_id") == {
        sid(2): ("supervisor", "agent_id", sid(1)),  # resource gen_ai.main_agent.id
        sid(4): ("researcher", "agent_name", sid(3)),  # not claimed by the process's main agent
        sid(9): ("writer", "agent_name", sid(8)),  # a remote sub-agent, found across the services
    }
    assert attributed["cost_usd"].null_count() == 0

    per_span = agent_span_costs(attributed, owners, REGISTRY)
    supervisor = per_span.filter(pl.col("agent_span_id") == sid(1)).row(0, named=True)
    assert (supervisor["exclusive_total_tokens"], supervisor["inclusive_total_tokens"]) == (150, 1350)
    assert supervisor["inclusive_cost_usd"] == attributed["cost_usd"].sum() > 0
    per_agent = agent_costs(attributed, owners, REGISTRY)
    assert per_agent["exclusive_cost_usd"].sum() == attributed["cost_usd"].sum()
