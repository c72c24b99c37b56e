"""collector.normalise: OTLP requests → Arrow tables shaped like the warehouse tables."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Exemplar,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    SummaryDataPoint,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import normalise as normalise_module
from collector.errors import InvalidData
from collector.normalise import (
    DEFAULT_LIMITS,
    LOG_RECORD_SCHEMA,
    METRIC_POINT_SCHEMA,
    SPAN_SCHEMA,
    Limits,
    Normalised,
    Reject,
    normalise_logs,
    normalise_metrics,
    normalise_traces,
)
from tests.otlp_builders import (
    SPAN_ID,
    T0,
    TRACE_ID,
    attrs,
    event,
    genai_span,
    ids,
    link,
    log_record,
    logs_request,
    metrics_request,
    span,
    trace_request,
)
from warehouse.database import migrate, migrations

MIGRATIONS = Path(__file__).resolve().parents[1] / "warehouse" / "migrations"
# the tables as the normaliser fills them: later migrations reshape resources and add a credential
# column, which the writer takes care of; 010 adds a column the normaliser fills
DDL = ("001_telemetry.sql", "010_content_captured.sql")


def assert_same_result(got: Normalised, expected: Normalised) -> None:
    """Two results hold the same rows, in the same order, and the same rejects."""
    assert got.rejects == expected.rejects
    assert got.table.schema == expected.table.schema
    for name in got.table.column_names:
        a, b = got.table.column(name), expected.table.column(name)
        if pa.types.is_timestamp(a.type):
            a, b = a.cast(pa.int64()), b.cast(pa.int64())
        assert a.to_pylist() == b.to_pylist(), name


@pytest.fixture(autouse=True)
def column_wise_matches_span_by_span(monkeypatch):
    """Every trace request a test normalises is also checked against the per-span reference path."""
    column_wise = normalise_module._traces_column_wise

    def checked(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Normalised:
        result = column_wise(raw, limits)  # _PerSpan (the request goes span by span) propagates
        assert_same_result(result, normalise_module._traces_span_by_span(raw, limits))
        return result

    monkeypatch.setattr(normalise_module, "_traces_column_wise", checked)


def one_span(
    attributes: dict[str, Any], resource: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Normalise a request holding one span; return its row."""
    result = normalise_traces(
        trace_request(resource or {"service.name": "svc"}, [genai_span(attributes, **kwargs)])
    )
    assert result.rejects == (), result.error_message
    [row] = rows(result.table)
    return row


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """The table's rows as dicts, timestamps as int nanoseconds (datetime cannot hold them)."""
    return pa.table(
        {
            c: table[c].cast(pa.int64()) if pa.types.is_timestamp(table[c].type) else table[c]
            for c in table.column_names
        }
    ).to_pylist()


def subset(row: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in expected}


# --------------------------------------------------------------------------------------------
# Schemas match the warehouse DDL
# --------------------------------------------------------------------------------------------

_DUCKDB_TYPE = {
    pa.string(): {"VARCHAR", "JSON"},
    pa.dictionary(pa.int32(), pa.string()): {"VARCHAR"},  # per-block constants, stored as text
    pa.int64(): {"BIGINT"},
    pa.int32(): {"INTEGER"},
    pa.uint32(): {"UINTEGER"},
    pa.uint64(): {"UBIGINT"},
    pa.float64(): {"DOUBLE"},
    pa.bool_(): {"BOOLEAN"},
    pa.timestamp("ns"): {"TIMESTAMP_NS"},
    pa.list_(pa.uint64()): {"UBIGINT[]"},
    pa.list_(pa.float64()): {"DOUBLE[]"},
}


@pytest.fixture(scope="module")
def ddl() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    for name in DDL:
        con.execute((MIGRATIONS / name).read_text())
    return con


@pytest.mark.parametrize(
    ("table", "schema"),
    [("spans", SPAN_SCHEMA), ("metric_points", METRIC_POINT_SCHEMA), ("log_records", LOG_RECORD_SCHEMA)],
)
def test_schema_matches_the_warehouse_table(ddl, table, schema):
    described = [
        (name, type_, null == "YES")
        for name, type_, null, *_ in ddl.execute(f"DESCRIBE {table}").fetchall()
        if name not in ("received_at", "ingest_seq")
    ]
    assert [name for name, *_ in described] == schema.names
    for (name, ddl_type, nullable), field in zip(described, schema, strict=True):
        assert ddl_type in _DUCKDB_TYPE[field.type], (name, ddl_type, field.type)
        assert field.nullable == nullable, name


def _load(con: duckdb.DuckDBPyConnection, table: str, result: Normalised) -> list[tuple]:
    """Insert the result the way the writer does; DuckDB checks types, NOT NULL and JSON."""
    data = result.table  # noqa: F841 - read by DuckDB's replacement scan
    con.execute("BEGIN")
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT *, now() AS received_at, 1 AS ingest_seq FROM data")
        return con.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        con.execute("ROLLBACK")


def test_normalised_tables_load_into_the_warehouse_tables(ddl):
    spans = normalise_traces(
        trace_request(
            {"service.name": "svc", "deep": {"a": [1.5, float("inf"), b"\xff"]}},
            [
                genai_span(
                    {"gen_ai.provider.name": "openai", "gen_ai.usage.input_tokens": 3, "n": float("nan")},
                    events=[event("e", x=[1, {"y": None}])],
                    links=[link(k="v")],
                    status_code=Status.STATUS_CODE_ERROR,
                ),
                span(span_id=bytes(range(1, 9)), parent_span_id=SPAN_ID),
            ],
        )
    )
    assert len(_load(ddl, "spans", spans)) == 2
    metrics = normalise_metrics(metrics_request({"service.name": "svc"}, all_metric_kinds()))
    assert len(_load(ddl, "metric_points", metrics)) == 5
    logs = normalise_logs(logs_request({"service.name": "svc"}, [log_record("x"), log_record({"k": [1, 2]})]))
    assert len(_load(ddl, "log_records", logs)) == 2
    json_ok = ddl.execute("SELECT json_valid(?)", [spans.table.column("attributes")[0].as_py()]).fetchone()
    assert json_ok == (True,)


# --------------------------------------------------------------------------------------------
# Span basics
# --------------------------------------------------------------------------------------------


def test_span_fields_resource_and_scope():
    req = trace_request(
        {
            "service.name": "support-agent",
            "service.namespace": "care",
            "service.version": "2.1",
            "service.instance.id": "i-1",
            "host.name": "h1",
            "deployment.environment.name": "prod",
            "telemetry.sdk.language": "python",
        },
        [
            span(
                "chat gpt-4o",
                parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
                kind=Span.SPAN_KIND_SERVER,
                status_code=Status.STATUS_CODE_ERROR,
                status_message="boom",
                start=T0,
                end=T0 + 2_500,
            )
        ],
        scope=InstrumentationScope(name="my.lib", version="0.3", attributes=attrs({"scope.attr": 1})),
        schema_url="https://opentelemetry.io/schemas/1.37.0",
    )
    req.resource_spans[0].scope_spans[0].spans[0].trace_state = "vendor=1"
    req.resource_spans[0].scope_spans[0].spans[0].flags = 0x301
    [row] = rows(normalise_traces(req).table)
    assert subset(row, {"trace_id": TRACE_ID.hex(), "span_id": SPAN_ID.hex()}) == {
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
    }
    assert row["parent_span_id"] == "00f067aa0ba902b7"
    assert row["trace_state"] == "vendor=1"
    assert row["flags"] == 0x301
    assert row["name"] == "chat gpt-4o"
    assert row["kind"] == "server"
    assert row["status_code"] == "error"
    assert row["status_message"] == "boom"
    assert row["duration_ns"] == 2_500
    table = normalise_traces(req).table
    assert table.column("start_time").cast(pa.int64()).to_pylist() == [T0]
    assert table.column("end_time").cast(pa.int64()).to_pylist() == [T0 + 2_500]
    assert subset(
        row,
        {
            "service_name": "support-agent",
            "service_namespace": "care",
            "service_version": "2.1",
            "service_instance_id": "i-1",
            "host_name": "h1",
            "environment": "prod",
            "sdk_language": "python",
            "scope_name": "my.lib",
            "scope_version": "0.3",
            "schema_url": "https://opentelemetry.io/schemas/1.37.0",
        },
    ) == {
        "service_name": "support-agent",
        "service_namespace": "care",
        "service_version": "2.1",
        "service_instance_id": "i-1",
        "host_name": "h1",
        "environment": "prod",
        "sdk_language": "python",
        "scope_name": "my.lib",
        "scope_version": "0.3",
        "schema_url": "https://opentelemetry.io/schemas/1.37.0",
    }
    assert orjson.loads(row["scope_attributes"]) == {"scope.attr": 1}
    assert row["events"] is None and row["links"] is None
    assert row["convention"] is None  # no GenAI attributes: stored all the same


def test_root_span_has_null_parent_and_unset_status():
    row = one_span({})
    assert row["parent_span_id"] is None
    assert row["status_code"] == "unset"
    assert row["status_message"] is None
    assert row["trace_state"] is None
    assert row["attributes"] == "{}"


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (0, "unspecified"),
        (1, "internal"),
        (2, "server"),
        (3, "client"),
        (4, "producer"),
        (5, "consumer"),
        (42, "unspecified"),
    ],
)
def test_kind_as_text(kind, text):
    assert one_span({}, kind=kind)["kind"] == text


@pytest.mark.parametrize(("code", "text"), [(0, "unset"), (1, "ok"), (2, "error"), (7, "unset")])
def test_status_code_as_text(code, text):
    assert one_span({}, status_code=code)["status_code"] == text


def test_environment_precedence_and_openlit_span_fallback():
    assert (
        one_span({}, {"deployment.environment.name": "a", "deployment.environment": "b"})["environment"]
        == "a"
    )
    assert one_span({}, {"deployment.environment": "b", "gen_ai.environment": "c"})["environment"] == "b"
    assert one_span({}, {"gen_ai.environment": "c"})["environment"] == "c"
    assert one_span({"gen_ai.environment": "span"}, {})["environment"] == "span"
    assert (
        one_span({"gen_ai.environment": "span"}, {"deployment.environment.name": "res"})["environment"]
        == "res"
    )


def test_service_namespace_falls_back_to_openinference_project():
    assert one_span({}, {"openinference.project.name": "proj"})["service_namespace"] == "proj"
    assert (
        one_span({}, {"service.namespace": "ns", "openinference.project.name": "proj"})["service_namespace"]
        == "ns"
    )


# --------------------------------------------------------------------------------------------
# GenAI canonical columns, one convention at a time
# --------------------------------------------------------------------------------------------

CONVENTION_CASES = {
    "otel_genai": (
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_write.input_tokens": 100,
            "gen_ai.usage.reasoning.output_tokens": 50,
            "gen_ai.agent.id": "asst_1",
            "gen_ai.agent.name": "Math Tutor",
            "gen_ai.agent.version": "1.0.0",
            "gen_ai.tool.name": "calc",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.conversation.id": "conv_1",
            "gen_ai.data_source.id": "ds_1",
            "gen_ai.workflow.name": "tutoring",
            "error.type": "timeout",
            "server.address": "api.openai.com",
            "server.port": 443,
        },
        {
            "convention": "otel_genai",
            "operation": "chat",
            "provider": "openai",
            "request_model": "gpt-4o",
            "response_model": "gpt-4o-2024-08-06",
            "input_tokens": 1200,
            "output_tokens": 300,
            "total_tokens": 1500,
            "cache_read_tokens": 1000,
            "cache_write_tokens": 100,
            "reasoning_tokens": 50,
            "reported_cost_usd": None,
            "agent_id": "asst_1",
            "agent_name": "Math Tutor",
            "agent_version": "1.0.0",
            "tool_name": "calc",
            "tool_type": "function",
            "tool_call_id": "call_1",
            "conversation_id": "conv_1",
            "user_id": None,
            "data_source_id": "ds_1",
            "workflow_name": "tutoring",
            "error_type": "timeout",
            "server_address": "api.openai.com",
            "server_port": 443,
        },
    ),
    "otel_genai 1.40 cache_creation": (
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.cache_creation.input_tokens": 4,
        },
        {"convention": "otel_genai", "cache_write_tokens": 4, "input_tokens": 10, "output_tokens": None},
    ),
    "otel_genai_legacy": (
        {
            "gen_ai.system": "az.ai.openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4",
            "gen_ai.response.model": "gpt-4-0613",
            "gen_ai.usage.prompt_tokens": 70,
            "gen_ai.usage.completion_tokens": 30,
        },
        {
            "convention": "otel_genai_legacy",
            "operation": "chat",
            "provider": "azure.ai.openai",
            "request_model": "gpt-4",
            "response_model": "gpt-4-0613",
            "input_tokens": 70,
            "output_tokens": 30,
            "total_tokens": 100,
        },
    ),
    "openinference": (
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "azure",
            "llm.system": "openai",
            "llm.model_name": "gpt-4o-mini",
            "llm.token_count.prompt": 500,
            "llm.token_count.completion": 40,
            "llm.token_count.total": 540,
            "llm.token_count.prompt_details.cache_read": 256,
            "llm.token_count.prompt_details.cache_write": 12,
            "llm.token_count.completion_details.reasoning": 8,
            "llm.cost.total": 0.0125,
            "session.id": "sess-9",
            "user.id": "user-3",
            "agent.name": "researcher",
        },
        {
            "convention": "openinference",
            "operation": "chat",
            "provider": "azure.ai.openai",
            "request_model": "gpt-4o-mini",
            "input_tokens": 500,
            "output_tokens": 40,
            "total_tokens": 540,
            "cache_read_tokens": 256,
            "cache_write_tokens": 12,
            "reasoning_tokens": 8,
            "reported_cost_usd": 0.0125,
            "conversation_id": "sess-9",
            "user_id": "user-3",
            "agent_name": "researcher",
        },
    ),
    "openinference tool": (
        {"openinference.span.kind": "TOOL", "tool.name": "search", "tool.id": "call_7"},
        {
            "convention": "openinference",
            "operation": "execute_tool",
            "tool_name": "search",
            "tool_call_id": "call_7",
        },
    ),
    "openllmetry": (
        {
            "llm.request.type": "completion",
            "gen_ai.system": "Anthropic",
            "gen_ai.request.model": "claude-3-5-haiku",
            "gen_ai.usage.prompt_tokens": 2000,
            "gen_ai.usage.completion_tokens": 100,
            "llm.usage.total_tokens": 2100,
            "gen_ai.usage.cache_read_input_tokens": 1500,
            "gen_ai.usage.cache_creation_input_tokens": 200,
            "llm.usage.reasoning_tokens": 7,
            "traceloop.workflow.name": "ticket_flow",
            "traceloop.association.properties.user_id": "u42",
            "traceloop.association.properties.session_id": "s42",
        },
        {
            "convention": "openllmetry",
            "operation": "text_completion",
            "provider": "anthropic",
            "request_model": "claude-3-5-haiku",
            "input_tokens": 2000,
            "output_tokens": 100,
            "total_tokens": 2100,
            "cache_read_tokens": 1500,
            "cache_write_tokens": 200,
            "reasoning_tokens": 7,
            "workflow_name": "ticket_flow",
            "agent_name": "ticket_flow",
            "user_id": "u42",
            "conversation_id": "s42",
        },
    ),
    "openlit": (
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "gemini",
            "gen_ai.request.model": "gemini-2.0-flash",
            "gen_ai.usage.input_tokens": 900,
            "gen_ai.usage.output_tokens": 90,
            "gen_ai.usage.total_tokens": 990,
            "gen_ai.usage.prompt_tokens_details.cached_tokens": 300,
            "gen_ai.usage.prompt_tokens_details.cache_creation_tokens": 30,
            "gen_ai.usage.reasoning_tokens": 20,
            "gen_ai.usage.cost": 0.0004,
            "gen_ai.application_name": "kb-assistant",
            "gen_ai.environment": "staging",
        },
        {
            "convention": "openlit",
            "operation": "chat",
            "provider": "gcp.gemini",
            "input_tokens": 900,
            "output_tokens": 90,
            "total_tokens": 990,
            "cache_read_tokens": 300,
            "cache_write_tokens": 30,
            "reasoning_tokens": 20,
            "reported_cost_usd": 0.0004,
            "agent_name": "kb-assistant",
            "environment": "staging",
        },
    ),
}


@pytest.mark.parametrize(("attributes", "expected"), CONVENTION_CASES.values(), ids=CONVENTION_CASES.keys())
def test_canonical_columns_per_convention(attributes, expected):
    row = one_span(attributes, {"service.name": "svc"})
    assert subset(row, expected) == expected


def test_traceloop_entity_name_is_the_agent_on_agent_spans_and_the_tool_on_tool_spans():
    agent = one_span(
        {"traceloop.span.kind": "agent", "traceloop.entity.name": "planner", "traceloop.entity.version": "3"}
    )
    assert subset(
        agent, {"agent_name": 0, "agent_version": 0, "tool_name": 0, "operation": 0, "convention": 0}
    ) == {
        "agent_name": "planner",
        "agent_version": "3",
        "tool_name": None,
        "operation": "invoke_agent",
        "convention": "openllmetry",
    }
    tool = one_span(
        {"traceloop.span.kind": "tool", "traceloop.entity.name": "search", "traceloop.entity.version": "3"}
    )
    assert subset(tool, {"agent_name": 0, "agent_version": 0, "tool_name": 0, "operation": 0}) == {
        "agent_name": None,
        "agent_version": None,
        "tool_name": "search",
        "operation": "execute_tool",
    }
    task = one_span({"traceloop.span.kind": "task", "traceloop.entity.name": "summarise"})
    assert subset(task, {"agent_name": 0, "tool_name": 0, "operation": 0}) == {
        "agent_name": None,
        "tool_name": None,
        "operation": "task",
    }


def test_agent_identity_falls_back_to_the_resource():
    resource = {"service.name": "svc", "gen_ai.main_agent.id": "agent-7", "gen_ai.main_agent.name": "Main"}
    row = one_span({"gen_ai.operation.name": "chat"}, resource)
    assert (row["agent_id"], row["agent_name"]) == ("agent-7", "Main")
    row = one_span({"gen_ai.agent.id": "a1", "gen_ai.agent.name": "Sub"}, resource)
    assert (row["agent_id"], row["agent_name"]) == ("a1", "Sub")
    row = one_span({}, {"gen_ai.application_name": "app", "service.name": "svc"})
    assert row["agent_name"] == "app"
    row = one_span({}, {"gen_ai.application_name": "app", "gen_ai.main_agent.name": "Main"})
    assert row["agent_name"] == "Main"
    row = one_span({"gen_ai.application_name": "span-app"}, {"gen_ai.main_agent.name": "Main"})
    assert row["agent_name"] == "span-app"


# --------------------------------------------------------------------------------------------
# Precedence: first present wins
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "column", "expected"),
    [
        ({"gen_ai.system": "cohere", "gen_ai.provider.name": "openai"}, "provider", "openai"),
        ({"gen_ai.usage.prompt_tokens": 1, "gen_ai.usage.input_tokens": 2}, "input_tokens", 2),
        ({"gen_ai.usage.completion_tokens": 1, "gen_ai.usage.output_tokens": 2}, "output_tokens", 2),
        ({"llm.token_count.prompt": 1, "gen_ai.usage.prompt_tokens": 2}, "input_tokens", 2),
        ({"llm.model_name": "b", "gen_ai.request.model": "a"}, "request_model", "a"),
        ({"llm.model_name": "b", "llm.request.model_name": "a"}, "request_model", "a"),
        ({"llm.system": "openai", "llm.provider": "azure"}, "provider", "azure.ai.openai"),
        ({"gen_ai.request.provider": "x", "llm.system": "openai"}, "provider", "openai"),
        (
            {"gen_ai.usage.cache_creation.input_tokens": 1, "gen_ai.usage.cache_write.input_tokens": 2},
            "cache_write_tokens",
            2,
        ),
        (
            {"gen_ai.usage.cache_read_input_tokens": 1, "gen_ai.usage.cache_read.input_tokens": 2},
            "cache_read_tokens",
            2,
        ),
        ({"openinference.span.kind": "TOOL", "gen_ai.operation.name": "chat"}, "operation", "chat"),
        ({"traceloop.span.kind": "task", "llm.request.type": "embedding"}, "operation", "embeddings"),
        ({"session.id": "s", "gen_ai.conversation.id": "c"}, "conversation_id", "c"),
        ({"gen_ai.usage.cost": 2.0, "llm.cost.total": 1.0}, "reported_cost_usd", 1.0),
        ({"agent.name": "oi", "gen_ai.agent.name": "otel"}, "agent_name", "otel"),
        (
            {"traceloop.span.kind": "agent", "traceloop.entity.name": "tl", "agent.name": "oi"},
            "agent_name",
            "oi",
        ),
        ({"traceloop.workflow.name": "tl", "gen_ai.workflow.name": "otel"}, "workflow_name", "otel"),
        ({"tool.name": "oi", "gen_ai.tool.name": "otel"}, "tool_name", "otel"),
        ({"llm.usage.total_tokens": 9, "llm.token_count.total": 5}, "total_tokens", 5),
    ],
)
def test_first_present_attribute_wins(attributes, column, expected):
    assert one_span(attributes)[column] == expected


def test_present_but_unusable_winner_gives_null_not_the_next_attribute():
    row = one_span({"gen_ai.usage.input_tokens": "lots", "llm.token_count.prompt": 5})
    assert row["input_tokens"] is None
    assert orjson.loads(row["attributes"])["gen_ai.usage.input_tokens"] == "lots"


def test_cost_from_prompt_and_completion_when_no_total():
    assert one_span({"llm.cost.prompt": 0.25, "llm.cost.completion": 0.5})["reported_cost_usd"] == 0.75
    assert one_span({"llm.cost.prompt": 0.25})["reported_cost_usd"] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-1.0, None), (float("inf"), None), ("0.5", 0.5), ("x", None), (True, None), (3, 3.0)],
)
def test_cost_values(value, expected):
    assert one_span({"llm.cost.total": value})["reported_cost_usd"] == expected


# --------------------------------------------------------------------------------------------
# Vocabulary normalisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "value", "expected"),
    [
        ("openinference.span.kind", "LLM", "chat"),
        ("openinference.span.kind", "EMBEDDING", "embeddings"),
        ("openinference.span.kind", "RETRIEVER", "retrieval"),
        ("openinference.span.kind", "TOOL", "execute_tool"),
        ("openinference.span.kind", "AGENT", "invoke_agent"),
        ("openinference.span.kind", "CHAIN", "invoke_workflow"),
        ("openinference.span.kind", "RERANKER", "rerank"),
        ("openinference.span.kind", "GUARDRAIL", "guardrail"),
        ("openinference.span.kind", "EVALUATOR", "evaluate"),
        ("openinference.span.kind", "PROMPT", "prompt"),
        ("openinference.span.kind", "UNKNOWN", None),
        ("llm.request.type", "chat", "chat"),
        ("llm.request.type", "completion", "text_completion"),
        ("llm.request.type", "embedding", "embeddings"),
        ("llm.request.type", "rerank", "rerank"),
        ("traceloop.span.kind", "workflow", "invoke_workflow"),
        ("traceloop.span.kind", "agent", "invoke_agent"),
        ("traceloop.span.kind", "tool", "execute_tool"),
        ("traceloop.span.kind", "task", "task"),
        ("gen_ai.operation.name", "generate_content", "generate_content"),
        ("gen_ai.operation.name", "Chat", "chat"),
        ("gen_ai.operation.name", "agent", "invoke_agent"),
        ("gen_ai.operation.name", "search_memory", "search_memory"),
    ],
)
def test_operation_vocabulary(attribute, value, expected):
    assert one_span({attribute: value})["operation"] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("Anthropic", "anthropic"),
        ("aws", "aws.bedrock"),
        ("bedrock", "aws.bedrock"),
        ("AWS Bedrock".lower().replace(" ", "_"), "aws.bedrock"),
        ("google", "gcp.gen_ai"),
        ("vertexai", "gcp.vertex_ai"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("gemini", "gcp.gemini"),
        ("google.ai.studio", "gcp.gemini"),
        ("azure", "azure.ai.openai"),
        ("az.ai.inference", "azure.ai.inference"),
        ("az.ai.openai", "azure.ai.openai"),
        ("mistralai", "mistral_ai"),
        ("MistralAI", "mistral_ai"),
        ("xai", "x_ai"),
        ("ibm.watson.ai", "ibm.watsonx.ai"),
        ("Watsonx", "ibm.watsonx.ai"),
        ("deepseek", "deepseek"),
        ("Groq", "groq"),
        ("moonshot", "moonshot_ai"),
        ("Ollama", "ollama"),
        ("Together AI", "together ai"),
    ],
)
def test_provider_vocabulary(value, expected):
    assert one_span({"gen_ai.system": value})["provider"] == expected


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        (0, 0),
        ("42", 42),
        (" 42 ", 42),
        ("42.0", 42),
        ("4.2e1", 42),
        (42.0, 42),
        (42.5, None),
        (-3, None),
        ("-3", None),
        ("abc", None),
        ("", None),
        (True, None),
        (float("nan"), None),
        (float("inf"), None),
        (2**53, 2**53),
        (2**53 + 1, None),
        (2**63 - 1, None),
        ([1, 2], None),
    ],
)
def test_token_values(value, expected):
    row = one_span({"gen_ai.usage.input_tokens": value, "gen_ai.usage.output_tokens": 1})
    assert row["input_tokens"] == expected
    assert row["total_tokens"] == (None if expected is None else expected + 1)
    assert "gen_ai.usage.input_tokens" in orjson.loads(row["attributes"])  # the raw value is kept


def test_total_is_reported_or_input_plus_output():
    assert one_span({"gen_ai.usage.input_tokens": 5})["total_tokens"] is None
    assert one_span({"gen_ai.usage.input_tokens": 5, "gen_ai.usage.output_tokens": 2})["total_tokens"] == 7
    assert one_span({"gen_ai.usage.input_tokens": 5, "llm.usage.total_tokens": 100})["total_tokens"] == 100


def test_negative_and_valid_counts_in_one_batch():
    spans_ = [
        genai_span({"gen_ai.usage.input_tokens": v}, span_id=ids(i)[1])
        for i, v in enumerate([5, -5, 7, None])
    ]
    table = normalise_traces(trace_request({}, spans_)).table
    assert table.column("input_tokens").to_pylist() == [5, None, 7, None]


class TestAnthropicCacheCorrection:
    def test_input_without_cache_gets_cache_added_back(self):
        row = one_span(
            {
                "gen_ai.provider.name": "anthropic",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 50,
                "gen_ai.usage.cache_read.input_tokens": 2000,
                "gen_ai.usage.cache_creation.input_tokens": 300,
            }
        )
        assert (row["input_tokens"], row["total_tokens"]) == (2310, 2360)
        assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (2000, 300)

    def test_reported_total_computed_from_the_uncorrected_input_is_recomputed(self):
        row = one_span(
            {
                "gen_ai.system": "Anthropic",
                "gen_ai.usage.prompt_tokens": 10,
                "gen_ai.usage.completion_tokens": 50,
                "llm.usage.total_tokens": 60,
                "gen_ai.usage.cache_read_input_tokens": 100,
            }
        )
        assert (row["input_tokens"], row["total_tokens"]) == (110, 160)

    def test_other_reported_total_is_kept(self):
        row = one_span(
            {
                "gen_ai.provider.name": "anthropic",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 50,
                "llm.usage.total_tokens": 999,
                "gen_ai.usage.cache_read.input_tokens": 100,
            }
        )
        assert (row["input_tokens"], row["total_tokens"]) == (110, 999)

    def test_input_that_already_includes_cache_is_kept(self):
        row = one_span(
            {
                "gen_ai.provider.name": "anthropic",
                "gen_ai.usage.input_tokens": 2310,
                "gen_ai.usage.cache_read.input_tokens": 2000,
                "gen_ai.usage.cache_write.input_tokens": 300,
            }
        )
        assert row["input_tokens"] == 2310

    def test_claude_on_bedrock_is_corrected_too(self):
        row = one_span(
            {
                "gen_ai.provider.name": "aws.bedrock",
                "gen_ai.request.model": "anthropic.claude-3-7-sonnet-20250219-v1:0",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.cache_read.input_tokens": 100,
            }
        )
        assert row["input_tokens"] == 110

    def test_other_providers_are_not_corrected(self):
        row = one_span(
            {
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.cache_read.input_tokens": 100,
            }
        )
        assert row["input_tokens"] == 10

    def test_only_the_uncorrected_rows_of_a_batch_change(self):
        base = {"gen_ai.provider.name": "anthropic", "gen_ai.usage.cache_read.input_tokens": 100}
        spans_ = [
            genai_span({**base, "gen_ai.usage.input_tokens": 10}, span_id=ids(0)[1]),
            genai_span({**base, "gen_ai.usage.input_tokens": 500}, span_id=ids(1)[1]),
            genai_span({"gen_ai.provider.name": "anthropic"}, span_id=ids(2)[1]),
        ]
        table = normalise_traces(trace_request({}, spans_)).table
        assert table.column("input_tokens").to_pylist() == [110, 500, None]


# --------------------------------------------------------------------------------------------
# Convention detection
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "resource", "expected"),
    [
        ({"http.request.method": "GET", "server.address": "x"}, {}, None),
        ({"gen_ai.request.model": "m"}, {}, "otel_genai"),
        ({"gen_ai.system": "openai", "gen_ai.usage.input_tokens": 1}, {}, "otel_genai"),
        ({"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": 1}, {}, "otel_genai_legacy"),
        ({"gen_ai.system": "openai", "traceloop.workflow.name": "w"}, {}, "openllmetry"),
        (
            {"gen_ai.system": "openai", "gen_ai.usage.prompt_tokens": 1},
            {"telemetry.sdk.name": "openlit"},
            "openlit",
        ),
        ({"http.request.method": "GET"}, {"telemetry.sdk.name": "openlit"}, None),
        ({"llm.model_name": "m", "gen_ai.provider.name": "openai"}, {}, "openinference"),
        ({"gen_ai.usage.cost": 0.1}, {}, "openlit"),
    ],
)
def test_convention(attributes, resource, expected):
    assert one_span(attributes, resource)["convention"] == expected


CONTENT_CASES = [
    ({"gen_ai.input.messages": "[]"}, [], True),
    ({"gen_ai.output.messages": "[]"}, [], True),
    ({"gen_ai.system_instructions": "be brief"}, [], True),
    ({"gen_ai.prompt": "hi"}, [], True),
    ({"gen_ai.prompt.0.content": "hi"}, [], True),
    ({"gen_ai.completion.1.role": "assistant"}, [], True),
    ({"llm.input_messages.0.message.content": "hi"}, [], True),
    ({"llm.output_messages": "[]"}, [], True),
    ({"input.value": "hi"}, [], True),
    ({"output.value": "hello"}, [], True),
    ({"traceloop.entity.input": "{}"}, [], True),
    ({"traceloop.entity.output": "{}"}, [], True),
    # near misses: a template's name and version, token counts, a value that only mentions a key
    ({"gen_ai.prompt.name": "greeting", "gen_ai.prompt.version": "3"}, [], False),
    ({"gen_ai.usage.input_tokens": 5, "llm.token_count.prompt": 5}, [], False),
    ({"note": "gen_ai.prompt", "input.mime_type": "text/plain"}, [], False),
    ({"gen_ai.request.model": "gpt-4o"}, [], False),
    # events: named as content, or carrying a content key
    ({}, [("gen_ai.content.prompt", {})], True),
    ({}, [("gen_ai.content.completion", {})], True),
    ({}, [("gen_ai.user.message", {})], True),
    ({}, [("gen_ai.choice", {})], True),
    ({}, [("log", {"gen_ai.prompt": "hi"})], True),
    ({}, [("exception", {"exception.type": "ValueError"})], False),
    ({}, [("gen_ai.evaluation.result", {"score": 1})], False),
]


def _content_span(attributes: dict[str, Any], events: list[tuple[str, dict[str, Any]]], n: int = 0) -> Span:
    spans = [event(name, time=T0 + 1, **attrs) for name, attrs in events]
    return genai_span({"gen_ai.system": "openai", **attributes}, events=spans, span_id=ids(n)[1])


@pytest.mark.parametrize(("attributes", "events", "captured"), CONTENT_CASES)
def test_content_captured(attributes, events, captured):
    result = normalise_traces(trace_request({"service.name": "svc"}, [_content_span(attributes, events)]))
    assert result.table["content_captured"].to_pylist() == [captured]


def test_migration_decides_stored_spans_as_the_collector_does(tmp_path):
    """Spans stored before 010 get from their JSON text the verdict the collector now gives."""
    spans = [_content_span(attributes, events, n) for n, (attributes, events, _) in enumerate(CONTENT_CASES)]
    table = normalise_traces(trace_request({"service.name": "svc"}, spans)).table
    con = duckdb.connect(str(tmp_path / "v9.duckdb"))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL)"
    )
    for version, name, sql in migrations():
        if version < 10:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    old = table.drop_columns(["content_captured", "resource_attributes"])  # noqa: F841 - read by DuckDB
    con.execute("INSERT INTO spans BY NAME SELECT *, now() AS received_at, 1 AS ingest_seq FROM old")
    assert migrate(con)[0] == "010_content_captured.sql"
    migrated = [
        row[0] for row in con.execute("SELECT content_captured FROM spans ORDER BY span_id").fetchall()
    ]
    by_span = dict(zip(table["span_id"].to_pylist(), table["content_captured"].to_pylist(), strict=True))
    assert migrated == [by_span[span_id] for span_id in sorted(by_span)]
    assert migrated.count(True) == sum(captured for *_, captured in CONTENT_CASES)
    con.close()


# --------------------------------------------------------------------------------------------
# Lossless JSON remainder
# --------------------------------------------------------------------------------------------


def test_attributes_json_round_trip():
    row = one_span(
        {
            "s": "text ✓",
            "i": -7,
            "big": 2**63 - 1,
            "d": 1.25,
            "nan": float("nan"),
            "inf": float("inf"),
            "ninf": float("-inf"),
            "b": True,
            "bytes": b"\x00\xffhi",
            "empty": None,
            "arr": [1, "two", [3.5, False]],
            "map": {"k": {"deep": [None, {"x": b"\x01"}]}},
            "long": "x" * 1000,
        }
    )
    assert orjson.loads(row["attributes"]) == {
        "s": "text ✓",
        "i": -7,
        "big": 2**63 - 1,
        "d": 1.25,
        "nan": "NaN",
        "inf": "Infinity",
        "ninf": "-Infinity",
        "b": True,
        "bytes": "AP9oaQ==",
        "empty": None,
        "arr": [1, "two", [3.5, False]],
        "map": {"k": {"deep": [None, {"x": "AQ=="}]}},
        "long": "x" * 1000,
    }


def test_duplicate_keys_last_wins():
    s = span()
    s.attributes.extend(
        [KeyValue(key="k", value=AnyValue(int_value=1)), KeyValue(key="k", value=AnyValue(int_value=2))]
    )
    s.attributes.append(KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=1)))
    s.attributes.append(KeyValue(key="gen_ai.usage.input_tokens", value=AnyValue(int_value=9)))
    [row] = rows(normalise_traces(trace_request({}, [s])).table)
    assert orjson.loads(row["attributes"]) == {"k": 2, "gen_ai.usage.input_tokens": 9}
    assert row["input_tokens"] == 9


def test_keyvalue_without_value_and_unusual_encodings_decode():
    s = span()
    s.attributes.append(KeyValue(key="novalue"))
    s.attributes.append(KeyValue(key="", value=AnyValue(string_value="empty key")))
    s.attributes.append(KeyValue(key="k" * 300, value=AnyValue(string_value="long key")))
    s.attributes.append(KeyValue(key="neg", value=AnyValue(int_value=-(2**63))))
    s.attributes.append(KeyValue(key="zero", value=AnyValue(double_value=0.0)))
    s.attributes.append(KeyValue(key="f", value=AnyValue(bool_value=False)))
    s.attributes.append(KeyValue(key="es", value=AnyValue(string_value="")))
    [row] = rows(normalise_traces(trace_request({}, [s])).table)
    assert orjson.loads(row["attributes"]) == {
        "novalue": None,
        "": "empty key",
        "k" * 300: "long key",
        "neg": -(2**63),
        "zero": 0.0,
        "f": False,
        "es": "",
    }


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (numbers < 16, so the tag is one byte)."""
    size, length = len(payload), b""
    while size >= 0x80:
        length += bytes([size & 0x7F | 0x80])
        size >>= 7
    return bytes([number << 3 | 2]) + length + bytes([size]) + payload


def _nested_arrays(levels: int) -> bytes:
    """A serialized AnyValue: `levels` arrays, each holding the next, around "bottom"."""
    value = AnyValue(string_value="bottom").SerializeToString()
    for _ in range(levels):
        value = _field(5, _field(1, value))  # AnyValue.array_value { ArrayValue.values: [value] }
    return value


def test_hostile_nesting_is_cut_off_with_a_marker():
    # Deeper than the protobuf parser itself accepts, so built as raw bytes.
    deep = _field(1, b"deep") + _field(2, _nested_arrays(500))
    span_bytes = span().SerializeToString() + _field(9, deep)  # Span.attributes += deep
    body = _field(1, _field(2, _field(2, span_bytes)))  # request.resource_spans.scope_spans.spans
    [row] = rows(normalise_traces(body).table)
    node = orjson.loads(row["attributes"])["deep"]
    depth = 0
    while isinstance(node, list):
        node, depth = node[0], depth + 1
    assert (depth, node) == (DEFAULT_LIMITS.max_depth, "<nesting depth limit exceeded>")


def test_hostile_nesting_in_a_kvlist_and_a_log_body():
    value = AnyValue(string_value="bottom").SerializeToString()
    for _ in range(200):
        value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))  # kvlist {k: value}
    record = log_record(None).SerializeToString() + _field(5, value)  # LogRecord.body
    body = _field(1, _field(2, _field(2, record)))
    [row] = rows(normalise_logs(body).table)
    node, depth = orjson.loads(row["body"]), 0
    while isinstance(node, dict):
        node, depth = node["k"], depth + 1
    assert (depth, node) == (DEFAULT_LIMITS.max_depth, "<nesting depth limit exceeded>")


def test_resource_attributes_json():
    row = one_span({}, {"service.name": "svc", "k8s.pod.labels": {"app": "x"}, "ports": [80, 443]})
    assert orjson.loads(row["resource_attributes"]) == {
        "service.name": "svc",
        "k8s.pod.labels": {"app": "x"},
        "ports": [80, 443],
    }


def test_events_json():
    row = one_span(
        {},
        events=[
            event("gen_ai.content.prompt", time=T0 + 5, **{"gen_ai.prompt": "hi", "n": 1}),
            event("exception", time=T0 + 6),
        ],
    )
    assert orjson.loads(row["events"]) == [
        {
            "time_unix_nano": T0 + 5,
            "name": "gen_ai.content.prompt",
            "attributes": {"gen_ai.prompt": "hi", "n": 1},
            "dropped_attributes_count": 0,
        },
        {"time_unix_nano": T0 + 6, "name": "exception", "attributes": {}, "dropped_attributes_count": 0},
    ]


def test_links_json_and_invalid_links_dropped_and_counted():
    s = span(links=[link(k="v"), link(trace_id=b"\x01" * 15), link(span_id=bytes(8))])
    s.dropped_links_count = 2
    [row] = rows(normalise_traces(trace_request({}, [s])).table)
    assert orjson.loads(row["links"]) == [
        {
            "trace_id": TRACE_ID.hex(),
            "span_id": SPAN_ID.hex(),
            "trace_state": "k=v",
            "attributes": {"k": "v"},
            "flags": 1,
            "dropped_attributes_count": 0,
        }
    ]
    assert row["dropped_links_count"] == 4


def test_only_invalid_links_give_null_links():
    row = one_span({}, links=[link(trace_id=b"")])
    assert (row["links"], row["dropped_links_count"]) == (None, 1)


def test_dropped_counts_are_kept():
    s = span()
    s.dropped_attributes_count, s.dropped_events_count = 3, 4
    [row] = rows(normalise_traces(trace_request({}, [s])).table)
    assert (row["dropped_attributes_count"], row["dropped_events_count"], row["dropped_links_count"]) == (
        3,
        4,
        0,
    )


def test_error_type_from_the_exception_event_of_an_error_span():
    exc = event("exception", **{"exception.type": "RateLimitError"})
    assert one_span({}, events=[exc], status_code=Status.STATUS_CODE_ERROR)["error_type"] == "RateLimitError"
    assert one_span({}, events=[exc], status_code=Status.STATUS_CODE_OK)["error_type"] is None
    assert one_span({"error.type": "429"}, events=[exc], status_code=2)["error_type"] == "429"


def test_non_string_values_in_text_columns():
    row = one_span(
        {"user.id": 12345, "gen_ai.agent.name": True, "gen_ai.tool.name": ["a"], "server.address": 1.5}
    )
    assert (row["user_id"], row["agent_name"], row["tool_name"], row["server_address"]) == (
        "12345",
        "true",
        None,
        "1.5",
    )


def test_server_port_from_int_or_string():
    assert one_span({"server.port": 8443})["server_port"] == 8443
    assert one_span({"server.port": "8443"})["server_port"] == 8443


# --------------------------------------------------------------------------------------------
# Invalid spans are rejected one by one
# --------------------------------------------------------------------------------------------


def test_invalid_spans_are_rejected_individually():
    good = [span(f"ok{i}", trace_id=ids(i)[0], span_id=ids(i)[1]) for i in range(4)]
    bad = [
        span(trace_id=b""),
        span(trace_id=b""),
        span(trace_id=b"\x01" * 15),
        span(trace_id=bytes(16)),
        span(span_id=b""),
        span(span_id=b"\x01" * 9),
        span(span_id=bytes(8)),
        span(parent_span_id=b"\x01" * 5),
        span(start=0),
        span(end=0),
        span(start=T0, end=T0 - 1),
        span(start=T0, end=2**63),
    ]
    spans_ = [good[0], *bad[:6], good[1], good[2], *bad[6:], good[3]]
    result = normalise_traces(trace_request({"service.name": "svc"}, spans_))
    assert result.table.column("name").to_pylist() == ["ok0", "ok1", "ok2", "ok3"]
    assert result.rejected == 12
    assert {r.reason: r.count for r in result.rejects} == {
        "trace_id must be 16 bytes, got 0": 2,
        "trace_id must be 16 bytes, got 15": 1,
        "trace_id must not be all zeros": 1,
        "span_id must be 8 bytes, got 0": 1,
        "span_id must be 8 bytes, got 9": 1,
        "span_id must not be all zeros": 1,
        "parent_span_id must be empty or 8 bytes, got 5": 1,
        "start_time_unix_nano must be set": 1,
        "end_time_unix_nano must be set": 1,
        "end_time_unix_nano is before start_time_unix_nano": 1,
        "timestamp is beyond the year 2262 (int64 nanoseconds)": 1,
    }
    assert {r.service_name for r in result.rejects} == {"svc"}
    assert result.error_message.startswith("12 of 16 spans rejected: trace_id must be 16 bytes, got 0 (2); ")


def test_error_message_and_rejects_shape():
    result = normalise_traces(
        trace_request(
            {"service.name": "a"}, [span(trace_id=b""), span(trace_id=b""), span(span_id=ids(9)[1])]
        )
    )
    assert result.rejects == (Reject("a", "trace_id must be 16 bytes, got 0", 2),)
    assert result.error_message == "2 of 3 spans rejected: trace_id must be 16 bytes, got 0 (2)"
    ok = normalise_traces(trace_request({}, [span()]))
    assert (ok.rejected, ok.error_message, ok.rejects) == (0, "", ())


def test_rejects_aggregate_per_service_and_reason():
    req = trace_request({"service.name": "a"}, [span(trace_id=b"")])
    req.resource_spans.extend(
        trace_request({"service.name": "b"}, [span(trace_id=b""), span(trace_id=b"")]).resource_spans
    )
    req.resource_spans.extend(trace_request({}, [span(trace_id=b"")]).resource_spans)
    result = normalise_traces(req)
    reason = "trace_id must be 16 bytes, got 0"
    assert set(result.rejects) == {Reject("a", reason, 1), Reject("b", reason, 2), Reject(None, reason, 1)}
    assert result.error_message == f"4 of 4 spans rejected: {reason} (4)"
    assert result.table.num_rows == 0
    assert result.table.schema == SPAN_SCHEMA


def test_resources_and_scopes_line_up_with_their_rows():
    req = trace_request(
        {"service.name": "a"},
        [span("a1", span_id=ids(1)[1]), span(trace_id=b""), span("a2", span_id=ids(2)[1])],
    )
    second_scope = req.resource_spans[0].scope_spans.add()
    second_scope.scope.name = "scope-2"
    second_scope.spans.extend([span("a3", span_id=ids(3)[1])])
    req.resource_spans[0].scope_spans.add()  # an empty scope
    req.resource_spans.extend(
        trace_request(
            {"service.name": "b", "deployment.environment": "dev"}, [span("b1", span_id=ids(4)[1])]
        ).resource_spans
    )
    table = normalise_traces(req).table
    assert list(
        zip(
            table.column("name").to_pylist(),
            table.column("service_name").to_pylist(),
            table.column("scope_name").to_pylist(),
            table.column("environment").to_pylist(),
            strict=True,
        )
    ) == [
        ("a1", "a", "test.scope", None),
        ("a2", "a", "test.scope", None),
        ("a3", "a", "scope-2", None),
        ("b1", "b", "test.scope", "dev"),
    ]


def test_empty_request_gives_an_empty_table():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    result = normalise_traces(ExportTraceServiceRequest())
    assert result.table.num_rows == 0 and result.table.schema == SPAN_SCHEMA and result.rejects == ()


# --------------------------------------------------------------------------------------------
# Raw bytes in
# --------------------------------------------------------------------------------------------


def test_results_pickle_through_arrow_ipc_unchanged():
    # Decode workers send results back pickled; the table travels as one Arrow IPC stream.
    import pickle

    result = normalise_traces(
        trace_request(
            {"service.name": "svc"}, [genai_span(CONVENTION_CASES["openinference"][0]), span(trace_id=b"")]
        )
    )
    back = pickle.loads(pickle.dumps(result))
    assert back.table.equals(result.table) and back.table.schema == SPAN_SCHEMA
    assert back.rejects == result.rejects and back.noun == result.noun
    assert pa.types.is_dictionary(back.table.schema.field("resource_attributes").type)


def test_bytes_and_message_give_the_same_table():
    req = trace_request(
        {"service.name": "svc"},
        [
            genai_span(CONVENTION_CASES["openinference"][0], events=[event("e", a=1)], links=[link()]),
            span(trace_id=b""),
        ],
    )
    from_message, from_bytes = normalise_traces(req), normalise_traces(req.SerializeToString())
    assert from_bytes.table.equals(from_message.table)
    assert from_bytes.rejects == from_message.rejects


def test_garbage_bytes_are_invalid_data():
    with pytest.raises(InvalidData, match="not a valid OTLP protobuf"):
        normalise_traces(b"\xff\xff\xff\xff garbage")


def test_attribute_with_invalid_utf8_rejects_only_its_span():
    good = trace_request(
        {"service.name": "svc"}, [span(span_id=ids(1)[1], x="ok"), span(span_id=ids(2)[1], x="BAD!")]
    )
    raw = good.SerializeToString().replace(b"BAD!", b"\xff\xfe\xfd\xfc")
    result = normalise_traces(raw)
    assert result.table.num_rows == 1
    assert result.rejects == (Reject("svc", "attribute or status cannot be decoded (invalid UTF-8?)", 1),)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def _point(cls, value=None, time=T0 + 10, start=T0, **attributes):
    p = cls(time_unix_nano=time, start_time_unix_nano=start)
    p.attributes.extend(attrs(attributes))
    if isinstance(value, int):
        p.as_int = value
    elif isinstance(value, float):
        p.as_double = value
    return p


def all_metric_kinds() -> list[Metric]:
    gauge = Metric(name="queue.depth", unit="1", description="depth")
    gauge.gauge.data_points.append(_point(NumberDataPoint, 1.5, kind="q"))
    total = Metric(name="gen_ai.client.token.usage.total", unit="{token}")
    total.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    total.sum.is_monotonic = True
    point = _point(NumberDataPoint, 120, **{"gen_ai.token.type": "input"})
    point.exemplars.append(Exemplar(time_unix_nano=T0 + 5, as_int=7, trace_id=TRACE_ID, span_id=SPAN_ID))
    total.sum.data_points.append(point)
    hist = Metric(name="gen_ai.client.operation.duration", unit="s")
    hist.histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    hp = HistogramDataPoint(
        time_unix_nano=T0 + 10,
        count=3,
        sum=1.5,
        min=0.1,
        max=1.0,
        bucket_counts=[1, 2, 0],
        explicit_bounds=[0.5, 1.0],
    )
    hist.histogram.data_points.append(hp)
    expo = Metric(name="latency.expo", unit="ms")
    expo.exponential_histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    ep = ExponentialHistogramDataPoint(time_unix_nano=T0 + 10, count=5, sum=12.0, scale=2, zero_count=1)
    ep.positive.offset, ep.negative.offset = 3, -1
    ep.positive.bucket_counts.extend([1, 2])
    ep.negative.bucket_counts.extend([1])
    expo.exponential_histogram.data_points.append(ep)
    summary = Metric(name="rpc.summary", unit="ms")
    sp = SummaryDataPoint(time_unix_nano=T0 + 10, count=4, sum=10.0)
    sp.quantile_values.add(quantile=0.5, value=2.0)
    sp.quantile_values.add(quantile=1.0, value=float("nan"))
    summary.summary.data_points.append(sp)
    return [gauge, total, hist, expo, summary]


def test_metric_points_of_all_five_kinds():
    result = normalise_metrics(
        metrics_request(
            {"service.name": "svc", "service.namespace": "ns", "deployment.environment.name": "prod"},
            all_metric_kinds(),
        )
    )
    assert result.rejects == ()
    by_name = {r["metric_name"]: r for r in rows(result.table)}
    g = by_name["queue.depth"]
    assert subset(
        g,
        {
            "metric_type": 0,
            "temporality": 0,
            "is_monotonic": 0,
            "value_double": 0,
            "value_int": 0,
            "unit": 0,
            "description": 0,
        },
    ) == {
        "metric_type": "gauge",
        "temporality": None,
        "is_monotonic": None,
        "value_double": 1.5,
        "value_int": None,
        "unit": "1",
        "description": "depth",
    }
    assert (g["service_name"], g["service_namespace"], g["environment"], g["scope_name"]) == (
        "svc",
        "ns",
        "prod",
        "test.meter",
    )
    assert orjson.loads(g["attributes"]) == {"kind": "q"}
    s = by_name["gen_ai.client.token.usage.total"]
    assert subset(
        s, {"metric_type": 0, "temporality": 0, "is_monotonic": 0, "value_int": 0, "value_double": 0}
    ) == {
        "metric_type": "sum",
        "temporality": "delta",
        "is_monotonic": True,
        "value_int": 120,
        "value_double": None,
    }
    assert orjson.loads(s["exemplars"]) == [
        {
            "time_unix_nano": T0 + 5,
            "value": 7,
            "trace_id": TRACE_ID.hex(),
            "span_id": SPAN_ID.hex(),
            "filtered_attributes": {},
        }
    ]
    h = by_name["gen_ai.client.operation.duration"]
    assert subset(
        h,
        {
            "metric_type": 0,
            "temporality": 0,
            "count": 0,
            "sum": 0,
            "min": 0,
            "max": 0,
            "bucket_counts": 0,
            "explicit_bounds": 0,
        },
    ) == {
        "metric_type": "histogram",
        "temporality": "cumulative",
        "count": 3,
        "sum": 1.5,
        "min": 0.1,
        "max": 1.0,
        "bucket_counts": [1, 2, 0],
        "explicit_bounds": [0.5, 1.0],
    }
    e = by_name["latency.expo"]
    assert (e["metric_type"], e["temporality"], e["count"], e["sum"], e["min"]) == (
        "exponential_histogram",
        "delta",
        5,
        12.0,
        None,
    )
    assert orjson.loads(e["exponential"]) == {
        "scale": 2,
        "zero_count": 1,
        "zero_threshold": 0.0,
        "positive": {"offset": 3, "bucket_counts": [1, 2]},
        "negative": {"offset": -1, "bucket_counts": [1]},
    }
    q = by_name["rpc.summary"]
    assert (q["metric_type"], q["count"], q["sum"], q["temporality"]) == ("summary", 4, 10.0, None)
    assert orjson.loads(q["quantiles"]) == [
        {"quantile": 0.5, "value": 2.0},
        {"quantile": 1.0, "value": "NaN"},
    ]
    times = result.table.column("time").cast(pa.int64()).to_pylist()
    assert times == [T0 + 10] * 5
    assert result.table.column("start_time").cast(pa.int64()).to_pylist()[:2] == [T0, T0]


def test_metric_rejects():
    no_data = Metric(name="empty.metric")
    late = Metric(name="m")
    late.gauge.data_points.extend(
        [
            _point(NumberDataPoint, 1, time=0),
            _point(NumberDataPoint, 2),
            _point(NumberDataPoint, 3, time=2**63),
        ]
    )
    nameless = Metric()
    nameless.gauge.data_points.extend([_point(NumberDataPoint, 1), _point(NumberDataPoint, 2)])
    result = normalise_metrics(metrics_request({"service.name": "svc"}, [no_data, late, nameless]))
    assert result.table.column("value_int").to_pylist() == [2]
    assert {r.reason: r.count for r in result.rejects} == {
        "metric 'empty.metric' has no data": 1,
        "time_unix_nano must be set": 1,
        "timestamp is beyond the year 2262": 1,
        "metric name must not be empty": 2,
    }
    assert result.error_message.startswith("5 of 6 data points rejected: metric name must not be empty (2); ")


def test_number_point_without_value_is_kept_with_nulls():
    m = Metric(name="m")
    m.gauge.data_points.append(_point(NumberDataPoint))
    [row] = rows(normalise_metrics(metrics_request({}, [m])).table)
    assert (row["value_int"], row["value_double"]) == (None, None)


def test_metric_record_hash_is_stable_and_distinguishes_points():
    first = normalise_metrics(metrics_request({"service.name": "svc"}, all_metric_kinds())).table
    retry = normalise_metrics(metrics_request({"service.name": "svc"}, all_metric_kinds())).table
    hashes = first.column("record_hash").to_pylist()
    assert hashes == retry.column("record_hash").to_pylist()
    assert len(set(hashes)) == 5 and all(len(h) == 32 and int(h, 16) >= 0 for h in hashes)

    def gauge_hash(value=1, time=T0 + 10, service="svc", name="g", **attributes):
        m = Metric(name=name)
        m.gauge.data_points.append(_point(NumberDataPoint, value, time=time, **attributes))
        return (
            normalise_metrics(metrics_request({"service.name": service}, [m]))
            .table.column("record_hash")[0]
            .as_py()
        )

    base = gauge_hash()
    assert base == gauge_hash()
    assert (
        len(
            {
                base,
                gauge_hash(value=2),
                gauge_hash(time=T0 + 11),
                gauge_hash(service="other"),
                gauge_hash(name="h"),
                gauge_hash(a="b"),
            }
        )
        == 6
    )


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------


def test_log_records_with_string_and_structured_bodies():
    records = [
        log_record(
            "plain text", trace_id=TRACE_ID, span_id=SPAN_ID, event_name="gen_ai.user.message", user="u1"
        ),
        log_record({"role": "user", "content": [{"type": "text", "text": "hi"}], "n": float("inf")}),
        log_record(None, severity_number=17, severity_text="ERROR"),
        log_record(42),
    ]
    result = normalise_logs(logs_request({"service.name": "svc", "deployment.environment": "dev"}, records))
    assert result.rejects == ()
    records = rows(result.table)
    assert [orjson.loads(r["body"]) if r["body"] is not None else None for r in records] == [
        "plain text",
        {"role": "user", "content": [{"type": "text", "text": "hi"}], "n": "Infinity"},
        None,
        42,
    ]
    first = records[0]
    assert subset(
        first,
        {
            "trace_id": 0,
            "span_id": 0,
            "event_name": 0,
            "severity_number": 0,
            "severity_text": 0,
            "service_name": 0,
            "environment": 0,
            "scope_name": 0,
        },
    ) == {
        "trace_id": TRACE_ID.hex(),
        "span_id": SPAN_ID.hex(),
        "event_name": "gen_ai.user.message",
        "severity_number": 9,
        "severity_text": "INFO",
        "service_name": "svc",
        "environment": "dev",
        "scope_name": "test.logger",
    }
    assert orjson.loads(first["attributes"]) == {"user": "u1"}
    assert orjson.loads(first["resource_attributes"]) == {
        "service.name": "svc",
        "deployment.environment": "dev",
    }
    assert (records[1]["trace_id"], records[1]["span_id"], records[2]["severity_number"]) == (None, None, 17)


def test_log_time_falls_back_to_observed_time():
    result = normalise_logs(
        logs_request({}, [log_record(time=0, observed=T0 + 7), log_record(time=T0, observed=T0 + 7)])
    )
    assert result.table.column("time").cast(pa.int64()).to_pylist() == [T0 + 7, T0]
    assert result.table.column("observed_time").cast(pa.int64()).to_pylist() == [T0 + 7, T0 + 7]
    [row] = rows(normalise_logs(logs_request({}, [log_record()])).table)
    assert row["observed_time"] is None


def test_log_rejects():
    records = [
        log_record("ok"),
        log_record(time=0, observed=0),
        log_record(trace_id=b"\x01" * 8),
        log_record(span_id=b"\x01" * 16),
        log_record(trace_id=bytes(16), span_id=bytes(8)),  # all zero: no trace context, kept
    ]
    result = normalise_logs(logs_request({"service.name": "svc"}, records))
    assert result.table.num_rows == 2
    assert result.table.column("trace_id").to_pylist() == [None, None]
    assert {r.reason: r.count for r in result.rejects} == {
        "time_unix_nano and observed_time_unix_nano are both unset": 1,
        "trace_id must be empty or 16 bytes, got 8": 1,
        "span_id must be empty or 8 bytes, got 16": 1,
    }
    assert result.error_message.startswith("3 of 5 log records rejected: ")


def test_log_record_hash_is_stable_and_distinguishes_records():
    def hashes(*records, service="svc"):
        return (
            normalise_logs(logs_request({"service.name": service}, records))
            .table.column("record_hash")
            .to_pylist()
        )

    first = hashes(log_record("a"), log_record("b"), log_record("a", time=T0 + 1))
    assert first == hashes(log_record("a"), log_record("b"), log_record("a", time=T0 + 1))
    assert len(set(first)) == 3
    assert hashes(log_record("a"), service="other") != hashes(log_record("a"))
    assert hashes(log_record("a", k=1)) != hashes(log_record("a", k=2))
    assert (
        hashes(log_record("a"))
        == normalise_logs(logs_request({"service.name": "svc"}, [log_record("a")]).SerializeToString())
        .table.column("record_hash")
        .to_pylist()
    )


def test_log_bytes_input_with_invalid_utf8_body_rejects_that_record():
    req = logs_request({"service.name": "svc"}, [log_record("fine"), log_record("BAD!")])
    result = normalise_logs(req.SerializeToString().replace(b"BAD!", b"\xff\xfe\xfd\xfc"))
    assert result.table.num_rows == 1
    assert result.rejects == (Reject("svc", "attribute or body cannot be decoded (invalid UTF-8?)", 1),)


def test_nan_sorts_into_value_double():
    m = Metric(name="g")
    m.gauge.data_points.append(_point(NumberDataPoint, float("nan")))
    [row] = rows(normalise_metrics(metrics_request({}, [m])).table)
    assert math.isnan(row["value_double"])


# --------------------------------------------------------------------------------------------
# The column-wise span decoder gives exactly what the per-span one gives
# --------------------------------------------------------------------------------------------

_AWKWARD_VALUES = [
    "",
    "plain",
    'a "quote" and a \\ backslash',
    "tab\tnew\nline\x00nul\x1f",
    "ünïcödé ✓ 🚀",
    "x" * 200,
    "y" * 20_000,
    0,
    1,
    127,
    128,
    16_383,
    16_384,
    2**53,
    2**53 + 1,
    2**62,
    -1,
    -(2**63),
    0.0,
    0.5,
    -2.5,
    1e300,
    float("nan"),
    float("inf"),
    float("-inf"),
    True,
    False,
    None,
    b"\x00\xffbytes",
    ["a", 1, 2.5],
    {"k": "v", "n": [1]},
    "123",
    "12.0",
    "-5",
    "abc",
    "Anthropic",
    "claude-3-5-haiku",
    "LLM",
]
_AWKWARD_NAMES = [
    *sorted({name for names in normalise_module._SLOTS.values() for name in names}),
    "",
    "other.attribute",
    "ключ",
    'we"ird\\key',
    "llm.invocation_parameters",
    "telemetry.sdk.name",
]


def _random_span(rng: Any, n: int) -> Span:
    trace_id, span_id = ids(n)
    names = rng.sample(_AWKWARD_NAMES, rng.randint(0, 20))
    attributes = {name: rng.choice(_AWKWARD_VALUES) for name in names}
    kwargs: dict[str, Any] = {
        "kind": rng.choice([0, 1, 2, 3, 4, 5, 9]),
        "status_code": rng.choice([0, 0, 1, 2, 7]),
        "status_message": rng.choice(["", "", "boom", 'bäd "thing"']),
        "parent_span_id": rng.choice([b"", ids(n + 1000)[1]]),
        "start": T0 + n,
        "end": T0 + n + rng.choice([0, 5, 10**9]),
    }
    roll = rng.random()
    if roll < 0.04:
        kwargs["events"] = [event("exception", **{"exception.type": "ValueError"})]
    elif roll < 0.06:
        kwargs["links"] = [link(), link(trace_id=b"short")]
    elif roll < 0.08:
        kwargs["trace_id"] = rng.choice([b"", bytes(16), b"x" * 15])
    elif roll < 0.10:
        kwargs["end"] = T0 - 1
    elif roll < 0.11:
        attributes = {f"many.{i}": i for i in range(150)}
    s = span(
        rng.choice(["", "chat gpt-4o", "ünï span"]),
        trace_id=kwargs.pop("trace_id", trace_id),
        span_id=span_id,
        attributes=attributes,
        **kwargs,
    )
    if rng.random() < 0.05:
        s.attributes.extend(attrs({names[0] if names else "dup": "again"} | {"dup": 1}))  # a repeated key
    if rng.random() < 0.1:
        s.trace_state = "vendor=1"
    if rng.random() < 0.1:
        s.flags = rng.choice([1, 0x301])
    if rng.random() < 0.1:
        s.dropped_attributes_count, s.dropped_events_count, s.dropped_links_count = 3, 20_000, 1
    return s


def _random_request(seed: int, max_spans: int = 40) -> bytes:
    import random

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    n = 0
    for r in range(rng.randint(1, 3)):
        rs = request.resource_spans.add()
        resource = {"service.name": f"svc-{r}", "gen_ai.main_agent.name": "boss"}
        if rng.random() < 0.3:
            resource["telemetry.sdk.name"] = "openlit"
        rs.resource.attributes.extend(attrs(resource))
        for _ in range(rng.randint(1, 2)):
            ss = rs.scope_spans.add()
            ss.scope.name = rng.choice(["", "openinference.instrumentation"])
            ss.schema_url = rng.choice(["", "https://opentelemetry.io/schemas/1.37.0"])
            for _ in range(rng.randint(0, max_spans)):
                ss.spans.append(_random_span(rng, n))
                n += 1
    return request.SerializeToString()


def _same_or_both_invalid(raw: bytes) -> None:
    try:
        expected = normalise_module._traces_span_by_span(raw)
    except InvalidData:
        with pytest.raises(InvalidData):
            normalise_traces(raw)
        return
    assert_same_result(normalise_traces(raw), expected)


@pytest.mark.parametrize("seed", range(40))
def test_column_wise_decoder_matches_span_by_span(seed):
    raw = _random_request(seed)
    _same_or_both_invalid(raw)
    with contextlib.suppress(normalise_module._PerSpan):  # most requests are decoded column-wise
        normalise_module._traces_column_wise(raw)


@pytest.mark.parametrize("seed", range(6))
def test_column_wise_decoder_on_corrupted_bytes(seed):
    import random

    rng = random.Random(seed)
    raw = bytearray(_random_request(1000 + seed, max_spans=8))
    for _ in range(40):
        broken = raw.copy()
        for _ in range(rng.randint(1, 3)):
            broken[rng.randrange(len(broken))] = rng.randrange(256)
        if rng.random() < 0.2:
            broken = broken[: rng.randrange(len(broken))]
        _same_or_both_invalid(bytes(broken))


def test_flags_in_declaration_order_and_unknown_fields_decode_the_same():
    # Some encoders write fields in .proto declaration order, where flags (16) follows parent (4);
    # a newer sender may add fields we do not know. Both must decode as the parser reads them.
    trace_id, span_id = ids(1)
    times = b"\x39" + (T0).to_bytes(8, "little") + b"\x41" + (T0 + 5).to_bytes(8, "little")
    attribute = attr_bytes("gen_ai.provider.name", "openai")
    flags = b"\x85\x01" + (0x301).to_bytes(4, "little")
    early = _field(1, trace_id) + _field(2, span_id) + flags + _field(5, b"chat") + times
    late = _field(1, trace_id) + _field(2, ids(2)[1]) + _field(5, b"chat") + times
    unknown = _field(1, trace_id) + _field(2, ids(3)[1]) + times + b"\xa8\x01\x07"  # field 21
    spans = [early + _field(9, attribute), late + _field(9, attribute) + flags, unknown]
    scope_spans = _field(2, b"".join(_field(2, s) for s in spans))
    raw = _field(1, scope_spans)
    _same_or_both_invalid(raw)
    [a, b, c] = rows(normalise_traces(raw).table)
    assert a["flags"] == b["flags"] == 0x301 and c["flags"] == 0
    assert a["provider"] == b["provider"] == "openai"


def attr_bytes(key: str, value: Any) -> bytes:
    return attrs({key: value})[0].SerializeToString()


@pytest.mark.parametrize("length", [5, 100, 127, 128, 300])
def test_a_value_limit_cuts_strings_of_every_length_on_both_paths(length):
    # strings under 128 bytes have a one-byte length on the wire: a fast path of their own
    request = trace_request({"service.name": "svc"}, [genai_span({"k": "x" * length})])
    result = normalise_traces(request, Limits(max_value_length=10))
    expected = {"k": "x" * min(length, 10), **({"muster.truncated": 1} if length > 10 else {})}
    assert orjson.loads(result.table["attributes"][0].as_py()) == expected
