"""trace_agents end to end: OTLP in, the cost job, one row per (trace, owning identity) out.

A real server with the fixture registry receives a supervisor → two sub-agents trace over OTLP/HTTP
(one sub-agent in the supervisor's process, one remote and unregistered, its spans in a second
export), and traces whose spans do or do not carry prompt/response content.
"""

from __future__ import annotations

import os
import random
from decimal import Decimal

import polars as pl
import pytest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from analytics.activity import _gathered
from tests.otlp_builders import event, span, trace_request
from tests.test_costs_job import FIXTURE, Sent, cli, run_job, send

SUPERVISOR_RESOURCE = {
    "service.namespace": "claims",
    "service.name": "triage-api",
    "deployment.environment.name": "production",
    "host.name": "claims-host-1",
    "telemetry.sdk.language": "python",
}
REMOTE_RESOURCE = {"service.name": "skunkworks", "host.name": "lab-box", "telemetry.sdk.language": "nodejs"}
LANGGRAPH = InstrumentationScope(name="openinference.instrumentation.langchain", version="0.1")
OPENAI_AGENTS = InstrumentationScope(name="openai.agents", version="0.3")
T = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def costed(tmp_path):
    from tests.conftest import start_server

    data_dir = tmp_path / "data"
    server = start_server(
        data_dir, decode_workers=0, jobs_interval_seconds=0, prices_file=tmp_path / "prices.yaml"
    )
    applied = cli(data_dir, "registry", "apply", "-f", str(FIXTURE))
    assert applied.exit_code == 0, applied.output
    yield server
    server.stop()


def sid() -> bytes:
    return os.urandom(8)


def chat(trace_id, parent, model, start, *, tokens=(1000, 100), status=0, **attributes):
    return span(
        f"chat {model}",
        trace_id=trace_id,
        span_id=sid(),
        parent_span_id=parent,
        start=start,
        end=start + 1_000_000,
        status_code=status,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": tokens[0],
            "gen_ai.usage.output_tokens": tokens[1],
            "server.address": "api.openai.com",
            **attributes,
        },
    )


def agent(trace_id, span_id, parent, name, start, **attributes):
    return span(
        f"invoke_agent {name}",
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        start=start,
        end=start + 5_000_000_000,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name, **attributes},
    )


def tool(trace_id, parent, name, start, **attributes):
    return span(
        f"execute_tool {name}",
        trace_id=trace_id,
        span_id=sid(),
        parent_span_id=parent,
        start=start,
        end=start + 1_000,
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, **attributes},
    )


def multi_agent_trace(trace_id: bytes) -> tuple[list, bytes]:
    """Two exports of one trace: the supervisor's process, and the remote sub-agent's."""
    root, sub_local, sub_remote = sid(), sid(), sid()
    local = [
        agent(trace_id, root, b"", "ClaimsTriage", T, **{"gen_ai.conversation.id": "conv-7"}),
        chat(trace_id, root, "gpt-4o", T + 1_000, **{"gen_ai.input.messages": '[{"role":"user"}]'}),
        agent(trace_id, sub_local, root, "subrogation", T + 2_000),
        tool(trace_id, sub_local, "recovery_estimate", T + 3_000, **{"gen_ai.data_source.id": "claims-db"}),
        chat(
            trace_id,
            sub_local,
            "gpt-4o-mini",
            T + 4_000,
            status=Status.STATUS_CODE_ERROR,
            **{"gen_ai.prompt.name": "estimate", "note": 'quoted {"input.value": 1} is no content'},
        ),
    ]
    remote = [
        agent(trace_id, sub_remote, root, "Mystery", T + 5_000),
        tool(trace_id, sub_remote, "web_search", T + 6_000),
        span(
            "chat my-private-llm",
            trace_id=trace_id,
            span_id=sid(),
            parent_span_id=sub_remote,
            start=T + 7_000,
            end=T + 8_000,
            events=[event("gen_ai.user.message", T + 7_500, content="hello")],
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "acme-internal",
                "gen_ai.request.model": "my-private-llm",
                "gen_ai.usage.input_tokens": 50,
                "gen_ai.usage.output_tokens": 5,
            },
        ),
    ]
    requests = [
        trace_request(SUPERVISOR_RESOURCE, local, scope=LANGGRAPH),
        trace_request(REMOTE_RESOURCE, remote, scope=OPENAI_AGENTS),
    ]
    return requests, sub_remote


def rows_of(server, trace_id: bytes) -> dict[str, dict]:
    """The trace's trace_agents rows, keyed by agent id (or observed identity)."""
    with server.server.warehouse.cursor() as cur:
        result = cur.execute("SELECT * FROM trace_agents WHERE trace_id = ?", [trace_id.hex()])
        names = [column[0] for column in result.description]
        rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    return {row["agent_id"] or row["observed_identity"]: row for row in rows}


def calls_cost(server, trace_id: bytes) -> dict[str, Decimal | None]:
    rows = server.query(
        "SELECT coalesce(agent_id, observed_identity), sum(cost_usd) FROM priced_calls"
        " WHERE trace_id = ? GROUP BY ALL",
        [trace_id.hex()],
    )
    return dict(rows)


def test_a_supervisor_and_two_sub_agents_get_one_row_each(costed):
    trace_id = os.urandom(16)
    requests, _ = multi_agent_trace(trace_id)
    for request in requests:
        send(costed, Sent(request, "", [], None))
    run_job(costed)
    rows = rows_of(costed, trace_id)
    mystery = "agent.name=Mystery, service=skunkworks"
    assert set(rows) == {"claims-triage", "subrogation-assistant", mystery}

    triage = rows["claims-triage"]
    assert (triage["match_status"], triage["department_id"], triage["cost_centre"]) == (
        "registered",
        "claims",
        "CC-4100",
    )
    assert (triage["spans"], triage["agent_spans"], triage["model_calls"], triage["error_spans"]) == (
        2,
        1,
        1,
        0,
    )
    assert (triage["input_tokens"], triage["output_tokens"], triage["unpriced_calls"]) == (1000, 100, 0)
    assert triage["models"] == ["gpt-4o"] and triage["providers"] == ["openai"]
    assert triage["endpoints"] == ["api.openai.com"] and triage["tools"] == []
    assert triage["conversations"] == ["conv-7"] and triage["hosts"] == ["claims-host-1"]
    assert triage["services"] == ["claims/triage-api"] and triage["sdk_languages"] == ["python"]
    assert triage["scopes"] == ["openinference.instrumentation.langchain"]
    assert triage["resource_keys"] == sorted(SUPERVISOR_RESOURCE)
    assert triage["content_captured"] is True
    assert (triage["agent_name"], triage["service_name"], triage["environment"]) == (
        "ClaimsTriage",
        "triage-api",
        "production",
    )
    assert str(triage["day"]) == "2026-01-01" and triage["first_seen"] < triage["last_seen"]

    sub = rows["subrogation-assistant"]
    assert (sub["spans"], sub["agent_spans"], sub["model_calls"], sub["error_spans"]) == (3, 1, 1, 1)
    assert sub["tools"] == ["recovery_estimate"] and sub["data_sources"] == ["claims-db"]
    assert sub["models"] == ["gpt-4o-mini"] and sub["content_captured"] is False
    assert sub["agent_name"] == "subrogation" and sub["department_id"] == "claims"

    remote = rows[mystery]
    assert (remote["agent_id"], remote["match_status"], remote["department_id"]) == (
        None,
        "unregistered",
        None,
    )
    assert (remote["spans"], remote["model_calls"], remote["unpriced_calls"]) == (3, 1, 1)
    assert remote["cost_usd"] is None  # no priced call: unknown, never a silent $0
    assert remote["providers"] == ["acme-internal"] and remote["endpoints"] == []
    assert remote["tools"] == ["web_search"] and remote["content_captured"] is True
    assert remote["hosts"] == ["lab-box"] and remote["scopes"] == ["openai.agents"]
    assert remote["resource_keys"] == sorted(REMOTE_RESOURCE) and remote["conversations"] == []

    # costs agree with priced_calls, identity by identity; sample spans are the agent spans
    assert {key: row["cost_usd"] for key, row in rows.items()} == calls_cost(costed, trace_id)
    agent_spans = {
        row[0]
        for row in costed.query(
            "SELECT span_id FROM spans WHERE trace_id = ? AND operation = 'invoke_agent'", [trace_id.hex()]
        )
    }
    assert {row["sample_span_id"] for row in rows.values()} == agent_spans


def test_a_late_span_rewrites_the_traces_rows_without_duplicates(costed):
    trace_id = os.urandom(16)
    requests, sub_remote = multi_agent_trace(trace_id)
    for request in requests:
        send(costed, Sent(request, "", [], None))
    run_job(costed)
    late = chat(trace_id, sub_remote, "gpt-4o-mini", T + 9_000, tokens=(2000, 10))
    send(costed, Sent(trace_request(REMOTE_RESOURCE, [late], scope=OPENAI_AGENTS), "", [], None))
    again = run_job(costed)
    assert again["traces"] == 1
    rows = rows_of(costed, trace_id)
    assert len(rows) == 3
    assert costed.query("SELECT count(*) FROM trace_agents WHERE trace_id = ?", [trace_id.hex()]) == [(3,)]
    remote = rows["agent.name=Mystery, service=skunkworks"]
    assert (remote["spans"], remote["model_calls"], remote["unpriced_calls"]) == (4, 2, 1)
    assert remote["cost_usd"] > 0 and remote["models"] == ["gpt-4o-mini", "my-private-llm"]
    assert remote["input_tokens"] == 2050
    full = run_job(costed, "--full")
    assert full["traces"] == 1 and without_time(rows_of(costed, trace_id)) == without_time(rows)


def without_time(rows: dict[str, dict]) -> dict[str, dict]:
    return {
        key: {name: value for name, value in row.items() if name != "computed_at"}
        for key, row in rows.items()
    }


CONTENT = {
    "current input messages": ({"gen_ai.input.messages": "[]"}, [], True),
    "current output messages": ({"gen_ai.output.messages": "[]"}, [], True),
    "system instructions": ({"gen_ai.system_instructions": "be brief"}, [], True),
    "legacy indexed prompt": ({"gen_ai.prompt.0.content": "hi", "gen_ai.prompt.0.role": "user"}, [], True),
    "legacy completion": ({"gen_ai.completion.0.content": "hello"}, [], True),
    "openinference messages": ({"llm.input_messages.0.message.content": "hi"}, [], True),
    "openinference value": ({"output.value": "{}"}, [], True),
    "traceloop entity input": ({"traceloop.entity.input": "{}"}, [], True),
    "content event": ({}, [event("gen_ai.content.completion", T, **{"gen_ai.completion": "x"})], True),
    "choice event": ({}, [event("gen_ai.choice", T, index=0)], True),
    "role message event": ({}, [event("gen_ai.assistant.message", T)], True),
    "prompt template only": ({"gen_ai.prompt.name": "triage", "gen_ai.prompt.version": "3"}, [], False),
    "a value quoting a key": ({"note": 'he wrote "input.value": here'}, [], False),
    "a similar key": ({"input.values_count": 3, "gen_ai.usage.input_tokens": 5}, [], False),
    "an unrelated event": ({}, [event("exception", T, **{"exception.type": "ValueError"})], False),
}


def test_content_capture_is_read_from_attribute_keys_and_event_names(costed):
    traces = {}
    spans = []
    for case, (attributes, events, _) in CONTENT.items():
        trace_id = os.urandom(16)
        traces[case] = trace_id
        spans.append(
            span(
                "chat",
                trace_id=trace_id,
                span_id=sid(),
                start=T,
                end=T + 1_000,
                events=events,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.agent.name": "Mystery", **attributes},
            )
        )
    send(costed, Sent(trace_request({"service.name": "skunkworks"}, spans), "", [], None))
    run_job(costed)
    found = {
        case: costed.query("SELECT content_captured FROM trace_agents WHERE trace_id = ?", [trace_id.hex()])
        for case, trace_id in traces.items()
    }
    assert found == {case: [(expected,)] for case, (_, _, expected) in CONTENT.items()}


def test_an_agent_running_on_several_resources_lists_all_their_keys_once():
    """A group whose spans come from two resources merges their keys (sorted, each once); a group on
    one resource takes its keys whole."""
    import json

    import polars as pl

    from analytics.activity import trace_agents
    from analytics.attribution import owning_agents
    from registry import Registry

    pod_a = json.dumps({"service.name": "batch", "k8s.pod.name": "a", "host.name": "h1"})
    pod_b = json.dumps({"service.name": "batch", "k8s.pod.name": "b", "cloud.region": "eu"})
    alone = json.dumps({"service.name": "solo", "host.name": "h2"})
    spans = pl.DataFrame(
        {
            "trace_id": ["t1", "t1", "t1"],
            "span_id": ["s1", "s2", "s3"],
            "parent_span_id": [None, "s1", None],
            "start_time": [1, 2, 3],
            "operation": ["invoke_agent", "execute_tool", "execute_tool"],
            "agent_name": ["Batcher", None, None],
            "service_name": ["batch", "batch", "solo"],
            "resource_attributes": [pod_a, pod_b, alone],
        },
        schema_overrides={"start_time": pl.Datetime("ns")},
    )
    calls = pl.DataFrame(
        schema={"trace_id": pl.String, "span_id": pl.String, "cost_usd": pl.Decimal(38, 12)}
        | {"input_tokens": pl.Int64, "output_tokens": pl.Int64}
    )
    rows = trace_agents(spans, owning_agents(spans), calls, Registry()).sort("service_name")
    assert rows["resource_keys"].to_list() == [
        ["cloud.region", "host.name", "k8s.pod.name", "service.name"],
        ["host.name", "service.name"],
    ]


@pytest.mark.parametrize("distinct", [3, 400])  # few values (coded as an Enum) and many (sorted as text)
def test_list_columns_are_each_groups_distinct_values_in_text_order(distinct):
    rng = random.Random(distinct)
    values = [f"v{n}" for n in range(distinct)] + ["Zed", "zed", "é", "a b"]
    pairs = pl.DataFrame(
        {"_gid": [rng.randrange(50) for _ in range(1000)], "v": [rng.choice(values) for _ in range(1000)]},
        schema={"_gid": pl.UInt32, "v": pl.String},
    )
    expected: dict[int, set[str]] = {}
    for gid, value in pairs.iter_rows():
        expected.setdefault(gid, set()).add(value)
    got = _gathered(pairs, "v")
    assert got.schema["v"] == pl.List(pl.String)
    assert dict(got.iter_rows()) == {gid: sorted(found) for gid, found in expected.items()}
