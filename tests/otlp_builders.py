"""Small builders for OTLP protobuf requests, so tests say what they send and nothing more.

    trace_request({"service.name": "svc"}, [span(**{"gen_ai.provider.name": "openai"})])

Attribute values map to AnyValue by Python type: str, bool, int, float, bytes, list (array),
dict (kvlist), None (empty AnyValue). Ids default to fixed valid values; pass `trace_id=b""` etc.
to make a span invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN_ID = bytes.fromhex("b7ad6b7169203331")
T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z in unix nanoseconds


def any_value(value: Any) -> AnyValue:
    """A Python value as an OTLP AnyValue (bool before int: bool is an int in Python)."""
    v = AnyValue()
    if value is None:
        pass
    elif isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, str):
        v.string_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list | tuple):
        v.array_value.values.extend(any_value(x) for x in value)
    elif isinstance(value, Mapping):
        v.kvlist_value.values.extend(attr(k, x) for k, x in value.items())
    else:
        raise TypeError(f"no AnyValue for {type(value).__name__}")
    return v


def attr(key: str, value: Any) -> KeyValue:
    return KeyValue(key=key, value=any_value(value))


def attrs(mapping: Mapping[str, Any] | None) -> list[KeyValue]:
    return [attr(k, v) for k, v in (mapping or {}).items()]


def span(
    name: str = "span",
    *,
    trace_id: bytes = TRACE_ID,
    span_id: bytes = SPAN_ID,
    parent_span_id: bytes = b"",
    start: int = T0,
    end: int = T0 + 1_500_000,
    kind: int = Span.SPAN_KIND_CLIENT,
    status_code: int = Status.STATUS_CODE_UNSET,
    status_message: str = "",
    events: Iterable[Span.Event] = (),
    links: Iterable[Span.Link] = (),
    attributes: Mapping[str, Any] | None = None,
    **attributes_by_name: Any,
) -> Span:
    """A span; attributes come from `attributes` (for dotted names) and keyword arguments."""
    s = Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=kind,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        status=Status(code=status_code, message=status_message),
    )
    s.attributes.extend(attrs({**(attributes or {}), **attributes_by_name}))
    s.events.extend(events)
    s.links.extend(links)
    return s


def genai_span(attributes: Mapping[str, Any], **kwargs: Any) -> Span:
    """A span carrying the given (dotted) attributes."""
    return span(attributes=attributes, **kwargs)


def event(name: str, time: int = T0 + 1000, **attributes: Any) -> Span.Event:
    e = Span.Event(name=name, time_unix_nano=time)
    e.attributes.extend(attrs(attributes))
    return e


def link(trace_id: bytes = TRACE_ID, span_id: bytes = SPAN_ID, **attributes: Any) -> Span.Link:
    lk = Span.Link(trace_id=trace_id, span_id=span_id, trace_state="k=v", flags=1)
    lk.attributes.extend(attrs(attributes))
    return lk


def trace_request(
    resource_attrs: Mapping[str, Any] | None,
    spans: Iterable[Span],
    *,
    scope: InstrumentationScope | None = None,
    schema_url: str = "",
) -> ExportTraceServiceRequest:
    """One ResourceSpans with one ScopeSpans holding `spans`."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(attrs(resource_attrs))
    ss = rs.scope_spans.add()
    ss.scope.CopyFrom(scope or InstrumentationScope(name="test.scope", version="1.0"))
    ss.schema_url = schema_url
    ss.spans.extend(spans)
    return req


def ids(n: int) -> tuple[bytes, bytes]:
    """Distinct valid (trace_id, span_id) for the n-th span of a test."""
    return (n + 1).to_bytes(16, "big"), (n + 1).to_bytes(8, "big")


def log_record(
    body: Any = "hello",
    *,
    time: int = T0,
    observed: int = 0,
    trace_id: bytes = b"",
    span_id: bytes = b"",
    severity_number: int = 9,
    severity_text: str = "INFO",
    event_name: str = "",
    **attributes: Any,
) -> LogRecord:
    r = LogRecord(
        time_unix_nano=time,
        observed_time_unix_nano=observed,
        trace_id=trace_id,
        span_id=span_id,
        severity_number=severity_number,
        severity_text=severity_text,
        event_name=event_name,
    )
    if body is not None:
        r.body.CopyFrom(any_value(body))
    r.attributes.extend(attrs(attributes))
    return r


def logs_request(
    resource_attrs: Mapping[str, Any] | None, records: Iterable[LogRecord]
) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(attrs(resource_attrs))
    sl = rl.scope_logs.add()
    sl.scope.name = "test.logger"
    sl.log_records.extend(records)
    return req


def metrics_request(
    resource_attrs: Mapping[str, Any] | None, metrics: Iterable[Metric]
) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(attrs(resource_attrs))
    sm = rm.scope_metrics.add()
    sm.scope.name = "test.meter"
    sm.metrics.extend(metrics)
    return req
