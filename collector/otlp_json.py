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

Limits (`collector.normalise.Limits`) are applied here only as far as the parse needs them, and
so that the normaliser still records them the way it does for protobuf: attribute lists of spans,
events, links, log records, resources and scopes longer than the limit are cut here (ParseDict
would spend ~30 s on a million attributes) and the rest added to the item's dropped count; events
and links beyond their limits likewise. An array or map nested at the depth limit is emptied
(ParseDict recurses; the normaliser then replaces it by its marker and counts it). An `intValue`
beyond int64 — a JSON number orjson reads as a double, or a string of digits — becomes that
`doubleValue`, so one absurd token count costs a NULL in its column, not the request; a timestamp
beyond fixed64 (year 9999) becomes the largest, so its item is rejected alone. JSON nested
deeper than orjson's 1,024 levels (~340 levels of AnyValue arrays) is not parsed at all: the request
is refused with that reason.
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
from collector.normalise import DEFAULT_LIMITS, Limits

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


def parse_json(
    signal: Literal["traces", "metrics", "logs"], body: bytes, limits: Limits = DEFAULT_LIMITS
) -> ExportRequest:
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
    _apply_limits(signal, document, limits)
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


# --- limits ------------------------------------------------------------------------------------

_DROPPED_ATTRIBUTES = ("droppedAttributesCount", "dropped_attributes_count")
_NESTED = ("arrayValue", "array_value", "kvlistValue", "kvlist_value")
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT32_MAX = (1 << 32) - 1


def _apply_limits(signal: str, document: dict[str, Any], limits: Limits) -> None:
    """Cut what the parse must not see in full (see the module docstring); the rest is the normaliser's."""
    if signal == "traces":
        outer, inner, leaf = ("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans",)
    elif signal == "logs":
        outer, inner = ("resourceLogs", "resource_logs"), ("scopeLogs", "scope_logs")
        leaf = ("logRecords", "log_records")
    else:
        outer, inner, leaf = ("resourceMetrics", "resource_metrics"), ("scopeMetrics", "scope_metrics"), ()
    for block, _ in _nested(document, outer):
        _limit_attributes(block.get("resource"), limits)
        for scope_block, _ in _items(block, inner, ""):
            _limit_attributes(scope_block.get("scope"), limits)
    if signal == "metrics":
        for metric, _ in _nested(document, outer, inner, ("metrics",)):
            for kind in (*_METRIC_DATA, "summary"):
                data = metric.get(kind)
                if isinstance(data, dict):
                    for point, _ in _items(data, ("dataPoints", "data_points"), ""):
                        _limit_values(point.get("attributes"), limits)
        return
    for item, _ in _nested(document, outer, inner, leaf):
        _limit_attributes(item, limits)
        _limit_times(item)
        if signal == "logs":
            _limit_value(item.get("body"), 0, limits)
            continue
        for name, dropped, most in (
            ("events", ("droppedEventsCount", "dropped_events_count"), limits.max_events),
            ("links", ("droppedLinksCount", "dropped_links_count"), limits.max_links),
        ):
            children = item.get(name)
            if isinstance(children, list):
                if len(children) > most:
                    _add_dropped(item, dropped, len(children) - most)
                    del children[most:]
                for child in children:
                    _limit_attributes(child, limits)


def _limit_attributes(item: Any, limits: Limits) -> None:
    """Keep the item's first max_attributes attributes, adding the rest to its dropped count."""
    if not isinstance(item, dict):
        return
    attributes = item.get("attributes")
    if not isinstance(attributes, list):
        return
    if len(attributes) > limits.max_attributes:
        _add_dropped(item, _DROPPED_ATTRIBUTES, len(attributes) - limits.max_attributes)
        del attributes[limits.max_attributes :]
    _limit_values(attributes, limits)


def _limit_values(attributes: Any, limits: Limits) -> None:
    if isinstance(attributes, list):
        for kv in attributes:
            if isinstance(kv, dict):
                _limit_value(kv.get("value"), 0, limits)


def _limit_value(value: Any, depth: int, limits: Limits) -> None:
    """Empty arrays and maps at the depth limit; turn int64-overflowing intValues into doubles."""
    if not isinstance(value, dict):
        return
    number = value.get("intValue", value.get("int_value"))
    if number is not None:
        _fix_int(value, number)
        return
    for name in _NESTED:
        inner = value.get(name)
        if isinstance(inner, dict) and isinstance(inner.get("values"), list):
            if depth >= limits.max_depth:
                inner["values"] = []  # the normaliser puts its marker here and counts the cut
                return
            for element in inner["values"]:
                if name.startswith("kvlist"):
                    element = element.get("value") if isinstance(element, dict) else None
                _limit_value(element, depth + 1, limits)


def _fix_int(value: dict[str, Any], number: Any) -> None:
    if isinstance(number, bool):
        return
    if isinstance(number, float):  # orjson reads integers beyond 64 bits as doubles
        exact = number
    elif isinstance(number, int):
        if _INT64[0] <= number <= _INT64[1]:
            return
        exact = number
    elif isinstance(number, str) and number.strip().lstrip("+-").isdigit():
        exact = int(number)
        if _INT64[0] <= exact <= _INT64[1]:
            return
    else:
        return  # not a number: ParseDict says so
    value.pop("intValue", None)
    value.pop("int_value", None)
    value["doubleValue"] = float(exact)


_TIMES = (
    "startTimeUnixNano",
    "start_time_unix_nano",
    "endTimeUnixNano",
    "end_time_unix_nano",
    "timeUnixNano",
    "time_unix_nano",
    "observedTimeUnixNano",
    "observed_time_unix_nano",
)
_UINT64_MAX = (1 << 64) - 1


def _limit_times(item: dict[str, Any]) -> None:
    """A timestamp beyond fixed64 (year 9999 in nanoseconds) becomes the largest one, so the
    normaliser rejects just this item as beyond int64, instead of ParseDict the whole request."""
    for name in _TIMES:
        value = item.get(name)
        if isinstance(value, str) and value.isdigit() and len(value) >= 20:
            value = int(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > _UINT64_MAX:
            item[name] = _UINT64_MAX


def _add_dropped(item: dict[str, Any], names: tuple[str, ...], extra: int) -> None:
    """Add `extra` to the item's dropped count (under whichever spelling it used), capped at uint32."""
    prior = 0
    for name in names:
        if name in item:
            try:
                prior = int(item.pop(name) or 0)
            except (TypeError, ValueError):
                prior = 0
    item[names[0]] = min(max(prior, 0) + extra, _UINT32_MAX)
