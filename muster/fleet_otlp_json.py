"""OTLP/JSON exporters for the simulated fleet: the OpenTelemetry Python SDK has none.

Some agents (JavaScript ones, collectors configured with `encoding: json`) send OTLP/HTTP with
`Content-Type: application/json`. These exporters encode a batch with the SDK's own protobuf
encoders, turn it into the protobuf JSON mapping with `google.protobuf.json_format`, and then
apply the one rule where OTLP/JSON departs from that mapping: trace and span ids are hex strings,
not base64. Failures are retried the way the SDK's exporters retry (429, 502, 503, 504, with
backoff); anything else is a failed export.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["JsonLogExporter", "JsonMetricExporter", "JsonSpanExporter", "otlp_json"]

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})
_RETRYABLE = frozenset({429, 502, 503, 504})
_ATTEMPTS = 4


def otlp_json(request: Message) -> bytes:
    """An OTLP export request as OTLP/JSON bytes: lowerCamelCase fields, integer enums, hex ids."""
    data = json_format.MessageToDict(request, use_integers_for_enums=True)
    return json.dumps(_hex_ids(data), separators=(",", ":")).encode()


def _hex_ids(node: Any) -> Any:
    """Every trace, span and parent-span id (base64 in protobuf's JSON mapping) as hex, recursively."""
    if isinstance(node, dict):
        return {
            key: base64.b64decode(value).hex()
            if key in _ID_KEYS and isinstance(value, str)
            else _hex_ids(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hex_ids(item) for item in node]
    return node


class _JsonPoster:
    """POSTs OTLP/JSON bodies to one signal URL, gzipped if asked, retrying what the spec says to retry."""

    def __init__(
        self, endpoint: str, headers: dict[str, str] | None, gzip_body: bool, timeout_s: float = 10.0
    ) -> None:
        self._endpoint = endpoint
        self._gzip = gzip_body
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if gzip_body:
            self._headers["Content-Encoding"] = "gzip"
        self._client = httpx.Client(timeout=timeout_s)

    def post(self, body: bytes) -> bool:
        payload = gzip.compress(body) if self._gzip else body
        for attempt in range(_ATTEMPTS):
            try:
                response = self._client.post(self._endpoint, content=payload, headers=self._headers)
            except httpx.TransportError:
                status = None
            else:
                if response.is_success:
                    return True
                status = response.status_code
                if status not in _RETRYABLE:
                    return False
            if attempt + 1 < _ATTEMPTS:
                time.sleep(0.2 * 2**attempt)
        return False

    def close(self) -> None:
        self._client.close()


class JsonSpanExporter(SpanExporter):
    def __init__(self, endpoint: str, headers: dict[str, str] | None = None, gzip_body: bool = False) -> None:
        self._poster = _JsonPoster(endpoint, headers, gzip_body)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self._poster.post(otlp_json(encode_spans(spans)))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._poster.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class JsonLogExporter(LogRecordExporter):
    def __init__(self, endpoint: str, headers: dict[str, str] | None = None, gzip_body: bool = False) -> None:
        self._poster = _JsonPoster(endpoint, headers, gzip_body)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        ok = self._poster.post(otlp_json(encode_logs(batch)))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self._poster.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class JsonMetricExporter(MetricExporter):
    """Cumulative temporality and default aggregations, as the SDK's OTLP metric exporters default to."""

    def __init__(self, endpoint: str, headers: dict[str, str] | None = None, gzip_body: bool = False) -> None:
        super().__init__()
        self._poster = _JsonPoster(endpoint, headers, gzip_body)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        ok = self._poster.post(otlp_json(encode_metrics(metrics_data)))
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._poster.close()
