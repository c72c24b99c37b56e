"""Real OpenTelemetry SDK exporters (gRPC and HTTP) against a real server: what is sent is stored.

One span per convention the collector accepts, each through both transports; the canonical
columns must be filled from that convention's attribute names, and nothing else may be stored.
"""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

CONVENTIONS = {
    "otel_genai": {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 340,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.usage.reasoning.output_tokens": 100,
        "gen_ai.agent.id": "agt-support-01",
        "gen_ai.agent.name": "support-triage",
        "gen_ai.conversation.id": "conv-42",
        "server.address": "api.openai.com",
        "server.port": 443,
    },
    "otel_genai_legacy": {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4",
        "gen_ai.usage.prompt_tokens": 800,
        "gen_ai.usage.completion_tokens": 200,
    },
    "openinference": {
        "openinference.span.kind": "LLM",
        "llm.provider": "openai",
        "llm.model_name": "gpt-4o-mini",
        "llm.token_count.prompt": 500,
        "llm.token_count.completion": 50,
        "llm.token_count.total": 550,
        "llm.cost.total": 0.0001,
        "agent.name": "research-assistant",
        "session.id": "sess-7",
        "user.id": "u-19",
    },
    "openllmetry": {
        "traceloop.span.kind": "task",
        "llm.request.type": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.prompt_tokens": 300,
        "gen_ai.usage.completion_tokens": 20,
        "llm.usage.total_tokens": 320,
        "traceloop.workflow.name": "invoice-flow",
    },
    "openlit": {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 90,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.usage.cost": 0.00125,
        "gen_ai.application_name": "sales-copilot",
    },
}

EXPECTED = {
    "otel_genai": dict(
        operation="chat",
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        input_tokens=1200,
        output_tokens=340,
        total_tokens=1540,
        cache_read_tokens=1000,
        reasoning_tokens=100,
        agent_id="agt-support-01",
        agent_name="support-triage",
        conversation_id="conv-42",
        server_address="api.openai.com",
        server_port=443,
    ),
    "otel_genai_legacy": dict(
        operation="chat",
        provider="anthropic",
        request_model="claude-sonnet-4",
        input_tokens=800,
        output_tokens=200,
        total_tokens=1000,
    ),
    "openinference": dict(
        operation="chat",
        provider="openai",
        request_model="gpt-4o-mini",
        input_tokens=500,
        output_tokens=50,
        total_tokens=550,
        reported_cost_usd=0.0001,
        agent_name="research-assistant",
        conversation_id="sess-7",
        user_id="u-19",
    ),
    "openllmetry": dict(
        operation="chat",
        provider="openai",
        request_model="gpt-4o",
        input_tokens=300,
        output_tokens=20,
        total_tokens=320,
        workflow_name="invoice-flow",
        agent_name="invoice-flow",
    ),
    "openlit": dict(
        operation="chat",
        provider="openai",
        request_model="gpt-4o",
        input_tokens=90,
        output_tokens=10,
        total_tokens=100,
        reported_cost_usd=0.00125,
        agent_name="sales-copilot",
    ),
}

RESOURCE = {
    "service.name": "support-agent",
    "service.namespace": "customer-care",
    "service.version": "1.4.2",
    "deployment.environment.name": "production",
    "host.name": "agents-01",
}


def span_exporter(transport: str, server):
    if transport == "grpc":
        return GrpcSpanExporter(endpoint=server.grpc_endpoint, insecure=True)
    return HttpSpanExporter(endpoint=server.http_url + "/v1/traces")


def send_spans(server, transport: str) -> None:
    provider = TracerProvider(resource=Resource.create(RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(span_exporter(transport, server)))
    tracer = provider.get_tracer("muster.tests", "1.0")
    for name, attributes in CONVENTIONS.items():
        with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
            span.add_event("gen_ai.choice", {"index": 0})
            if name == "otel_genai":
                span.set_status(Status(StatusCode.ERROR, "rate limited"))
                span.set_attribute("error.type", "RateLimitError")
    provider.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_every_convention_lands_in_canonical_columns(server, transport):
    send_spans(server, transport)
    columns = sorted({column for expected in EXPECTED.values() for column in expected})
    rows = server.query(f"SELECT name, convention, {', '.join(columns)} FROM spans")
    assert len(rows) == len(CONVENTIONS)
    for name, convention, *values in rows:
        stored = dict(zip(columns, values, strict=True))
        assert convention == name
        expected = EXPECTED[name]
        for column in columns:
            assert stored[column] == pytest.approx(expected.get(column)), f"{name}.{column}"


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_resource_status_events_and_raw_attributes_are_kept(server, transport):
    send_spans(server, transport)
    (row,) = server.query(
        "SELECT service_name, service_namespace, service_version, environment, host_name, sdk_language,"
        " scope_name, scope_version, kind, status_code, status_message, error_type,"
        " attributes->>'$.\"gen_ai.agent.id\"', resource_attributes->>'$.\"host.name\"',"
        " json_array_length(events), events->>'$[0].name'"
        " FROM spans LEFT JOIN resources USING (resource_id) WHERE convention = 'otel_genai'"
    )
    assert row == (
        "support-agent",
        "customer-care",
        "1.4.2",
        "production",
        "agents-01",
        "python",
        "muster.tests",
        "1.0",
        "client",
        "error",
        "rate limited",
        "RateLimitError",
        "agt-support-01",
        "agents-01",
        1,
        "gen_ai.choice",
    )


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_metrics_and_logs_are_stored(server, transport):
    if transport == "grpc":
        metric_exporter = GrpcMetricExporter(endpoint=server.grpc_endpoint, insecure=True)
        log_exporter = GrpcLogExporter(endpoint=server.grpc_endpoint, insecure=True)
    else:
        metric_exporter = HttpMetricExporter(endpoint=server.http_url + "/v1/metrics")
        log_exporter = HttpLogExporter(endpoint=server.http_url + "/v1/logs")
    resource = Resource.create(RESOURCE)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter("muster.tests")
    usage = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    usage.record(1200, {"gen_ai.token.type": "input", "gen_ai.request.model": "gpt-4o"})
    usage.record(300, {"gen_ai.token.type": "output", "gen_ai.request.model": "gpt-4o"})
    meter.create_counter("agent.tool.calls").add(3, {"gen_ai.tool.name": "search"})
    meters.shutdown()

    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logs.get_logger("muster.tests").emit(body="agent finished", attributes={"gen_ai.agent.id": "agt-1"})
    logs.shutdown()

    points = server.query(
        "SELECT metric_name, metric_type, count, sum, attributes->>'$.\"gen_ai.token.type\"'"
        " FROM metric_points ORDER BY metric_name, 5"
    )
    assert points == [
        ("agent.tool.calls", "sum", None, None, None),
        ("gen_ai.client.token.usage", "histogram", 1, 1200.0, "input"),
        ("gen_ai.client.token.usage", "histogram", 1, 300.0, "output"),
    ]
    (log_row,) = server.query(
        "SELECT service_name, body, attributes->>'$.\"gen_ai.agent.id\"' FROM log_records"
    )
    assert log_row == ("support-agent", '"agent finished"', "agt-1")
