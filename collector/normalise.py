"""Turn decoded OTLP export requests into Arrow tables shaped like the warehouse tables.

One job: OTLP trace, metric and log requests in, one `pyarrow.Table` per request out, whose columns
are exactly those of `spans`, `metric_points` or `log_records` (warehouse/migrations/001) minus
`received_at` and `ingest_seq`, which the writer adds. No I/O; every function is pure.

Each table keeps everything the sender sent: the attributes, resource, scope, events and links
are also stored as JSON, so the canonical columns are an index, never the only copy.

Invalid items are rejected one by one, never the whole request (OTLP partial success). The
`Normalised` result carries the table and the rejects, aggregated per (service.name, reason).

Spans
-----
Rejected: trace_id not 16 bytes or all zero; span_id not 8 bytes or all zero; parent_span_id
neither empty nor 8 bytes; start or end time unset (0), end before start, or a time beyond what
a signed 64-bit nanosecond timestamp holds (the warehouse type); an attribute that cannot be
decoded (invalid UTF-8 — only possible when raw bytes are passed in, since the protobuf parser
refuses it earlier otherwise). Kept: an empty span name (stored as ""), an unknown kind or status
code (stored as "unspecified" / "unset"; the raw number is not otherwise kept).
A link whose trace_id/span_id is invalid is dropped and counted in `dropped_links_count`, not
the span: a bad reference should not cost the span itself.

GenAI canonical columns follow shared/CONVENTIONS.md, first *present* attribute wins, in the
order: current OTel GenAI, older OTel, OpenInference, OpenLLMetry/OpenLIT. A winner whose value
cannot be used (a token count "abc", a list where a name belongs) gives NULL rather than falling
through to a lower-precedence attribute; the raw attribute stays in `attributes`. Details:

* operation — `gen_ai.operation.name`, `openinference.span.kind`, `llm.request.type`,
  `traceloop.span.kind`, mapped onto the OTel vocabulary case-insensitively by one alias table
  (`_OPERATION_ALIASES`): LLM→chat, EMBEDDING/embedding→embeddings, RETRIEVER→retrieval,
  TOOL/tool→execute_tool, AGENT/agent→invoke_agent, CHAIN/workflow→invoke_workflow,
  RERANKER/rerank→rerank, completion→text_completion, task→task; GUARDRAIL, EVALUATOR and
  PROMPT have no OTel equivalent and become guardrail, evaluate, prompt; UNKNOWN gives NULL.
  Other values are kept, lowercased.
* provider — `gen_ai.provider.name`, `gen_ai.system`, `llm.provider` (hosting) before
  `llm.system` (model family), OpenLIT `gen_ai.request.provider`; lowercased, `az.ai.*` becomes
  `azure.ai.*`, and the usual OpenInference/Traceloop/OpenLIT spellings map to OTel names
  (`_PROVIDER_ALIASES`: "aws"/"bedrock"→aws.bedrock, "azure"→azure.ai.openai (OpenInference
  uses it for Azure OpenAI), "google"→gcp.gen_ai (backend unknown), "vertexai"→gcp.vertex_ai,
  "gemini"/"google.ai.studio"→gcp.gemini, "mistralai"→mistral_ai, "xai"→x_ai, …).
* tokens — ints from int, double or numeric-string values; negative, fractional, non-finite,
  boolean or unparsable values give NULL, and so do counts above 2^53 (garbage, and capping
  them keeps totals far from int64 overflow). total = reported total, else input + output when both
  are known. Input includes cache, output includes reasoning (CONVENTIONS). Anthropic's API
  reports input *without* cache; when the provider is anthropic, or the model is a Claude model
  (Claude on Bedrock/Vertex reports usage the same way), and input < cache_read + cache_write,
  the instrumentation clearly did not add the cache back, so we do (and recompute a reported
  total that equals the uncorrected input + output). When input ≥ the cache sum we cannot tell
  and trust the value. No such correction is made for reasoning tokens.
* cost — `llm.cost.total`, OpenLIT `gen_ai.usage.cost`, else `llm.cost.prompt` +
  `llm.cost.completion` when both are present; negative or non-finite gives NULL.
* agent id — `gen_ai.agent.id`, else resource `gen_ai.main_agent.id`.
* agent name — `gen_ai.agent.name`, `agent.name`, `traceloop.entity.name` on spans whose
  `traceloop.span.kind` is agent, `traceloop.workflow.name` (listed in CONVENTIONS), span
  `gen_ai.application_name` (OpenLIT), then the resource: `gen_ai.main_agent.name` before
  OpenLIT's `gen_ai.application_name` (span attributes are more specific than the resource; of
  the two resource names the OTel one names an agent, the OpenLIT one an application).
* agent version — `gen_ai.agent.version`, `traceloop.entity.version` on agent spans only.
* tool — `gen_ai.tool.name`, `tool.name`, `traceloop.entity.name` on tool spans;
  tool_call_id from `gen_ai.tool.call.id`, OpenInference `tool.id` (the call id on tool spans),
  `tool_call.id`.
* conversation — `gen_ai.conversation.id`, `session.id`, then the Traceloop association
  properties apps commonly use (`traceloop.association.properties.{session_id, conversation_id,
  thread_id, chat_id}`); user — `user.id`, `traceloop.association.properties.{user_id, userId}`.
* workflow — `gen_ai.workflow.name`, `traceloop.workflow.name`. OpenInference `graph.node.*`
  names a step inside a graph, not the workflow, so it is not mapped.
* error_type — `error.type`, else, on a span with status error, the `exception.type` of its
  first `exception` event (OpenInference and most SDKs record errors only that way).
* environment — resource `deployment.environment.name`, `deployment.environment`,
  `gen_ai.environment`, else span `gen_ai.environment` (OpenLIT puts it on spans).
* service_namespace — resource `service.namespace`, else `openinference.project.name` (the
  "project" row of CONVENTIONS).
* Values of text columns that are not strings: numbers and booleans become text ("true"),
  arrays and maps give NULL.

`convention` says where a span's GenAI attributes came from, judged by the attribute names it
carries: any OpenInference name → openinference; else OpenLIT-only names (or a resource whose
`telemetry.sdk.name` is openlit) → openlit; else Traceloop names (`traceloop.*`,
`llm.request.type`, `llm.usage.*`, `gen_ai.usage.cache_read_input_tokens`, …) → openllmetry;
else any current OTel GenAI name (`gen_ai.provider.name`, `gen_ai.usage.input_tokens`,
`gen_ai.agent.*`, …) → otel_genai — also when the older `gen_ai.system` sits beside it, because
an instrumentation that knows one current name is at least that generation; else an older-only
name (`gen_ai.system`, `gen_ai.usage.prompt_tokens`) → otel_genai_legacy; else a name common to
both (`gen_ai.request.model`, `gen_ai.operation.name`) → otel_genai; else NULL (plain HTTP or
database spans are stored too).

JSON: AnyValue maps to string, bool, int, double; non-finite doubles become "NaN", "Infinity",
"-Infinity"; bytes become base64; arrays lists; kvlists objects (last duplicate key wins, as for
attributes); an empty AnyValue null; nesting deeper than 64 levels is replaced by the string
"<nesting depth limit exceeded>". `string_value_strindex` (profiles only) is stored as
{"string_value_strindex": n}. Attributes are always an object ("{}" when there are none); events
and links are NULL when there are none.

Metric points
-------------
One row per data point of gauge, sum, histogram, exponential histogram and summary. Rejected: a
point whose time_unix_nano is 0 or beyond int64; a metric with an empty name (each of its points);
a metric with no data set at all counts as one rejected item ("metric 'x' has no data"), since it
has no points to count. A point with neither as_int nor as_double is kept with both NULL (OTLP's
no-recorded-value flag says why). Exemplars with ids of the wrong length keep the id hex as sent.

Log records
-----------
time = time_unix_nano, else observed_time_unix_nano; rejected when both are 0 (or beyond int64),
or when a non-empty trace_id/span_id has the wrong length. An all-zero trace_id/span_id is the
"no trace context" value and stored as NULL. An absent body is NULL.

record_hash (metrics, logs) is blake2b-128 over the length-prefixed serialized resource, scope,
(metric name, type, unit) and the serialized point or record: a retried export hashes the same.

Speed
-----
This is the ingest hot path (≥100k spans/s on two cores). Walking upb messages from Python
costs ~0.2 µs per field access and ~0.4 µs per repeated element, which for a 15-attribute span
is more than the whole budget. So requests are re-read through *shadow* message classes: copies
of the OTLP descriptors in a private pool in which every `repeated KeyValue attributes` is a
`repeated bytes` (same wire format), and a per-request cache decodes each distinct KeyValue once —
provider, model, agent and service values repeat across spans.

Spans go one of two ways. The usual layout (fields in field-number order, 16- and 8-byte ids,
no repeated attribute key) is decoded *column-wise* for the whole request:
numpy reads each field of every span straight from the wire bytes, Arrow deduplicates the
serialized KeyValues, the distinct ones are decoded column-wise, the attributes JSON of every
span is assembled from per-KeyValue fragments by one Arrow take, and the canonical slots are
picked by precedence rank with numpy (~10 µs a span instead of ~21). Every other span — and a
request that is mostly such spans — goes through the per-span path (`_append_span_rows`), the
reference the column-wise path is tested against (tests compare both on every trace fixture and
on random and corrupted requests); it alone rejects spans, so the reasons are the same. Canonical
columns of the per-span path come from a per-attribute-name-set "plan" (an `itemgetter` over the
winning names, cached); in both, everything that can be done per column (number checks,
provider/operation mapping, fallbacks, Anthropic correction) is done on Arrow arrays at the end.
`normalise_*` also accept the raw request bytes: a receiver that passes the body skips both its
own parse and our re-serialisation (~2–3 µs a span). `bench/normalise.py` measures all this.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, filterfalse
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.errors import InvalidData

__all__ = [
    "DEFAULT_LIMITS",
    "LOG_RECORD_SCHEMA",
    "METRIC_POINT_SCHEMA",
    "SPAN_SCHEMA",
    "Limits",
    "Normalised",
    "Reject",
    "normalise_logs",
    "normalise_metrics",
    "normalise_traces",
]

# --------------------------------------------------------------------------------------------
# Arrow schemas: the warehouse tables minus received_at and ingest_seq (the writer adds them)
# --------------------------------------------------------------------------------------------

_TS = pa.timestamp("ns")
_STR = pa.string()
# Columns that are constant per resource/scope block (service, scope, resource attributes JSON)
# are dictionary-encoded: one copy of each value per request instead of one per row, which makes
# the tables ~35% smaller to build and to send from a decode worker; DuckDB stores them as VARCHAR.
_BLOCK_STR = pa.dictionary(pa.int32(), _STR)


def _schema(*fields: tuple[str, pa.DataType] | tuple[str, pa.DataType, bool]) -> pa.Schema:
    """Schema from (name, type[, nullable]) triples; NOT NULL warehouse columns say False."""
    return pa.schema([pa.field(f[0], f[1], nullable=f[2] if len(f) > 2 else True) for f in fields])


SPAN_SCHEMA = _schema(
    ("trace_id", _STR, False),
    ("span_id", _STR, False),
    ("parent_span_id", _STR),
    ("trace_state", _STR),
    ("flags", pa.uint32()),
    ("name", _STR, False),
    ("kind", _STR, False),
    ("start_time", _TS, False),
    ("end_time", _TS, False),
    ("duration_ns", pa.int64(), False),
    ("status_code", _STR, False),
    ("status_message", _STR),
    ("service_name", _BLOCK_STR),
    ("service_namespace", _BLOCK_STR),
    ("service_version", _BLOCK_STR),
    ("service_instance_id", _BLOCK_STR),
    ("host_name", _BLOCK_STR),
    ("environment", _STR),
    ("sdk_language", _BLOCK_STR),
    ("scope_name", _BLOCK_STR),
    ("scope_version", _BLOCK_STR),
    ("convention", _STR),
    ("operation", _STR),
    ("provider", _STR),
    ("request_model", _STR),
    ("response_model", _STR),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("total_tokens", pa.int64()),
    ("cache_read_tokens", pa.int64()),
    ("cache_write_tokens", pa.int64()),
    ("reasoning_tokens", pa.int64()),
    ("reported_cost_usd", pa.float64()),
    ("agent_id", _STR),
    ("agent_name", _STR),
    ("agent_version", _STR),
    ("tool_name", _STR),
    ("tool_type", _STR),
    ("tool_call_id", _STR),
    ("conversation_id", _STR),
    ("user_id", _STR),
    ("data_source_id", _STR),
    ("workflow_name", _STR),
    ("error_type", _STR),
    ("server_address", _STR),
    ("server_port", pa.int64()),
    ("attributes", _STR),
    ("resource_attributes", _BLOCK_STR),
    ("scope_attributes", _BLOCK_STR),
    ("events", _STR),
    ("links", _STR),
    ("dropped_attributes_count", pa.uint32()),
    ("dropped_events_count", pa.uint32()),
    ("dropped_links_count", pa.uint32()),
    ("schema_url", _BLOCK_STR),
    ("content_captured", pa.bool_(), False),  # 010: prompt or response content in the span
)

METRIC_POINT_SCHEMA = _schema(
    ("record_hash", _STR, False),
    ("time", _TS, False),
    ("start_time", _TS),
    ("service_name", _BLOCK_STR),
    ("service_namespace", _BLOCK_STR),
    ("environment", _BLOCK_STR),
    ("scope_name", _BLOCK_STR),
    ("scope_version", _BLOCK_STR),
    ("metric_name", _STR, False),
    ("description", _STR),
    ("unit", _STR),
    ("metric_type", _STR, False),
    ("temporality", _STR),
    ("is_monotonic", pa.bool_()),
    ("value_double", pa.float64()),
    ("value_int", pa.int64()),
    ("count", pa.uint64()),
    ("sum", pa.float64()),
    ("min", pa.float64()),
    ("max", pa.float64()),
    ("bucket_counts", pa.list_(pa.uint64())),
    ("explicit_bounds", pa.list_(pa.float64())),
    ("exponential", _STR),
    ("quantiles", _STR),
    ("exemplars", _STR),
    ("flags", pa.uint32()),
    ("attributes", _STR),
    ("resource_attributes", _BLOCK_STR),
    ("scope_attributes", _BLOCK_STR),
)

LOG_RECORD_SCHEMA = _schema(
    ("record_hash", _STR, False),
    ("time", _TS, False),
    ("observed_time", _TS),
    ("service_name", _BLOCK_STR),
    ("service_namespace", _BLOCK_STR),
    ("environment", _BLOCK_STR),
    ("scope_name", _BLOCK_STR),
    ("scope_version", _BLOCK_STR),
    ("severity_number", pa.int32()),
    ("severity_text", _STR),
    ("event_name", _STR),
    ("body", _STR),
    ("trace_id", _STR),
    ("span_id", _STR),
    ("flags", pa.uint32()),
    ("attributes", _STR),
    ("resource_attributes", _BLOCK_STR),
    ("scope_attributes", _BLOCK_STR),
    ("dropped_attributes_count", pa.uint32()),
)


# --------------------------------------------------------------------------------------------
# Limits: what one item may carry (see "Limits" in the module docstring)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """How much one span, event, link, log record, data point, resource or scope may carry.

    Defaults follow the OpenTelemetry SDK's span limits where it has them (128 attributes, events
    and links); the SDK leaves value length unlimited, which a server receiving from strangers
    cannot, so values are cut at 64 KiB. A frozen dataclass so it pickles to the decode workers.
    """

    max_attributes: int = 128  # attributes per item; the rest dropped and counted
    max_value_length: int = 64 * 1024  # characters of a string, bytes of bytes, elements of a list or map
    max_depth: int = 32  # nesting of arrays and maps inside one value
    max_events: int = 128  # events per span
    max_links: int = 128  # links per span


DEFAULT_LIMITS = Limits()
TRUNCATED = "muster.truncated"  # attribute added to an item: how many of its values were cut
DROPPED = "muster.dropped_attributes"  # on items with no dropped_attributes_count column
_UINT32_MAX = (1 << 32) - 1


def _clamp32(n: int) -> int:
    """A count for a uint32 column: a sender's count plus ours must not overflow it."""
    return n if n <= _UINT32_MAX else _UINT32_MAX


class _Limiter:
    """The limits of one request, and a running count of the values they cut."""

    __slots__ = ("cuts", "max_depth", "max_length")

    def __init__(self, limits: Limits) -> None:
        self.max_length = limits.max_value_length
        self.max_depth = limits.max_depth
        self.cuts = 0


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reject:
    """Items of one service refused for one reason."""

    service_name: str | None
    reason: str
    count: int


@dataclass(frozen=True)
class Normalised:
    """The accepted items as a table, and what was refused and why."""

    table: pa.Table
    rejects: tuple[Reject, ...] = ()
    noun: str = "items"  # "spans", "data points", "log records": for error_message

    @property
    def rejected(self) -> int:
        return sum(r.count for r in self.rejects)

    def __reduce__(self) -> tuple[Any, ...]:
        # Decode workers return results pickled. Pickling a Table goes buffer by buffer through
        # Python (~2 ms for 1,000 spans, on both sides); one Arrow IPC stream is written by C++
        # and read back without copying, at under half the CPU.
        return (_from_ipc, (_to_ipc(self.table), self.rejects, self.noun))

    @property
    def error_message(self) -> str:
        """Empty when nothing was rejected, else e.g. "2 of 10 spans rejected: <reason> (2)"."""
        if not self.rejects:
            return ""
        by_reason: Counter[str] = Counter()
        for r in self.rejects:
            by_reason[r.reason] += r.count
        reasons = "; ".join(
            f"{reason} ({n})" for reason, n in sorted(by_reason.items(), key=lambda rn: (-rn[1], rn[0]))
        )
        rejected = self.rejected
        return f"{rejected} of {self.table.num_rows + rejected} {self.noun} rejected: {reasons}"


def _to_ipc(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return sink.getvalue()


def _from_ipc(data: Any, rejects: tuple[Reject, ...], noun: str) -> Normalised:
    return Normalised(pa.ipc.open_stream(data).read_all(), rejects, noun)


def _rejects(counts: Counter[tuple[str | None, str]]) -> tuple[Reject, ...]:
    return tuple(
        Reject(service, reason, n)
        for (service, reason), n in sorted(counts.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
    )


# --------------------------------------------------------------------------------------------
# Shadow message classes: OTLP with attributes as raw serialized KeyValues (see "Speed" above)
# --------------------------------------------------------------------------------------------

_KEYVALUE = ".opentelemetry.proto.common.v1.KeyValue"
# Message-typed fields read as bytes, decoded lazily by us: (message, field). Nested AnyValues
# (array and kvlist elements) are bytes too, so that nesting is unwrapped one level at a time
# under our own depth guard, never by the parser's recursion (whose limit would fail the value).
_RAW_FIELDS = {
    ("Span", "status"),
    ("LogRecord", "body"),
    ("ArrayValue", "values"),
    ("KeyValueList", "values"),
}


def _shadow_file(module: Any, raw_fields: set[tuple[str, str]]) -> descriptor_pb2.FileDescriptorProto:
    """The module's .proto descriptor with attribute lists and `raw_fields` turned into bytes."""
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)

    def patch(message: descriptor_pb2.DescriptorProto) -> None:
        for field in message.field:
            is_attributes = field.name == "attributes" and field.type_name == _KEYVALUE
            if is_attributes or (message.name, field.name) in raw_fields:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                field.ClearField("type_name")
        for nested in message.nested_type:
            patch(nested)

    for message in fdp.message_type:
        patch(message)
    return fdp


def _shadow_classes(raw_fields: set[tuple[str, str]], *names: str) -> dict[str, type[Message]]:
    # A private pool lets the shadow files keep the real package names without clashing.
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2, trace_pb2, logs_pb2):
        pool.Add(_shadow_file(module, raw_fields))
    return {
        name.split(".")[-1]: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"opentelemetry.proto.{name}")
        )
        for name in names
    }


_SHADOW = _shadow_classes(
    _RAW_FIELDS,
    "trace.v1.TracesData",
    "trace.v1.Span",
    "trace.v1.Span.Event",
    "trace.v1.Span.Link",
    "logs.v1.LogsData",
    "common.v1.KeyValue",
    "common.v1.AnyValue",
)
_ShadowTracesData = _SHADOW["TracesData"]
_ShadowSpan = _SHADOW["Span"]
_ShadowEvent = _SHADOW["Event"]
_ShadowLink = _SHADOW["Link"]
_ShadowLogsData = _SHADOW["LogsData"]
_ShadowKeyValue = _SHADOW["KeyValue"]
_ShadowAnyValue = _SHADOW["AnyValue"]
# Traces with every span left serialized, for the column-wise decoder (see `_vector_spans`).
_OpaqueSpansTracesData = _shadow_classes(_RAW_FIELDS | {("ScopeSpans", "spans")}, "trace.v1.TracesData")[
    "TracesData"
]


def _shadow(cls: type[Message], request: Message | bytes | bytearray | memoryview) -> Any:
    """The request re-read through a shadow class; raw bytes are parsed directly."""
    raw = (
        bytes(request) if isinstance(request, bytes | bytearray | memoryview) else request.SerializeToString()
    )
    try:
        return cls.FromString(raw)
    except DecodeError as exc:
        raise InvalidData(f"body is not a valid OTLP protobuf export request: {exc}") from exc


# --------------------------------------------------------------------------------------------
# AnyValue → JSON-ready Python values
# --------------------------------------------------------------------------------------------

_DEPTH_MARKER = "<nesting depth limit exceeded>"
_ABSENT = object()  # dict key that is never an attribute name; maps to None for plan getters


def _nonfinite(x: float) -> str:
    if x != x:
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def _any_value(v: common_pb2.AnyValue, lim: _Limiter, depth: int = 0) -> Any:
    """A real AnyValue as a JSON-ready value (the slow, general path), cut to the limits."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        text = v.string_value
        if len(text) > lim.max_length:
            lim.cuts += 1
            return text[: lim.max_length]
        return text
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        x = v.double_value
        return x if x - x == 0.0 else _nonfinite(x)
    if kind == "bool_value":
        return v.bool_value
    if kind is None:
        return None
    if kind == "bytes_value":
        data = v.bytes_value
        if len(data) > lim.max_length:
            lim.cuts += 1
            data = data[: lim.max_length]
        return base64.b64encode(data).decode("ascii")
    if kind == "string_value_strindex":
        return {"string_value_strindex": v.string_value_strindex}
    if depth >= lim.max_depth:
        lim.cuts += 1
        return _DEPTH_MARKER
    if kind == "array_value":
        return [_any_value(x, lim, depth + 1) for x in _elements(v.array_value.values, lim)]
    return {kv.key: _any_value(kv.value, lim, depth + 1) for kv in _elements(v.kvlist_value.values, lim)}


def _elements(values: Any, lim: _Limiter) -> Any:
    """The elements of an array or map value, at most max_length of them."""
    if len(values) > lim.max_length:
        lim.cuts += 1
        return values[: lim.max_length]
    return values


def _attribute_dict(kvs: Any, limits: Limits, dropped: int = 0) -> dict[str, Any]:
    """Real KeyValues as a dict (a repeated key keeps its last value), limits applied and recorded.

    `dropped`: attributes the sender already dropped, recorded with ours.
    """
    lim = _Limiter(limits)
    n = len(kvs)
    kept = kvs[: limits.max_attributes] if n > limits.max_attributes else kvs
    attrs = {kv.key: _any_value(kv.value, lim) for kv in kept}
    dropped += max(n - limits.max_attributes, 0)
    if dropped:
        attrs[DROPPED] = dropped
    if lim.cuts:
        attrs[TRUNCATED] = lim.cuts
    return attrs


class _UndecodableAttribute(ValueError):
    """A serialized KeyValue that is not valid protobuf (e.g. invalid UTF-8 in a string)."""


_unpack_double = struct.Struct("<d").unpack_from


def _varint(b: bytes, i: int) -> tuple[int, int]:
    """The varint at b[i:] and the index after it (IndexError when malformed)."""
    result = shift = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if c < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")


def _keyvalue_slow(raw: bytes, lim: _Limiter, depth: int = 0) -> tuple[str, Any]:
    """A serialized KeyValue of any shape, nested values unwrapped under the depth guard."""
    try:
        kv = _ShadowKeyValue.FromString(raw)
    except DecodeError as exc:
        raise _UndecodableAttribute(str(exc)) from exc
    return kv.key, _shadow_any_value(kv.value, lim, depth)


def _any_value_bytes(raw: bytes, lim: _Limiter, depth: int = 0) -> Any:
    """A serialized AnyValue (a log body, an array element) as a JSON-ready value."""
    try:
        value = _ShadowAnyValue.FromString(raw)
    except DecodeError as exc:
        raise _UndecodableAttribute(str(exc)) from exc
    return _shadow_any_value(value, lim, depth)


def _shadow_any_value(v: Any, lim: _Limiter, depth: int) -> Any:
    """A shadow AnyValue (nested elements still serialized) as a JSON-ready value."""
    kind = v.WhichOneof("value")
    if kind == "array_value" or kind == "kvlist_value":
        if depth >= lim.max_depth:
            lim.cuts += 1
            return _DEPTH_MARKER
        if kind == "array_value":
            return [_any_value_bytes(x, lim, depth + 1) for x in _elements(v.array_value.values, lim)]
        return dict(_keyvalue_slow(x, lim, depth + 1) for x in _elements(v.kvlist_value.values, lim))
    return _any_value(v, lim, depth)


def _keyvalue(raw: bytes, lim: _Limiter) -> tuple[str, Any]:
    """A serialized KeyValue as (key, value).

    Reads the layout every protobuf encoder produces for a scalar attribute — key (field 1),
    then value (field 2) holding one string, int, double or bool — straight from the bytes,
    with the one-byte lengths of short values special-cased; anything else (arrays, maps,
    bytes, unusual layouts, malformed input) goes through `_keyvalue_slow`.
    """
    try:
        if raw[0] == 0x0A and raw[1] < 0x80:
            p = raw[1] + 2
            key = raw[2:p].decode()
            if raw[p] == 0x12:
                n = len(raw)
                size = raw[p + 1]
                q = p + 2
                if size >= 0x80:
                    size, q = _varint(raw, p + 1)
                if q + size == n:
                    tag = raw[q]
                    if tag == 0x0A:  # string_value
                        size = raw[q + 1]
                        if size < 0x80:
                            # (values over the limit, even one below 128 bytes, are cut by the slow path)
                            if q + 2 + size == n and size <= lim.max_length:
                                return key, raw[q + 2 :].decode()
                        else:
                            size, r = _varint(raw, q + 1)
                            # (a string of at most max_length bytes has at most as many characters)
                            if r + size == n and size <= lim.max_length:
                                return key, raw[r:].decode()
                    elif tag == 0x18:  # int_value: two's complement in a 64-bit varint
                        if size == 2 and raw[q + 1] < 0x80:
                            return key, raw[q + 1]
                        if size == 3 and raw[q + 2] < 0x80:
                            return key, (raw[q + 1] & 0x7F) | (raw[q + 2] << 7)
                        x, r = _varint(raw, q + 1)
                        if r == n and not x >> 64:
                            return key, x - (1 << 64) if x >> 63 else x
                    elif tag == 0x21 and size == 9:  # double_value
                        x = _unpack_double(raw, q + 1)[0]
                        return key, x if x - x == 0.0 else _nonfinite(x)
                    elif tag == 0x10 and size == 2 and raw[q + 1] < 2:  # bool_value
                        return key, raw[q + 1] == 1
    except (IndexError, UnicodeDecodeError):
        pass
    return _keyvalue_slow(raw, lim)


_UNDECODABLE = object()  # key of the pair cached for a KeyValue that cannot be decoded


def _keyvalue_or_marker(raw: bytes, lim: _Limiter) -> tuple[Any, Any]:
    try:
        return _keyvalue(raw, lim)
    except _UndecodableAttribute:
        return _UNDECODABLE, None


class _DecodedAttributes(dict[bytes, tuple[Any, Any]]):
    """Serialized KeyValue → (key, value), each distinct one decoded once. One per request.

    Values are cut to the request's limits; `cut` maps each KeyValue whose value was cut to the
    number of cuts, so the items carrying it can record them (empty in the usual request).
    """

    __slots__ = ("cut", "lim", "limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__()
        self.limits = limits
        self.lim = _Limiter(limits)
        self.cut: dict[bytes, int] = {}

    def _decode(self, raw: bytes) -> tuple[Any, Any]:
        lim = self.lim
        before = lim.cuts
        pair = _keyvalue_or_marker(raw, lim)
        if lim.cuts != before:
            self.cut[raw] = lim.cuts - before
        return pair

    def __missing__(self, raw: bytes) -> tuple[Any, Any]:
        pair = self[raw] = self._decode(raw)
        return pair

    def prime(self, raw_lists: Iterable[Iterable[bytes]]) -> None:
        """Decode every KeyValue in raw_lists not seen yet, so later lookups never miss.

        Cheaper than decoding on a miss during the row loop: the dict finds the new ones in C
        and there is no per-miss `__missing__` dispatch.
        """
        lim, cut, undecodable = self.lim, self.cut, (_UNDECODABLE, None)
        before = lim.cuts
        for raw in filterfalse(self.__contains__, chain.from_iterable(raw_lists)):
            try:  # storing it makes a repeat later in the chain a hit
                self[raw] = _keyvalue(raw, lim)
            except _UndecodableAttribute:
                self[raw] = undecodable
            if lim.cuts != before:
                cut[raw], before = lim.cuts - before, lim.cuts

    def cuts(self, raws: Iterable[bytes]) -> int:
        """How many values of these KeyValues were cut (0 at once when none of the request's were)."""
        cut = self.cut
        return sum(cut.get(raw, 0) for raw in raws) if cut else 0

    def attributes(
        self, raws: Any, dropped_key: str | None = None, sender_dropped: int = 0, other_cuts: int = 0
    ) -> tuple[dict[str, Any], int]:
        """The KeyValues as a dict (last duplicate wins) and how many were dropped over the limit.

        Cut values are recorded as `muster.truncated`; with `dropped_key`, dropped attributes
        (ours plus `sender_dropped`) are recorded under it too, for items that have no dropped
        count column of their own; `other_cuts` (e.g. a log body's) count with the attributes'.
        A sender's own `muster.truncated` is replaced when there are cuts. _UndecodableAttribute
        if one is bad.
        """
        n, most = len(raws), self.limits.max_attributes
        if n > most:
            raws = raws[:most]
        attrs = dict(map(self.__getitem__, raws))
        if _UNDECODABLE in attrs:
            raise _UndecodableAttribute("attribute cannot be decoded")
        cuts = self.cuts(raws) + other_cuts
        if cuts:
            attrs[TRUNCATED] = cuts
        dropped = max(n - most, 0)
        if dropped_key and (dropped or sender_dropped):
            attrs[dropped_key] = dropped + sender_dropped
        return attrs, dropped


_dumps = orjson.dumps


def _json(value: Any) -> bytes:
    """JSON text (as UTF-8 bytes, which Arrow takes for string columns)."""
    return _dumps(value)


# --------------------------------------------------------------------------------------------
# Resource and scope: computed once per block and shared by every row of it
# --------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A value for a VARCHAR column: strings as they are, numbers and booleans as text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def _first(attrs: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in attrs:
            return _text(attrs[name])
    return None


_ENVIRONMENT = ("deployment.environment.name", "deployment.environment", "gen_ai.environment")
_NAMESPACE = ("service.namespace", "openinference.project.name")


@dataclass(frozen=True)
class _Resource:
    service_name: str | None
    service_namespace: str | None
    service_version: str | None
    service_instance_id: str | None
    host_name: str | None
    environment: str | None
    sdk_language: str | None
    main_agent_id: str | None
    main_agent_name: str | None
    application_name: str | None
    is_openlit: bool
    attributes_json: bytes
    serialized: bytes  # for record hashes
    error: str | None = None  # set when the resource's own attributes cannot be decoded


def _resource(attrs: dict[str, Any], serialized: bytes, error: str | None = None) -> _Resource:
    get = attrs.get
    return _Resource(
        service_name=_text(get("service.name")),
        service_namespace=_first(attrs, _NAMESPACE),
        service_version=_text(get("service.version")),
        service_instance_id=_text(get("service.instance.id")),
        host_name=_text(get("host.name")),
        environment=_first(attrs, _ENVIRONMENT),
        sdk_language=_text(get("telemetry.sdk.language")),
        main_agent_id=_text(get("gen_ai.main_agent.id")),
        main_agent_name=_text(get("gen_ai.main_agent.name")),
        application_name=_text(get("gen_ai.application_name")),
        is_openlit=get("telemetry.sdk.name") == "openlit",
        attributes_json=_json(attrs),
        serialized=serialized,
        error=error,
    )


def _shadow_resource(resource: Any, kv: _DecodedAttributes) -> _Resource:
    try:
        attrs, _ = kv.attributes(resource.attributes, DROPPED, resource.dropped_attributes_count)
    except _UndecodableAttribute:
        return _resource({}, b"", "resource attribute cannot be decoded (invalid UTF-8?)")
    return _resource(attrs, resource.SerializeToString(deterministic=True))


@dataclass(frozen=True)
class _Scope:
    name: str | None
    version: str | None
    attributes_json: bytes
    serialized: bytes
    error: str | None = None


def _shadow_scope(scope: Any, kv: _DecodedAttributes) -> _Scope:
    try:
        attrs, _ = kv.attributes(scope.attributes, DROPPED, scope.dropped_attributes_count)
    except _UndecodableAttribute:
        return _Scope(None, None, b"{}", b"", "scope attribute cannot be decoded (invalid UTF-8?)")
    return _Scope(
        scope.name or None, scope.version or None, _json(attrs), scope.SerializeToString(deterministic=True)
    )


def _real_scope(scope: common_pb2.InstrumentationScope, limits: Limits) -> _Scope:
    return _Scope(
        scope.name or None,
        scope.version or None,
        _json(_attribute_dict(scope.attributes, limits, scope.dropped_attributes_count)),
        scope.SerializeToString(deterministic=True),
    )


# --------------------------------------------------------------------------------------------
# GenAI conventions: where each canonical column comes from
# --------------------------------------------------------------------------------------------

_TL_ASSOC = "traceloop.association.properties."

# Slot name → attribute names, highest precedence first. Slots that are not columns
# ("tl_*", "app_name", ...) feed conditional fallbacks resolved per column after the loop.
_SLOTS: dict[str, tuple[str, ...]] = {
    "operation": (
        "gen_ai.operation.name",
        "openinference.span.kind",
        "llm.request.type",
        "traceloop.span.kind",
    ),
    "provider": (
        "gen_ai.provider.name",
        "gen_ai.system",
        "llm.provider",
        "llm.system",
        "gen_ai.request.provider",
    ),
    "request_model": (
        "gen_ai.request.model",
        "llm.request.model_name",
        "llm.model_name",
        "embedding.model_name",
    ),
    "response_model": ("gen_ai.response.model", "llm.response.model_name"),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "total_tokens": ("llm.token_count.total", "llm.usage.total_tokens", "gen_ai.usage.total_tokens"),
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.prompt_tokens_details.cached_tokens",
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "llm.token_count.prompt_details.cache_write",
        "gen_ai.usage.cache_creation_input_tokens",
        "gen_ai.usage.prompt_tokens_details.cache_creation_tokens",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "llm.token_count.completion_details.reasoning",
        "llm.usage.reasoning_tokens",
        "gen_ai.usage.reasoning_tokens",
    ),
    "cost": ("llm.cost.total", "gen_ai.usage.cost"),
    "cost_prompt": ("llm.cost.prompt",),
    "cost_completion": ("llm.cost.completion",),
    "agent_id": ("gen_ai.agent.id",),
    "agent_name": ("gen_ai.agent.name", "agent.name"),
    "agent_version": ("gen_ai.agent.version",),
    "tool_name": ("gen_ai.tool.name", "tool.name"),
    "tool_type": ("gen_ai.tool.type",),
    "tool_call_id": ("gen_ai.tool.call.id", "tool.id", "tool_call.id"),
    "conversation_id": (
        "gen_ai.conversation.id",
        "session.id",
        _TL_ASSOC + "session_id",
        _TL_ASSOC + "conversation_id",
        _TL_ASSOC + "thread_id",
        _TL_ASSOC + "chat_id",
    ),
    "user_id": ("user.id", _TL_ASSOC + "user_id", _TL_ASSOC + "userId"),
    "data_source_id": ("gen_ai.data_source.id",),
    "workflow_name": ("gen_ai.workflow.name", "traceloop.workflow.name"),
    "error_type": ("error.type",),
    "server_address": ("server.address",),
    "server_port": ("server.port",),
    "tl_span_kind": ("traceloop.span.kind",),
    "tl_entity_name": ("traceloop.entity.name",),
    "tl_entity_version": ("traceloop.entity.version",),
    "tl_workflow_name": ("traceloop.workflow.name",),
    "app_name": ("gen_ai.application_name",),
    "span_environment": ("gen_ai.environment",),
}
_SLOT_NAMES = tuple(_SLOTS)
_SLOT = {name: i for i, name in enumerate(_SLOT_NAMES)}

_OPENINFERENCE = frozenset(
    {
        "openinference.span.kind",
        "llm.model_name",
        "llm.provider",
        "llm.system",
        "llm.request.model_name",
        "llm.response.model_name",
        "llm.token_count.prompt",
        "llm.token_count.completion",
        "llm.token_count.total",
        "llm.token_count.prompt_details.cache_read",
        "llm.token_count.prompt_details.cache_write",
        "llm.token_count.completion_details.reasoning",
        "llm.cost.total",
        "llm.cost.prompt",
        "llm.cost.completion",
        "llm.invocation_parameters",
        "embedding.model_name",
    }
)
_OPENLIT = frozenset(
    {
        "gen_ai.usage.cost",
        "gen_ai.application_name",
        "gen_ai.environment",
        "gen_ai.request.provider",
        "gen_ai.endpoint",
        "gen_ai.sdk.version",
        "gen_ai.usage.prompt_tokens_details.cached_tokens",
        "gen_ai.usage.prompt_tokens_details.cache_creation_tokens",
    }
)
_OPENLLMETRY = frozenset(
    {
        "traceloop.span.kind",
        "traceloop.entity.name",
        "traceloop.entity.version",
        "traceloop.entity.path",
        "traceloop.entity.input",
        "traceloop.entity.output",
        "traceloop.workflow.name",
        "llm.request.type",
        "llm.usage.total_tokens",
        "llm.usage.reasoning_tokens",
        "llm.is_streaming",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        *(
            _TL_ASSOC + k
            for k in ("session_id", "conversation_id", "thread_id", "chat_id", "user_id", "userId")
        ),
    }
)
_OTEL_CURRENT = frozenset(
    {
        "gen_ai.provider.name",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.conversation.id",
        "gen_ai.agent.id",
        "gen_ai.agent.name",
        "gen_ai.agent.version",
        "gen_ai.agent.description",
        "gen_ai.tool.name",
        "gen_ai.tool.type",
        "gen_ai.tool.call.id",
        "gen_ai.data_source.id",
        "gen_ai.workflow.name",
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.output.type",
    }
)
_OTEL_LEGACY = frozenset(
    {"gen_ai.system", "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens", "gen_ai.prompt"}
)
_OTEL_EITHER = frozenset(
    {
        "gen_ai.operation.name",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.response.finish_reasons",
        "gen_ai.request.temperature",
        "gen_ai.request.max_tokens",
        "gen_ai.request.top_p",
        "gen_ai.usage.total_tokens",
        "gen_ai.usage.reasoning_tokens",
    }
)
# Every attribute name the plans look at: a span's plan depends only on which of these it has.
_KNOWN = frozenset(
    {name for names in _SLOTS.values() for name in names}
    | _OPENINFERENCE
    | _OPENLIT
    | _OPENLLMETRY
    | _OTEL_CURRENT
    | _OTEL_LEGACY
    | _OTEL_EITHER
)


def _convention(names: frozenset[str]) -> str | None:
    """Which convention a span's GenAI attributes came from, judged by their names."""
    if not names.isdisjoint(_OPENINFERENCE):
        return "openinference"
    if not names.isdisjoint(_OPENLIT):
        return "openlit"
    if not names.isdisjoint(_OPENLLMETRY):
        return "openllmetry"
    if not names.isdisjoint(_OTEL_CURRENT):
        return "otel_genai"
    if not names.isdisjoint(_OTEL_LEGACY):
        return "otel_genai_legacy"
    if not names.isdisjoint(_OTEL_EITHER):
        return "otel_genai"
    return None


# A plan maps the set of known names a span carries to (getter of each slot's winning attribute,
# convention). Few distinct sets occur (one per instrumentation and span type), so plans are
# cached for the life of the process; the cap only guards against a sender inventing sets.
_Plan = tuple[Callable[[dict[Any, Any]], tuple[Any, ...]], str | None]
_PLANS: dict[frozenset[str], _Plan] = {}
_MAX_PLANS = 4096


_NO_SLOTS = (None,) * len(_SLOTS)


def _no_slots(attrs: dict[Any, Any]) -> tuple[Any, ...]:
    return _NO_SLOTS


def _plan(names: frozenset[str]) -> _Plan:
    winners = [next((n for n in sources if n in names), _ABSENT) for sources in _SLOTS.values()]
    getter = _no_slots if all(w is _ABSENT for w in winners) else itemgetter(*winners)
    plan = (getter, _convention(names))
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[names] = plan
    return plan


_OPERATION_ALIASES = {
    # OpenInference span kinds
    "llm": "chat",
    "embedding": "embeddings",
    "retriever": "retrieval",
    "tool": "execute_tool",
    "agent": "invoke_agent",
    "chain": "invoke_workflow",
    "reranker": "rerank",
    "guardrail": "guardrail",
    "evaluator": "evaluate",
    "prompt": "prompt",
    "unknown": None,
    # Traceloop llm.request.type and traceloop.span.kind
    "completion": "text_completion",
    "workflow": "invoke_workflow",
    "task": "task",
    # other spellings seen in gen_ai.operation.name (OpenLIT, older instrumentations)
    "embed": "embeddings",
    "retrieve": "retrieval",
    "tools": "execute_tool",
}


def _operation(value: str) -> str | None:
    lowered = value.strip().lower()
    return _OPERATION_ALIASES.get(lowered, lowered or None)


_PROVIDER_ALIASES = {
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "amazon_bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "azure_ai_inference": "azure.ai.inference",
    "google": "gcp.gen_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertex-ai": "gcp.vertex_ai",
    "google_vertexai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google.ai.studio": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "x.ai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
    "ibm": "ibm.watsonx.ai",
    "ibm.watson.ai": "ibm.watsonx.ai",
    "ibm_watsonx": "ibm.watsonx.ai",
    "moonshot": "moonshot_ai",
    "moonshotai": "moonshot_ai",
}


def _provider(value: str) -> str | None:
    lowered = value.strip().lower()
    if lowered.startswith("az.ai."):
        return "azure.ai." + lowered[6:]
    return _PROVIDER_ALIASES.get(lowered, lowered or None)


# --------------------------------------------------------------------------------------------
# Column helpers: per-column work done once on Arrow arrays instead of once per span
# --------------------------------------------------------------------------------------------

_NONE_TYPE = type(None)
_JUST_NONE = {_NONE_TYPE}
# Counts beyond 2^53 are not token counts but garbage; capping them also keeps sums of a few
# counts (totals, the Anthropic correction) far from int64 overflow.
_MAX_COUNT = 1 << 53
_INT_TYPES = {int, _NONE_TYPE}
_FLOAT_TYPES = {float, int, _NONE_TYPE}
_INT64_MAX = (1 << 63) - 1


def _text_array(values: tuple[Any, ...] | list[Any] | pa.Array) -> pa.Array:
    """A string column; values that are not strings go through `_text`."""
    if isinstance(values, pa.Array):  # built column-wise, `_text` already applied
        return values
    try:
        return pa.array(values, _STR)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_text(v) for v in values], _STR)


def _count(value: Any) -> int | None:
    """A count from an int, integral double or numeric string; None when not a plausible count."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                return None
    if isinstance(value, float):
        if not value.is_integer():  # also False for NaN and ±inf
            return None
        value = int(value)
    if isinstance(value, int) and 0 <= value <= _MAX_COUNT:
        return value
    return None


def _count_array(values: tuple[Any, ...] | list[Any] | pa.Array) -> pa.Array:
    if isinstance(values, pa.Array):  # built column-wise, `_count` already applied
        return values
    types = set(map(type, values))
    if types == _JUST_NONE:
        return pa.nulls(len(values), pa.int64())
    if types <= _INT_TYPES:
        try:
            arr = pa.array(values, pa.int64())
        except OverflowError:  # beyond int64: the per-value path turns it into NULL
            return pa.array([_count(v) for v in values], pa.int64())
        low, high = pc.min_max(arr).values()
        if low.as_py() < 0 or high.as_py() > _MAX_COUNT:
            arr = pc.if_else(pc.or_(pc.less(arr, _I64_0), pc.greater(arr, _I64_MAX_COUNT)), _NULL_I64, arr)
        return arr
    return pa.array([_count(v) for v in values], pa.int64())


def _amount(value: Any) -> float | None:
    """A cost from a number or numeric string; None when negative, non-finite or not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and value >= 0 and value - value == 0:
        return float(value)
    return None


def _amount_array(values: tuple[Any, ...] | list[Any] | pa.Array) -> pa.Array:
    if isinstance(values, pa.Array):  # built column-wise, `_amount` already applied
        return values
    types = set(map(type, values))
    if types == _JUST_NONE:
        return pa.nulls(len(values), pa.float64())
    if types <= _FLOAT_TYPES:
        try:
            arr = pa.array(values, pa.float64())
        except (pa.ArrowInvalid, OverflowError):  # an int a double cannot hold exactly: per value
            return pa.array([_amount(v) for v in values], pa.float64())
        if pc.min(arr).as_py() < 0:
            arr = pc.if_else(pc.less(arr, _F64_0), _NULL_F64, arr)
        return arr
    return pa.array([_amount(v) for v in values], pa.float64())


def _mapped(arr: pa.Array, fn: Callable[[str], str | None]) -> pa.Array:
    """fn applied to each distinct value of a string array (few distinct, many rows)."""
    if arr.null_count == len(arr):
        return arr
    encoded = pc.dictionary_encode(arr)
    mapped = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], _STR)
    return pc.take(mapped, encoded.indices)


def _constant(blocks: list[tuple[int, Any]], value_of: Callable[[Any], Any], type_: pa.DataType) -> pa.Array:
    """A column of per-block constants: value_of(block) repeated for each row of the block."""
    parts = []
    for n, block in blocks:
        value = value_of(block)
        parts.append(pa.nulls(n, type_) if value is None else pa.repeat(pa.scalar(value, type_), n))
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)


def _per_block(blocks: list[tuple[int, Any]], value_of: Callable[[Any], str | bytes | None]) -> pa.Array:
    """A dictionary-encoded text column of per-block constants: each distinct value stored once."""
    codes: dict[Any, int] = {}
    parts = []
    for n, block in blocks:
        value = value_of(block)
        if value is None:
            parts.append(pa.nulls(n, pa.int32()))
        else:
            parts.append(pa.repeat(pa.scalar(codes.setdefault(value, len(codes)), pa.int32()), n))
    indices = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(codes), _STR))


def _coalesce(first: pa.Array, *rest: pa.Array) -> pa.Array:
    """The first non-null value per row; skips the work when the first column is complete."""
    return first if first.null_count == 0 else pc.coalesce(first, *rest)


def _null_unless(cond: pa.Array, values: pa.Array) -> pa.Array:
    return pc.if_else(pc.fill_null(cond, _FALSE), values, pa.nulls(1, values.type)[0])


# Typed Arrow scalars for compute calls: an untyped Python value makes pyarrow infer a type,
# which costs ~0.1 ms per call (it tries optional imports each time).
_I32_0 = pa.scalar(0, pa.int32())
_I32_6 = pa.scalar(6, pa.int32())
_I64_0 = pa.scalar(0, pa.int64())
_F64_0 = pa.scalar(0.0, pa.float64())
_NULL_I64 = pa.scalar(None, pa.int64())
_I64_MAX_COUNT = pa.scalar(_MAX_COUNT, pa.int64())
_NULL_F64 = pa.scalar(None, pa.float64())
_FALSE = pa.scalar(False, pa.bool_())
_S_AGENT = pa.scalar("agent", _STR)
_S_TOOL = pa.scalar("tool", _STR)
_S_OPENLIT = pa.scalar("openlit", _STR)
_S_ANTHROPIC = pa.scalar("anthropic", _STR)
_OTEL_CONVENTIONS = pa.array(["otel_genai", "otel_genai_legacy"], _STR)


def _table(schema: pa.Schema, columns: dict[str, pa.Array]) -> pa.Table:
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


# --------------------------------------------------------------------------------------------
# Traces
# --------------------------------------------------------------------------------------------

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_KIND_NAMES = pa.array(["unspecified", "internal", "server", "client", "producer", "consumer"], _STR)
_STATUS_NAMES = {0: "unset", 1: "ok", 2: "error"}


def _id_problem(trace_id: bytes, span_id: bytes, parent_span_id: bytes) -> str:
    """Why a span's ids are invalid (called only once they are known to be)."""
    if len(trace_id) != 16:
        return f"trace_id must be 16 bytes, got {len(trace_id)}"
    if trace_id == _ZERO_TRACE:
        return "trace_id must not be all zeros"
    if len(span_id) != 8:
        return f"span_id must be 8 bytes, got {len(span_id)}"
    if span_id == _ZERO_SPAN:
        return "span_id must not be all zeros"
    return f"parent_span_id must be empty or 8 bytes, got {len(parent_span_id)}"


def _time_problem(start: int, end: int) -> str:
    if start == 0:
        return "start_time_unix_nano must be set"
    if end == 0:
        return "end_time_unix_nano must be set"
    if end < start:
        return "end_time_unix_nano is before start_time_unix_nano"
    return "timestamp is beyond the year 2262 (int64 nanoseconds)"


class _DecodedStatuses(dict[bytes, tuple[str, str | None]]):
    """Serialized Status → (status_code text, message or None). One per request."""

    __slots__ = ()

    def __missing__(self, raw: bytes) -> tuple[str, str | None]:
        try:
            status = trace_pb2.Status.FromString(raw)
        except DecodeError as exc:
            raise _UndecodableAttribute(str(exc)) from exc
        pair = self[raw] = (_STATUS_NAMES.get(status.code, "unset"), status.message or None)
        return pair


# Whether a span carries prompt or response content: an attribute with one of these keys, in any
# convention — current (gen_ai.input.messages, gen_ai.output.messages, gen_ai.system_instructions),
# older (gen_ai.prompt, gen_ai.completion and their indexed forms; not gen_ai.prompt.name or
# .version, which name a template), OpenInference (llm.input_messages[.*], llm.output_messages[.*],
# input.value, output.value) and Traceloop (traceloop.entity.input, .output) — on the span or on one
# of its events, or an event named as content (gen_ai.content.prompt, gen_ai.content.completion,
# gen_ai.<role>.message, gen_ai.choice). Decided here, where each key is decoded anyway, so that
# the analytics never read the attributes' text.
_CONTENT_KEY = re.compile(
    r"gen_ai\.(input|output)\.messages|gen_ai\.system_instructions|gen_ai\.(prompt|completion)(\.[0-9].*)?"
    r"|llm\.(input|output)_messages(\..*)?|(input|output)\.value|traceloop\.entity\.(input|output)",
    re.DOTALL,
)
_CONTENT_EVENT = re.compile(r"gen_ai\.content\.(prompt|completion)|gen_ai\.[a-z_]+\.message|gen_ai\.choice")


@lru_cache(maxsize=8192)  # a request has a few dozen distinct keys; hostile ones only evict
def _content_key(name: str) -> bool:
    return _CONTENT_KEY.fullmatch(name) is not None


def _captures_content(attrs: Iterable[Any]) -> bool:
    """Whether any of these attribute keys holds content (non-text keys, e.g. markers, never do)."""
    return any(_content_key(name) for name in attrs if type(name) is str)


def _events_json(events: Any, kv: _DecodedAttributes, want_exception: bool) -> tuple[bytes, Any, bool]:
    """Span events as a JSON array, the first exception event's exception.type if wanted, and
    whether an event carries content."""
    out = []
    exception_type = None
    content = False
    for e in events:
        attrs, dropped = kv.attributes(e.attributes)
        out.append(
            {
                "time_unix_nano": e.time_unix_nano,
                "name": e.name,
                "attributes": attrs,
                "dropped_attributes_count": _clamp32(e.dropped_attributes_count + dropped),
            }
        )
        if want_exception and exception_type is None and e.name == "exception":
            exception_type = attrs.get("exception.type")
        content = content or _CONTENT_EVENT.fullmatch(e.name) is not None or _captures_content(attrs)
    return _json(out), exception_type, content


def _links_json(links: Any, kv: _DecodedAttributes) -> tuple[bytes | None, int]:
    """Valid links as a JSON array (None when none survive), and how many invalid ones were dropped."""
    out = []
    for link in links:
        tid, sid = link.trace_id, link.span_id
        if len(tid) != 16 or tid == _ZERO_TRACE or len(sid) != 8 or sid == _ZERO_SPAN:
            continue
        attrs, dropped = kv.attributes(link.attributes)
        out.append(
            {
                "trace_id": tid.hex(),
                "span_id": sid.hex(),
                "trace_state": link.trace_state,
                "attributes": attrs,
                "flags": link.flags,
                "dropped_attributes_count": _clamp32(link.dropped_attributes_count + dropped),
            }
        )
    return (_json(out) if out else None), len(links) - len(out)


# Fields of a span row. The GenAI slots of the span go to a parallel list, one tuple per span.
_SPAN_ROW = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "trace_state",
    "flags",
    "name",
    "kind",
    "start_time",
    "end_time",
    "status_code",
    "status_message",
    "attributes",
    "events",
    "links",
    "dropped_attributes_count",
    "dropped_events_count",
    "dropped_links_count",
    "exception_type",
    "convention",
    "content_captured",
)


def _append_span_rows(
    spans: Any,
    kv: _DecodedAttributes,
    statuses: _DecodedStatuses,
    rows: list[tuple[Any, ...]],
    slot_rows: list[tuple[Any, ...]],
    rejects: Counter[tuple[str | None, str]],
    service: str | None,
) -> None:
    """Append a row (and a slot tuple) per valid span of a ScopeSpans; count the invalid ones.

    Deliberately one flat loop with locals: at ~100k spans/s every call and attribute lookup
    shows. Column-wide work (numbers, mappings, fallbacks) happens later, once per column.
    """
    spans = list(spans)  # keep the wrappers: each iteration of the container makes new ones
    limits = kv.limits
    most, most_events, most_links = limits.max_attributes, limits.max_events, limits.max_links
    # (slicing first: attributes over the limit are never even turned into Python objects)
    raw_lists = [list(s.attributes[:most]) for s in spans]
    kv.prime(raw_lists)
    cuts = kv.cuts
    plans, make_plan, known = _PLANS, _plan, _KNOWN.intersection
    decoded = kv.__getitem__
    dumps = _dumps
    captures_content = _captures_content
    zero_trace, zero_span, int64_max, undecodable, absent = (
        _ZERO_TRACE,
        _ZERO_SPAN,
        _INT64_MAX,
        _UNDECODABLE,
        _ABSENT,
    )
    append, append_slots = rows.append, slot_rows.append
    for s, raws in zip(spans, raw_lists, strict=True):
        tid = s.trace_id
        sid = s.span_id
        pid = s.parent_span_id
        if (
            len(tid) != 16
            or tid == zero_trace
            or len(sid) != 8
            or sid == zero_span
            or (pid and len(pid) != 8)
        ):
            rejects[service, _id_problem(tid, sid, pid)] += 1
            continue
        start = s.start_time_unix_nano
        end = s.end_time_unix_nano
        if not 0 < start <= end <= int64_max:
            rejects[service, _time_problem(start, end)] += 1
            continue
        attrs = dict(map(decoded, raws))
        dropped_attributes = s.dropped_attributes_count
        try:
            if undecodable in attrs:
                raise _UndecodableAttribute("attribute cannot be decoded")
            status = s.status
            code, message = statuses[status] if status else ("unset", None)
            events = s.events
            dropped_events = s.dropped_events_count
            exception_type = None
            content = captures_content(attrs)
            if events:
                if len(events) > most_events:
                    dropped_events = _clamp32(dropped_events + len(events) - most_events)
                    events = events[:most_events]
                events_json, exception_type, event_content = _events_json(events, kv, code == "error")
                content = content or event_content
            else:
                events_json = None
            links = s.links
            dropped_links = s.dropped_links_count
            if links:
                if len(links) > most_links:
                    dropped_links += len(links) - most_links
                    links = links[:most_links]
                links_json, invalid_links = _links_json(links, kv)
                dropped_links = _clamp32(dropped_links + invalid_links)
            else:
                links_json = None
        except _UndecodableAttribute:
            rejects[service, "attribute or status cannot be decoded (invalid UTF-8?)"] += 1
            continue
        if len(raws) == most:  # maybe more were sent: the rest are dropped and counted
            dropped_attributes = _clamp32(dropped_attributes + len(s.attributes) - most)
        cut = cuts(raws)
        if cut:
            attrs[TRUNCATED] = cut
        names = known(attrs)
        plan = plans.get(names) or make_plan(names)
        attrs_json = dumps(attrs)
        attrs[absent] = None  # lets the plan's itemgetter return None for absent slots
        append_slots(plan[0](attrs))
        append(
            (
                tid.hex(),
                sid.hex(),
                pid.hex() if pid else None,
                s.trace_state or None,
                s.flags,
                s.name,
                s.kind,
                start,
                end,
                code,
                message,
                attrs_json,
                events_json,
                links_json,
                dropped_attributes,
                dropped_events,
                dropped_links,
                exception_type,
                plan[1],
                content,
            )
        )


# --------------------------------------------------------------------------------------------
# Traces, column-wise: the common span shapes decoded with numpy straight from the wire bytes
# --------------------------------------------------------------------------------------------
#
# Walking spans from Python costs ~20 µs a span however tight the loop (a bytes object per
# attribute, a dict, a JSON dump, a plan lookup). Almost every span an SDK sends has the same
# layout: its fields in field-number order, ids of the right size, attributes whose key and scalar
# value are short. Such spans are decoded here for a whole request at once, one numpy operation per
# field across all spans, with Arrow building the JSON text; each distinct attribute is decoded
# once (events and links, which few spans have, are turned into JSON span by span). A span that
# does not fit — an unknown or repeated field, a duplicate attribute key, anything invalid — goes
# through `_append_span_rows`, so the result is always the same as the per-span path's (tests
# compare the two on every fixture). Nothing here rejects a span: the per-span path does that and
# says why.

_U8 = np.uint8
_I64 = np.int64
_HEX_DIGITS = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), _U8).reshape(256, 2)
_SLACK = bytes(1 << 15)  # after the last span, so reads past a malformed length stay in the buffer
_MAX_JOINED = (1 << 31) - len(_SLACK)
_LITTLE_ENDIAN = sys.byteorder == "little"
_MAX_ATTRIBUTE_STEPS = 128  # one numpy step per attribute position; spans with more go span by span


class _PerSpan(Exception):
    """The request is better decoded span by span (unusual layout, invalid text, ...)."""


def _varint12(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1- or 2-byte varint at each position: (value, size), size 0 where it is longer."""
    b0 = buf[at].astype(_I64)
    one = b0 < 0x80
    if one.all():
        return b0, np.ones(len(at), _I64)
    b1 = buf[at + 1].astype(_I64)
    value = np.where(one, b0, (b0 & 0x7F) | (b1 << 7))
    return value, np.where(one, 1, np.where(b1 < 0x80, 2, 0))


def _varints(buf: np.ndarray, at: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varints of 1–9 bytes filling [at, at + size) exactly: (value, well-formed)."""
    value = np.zeros(len(at), np.uint64)
    ok = (size >= 1) & (size <= 9)
    for k in range(9):
        inside = k < size
        if not inside.any():
            break
        byte = buf[at + k]
        ok &= ~inside | ((k == size - 1) == (byte < 0x80))
        value |= np.where(inside, (byte & 0x7F).astype(np.uint64) << np.uint64(7 * k), np.uint64(0))
    return value.astype(_I64), ok


def _gather(buf: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """(n, width) bytes starting at each position."""
    return buf[at[:, None] + np.arange(width)]


def _hex_column(raw: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """(n, w) bytes as a string column of 2w lowercase hex digits each (null where not valid)."""
    n, w = raw.shape
    offsets = np.arange(0, 2 * w * (n + 1), 2 * w, dtype=np.int32)
    mask = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(_HEX_DIGITS[raw]), mask)


def _text_column(
    buf: np.ndarray, at: np.ndarray, size: np.ndarray, valid: np.ndarray | None = None
) -> pa.Array:
    """Byte ranges as a string column; raises _PerSpan on invalid UTF-8."""
    offsets = np.zeros(len(at) + 1, np.int32)
    np.cumsum(size, out=offsets[1:])
    total = int(offsets[-1])
    data = buf[np.repeat(at - offsets[:-1], size) + np.arange(total)] if total else np.zeros(0, _U8)
    mask = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    column = pa.StringArray.from_buffers(len(at), pa.py_buffer(offsets), pa.py_buffer(data), mask)
    try:
        column.validate(full=True)
    except pa.ArrowInvalid as exc:  # the per-span path refuses it the way the parser does
        raise _PerSpan("invalid UTF-8") from exc
    return column


def _words(joined: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Little-endian int32 and int64 views of `joined` starting at every byte (unaligned reads)."""
    return (
        np.ndarray((len(joined) - 3,), "<i4", joined, 0, (1,)),
        np.ndarray((len(joined) - 7,), "<i8", joined, 0, (1,)),
    )


def _byte_ranges(data: pa.Buffer, words: np.ndarray, at: np.ndarray, size: np.ndarray) -> pa.Array:
    """Byte ranges of one buffer as a binary_view column, without copying the bytes."""
    m = len(at)
    views = np.empty((m, 4), np.int32)  # length, then 12 bytes inline or prefix, buffer 0, offset
    views[:, 0] = size
    views[:, 1] = words[at]
    long = size > 12
    views[:, 2] = np.where(long, 0, words[at + 4])
    views[:, 3] = np.where(long, at, words[at + 8])
    short = np.flatnonzero(~long)
    if len(short):  # inline bytes past the end must be zero
        keep = np.clip(size[short, None] - np.array([0, 4, 8]), 0, 4)
        views[short, 1:] &= ((np.int64(1) << (8 * keep)) - 1).astype(np.uint32).view(np.int32)
    return pa.Array.from_buffers(pa.binary_view(), m, [None, pa.py_buffer(views), data])


@dataclass
class _SpanFields:
    """Where each field of each span sits in the joined span bytes (from `_scan_spans`)."""

    usable: np.ndarray  # bool: the layout was understood; the rest go span by span
    trace_id: np.ndarray  # (n, 16) bytes
    span_id: np.ndarray  # (n, 8) bytes
    parent_at: np.ndarray
    parent_size: np.ndarray  # 0 (none) or 8
    state_at: np.ndarray
    state_size: np.ndarray
    name_at: np.ndarray
    name_size: np.ndarray
    kind: np.ndarray
    start: np.ndarray
    end: np.ndarray
    flags: np.ndarray
    dropped_attributes: np.ndarray
    dropped_events: np.ndarray
    dropped_links: np.ndarray
    status_at: np.ndarray
    status_size: np.ndarray
    events: dict[int, list[tuple[int, int]]]  # span → (offset, size) of each serialized event
    links: dict[int, list[tuple[int, int]]]
    attr_span: np.ndarray  # per attribute (span-major order): its span, offset and size
    attr_at: np.ndarray
    attr_size: np.ndarray


def _scan_spans(joined: bytes, starts: np.ndarray, ends: np.ndarray, max_attributes: int) -> _SpanFields:
    """Read every span's fields, assuming field-number order; mark spans that do not fit.

    Spans with more than `max_attributes` attributes do not fit: the per-span path drops the
    rest and counts them.
    """
    buf = np.frombuffer(joined, _U8)
    word, dword = _words(joined)
    n = len(starts)
    pos = starts.copy()
    usable = (buf[pos] == 0x0A) & (buf[pos + 1] == 16)  # trace_id, 16 bytes
    trace_at = pos + 2
    pos += 18
    usable &= (buf[pos] == 0x12) & (buf[pos + 1] == 8)  # span_id, 8 bytes
    span_at = pos + 2
    pos += 10
    zeros = np.zeros(n, _I64)

    def present(tag: int) -> np.ndarray:
        return (pos < ends) & (buf[pos] == tag)

    def length_field(tag: int) -> tuple[np.ndarray, np.ndarray]:
        has = present(tag)
        if not has.any():
            return pos.copy(), zeros
        value, size = _varint12(buf, pos + 1)
        usable[has & (size == 0)] = False
        at = pos + 1 + size
        np.copyto(pos, at + value, where=has)
        return at, np.where(has, value, 0)

    def varint_field(tag: int) -> np.ndarray:
        has = present(tag)
        if not has.any():
            return zeros
        value, size = _varint12(buf, pos + 1)
        usable[has & (size == 0)] = False
        np.copyto(pos, pos + 1 + size, where=has)
        return np.where(has, value, 0)

    def fixed64_field(tag: int) -> np.ndarray:
        has = present(tag)
        value = dword[pos + 1]
        np.copyto(pos, pos + 9, where=has)
        return np.where(has, value, 0)

    def flags_field() -> tuple[np.ndarray, np.ndarray]:  # field 16, fixed32: a two-byte tag
        has = (pos + 1 < ends) & (buf[pos] == 0x85) & (buf[pos + 1] == 0x01)
        if not has.any():
            return has, zeros
        value = word[pos + 2].view(np.uint32)
        np.copyto(pos, pos + 6, where=has)
        return has, np.where(has, value, 0)

    def repeated_field(tag: int) -> dict[int, list[tuple[int, int]]]:
        """(offset, size) of each occurrence, per span; for the few spans that have any."""
        found: dict[int, list[tuple[int, int]]] = {}
        for i in np.flatnonzero(present(tag)).tolist():
            at, end, items = int(pos[i]), int(ends[i]), []
            while at < end and buf[at] == tag:
                size, length = _varint12(buf, np.array([at + 1]))
                if not length[0]:
                    usable[i] = False
                    break
                items.append((at + 1 + int(length[0]), int(size[0])))
                at = items[-1][0] + items[-1][1]
            pos[i] = at
            found[i] = items
        return found

    state_at, state_size = length_field(0x1A)
    parent_at, parent_size = length_field(0x22)
    usable &= (parent_size == 0) | (parent_size == 8)
    early, early_flags = flags_field()  # where encoders that follow the .proto's order put it
    name_at, name_size = length_field(0x2A)
    kind = varint_field(0x30)
    start = fixed64_field(0x39)
    end = fixed64_field(0x41)
    # Attributes (field 9, repeated): step k reads the k-th attribute of every span having one.
    spans, offsets, sizes = [], [], []
    active = np.flatnonzero(present(0x4A))
    for _ in range(min(_MAX_ATTRIBUTE_STEPS, max_attributes)):
        if not len(active):
            break
        value, size = _varint12(buf, pos[active] + 1)
        usable[active[size == 0]] = False
        at = pos[active] + 1 + size
        spans.append(active)
        offsets.append(at)
        sizes.append(value)
        after = at + value
        pos[active] = after
        active = active[(after < ends[active]) & (buf[after] == 0x4A)]
    usable[active] = False  # more attributes than steps (or the limit): span by span
    dropped_attributes = varint_field(0x50)
    events = repeated_field(0x5A)
    dropped_events = varint_field(0x60)
    links = repeated_field(0x6A)
    dropped_links = varint_field(0x70)
    status_at, status_size = length_field(0x7A)
    late, late_flags = flags_field()
    usable &= (pos == ends) & ~(early & late) & (kind < 0x80)
    trace_id = _gather(buf, trace_at, 16)
    span_id = _gather(buf, span_at, 8)
    # Spans the per-span path rejects go there, so it can say why.
    usable &= trace_id.view("<u8").reshape(n, 2).any(axis=1) & (span_id.view("<u8").reshape(n) != 0)
    usable &= (start > 0) & (start <= end)  # end beyond int64 reads as negative
    # attributes in span-major order: the k-th attribute of span s goes to first[s] + k
    attr_span = np.concatenate(spans) if spans else zeros[:0]
    counts = np.bincount(attr_span, minlength=n)
    first = np.cumsum(counts) - counts
    order = np.empty(len(attr_span), _I64)
    done = 0
    for k, members in enumerate(spans):
        order[done : done + len(members)] = first[members] + k
        done += len(members)
    attr_at = np.empty_like(order)
    attr_size = np.empty_like(order)
    attr_at[order] = np.concatenate(offsets) if spans else order
    attr_size[order] = np.concatenate(sizes) if spans else order
    attr_span_sorted = np.repeat(np.arange(n), counts)
    return _SpanFields(
        usable,
        trace_id,
        span_id,
        parent_at,
        parent_size,
        state_at,
        state_size,
        name_at,
        name_size,
        kind,
        start,
        end,
        early_flags | late_flags,
        dropped_attributes,
        dropped_events,
        dropped_links,
        status_at,
        status_size,
        events,
        links,
        attr_span_sorted,
        attr_at,
        attr_size,
    )


# What each attribute name a plan looks at means column-wise: the (slot, precedence rank) pairs
# it can win, and its convention bits (see `_convention`).
_CONVENTION_BITS = (
    (_OPENINFERENCE, 1),
    (_OPENLIT, 2),
    (_OPENLLMETRY, 4),
    (_OTEL_CURRENT, 8),
    (_OTEL_LEGACY, 16),
    (_OTEL_EITHER, 32),
)
_NAME_SLOTS: dict[str, tuple[tuple[int, int], ...]] = {
    name: tuple(
        (slot, rank)
        for slot, sources in enumerate(_SLOTS.values())
        for rank, source in enumerate(sources)
        if source == name
    )
    for name in _KNOWN
}
_NAME_BITS = {name: sum(bit for names, bit in _CONVENTION_BITS if name in names) for name in _KNOWN}
_MAX_RANK = max(len(sources) for sources in _SLOTS.values())
# `_convention`'s order of precedence over the bits, and the resulting names
_CONVENTION_BY_BIT = ((1, "openinference"), (2, "openlit"), (4, "openllmetry"), (8, "otel_genai"))
_CONVENTION_BY_BIT += ((16, "otel_genai_legacy"), (32, "otel_genai"))
_CONTENT_BIT = 64  # beside the convention bits: the name is a content key (`_content_key`)


def _conventions(bits: np.ndarray) -> np.ndarray:
    names = np.full(len(bits), None, object)
    for bit, name in reversed(_CONVENTION_BY_BIT):
        names[(bits & bit) != 0] = name
    return names


@dataclass
class _Attributes:
    """The distinct serialized KeyValues of a request, each decoded once.

    Values are kept column-wise: `text` is every value as a text column value would be (`_text`),
    `number` the integers; only the unusual values are Python objects, in `python`.
    """

    key: np.ndarray  # per distinct KeyValue: index into `names`, -1 when it cannot be decoded
    names: list[str]
    kind: np.ndarray  # _STRING, _INTEGER or _PYTHON
    text: pa.Array  # string per KeyValue plus a final null (index -1 / "absent")
    number: np.ndarray  # int64, meaningful where kind is _INTEGER
    python: dict[int, Any]  # the JSON-ready value where kind is _PYTHON
    fragments: pa.Array  # ',"key":value', the KeyValue's part of an attributes JSON object
    cut: np.ndarray  # bool per distinct KeyValue: the limits cut its value (left to the per-span path)

    def value(self, i: int) -> Any:
        """The JSON-ready value of KeyValue i, as the per-span path has it."""
        kind = self.kind[i]
        if kind == _STRING:
            return self.text[i].as_py()
        return int(self.number[i]) if kind == _INTEGER else self.python[i]


_STRING, _INTEGER, _PYTHON = 0, 1, 2
_JSON_SPECIAL = np.zeros(256, bool)
_JSON_SPECIAL[:0x20] = _JSON_SPECIAL[0x22] = _JSON_SPECIAL[0x5C] = True  # what orjson escapes


def _concatenated(pieces: pa.Array, index: np.ndarray, first: np.ndarray) -> pa.Array:
    """Strings each made of the pieces `index[first[i]:first[i + 1]]`, joined (one Arrow take)."""
    taken = pieces.take(pa.array(index))
    offsets = np.frombuffer(taken.buffers()[1], np.int32, len(taken) + 1, 4 * taken.offset)
    bounds = np.append(offsets[first], offsets[-1]).astype(np.int32)
    return pa.StringArray.from_buffers(len(first), pa.py_buffer(bounds), taken.buffers()[2])


def _decode_keyvalues(distinct: pa.Array, lim: _Limiter) -> _Attributes:
    """Decode distinct KeyValues: the usual shapes column-wise, the rest with `_keyvalue`."""
    d = len(distinct)
    cut = np.zeros(d, bool)
    if not d:
        none = np.zeros(0, _I64)
        return _Attributes(
            none, [], none.astype(np.int8), pa.nulls(1, _STR), none, {}, pa.array([], _STR), cut
        )
    distinct = distinct.cast(pa.binary())
    offsets = np.frombuffer(distinct.buffers()[1], np.int32, d + 1, 4 * distinct.offset).astype(_I64)
    data = distinct.buffers()[2]
    # (slack: a KeyValue that does not fit is still read up to ~140 bytes past its start)
    packed = bytes(memoryview(data)[: int(offsets[-1])] if data is not None else b"") + _SLACK[:256]
    body = np.frombuffer(packed, _U8)
    word, dword = _words(packed)
    p, e = offsets[:-1], offsets[1:]
    # key (field 1) under 128 bytes, then value (field 2) holding one string, int, double or bool
    fits = (e - p >= 4) & (body[p] == 0x0A) & (body[p + 1] < 0x80)
    key_size = body[p + 1].astype(_I64)
    q = p + 2 + key_size
    fits &= (q < e) & (body[q] == 0x12)
    wrapped, wrap = _varint12(body, q + 1)
    r = q + 1 + wrap
    fits &= (wrap > 0) & (r + wrapped == e)
    tag = np.where(fits, body[r], 0)
    inner = e - r - 1
    str_size, str_len = _varint12(body, r + 1)
    is_str = (tag == 0x0A) & (str_len > 0) & (r + 1 + str_len + str_size == e)
    is_str &= str_size <= lim.max_length  # longer ones are cut by `_keyvalue`
    number, number_ok = _varints(body, r + 1, np.where(tag == 0x18, inner, 0))
    is_int = (tag == 0x18) & number_ok
    is_double = (tag == 0x21) & (inner == 8)
    is_bool = (tag == 0x10) & (inner == 1) & (body[r + 1] < 2)
    fits = is_str | is_int | is_double | is_bool
    # keys: few distinct, decoded in Python
    raw_keys = pc.dictionary_encode(
        _byte_ranges(pa.py_buffer(packed), word, np.where(fits, p + 2, 0), np.where(fits, key_size, 0))
    )
    names: list[str] = []
    code: dict[str, int] = {}
    key_codes = []
    for raw in raw_keys.dictionary.to_pylist():
        try:
            name = raw.decode()
        except UnicodeDecodeError:
            key_codes.append(-1)
            continue
        key_codes.append(code.setdefault(name, len(names)))
        if len(code) > len(names):
            names.append(name)
    key = np.asarray(key_codes, _I64)[np.asarray(raw_keys.indices)]
    fits &= key >= 0
    kind = np.full(d, _PYTHON, np.int8)
    python: dict[int, Any] = {}
    # Texts of values (`_text`) and JSON of values, in groups, put in KeyValue order by a take.
    texts: list[pa.Array] = []
    text_at = np.full(d + 1, -1, _I64)
    jsons: list[pa.Array] = []
    json_at = np.zeros(d, _I64)
    quoted = np.zeros(d, bool)  # JSON is the text between quotes (no escaping needed)
    texts_n = jsons_n = 0
    strings = np.flatnonzero(is_str & fits)
    if len(strings):
        at, length = (r + 1 + str_len)[strings], str_size[strings]
        try:
            text = _text_column(body, at, length)
        except _PerSpan:  # invalid UTF-8 somewhere: let `_keyvalue` sort them out
            fits[strings] = False
        else:
            kind[strings] = _STRING
            texts.append(text)
            text_at[strings] = np.arange(len(strings))
            texts_n = len(strings)
            escapes = _JSON_SPECIAL[np.asarray(text.buffers()[2], _U8)]
            special = np.concatenate(([0], np.cumsum(escapes)))
            ends = np.cumsum(length)
            plain = special[ends] == special[ends - length]
            quoted[strings[plain]] = True
            json_at[strings[plain]] = np.arange(np.count_nonzero(plain))
            jsons.append(text.filter(pa.array(plain)))
            jsons_n = len(jsons[-1])
            escaped = text.filter(pa.array(~plain)).to_pylist()
            for i, value in zip(strings[~plain].tolist(), escaped, strict=True):
                python[i] = value  # its JSON comes from orjson, below
    ints = np.flatnonzero(is_int & fits)
    if len(ints):
        kind[ints] = _INTEGER
        as_text = pc.cast(pa.array(number[ints]), _STR)
        texts.append(as_text)
        text_at[ints] = texts_n + np.arange(len(ints))
        texts_n += len(ints)
        jsons.append(as_text)
        json_at[ints] = jsons_n + np.arange(len(ints))
        jsons_n += len(ints)
    doubles = np.flatnonzero(is_double & fits)
    for i, x in zip(doubles.tolist(), dword[r[doubles] + 1].view("<f8").tolist(), strict=True):
        python[i] = x if x - x == 0.0 else _nonfinite(x)
    for i in np.flatnonzero(is_bool & fits).tolist():
        python[i] = bool(body[r[i] + 1])
    for i in np.flatnonzero(~fits).tolist():  # other shapes: the general decoder
        before = lim.cuts
        name, value = _keyvalue_or_marker(distinct[i].as_py(), lim)
        cut[i] = lim.cuts != before
        if name is _UNDECODABLE:
            key[i] = -1
            continue
        key[i] = code.setdefault(name, len(names))
        if len(code) > len(names):
            names.append(name)
        python[i] = value
    others = [i for i in python if kind[i] == _PYTHON]
    if others:
        texts.append(pa.array([_text(python[i]) for i in others], _STR))
        text_at[others] = texts_n + np.arange(len(others))
        texts_n += len(others)
    escaped = [i for i in python if key[i] >= 0]
    if escaped:
        jsons.append(pa.array([_dumps(python[i]) for i in escaped], _STR))
        json_at[escaped] = jsons_n + np.arange(len(escaped))
        jsons_n += len(escaped)
    texts.append(pa.nulls(1, _STR))
    text_at[text_at < 0] = texts_n
    text_values = pa.concat_arrays(texts).take(pa.array(text_at))
    # ',"key":' or ',"key":"' then the value's JSON, then a closing quote for plain strings
    k = len(names)
    labels = [b"," + _dumps(name) + b":" for name in names]
    pieces = pa.concat_arrays(
        [*jsons, pa.array([*labels, b',"":', *(label + b'"' for label in labels), b'"'], _STR)]
    )
    count = np.where(quoted, 3, 2)
    first = np.cumsum(count) - count
    index = np.empty(int(count.sum()), _I64)
    index[first] = jsons_n + np.where(key >= 0, key, k) + np.where(quoted, k + 1, 0)
    index[first + 1] = json_at
    index[first[quoted] + 2] = jsons_n + 2 * k + 1
    fragments = _concatenated(pieces, index, first)
    return _Attributes(key, names, kind, text_values, number, python, fragments, cut)


def _or_per_span(values: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """Per span 0..n-1, the OR of the values of its attributes (`groups`: their spans, sorted)."""
    out = np.zeros(n, _I64)
    if len(values):
        counts = np.bincount(groups, minlength=n)
        present = counts > 0
        firsts = (np.cumsum(counts) - counts)[present]
        out[present] = np.bitwise_or.reduceat(values, firsts)
    return out


def _repeated_key_spans(span: np.ndarray, key: np.ndarray, keys: int) -> np.ndarray:
    """Spans carrying some attribute key twice (a dict keeps the last; left to the per-span path)."""
    pairs = np.sort(span * keys + key)
    return pairs[1:][pairs[1:] == pairs[:-1]] // keys


_COUNT_SLOTS = frozenset(
    {
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "server_port",
    }
)
_AMOUNT_SLOTS = frozenset({"cost", "cost_prompt", "cost_completion"})


def _slot_columns(attrs: _Attributes, winner: np.ndarray) -> dict[str, pa.Array]:
    """Each slot as the typed column `_span_table` makes of it (`_text`, `_count`, `_amount` applied).

    `winner[slot, span]` is the KeyValue that fills the slot, len(attrs.key) where none does.
    """
    d = len(attrs.key)
    integer = np.append(attrs.kind == _INTEGER, True)  # (the "none" index counts as done)
    by_kind: dict[str, pa.Array] = {}

    def converted(kind: str) -> pa.Array:
        # per distinct KeyValue: integers column-wise, other values through the per-value rule
        if kind not in by_kind:
            convert, type_ = (_count, pa.int64()) if kind == "count" else (_amount, pa.float64())
            number = np.append(attrs.number, 0)
            valid = integer & (number >= 0)
            valid[d] = False
            if kind == "count":
                valid &= number <= _MAX_COUNT
            column = np.where(valid, number, 0).astype(type_.to_pandas_dtype())
            winners = winner[[_SLOT[n] for n in _SLOT_NAMES if _slot_kind(n) == kind]]
            for i in np.unique(winners[~integer[winners]]).tolist():
                value = convert(attrs.value(i))
                if value is not None:
                    column[i], valid[i] = value, True
            by_kind[kind] = pa.array(column, type_, mask=~valid)
        return by_kind[kind]

    columns: dict[str, pa.Array] = {}
    for i, name in enumerate(_SLOT_NAMES):
        kind = _slot_kind(name)
        won = winner[i]
        if won.min() == d:
            columns[name] = pa.nulls(len(won), _SLOT_TYPES[kind])
        else:
            source = attrs.text if kind == "text" else converted(kind)
            columns[name] = source.take(pa.array(won))
    return columns


def _slot_kind(name: str) -> str:
    return "count" if name in _COUNT_SLOTS else "amount" if name in _AMOUNT_SLOTS else "text"


_SLOT_TYPES = {"text": _STR, "count": pa.int64(), "amount": pa.float64()}


def _attributes_json(fragments: pa.Array, span: np.ndarray, kv: np.ndarray, m: int) -> pa.Array:
    """Each span's attributes as a JSON object, from the fragments of its KeyValues (in order).

    A span's object is its fragments ',"k":v' one after the other, the first comma turned into
    '{', then '}' ('{}' when it has none): one take over the fragments, a '{'-variant and the two
    closings.
    """
    d = len(fragments)
    offsets_buffer, data = fragments.buffers()[1:]
    offsets = np.frombuffer(offsets_buffer, np.int32, d + 1, 4 * fragments.offset)
    braced = np.frombuffer(data, _U8).copy()
    braced[offsets[:-1][offsets[1:] > offsets[:-1]]] = ord("{")
    variant = pa.StringArray.from_buffers(d, offsets_buffer, pa.py_buffer(braced), offset=fragments.offset)
    pieces = pa.concat_arrays([fragments, variant, pa.array(["}", "{}"], _STR)])
    counts = np.bincount(span, minlength=m)
    first_attr = np.cumsum(counts) - counts  # each span's first attribute
    first = first_attr + np.arange(m)  # each span's first piece: its attributes, then a closing
    index = np.empty(len(kv) + m, _I64)
    index[np.arange(len(kv)) + span] = kv
    has = counts > 0
    index[first[has]] += d  # the '{' variant
    index[first + counts] = np.where(has, 2 * d, 2 * d + 1)
    return _concatenated(pieces, index, first)


def _vector_columns(
    joined: bytes, fields: _SpanFields, kv: _DecodedAttributes, statuses: _DecodedStatuses
) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """The `_SPAN_ROW` and slot columns of the spans decoded column-wise, and which those are."""
    buf = np.frombuffer(joined, _U8)
    word = _words(joined)[0]
    data = pa.py_buffer(joined)
    usable = fields.usable.copy()
    n = len(usable)
    picked = usable[fields.attr_span]
    attr_span = fields.attr_span[picked]
    encoded = pc.dictionary_encode(_byte_ranges(data, word, fields.attr_at[picked], fields.attr_size[picked]))
    attr_kv = np.asarray(encoded.indices).astype(_I64)
    attrs = _decode_keyvalues(encoded.dictionary, kv.lim)
    keys = len(attrs.names)
    attr_key = attrs.key[attr_kv]
    usable[attr_span[attr_key < 0]] = False  # an attribute that cannot be decoded: rejected there
    usable[attr_span[attrs.cut[attr_kv]]] = False  # a value over the limits: cut and recorded there
    usable[_repeated_key_spans(attr_span, attr_key, keys + 1)] = False
    # statuses: few distinct ones, decoded by `statuses`
    code = np.full(n, "unset", object)
    message = np.full(n, None, object)
    has_status = np.flatnonzero(usable & (fields.status_size > 0))
    if len(has_status):
        distinct = pc.dictionary_encode(
            _byte_ranges(data, word, fields.status_at[has_status], fields.status_size[has_status])
        )
        size = len(distinct.dictionary)
        codes, messages = np.full(size, "unset", object), np.full(size, None, object)
        bad = np.zeros(size, bool)
        for i, raw in enumerate(distinct.dictionary.to_pylist()):
            try:
                codes[i], messages[i] = statuses[raw]
            except _UndecodableAttribute:  # rejected by the per-span path
                bad[i] = True
        which = np.asarray(distinct.indices)
        code[has_status] = codes[which]
        message[has_status] = messages[which]
        usable[has_status[bad[which]]] = False
    # events and links (few spans have them): JSON built span by span, as the per-span path does
    events = np.full(n, None, object)
    exception_type = np.full(n, None, object)
    event_content = np.zeros(n, bool)
    links = np.full(n, None, object)
    dropped_links = fields.dropped_links.copy()
    limits = kv.limits
    for i, where in fields.events.items():  # more than the limit: dropped and counted there
        usable[i] &= len(where) <= limits.max_events
    for i, where in fields.links.items():
        usable[i] &= len(where) <= limits.max_links
    try:
        for i, where in fields.events.items():
            if usable[i]:
                try:
                    parsed = [_ShadowEvent.FromString(joined[at : at + size]) for at, size in where]
                    outcome = _events_json(parsed, kv, code[i] == "error")
                    events[i], exception_type[i], event_content[i] = outcome
                except _UndecodableAttribute:
                    usable[i] = False
        for i, where in fields.links.items():
            if usable[i]:
                try:
                    parsed = [_ShadowLink.FromString(joined[at : at + size]) for at, size in where]
                    links[i], invalid = _links_json(parsed, kv)
                    dropped_links[i] += invalid
                except _UndecodableAttribute:
                    usable[i] = False
    except DecodeError:
        raise _PerSpan("not parsable") from None
    fast = np.flatnonzero(usable)
    m = len(fast)
    if not m:
        return fast, {}, {}
    # attributes of the spans kept, in span-major order, renumbered 0..m-1
    kept = usable[attr_span]
    local = np.cumsum(usable) - 1
    attr_span = local[attr_span[kept]]
    attr_kv = attr_kv[kept]
    attr_key = attr_key[kept]
    attributes_json = _attributes_json(attrs.fragments, attr_span, attr_kv, m)
    # canonical slots: for each (span, slot) the attribute of best rank among the names it has
    pair_count = np.zeros(keys, _I64)
    pair_slot: list[int] = []
    pair_rank: list[int] = []
    bits = np.zeros(keys, _I64)
    for c, name in enumerate(attrs.names):
        pairs = _NAME_SLOTS.get(name, ())
        pair_count[c] = len(pairs)
        pair_slot.extend(slot for slot, _ in pairs)
        pair_rank.extend(rank for _, rank in pairs)
        bits[c] = _NAME_BITS.get(name, 0) | (_CONTENT_BIT if _content_key(name) else 0)
    pair_first = np.cumsum(pair_count) - pair_count
    winner = np.full((len(_SLOT_NAMES), m), len(attrs.key), _I64)
    repeat = pair_count[attr_key]
    known = np.flatnonzero(repeat)
    if len(known):
        repeat = repeat[known]
        occurrence = np.repeat(known, repeat)
        nth = np.arange(len(occurrence)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        which = pair_first[attr_key[occurrence]] + nth
        slot_of = np.asarray(pair_slot, _I64)[which]
        rank_of = np.asarray(pair_rank, _I64)[which]
        span_of = attr_span[occurrence]
        kv_of = attr_kv[occurrence]
        for rank in range(_MAX_RANK - 1, -1, -1):  # better ranks overwrite worse ones
            at_rank = rank_of == rank
            winner[slot_of[at_rank], span_of[at_rank]] = kv_of[at_rank]
    slot = _slot_columns(attrs, winner)
    span_bits = _or_per_span(bits[attr_key], attr_span, m)
    parent = fields.parent_size[fast] == 8
    state = fields.state_size[fast]
    head = {
        "trace_id": _hex_column(fields.trace_id[fast]),
        "span_id": _hex_column(fields.span_id[fast]),
        "parent_span_id": _hex_column(_gather(buf, fields.parent_at[fast], 8), parent),
        "trace_state": _text_column(buf, fields.state_at[fast], state, state > 0),
        "flags": fields.flags[fast],
        "name": _text_column(buf, fields.name_at[fast], fields.name_size[fast]),
        "kind": fields.kind[fast],
        "start_time": fields.start[fast],
        "end_time": fields.end[fast],
        "status_code": code[fast],
        "status_message": message[fast],
        "attributes": attributes_json,
        "events": events[fast] if fields.events else pa.nulls(m, _STR),
        "links": links[fast] if fields.links else pa.nulls(m, _STR),
        "dropped_attributes_count": fields.dropped_attributes[fast],
        "dropped_events_count": fields.dropped_events[fast],
        "dropped_links_count": dropped_links[fast],
        "exception_type": exception_type[fast] if fields.events else pa.nulls(m, _STR),
        "convention": _conventions(span_bits),
        "content_captured": ((span_bits & _CONTENT_BIT) != 0) | event_content[fast],
    }
    return fast, head, slot


def normalise_traces(
    request: ExportTraceServiceRequest | bytes, limits: Limits = DEFAULT_LIMITS
) -> Normalised:
    """The request's valid spans as a table shaped like `spans`, and the rejected ones counted.

    `request` may also be the serialized request (e.g. the gRPC/HTTP body), which skips one
    re-serialisation; undecodable bytes raise InvalidData.
    """
    raw = (
        bytes(request) if isinstance(request, bytes | bytearray | memoryview) else request.SerializeToString()
    )
    try:
        return _traces_column_wise(raw, limits)
    except _PerSpan:
        return _traces_span_by_span(raw, limits)


def _traces_span_by_span(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Normalised:
    """`normalise_traces` walking every span in Python: the reference the column-wise path matches."""
    data = _shadow(_OpaqueSpansTracesData, raw)
    kv = _DecodedAttributes(limits)
    statuses = _DecodedStatuses()
    rows: list[tuple[Any, ...]] = []
    slot_rows: list[tuple[Any, ...]] = []
    blocks: list[tuple[int, tuple[_Resource, _Scope, str | None]]] = []
    rejects: Counter[tuple[str | None, str]] = Counter()
    for rs in data.resource_spans:
        resource = _shadow_resource(rs.resource, kv)
        for ss in rs.scope_spans:
            raws = ss.spans
            if not raws:
                continue
            scope = _shadow_scope(ss.scope, kv)
            error = resource.error or scope.error
            if error:
                rejects[resource.service_name, error] += len(raws)
                continue
            before = len(rows)
            _, spans = _parse_spans(list(raws), rejects, resource.service_name)
            _append_span_rows(spans, kv, statuses, rows, slot_rows, rejects, resource.service_name)
            if len(rows) > before:
                blocks.append((len(rows) - before, (resource, scope, ss.schema_url or rs.schema_url or None)))
    return Normalised(_span_table_of_rows(rows, slot_rows, blocks), _rejects(rejects), "spans")


def _traces_column_wise(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Normalised:
    """`normalise_traces` for the usual span layouts column-wise, the others span by span."""
    try:
        data = _OpaqueSpansTracesData.FromString(raw)
    except DecodeError:
        raise _PerSpan("not parsable") from None  # the per-span path says why
    kv = _DecodedAttributes(limits)
    statuses = _DecodedStatuses()
    rejects: Counter[tuple[str | None, str]] = Counter()
    raws: list[bytes] = []
    counts: list[int] = []
    blocks: list[tuple[_Resource, _Scope, str | None]] = []
    for rs in data.resource_spans:
        resource = _shadow_resource(rs.resource, kv)
        for ss in rs.scope_spans:
            spans = ss.spans
            if not spans:
                continue
            scope = _shadow_scope(ss.scope, kv)
            error = resource.error or scope.error
            if error:
                rejects[resource.service_name, error] += len(spans)
                continue
            raws.extend(spans)
            counts.append(len(spans))
            blocks.append((resource, scope, ss.schema_url or rs.schema_url or None))
    if not raws:
        return Normalised(SPAN_SCHEMA.empty_table(), _rejects(rejects), "spans")
    sizes = np.fromiter(map(len, raws), _I64, len(raws))
    ends = np.cumsum(sizes)
    if ends[-1] >= _MAX_JOINED or not _LITTLE_ENDIAN:  # int32 offsets; byte views read little-endian
        raise _PerSpan("too large for int32 offsets, or a big-endian machine")
    joined = b"".join([*raws, _SLACK])
    fields = _scan_spans(joined, ends - sizes, ends, limits.max_attributes)
    if 2 * np.count_nonzero(fields.usable) < len(raws):
        raise _PerSpan("mostly unusual spans")
    fast, head, slot = _vector_columns(joined, fields, kv, statuses)
    block_of = np.repeat(np.arange(len(blocks)), counts)
    # The rest span by span: rejected with a reason, or kept as rows merged back in order.
    rows: list[tuple[Any, ...]] = []
    slot_rows: list[tuple[Any, ...]] = []
    kept: list[int] = []
    usable = np.zeros(len(raws), bool)
    usable[fast] = True
    others = np.flatnonzero(~usable)
    for b in np.unique(block_of[others]).tolist():
        service = blocks[b][0].service_name
        members, spans = _parse_spans(others[block_of[others] == b].tolist(), rejects, service, raws)
        before = len(rows)
        _append_span_rows(spans, kv, statuses, rows, slot_rows, rejects, service)
        if len(rows) - before == len(spans):
            kept.extend(members)
            continue
        # Some were rejected (and counted): redo them one at a time to learn which rows are whose.
        del rows[before:], slot_rows[before:]
        for i, span in zip(members, spans, strict=True):
            size = len(rows)
            _append_span_rows([span], kv, statuses, rows, slot_rows, Counter(), service)
            if len(rows) > size:
                kept.append(i)
    tables = []
    if len(fast):
        tables.append(_span_table(head, slot, _runs(block_of[fast], blocks)))
    if kept:
        tables.append(_span_table_of_rows(rows, slot_rows, _runs(block_of[kept], blocks)))
    if not tables:
        table = SPAN_SCHEMA.empty_table()
    elif len(tables) == 1:
        table = tables[0]
    else:  # back into the order the spans came in
        order = np.argsort(np.concatenate([fast, kept]), kind="stable")
        table = pa.concat_tables(tables).take(pa.array(order)).combine_chunks()
    return Normalised(table, _rejects(rejects), "spans")


_UNPARSABLE_SPAN = "span is not valid protobuf (invalid UTF-8 in a string field, or malformed)"


def _parse_spans(
    members: list[Any], rejects: Counter[tuple[str | None, str]], service: str | None, raws: Any = None
) -> tuple[list[Any], list[Any]]:
    """Serialized spans parsed (`members` are the spans, or their indices into `raws`), and which.

    A span that does not parse is rejected alone: the rest of its request is still good.
    """
    data = members if raws is None else [raws[i] for i in members]
    try:
        return members, [_ShadowSpan.FromString(raw) for raw in data]
    except DecodeError:
        pass
    kept, spans = [], []
    for member, raw in zip(members, data, strict=True):
        try:
            spans.append(_ShadowSpan.FromString(raw))
        except DecodeError:
            rejects[service, _UNPARSABLE_SPAN] += 1
            continue
        kept.append(member)
    return kept, spans


def _runs(block_of_row: np.ndarray, blocks: list[Any]) -> list[tuple[int, Any]]:
    """(rows, block) for each block that has rows, given each row's block (non-decreasing)."""
    counts = np.bincount(block_of_row, minlength=len(blocks))
    return [(int(n), blocks[b]) for b, n in enumerate(counts.tolist()) if n]


def _span_table_of_rows(
    rows: list[tuple[Any, ...]], slot_rows: list[tuple[Any, ...]], blocks: list[tuple[int, Any]]
) -> pa.Table:
    if not rows:
        return SPAN_SCHEMA.empty_table()
    head = dict(zip(_SPAN_ROW, zip(*rows, strict=True), strict=True))
    slot = dict(zip(_SLOT_NAMES, zip(*slot_rows, strict=True), strict=True))
    return _span_table(head, slot, blocks)


def _span_table(head: dict[str, Any], slot: dict[str, Any], blocks: list[tuple[int, Any]]) -> pa.Table:
    """The spans table from its row fields and slots, column by column (tuples, numpy or Arrow)."""

    def resource(attr: str, type_: pa.DataType = _STR) -> pa.Array:
        return _constant(blocks, lambda b: getattr(b[0], attr), type_)

    def block_text(attr: str) -> pa.Array:
        return _per_block(blocks, lambda b: getattr(b[0], attr))

    def text(name: str) -> pa.Array:
        return _text_array(slot[name])

    start = pa.array(head["start_time"], pa.int64())
    end = pa.array(head["end_time"], pa.int64())
    kinds = pa.array(head["kind"], pa.int32())
    kinds = pc.if_else(pc.and_(pc.greater_equal(kinds, _I32_0), pc.less(kinds, _I32_6)), kinds, _I32_0)

    tl_kind = text("tl_span_kind")
    is_agent_span = pc.equal(tl_kind, _S_AGENT)
    is_tool_span = pc.equal(tl_kind, _S_TOOL)
    tl_entity = text("tl_entity_name")
    provider = _mapped(text("provider"), _provider)
    request_model = text("request_model")
    response_model = text("response_model")
    tokens = _token_columns(slot, provider, request_model, response_model)
    cost = _amount_array(slot["cost"])
    if cost.null_count:
        cost = pc.coalesce(
            cost, pc.add(_amount_array(slot["cost_prompt"]), _amount_array(slot["cost_completion"]))
        )
    convention = _text_array(head["convention"])
    if any(b[0].is_openlit for _, b in blocks):
        convention = pc.if_else(
            pc.and_(resource("is_openlit", pa.bool_()), pc.is_in(convention, value_set=_OTEL_CONVENTIONS)),
            _S_OPENLIT,
            convention,
        )
    columns = {
        "trace_id": pa.array(head["trace_id"], _STR),
        "span_id": pa.array(head["span_id"], _STR),
        "parent_span_id": pa.array(head["parent_span_id"], _STR),
        "trace_state": _text_array(head["trace_state"]),
        "flags": pa.array(head["flags"], pa.uint32()),
        "name": pa.array(head["name"], _STR),
        "kind": pc.take(_KIND_NAMES, kinds),
        "start_time": start.cast(_TS),
        "end_time": end.cast(_TS),
        "duration_ns": pc.subtract(end, start),
        "status_code": pa.array(head["status_code"], _STR),
        "status_message": _text_array(head["status_message"]),
        "service_name": block_text("service_name"),
        "service_namespace": block_text("service_namespace"),
        "service_version": block_text("service_version"),
        "service_instance_id": block_text("service_instance_id"),
        "host_name": block_text("host_name"),
        "environment": _coalesce(resource("environment"), text("span_environment")),
        "sdk_language": block_text("sdk_language"),
        "scope_name": _per_block(blocks, lambda b: b[1].name),
        "scope_version": _per_block(blocks, lambda b: b[1].version),
        "convention": convention,
        "operation": _mapped(text("operation"), _operation),
        "provider": provider,
        "request_model": request_model,
        "response_model": response_model,
        **tokens,
        "reported_cost_usd": cost,
        "agent_id": _coalesce(text("agent_id"), resource("main_agent_id")),
        "agent_name": _coalesce(
            text("agent_name"),
            _null_unless(is_agent_span, tl_entity),
            text("tl_workflow_name"),
            text("app_name"),
            resource("main_agent_name"),
            resource("application_name"),
        ),
        "agent_version": _coalesce(
            text("agent_version"), _null_unless(is_agent_span, text("tl_entity_version"))
        ),
        "tool_name": _coalesce(text("tool_name"), _null_unless(is_tool_span, tl_entity)),
        "tool_type": text("tool_type"),
        "tool_call_id": text("tool_call_id"),
        "conversation_id": text("conversation_id"),
        "user_id": text("user_id"),
        "data_source_id": text("data_source_id"),
        "workflow_name": text("workflow_name"),
        "error_type": _coalesce(text("error_type"), _text_array(head["exception_type"])),
        "server_address": text("server_address"),
        "server_port": _count_array(slot["server_port"]),
        "content_captured": pa.array(head["content_captured"], pa.bool_()),
        "attributes": pa.array(head["attributes"], _STR),
        "resource_attributes": block_text("attributes_json"),
        "scope_attributes": _per_block(blocks, lambda b: b[1].attributes_json),
        "events": _text_array(head["events"]),
        "links": _text_array(head["links"]),
        "dropped_attributes_count": pa.array(head["dropped_attributes_count"], pa.uint32()),
        "dropped_events_count": pa.array(head["dropped_events_count"], pa.uint32()),
        "dropped_links_count": pa.array(head["dropped_links_count"], pa.uint32()),
        "schema_url": _per_block(blocks, lambda b: b[2]),
    }
    return _table(SPAN_SCHEMA, columns)


def _token_columns(
    slot: dict[str, tuple[Any, ...]], provider: pa.Array, request_model: pa.Array, response_model: pa.Array
) -> dict[str, pa.Array]:
    """Token columns with the Anthropic cache correction and the derived total (see module doc)."""
    input_tokens = _count_array(slot["input_tokens"])
    output_tokens = _count_array(slot["output_tokens"])
    reported_total = _count_array(slot["total_tokens"])
    cache_read = _count_array(slot["cache_read_tokens"])
    cache_write = _count_array(slot["cache_write_tokens"])
    n = len(input_tokens)
    if input_tokens.null_count < n and (cache_read.null_count < n or cache_write.null_count < n):
        cache = pc.add(pc.coalesce(cache_read, _I64_0), pc.coalesce(cache_write, _I64_0))
        anthropic = pc.or_kleene(
            pc.equal(provider, _S_ANTHROPIC),
            pc.or_kleene(_is_claude(request_model), _is_claude(response_model)),
        )
        uncorrected = pc.fill_null(pc.and_kleene(anthropic, pc.less(input_tokens, cache)), _FALSE)
        if pc.any(uncorrected).as_py():
            total_was_uncorrected = pc.fill_null(
                pc.equal(reported_total, pc.add(input_tokens, output_tokens)), _FALSE
            )
            corrected_input = pc.add(input_tokens, cache)
            reported_total = pc.if_else(
                pc.and_(uncorrected, total_was_uncorrected),
                pc.add(corrected_input, output_tokens),
                reported_total,
            )
            input_tokens = pc.if_else(uncorrected, corrected_input, input_tokens)
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": _coalesce(reported_total, pc.add(input_tokens, output_tokens)),
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": _count_array(slot["reasoning_tokens"]),
    }


def _is_claude(models: pa.Array) -> pa.Array:
    """Per row: is the model an Anthropic Claude model (whatever platform hosts it)?"""
    if models.null_count == len(models):
        return pa.nulls(len(models), pa.bool_())
    encoded = pc.dictionary_encode(models)
    flags = pa.array(["claude" in m.lower() for m in encoded.dictionary.to_pylist()], pa.bool_())
    return pc.take(flags, encoded.indices)


# --------------------------------------------------------------------------------------------
# Record hashes (metrics, logs)
# --------------------------------------------------------------------------------------------


def _hasher(*parts: bytes) -> Any:
    """A blake2b-128 primed with length-prefixed parts; copy() it per record."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h


def _digest(prefix: Any, record: bytes) -> str:
    h = prefix.copy()
    h.update(len(record).to_bytes(8, "little"))
    h.update(record)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------


def _log_ids(record: Any) -> tuple[str | None, str | None] | str:
    """(trace_id hex, span_id hex), None where absent or all zero; or why they are invalid."""
    tid, sid = record.trace_id, record.span_id
    if tid and len(tid) != 16:
        return f"trace_id must be empty or 16 bytes, got {len(tid)}"
    if sid and len(sid) != 8:
        return f"span_id must be empty or 8 bytes, got {len(sid)}"
    return (
        tid.hex() if tid and tid != _ZERO_TRACE else None,
        sid.hex() if sid and sid != _ZERO_SPAN else None,
    )


def normalise_logs(request: ExportLogsServiceRequest | bytes, limits: Limits = DEFAULT_LIMITS) -> Normalised:
    """The request's valid log records as a table shaped like `log_records`, rejects counted.

    `request` may also be the serialized request; undecodable bytes raise InvalidData.
    """
    data = _shadow(_ShadowLogsData, request)
    kv = _DecodedAttributes(limits)
    rows: list[tuple[Any, ...]] = []
    blocks: list[tuple[int, tuple[_Resource, _Scope]]] = []
    rejects: Counter[tuple[str | None, str]] = Counter()
    for rl in data.resource_logs:
        resource = _shadow_resource(rl.resource, kv)
        for sl in rl.scope_logs:
            records = sl.log_records
            if not records:
                continue
            scope = _shadow_scope(sl.scope, kv)
            error = resource.error or scope.error
            if error:
                rejects[resource.service_name, error] += len(records)
                continue
            before = len(rows)
            _append_log_rows(
                records, kv, _hasher(resource.serialized, scope.serialized), rows, rejects, resource
            )
            blocks.append((len(rows) - before, (resource, scope)))
    return Normalised(_log_table(rows, blocks), _rejects(rejects), "log records")


def _append_log_rows(
    records: Any,
    kv: _DecodedAttributes,
    prefix: Any,
    rows: list[tuple[Any, ...]],
    rejects: Counter[tuple[str | None, str]],
    resource: _Resource,
) -> None:
    service = resource.service_name
    lim = kv.lim
    for r in records:
        time = r.time_unix_nano or r.observed_time_unix_nano
        if not 0 < time <= _INT64_MAX or r.observed_time_unix_nano > _INT64_MAX:
            reason = (
                "time_unix_nano and observed_time_unix_nano are both unset"
                if time == 0
                else "timestamp is beyond the year 2262 (int64 nanoseconds)"
            )
            rejects[service, reason] += 1
            continue
        ids = _log_ids(r)
        if isinstance(ids, str):
            rejects[service, ids] += 1
            continue
        try:
            body = r.body
            before = lim.cuts
            body_json = _json(_any_value_bytes(body, lim)) if body else None
            attrs, dropped = kv.attributes(r.attributes, other_cuts=lim.cuts - before)
        except _UndecodableAttribute:
            rejects[service, "attribute or body cannot be decoded (invalid UTF-8?)"] += 1
            continue
        rows.append(
            (
                _digest(prefix, r.SerializeToString(deterministic=True)),
                time,
                r.observed_time_unix_nano or None,
                r.severity_number,
                r.severity_text or None,
                r.event_name or None,
                body_json,
                *ids,
                r.flags,
                _json(attrs),
                _clamp32(r.dropped_attributes_count + dropped),
            )
        )


_LOG_ROW = (
    "record_hash",
    "time",
    "observed_time",
    "severity_number",
    "severity_text",
    "event_name",
    "body",
    "trace_id",
    "span_id",
    "flags",
    "attributes",
    "dropped_attributes_count",
)


def _log_table(rows: list[tuple[Any, ...]], blocks: list[tuple[int, Any]]) -> pa.Table:
    if not rows:
        return LOG_RECORD_SCHEMA.empty_table()
    col = dict(zip(_LOG_ROW, zip(*rows, strict=True), strict=True))

    def resource(attr: str) -> pa.Array:
        return _per_block(blocks, lambda b: getattr(b[0], attr))

    return _table(
        LOG_RECORD_SCHEMA,
        {
            "record_hash": pa.array(col["record_hash"], _STR),
            "time": pa.array(col["time"], pa.int64()).cast(_TS),
            "observed_time": pa.array(col["observed_time"], pa.int64()).cast(_TS),
            "service_name": resource("service_name"),
            "service_namespace": resource("service_namespace"),
            "environment": resource("environment"),
            "scope_name": _per_block(blocks, lambda b: b[1].name),
            "scope_version": _per_block(blocks, lambda b: b[1].version),
            "severity_number": pa.array(col["severity_number"], pa.int32()),
            "severity_text": pa.array(col["severity_text"], _STR),
            "event_name": pa.array(col["event_name"], _STR),
            "body": pa.array(col["body"], _STR),
            "trace_id": pa.array(col["trace_id"], _STR),
            "span_id": pa.array(col["span_id"], _STR),
            "flags": pa.array(col["flags"], pa.uint32()),
            "attributes": pa.array(col["attributes"], _STR),
            "resource_attributes": resource("attributes_json"),
            "scope_attributes": _per_block(blocks, lambda b: b[1].attributes_json),
            "dropped_attributes_count": pa.array(col["dropped_attributes_count"], pa.uint32()),
        },
    )


# --------------------------------------------------------------------------------------------
# Metrics (lower volume: walked through the real message classes)
# --------------------------------------------------------------------------------------------

_TEMPORALITY = {1: "delta", 2: "cumulative"}


def _real_resource(resource: resource_pb2.Resource, limits: Limits) -> _Resource:
    return _resource(
        _attribute_dict(resource.attributes, limits, resource.dropped_attributes_count),
        resource.SerializeToString(deterministic=True),
    )


def _hex_or_none(b: bytes) -> str | None:
    return b.hex() if b else None


def _json_float(x: float) -> float | str:
    return x if x - x == 0.0 else _nonfinite(x)


def _exemplars_json(exemplars: Any, limits: Limits) -> bytes | None:
    if not exemplars:
        return None
    out = []
    for e in exemplars:
        which = e.WhichOneof("value")
        value = e.as_int if which == "as_int" else _json_float(e.as_double) if which == "as_double" else None
        out.append(
            {
                "time_unix_nano": e.time_unix_nano,
                "value": value,
                "trace_id": _hex_or_none(e.trace_id),
                "span_id": _hex_or_none(e.span_id),
                "filtered_attributes": _attribute_dict(e.filtered_attributes, limits),
            }
        )
    return _json(out)


def _exponential_json(p: Any) -> bytes:
    return _json(
        {
            "scale": p.scale,
            "zero_count": p.zero_count,
            "zero_threshold": _json_float(p.zero_threshold),
            "positive": {"offset": p.positive.offset, "bucket_counts": list(p.positive.bucket_counts)},
            "negative": {"offset": p.negative.offset, "bucket_counts": list(p.negative.bucket_counts)},
        }
    )


def _optional_double(p: Any, field: str) -> float | None:
    return getattr(p, field) if p.HasField(field) else None


# Per metric type: (metric_type, temporality, is_monotonic, values of one point). The values
# are: value_double, value_int, count, sum, min, max, bucket_counts, explicit_bounds,
# exponential, quantiles, exemplars.
def _number_values(p: Any, limits: Limits) -> tuple[Any, ...]:
    which = p.WhichOneof("value")
    return (
        p.as_double if which == "as_double" else None,
        p.as_int if which == "as_int" else None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        _exemplars_json(p.exemplars, limits),
    )


def _histogram_values(p: Any, limits: Limits) -> tuple[Any, ...]:
    return (
        None,
        None,
        p.count,
        _optional_double(p, "sum"),
        _optional_double(p, "min"),
        _optional_double(p, "max"),
        list(p.bucket_counts),
        list(p.explicit_bounds),
        None,
        None,
        _exemplars_json(p.exemplars, limits),
    )


def _exponential_values(p: Any, limits: Limits) -> tuple[Any, ...]:
    return (
        None,
        None,
        p.count,
        _optional_double(p, "sum"),
        _optional_double(p, "min"),
        _optional_double(p, "max"),
        None,
        None,
        _exponential_json(p),
        None,
        _exemplars_json(p.exemplars, limits),
    )


def _summary_values(p: Any, limits: Limits) -> tuple[Any, ...]:
    quantiles = [
        {"quantile": _json_float(q.quantile), "value": _json_float(q.value)} for q in p.quantile_values
    ]
    return (None, None, p.count, p.sum, None, None, None, None, None, _json(quantiles), None)


_METRIC_KINDS: dict[str, tuple[str, Callable[[Any, Limits], tuple[Any, ...]]]] = {
    "gauge": ("gauge", _number_values),
    "sum": ("sum", _number_values),
    "histogram": ("histogram", _histogram_values),
    "exponential_histogram": ("exponential_histogram", _exponential_values),
    "summary": ("summary", _summary_values),
}


def normalise_metrics(request: ExportMetricsServiceRequest, limits: Limits = DEFAULT_LIMITS) -> Normalised:
    """The request's valid data points as a table shaped like `metric_points`, rejects counted."""
    if isinstance(request, bytes | bytearray | memoryview):
        try:
            request = ExportMetricsServiceRequest.FromString(bytes(request))
        except DecodeError as exc:
            raise InvalidData(f"body is not a valid OTLP protobuf export request: {exc}") from exc
    rows: list[tuple[Any, ...]] = []
    blocks: list[tuple[int, tuple[_Resource, _Scope]]] = []
    rejects: Counter[tuple[str | None, str]] = Counter()
    for rm in request.resource_metrics:
        resource = _real_resource(rm.resource, limits)
        for sm in rm.scope_metrics:
            scope = _real_scope(sm.scope, limits)
            before = len(rows)
            for metric in sm.metrics:
                _append_metric_rows(metric, resource, scope, rows, rejects, limits)
            blocks.append((len(rows) - before, (resource, scope)))
    return Normalised(_metric_table(rows, blocks), _rejects(rejects), "data points")


def _append_metric_rows(
    metric: Any,
    resource: _Resource,
    scope: _Scope,
    rows: list[tuple[Any, ...]],
    rejects: Counter[tuple[str | None, str]],
    limits: Limits,
) -> None:
    service = resource.service_name
    which = metric.WhichOneof("data")
    if which is None or which not in _METRIC_KINDS:
        rejects[service, f"metric {metric.name[:200]!r} has no data"] += 1
        return
    metric_type, values_of = _METRIC_KINDS[which]
    data = getattr(metric, which)
    points = data.data_points
    if not metric.name:
        if points:
            rejects[service, "metric name must not be empty"] += len(points)
        return
    temporality = (
        _TEMPORALITY.get(data.aggregation_temporality) if which != "gauge" and which != "summary" else None
    )
    is_monotonic = data.is_monotonic if which == "sum" else None
    prefix = _hasher(
        resource.serialized,
        scope.serialized,
        metric.name.encode(),
        metric_type.encode(),
        metric.unit.encode(),
    )
    description = metric.description or None
    unit = metric.unit or None
    for p in points:
        time = p.time_unix_nano
        if not 0 < time <= _INT64_MAX or p.start_time_unix_nano > _INT64_MAX:
            reason = "time_unix_nano must be set" if time == 0 else "timestamp is beyond the year 2262"
            rejects[service, reason] += 1
            continue
        rows.append(
            (
                _digest(prefix, p.SerializeToString(deterministic=True)),
                time,
                p.start_time_unix_nano or None,
                metric.name,
                description,
                unit,
                metric_type,
                temporality,
                is_monotonic,
                *values_of(p, limits),
                p.flags,
                _json(_attribute_dict(p.attributes, limits)),
            )
        )


_METRIC_ROW = (
    "record_hash",
    "time",
    "start_time",
    "metric_name",
    "description",
    "unit",
    "metric_type",
    "temporality",
    "is_monotonic",
    "value_double",
    "value_int",
    "count",
    "sum",
    "min",
    "max",
    "bucket_counts",
    "explicit_bounds",
    "exponential",
    "quantiles",
    "exemplars",
    "flags",
    "attributes",
)


def _metric_table(rows: list[tuple[Any, ...]], blocks: list[tuple[int, Any]]) -> pa.Table:
    if not rows:
        return METRIC_POINT_SCHEMA.empty_table()
    col = dict(zip(_METRIC_ROW, zip(*rows, strict=True), strict=True))

    def resource(attr: str) -> pa.Array:
        return _per_block(blocks, lambda b: getattr(b[0], attr))

    types = {f.name: f.type for f in METRIC_POINT_SCHEMA}
    columns = {
        name: pa.array(values, types[name])
        for name, values in col.items()
        if name not in ("time", "start_time")
    }
    return _table(
        METRIC_POINT_SCHEMA,
        {
            **columns,
            "time": pa.array(col["time"], pa.int64()).cast(_TS),
            "start_time": pa.array(col["start_time"], pa.int64()).cast(_TS),
            "service_name": resource("service_name"),
            "service_namespace": resource("service_namespace"),
            "environment": resource("environment"),
            "scope_name": _per_block(blocks, lambda b: b[1].name),
            "scope_version": _per_block(blocks, lambda b: b[1].version),
            "resource_attributes": resource("attributes_json"),
            "scope_attributes": _per_block(blocks, lambda b: b[1].attributes_json),
        },
    )
