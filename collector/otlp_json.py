"""Parse an OTLP/JSON request body into the signal's protobuf Export*ServiceRequest.

OTLP/JSON is the protobuf JSON mapping with one difference that matters: trace and span ids
(spans, links, log records, exemplars) are hex strings, case-insensitive, not base64. So the
parsed document is walked only where ids can occur, each hex id is rewritten as the base64 that
`json_format.ParseDict` expects, and ParseDict does the rest: lowerCamelCase or snake_case field
names, int64 as string or number, enums as integers or names, unknown fields ignored.

A hex id of the wrong length is converted all the same, so that `collector.normalise` rejects
just that item (partial success); an empty string is empty bytes. A value that is not a hex
encoding at all — not a string, a non-hex character, an odd number of digits — is malformed
JSON for OTLP, and like invalid JSON or a wrongly typed field it fails the request with
`InvalidData`, saying what and where (e.g. `resourceSpans[0].scopeSpans[0].spans[3].traceId:
not a hex string`). So does an element of those lists that is not an object (ParseDict would
read a string there as an empty message). A JSON null id reads as absent.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.errors import InvalidData

__all__ = ["parse_json"]

ExportRequest = ExportTraceServiceRequest | ExportMetricsServiceRequest | ExportLogsServiceRequest

_REQUESTS: dict[str, type[ExportRequest]] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}

# Each field under both spellings ParseDict accepts: lowerCamelCase (json_name) and proto name.
_TRACE_ID = ("traceId", "trace_id")
_SPAN_ID = ("spanId", "span_id")
_PARENT_SPAN_ID = ("parentSpanId", "parent_span_id")
_METRIC_DATA = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram")

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def parse_json(signal: Literal["traces", "metrics", "logs"], body: bytes) -> ExportRequest:
    """The body as the signal's request message; InvalidData says what is wrong and where."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidData(f"OTLP/JSON body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidData(f"OTLP/JSON body must be a JSON object, got {type(document).__name__}")
    for item, path, id_fields in _id_holders(signal, document):
        for field in id_fields:
            if field in item:
                item[field] = _base64_id(item[field], f"{path}.{field}")
    try:
        return json_format.ParseDict(document, _REQUESTS[signal](), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidData(f"OTLP/JSON {signal} request is invalid: {exc}") from None


def _base64_id(value: Any, where: str) -> str | None:
    """A hex id as the base64 ParseDict expects for a bytes field."""
    if value is None:  # JSON null: the field's default, as ParseDict reads it
        return None
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise InvalidData(f"{where}: not a hex string")
    return base64.b64encode(bytes.fromhex(value)).decode("ascii")


def _items(parent: dict[str, Any], names: tuple[str, ...], path: str) -> Iterator[tuple[dict[str, Any], str]]:
    """The object elements of parent's list field (under either spelling), with their paths.

    A field that is not a list is left for ParseDict to reject; an element that is not an object
    is rejected here, because ParseDict would read a string as an empty message.
    """
    for name in names:
        items = parent.get(name)
        if isinstance(items, list):
            prefix = f"{path}.{name}" if path else name
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise InvalidData(f"{prefix}[{i}]: expected an object, got {type(item).__name__}")
                yield item, f"{prefix}[{i}]"


def _nested(document: dict[str, Any], *levels: tuple[str, ...]) -> Iterator[tuple[dict[str, Any], str]]:
    """The objects reached through successive list fields, e.g. resourceSpans → scopeSpans → spans."""
    frontier = [(document, "")]
    for names in levels:
        frontier = [child for parent, path in frontier for child in _items(parent, names, path)]
    return iter(frontier)


def _id_holders(
    signal: str, document: dict[str, Any]
) -> Iterator[tuple[dict[str, Any], str, tuple[str, ...]]]:
    """Every object of the request that can hold ids, its path, and the id fields it may hold."""
    if signal == "traces":
        for span, path in _nested(
            document, ("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans",)
        ):
            yield span, path, _TRACE_ID + _SPAN_ID + _PARENT_SPAN_ID
            for link, link_path in _items(span, ("links",), path):
                yield link, link_path, _TRACE_ID + _SPAN_ID
    elif signal == "logs":
        records = _nested(
            document,
            ("resourceLogs", "resource_logs"),
            ("scopeLogs", "scope_logs"),
            ("logRecords", "log_records"),
        )
        for record, path in records:
            yield record, path, _TRACE_ID + _SPAN_ID
    elif signal == "metrics":
        metrics = _nested(
            document, ("resourceMetrics", "resource_metrics"), ("scopeMetrics", "scope_metrics"), ("metrics",)
        )
        for metric, path in metrics:
            for kind in _METRIC_DATA:
                data = metric.get(kind)
                if not isinstance(data, dict):
                    continue
                for point, point_path in _items(data, ("dataPoints", "data_points"), f"{path}.{kind}"):
                    for exemplar, exemplar_path in _items(point, ("exemplars",), point_path):
                        yield exemplar, exemplar_path, _TRACE_ID + _SPAN_ID
    else:
        raise ValueError(f"unknown signal {signal!r}")
