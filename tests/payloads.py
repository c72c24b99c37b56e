"""Hand-built OTLP requests for receiver tests: valid spans, invalid ones, metrics and logs."""

from __future__ import annotations

import itertools
import os
import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_counter = itertools.count(1)


def kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def new_ids() -> tuple[bytes, bytes]:
    """A fresh (trace_id, span_id), unique across the test session."""
    n = next(_counter)
    return os.urandom(8) + n.to_bytes(8, "big"), n.to_bytes(8, "big")


def trace_request(
    spans: int = 3, *, service: str = "support-agent", bad: int = 0, pad: int = 0
) -> ExportTraceServiceRequest:
    """`spans` valid GenAI chat spans, then `bad` spans with an empty trace id; `pad` bytes of attribute."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend([kv("service.name", service)])
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    now = time.time_ns()
    for index in range(spans + bad):
        span = scope_spans.spans.add()
        trace_id, span_id = new_ids()
        span.trace_id = b"" if index >= spans else trace_id
        span.span_id = span_id
        span.name = "chat gpt-4o"
        span.kind = 3
        span.start_time_unix_nano = now - 1_000_000
        span.end_time_unix_nano = now
        span.attributes.extend(
            [
                kv("gen_ai.operation.name", "chat"),
                kv("gen_ai.provider.name", "openai"),
                kv("gen_ai.request.model", "gpt-4o"),
                kv("gen_ai.usage.input_tokens", 120),
                kv("gen_ai.usage.output_tokens", 30),
            ]
        )
        if pad:
            span.attributes.append(kv("padding", "x" * pad))
    return request


def metrics_request(points: int = 2, *, service: str = "support-agent") -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend([kv("service.name", service)])
    metric = resource_metrics.scope_metrics.add().metrics.add()
    metric.name = "gen_ai.client.token.usage"
    metric.unit = "{token}"
    now = time.time_ns()
    for index in range(points):
        point = metric.sum.data_points.add()
        point.time_unix_nano = now + index
        point.as_int = 100 + index
        point.attributes.extend([kv("gen_ai.token.type", "input")])
    metric.sum.aggregation_temporality = 1
    metric.sum.is_monotonic = True
    return request


def logs_request(records: int = 2, *, service: str = "support-agent") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend([kv("service.name", service)])
    scope_logs = resource_logs.scope_logs.add()
    now = time.time_ns()
    for index in range(records):
        record = scope_logs.log_records.add()
        record.time_unix_nano = now + index
        record.severity_number = 9
        record.severity_text = "INFO"
        record.body.string_value = f"tool call {index} finished"
    return request


_ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def otlp_json(message) -> bytes:
    """OTLP/JSON for a request: protobuf JSON with trace and span ids as hex, as OTLP requires."""
    import base64
    import json

    from google.protobuf import json_format

    def to_hex(node):
        if isinstance(node, dict):
            return {k: base64.b64decode(v).hex() if k in _ID_FIELDS else to_hex(v) for k, v in node.items()}
        if isinstance(node, list):
            return [to_hex(item) for item in node]
        return node

    return json.dumps(to_hex(json_format.MessageToDict(message))).encode()
