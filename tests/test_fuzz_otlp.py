"""Fuzzing the OTLP decoders and the normaliser with hypothesis: valid-ish requests, then mutated.

Strategies build structurally plausible OTLP (ids mostly of the right length, timestamps from 0 to
the largest fixed64, attribute values of every AnyValue kind nested a few levels, GenAI attribute
names, events, links, statuses), serialize them as protobuf or OTLP/JSON, and then mutate the bytes
or the JSON document. Whatever comes in, a decoder must answer in one of two ways: a `Normalised`
result (items stored or rejected one by one, limits applied) or `InvalidData` for the whole body —
never another exception. For unmutated protobuf, every span is accounted for (stored + rejected ==
sent), and the column-wise decoder agrees with the per-span reference.

The suite runs a bounded number of examples (MUSTER_FUZZ_EXAMPLES, default 25 per target, with a
fixed seed); docs/reliability.md records a longer, random run (MUSTER_FUZZ_RANDOM=1).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import string

import orjson
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import normalise as normalise_module
from collector.decode import decode
from collector.errors import ExportError, InvalidData
from collector.normalise import (
    DEFAULT_LIMITS,
    Limits,
    Normalised,
    _traces_span_by_span,
    normalise_logs,
    normalise_metrics,
    normalise_traces,
)
from tests.test_normalise import assert_same_result

EXAMPLES = int(os.environ.get("MUSTER_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not os.environ.get("MUSTER_FUZZ_RANDOM"),  # the suite is reproducible by default
)
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
UINT64 = st.integers(0, (1 << 64) - 1)
UINT32 = st.integers(0, (1 << 32) - 1)
T0 = 1_760_000_000_000_000_000
NAMES = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.system",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "llm.token_count.prompt",
    "llm.cost.total",
    "llm.cost.prompt",
    "llm.cost.completion",
    "gen_ai.agent.name",
    "traceloop.span.kind",
    "traceloop.entity.name",
    "openinference.span.kind",
    "server.port",
    "error.type",
    "service.name",
    "muster.truncated",
    "exception.type",
]

# --- AnyValue and items ----------------------------------------------------------------------------

scalars = st.one_of(
    st.text(max_size=40).map(lambda s: AnyValue(string_value=s)),
    st.sampled_from(
        ["openai", "anthropic", "gpt-4o", "claude-3-5-sonnet", "LLM", "agent", "tool", "chat"]
    ).map(lambda s: AnyValue(string_value=s)),
    INT64.map(lambda i: AnyValue(int_value=i)),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: AnyValue(double_value=x)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.binary(max_size=20).map(lambda b: AnyValue(bytes_value=b)),
    st.just(AnyValue()),
)
any_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(st.text(max_size=8), inner), max_size=4).map(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))
        ),
    ),
    max_leaves=12,
)
keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=12))
key_values = st.builds(KeyValue, key=keys, value=any_values)
attribute_lists = st.lists(key_values, max_size=8)
trace_ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))
span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.binary(max_size=10))
times = st.one_of(st.integers(T0, T0 + 10**12), st.just(0), UINT64)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    start = draw(times)
    end = draw(st.one_of(st.just(min(start + 1000, (1 << 64) - 1)), times))
    return Span(
        trace_id=draw(trace_ids),
        span_id=draw(span_ids),
        parent_span_id=draw(st.one_of(st.just(b""), span_ids)),
        trace_state=draw(st.text(max_size=10)),
        name=draw(st.text(max_size=20)),
        kind=draw(st.integers(0, 6)),
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=draw(attribute_lists),
        dropped_attributes_count=draw(st.one_of(st.just(0), UINT32)),
        events=draw(
            st.lists(
                st.builds(
                    Span.Event,
                    time_unix_nano=times,
                    name=st.sampled_from(["exception", "log", ""]),
                    attributes=attribute_lists,
                    dropped_attributes_count=UINT32,
                ),
                max_size=3,
            )
        ),
        dropped_events_count=draw(st.one_of(st.just(0), UINT32)),
        links=draw(
            st.lists(
                st.builds(
                    Span.Link, trace_id=trace_ids, span_id=span_ids, attributes=attribute_lists, flags=UINT32
                ),
                max_size=3,
            )
        ),
        dropped_links_count=draw(st.one_of(st.just(0), UINT32)),
        status=draw(st.builds(Status, code=st.integers(0, 3), message=st.text(max_size=10))),
        flags=draw(UINT32),
    )


@st.composite
def trace_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(draw(attribute_lists))
        for _ in range(draw(st.integers(1, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.text(max_size=8))
            ss.scope.attributes.extend(draw(st.lists(key_values, max_size=3)))
            ss.spans.extend(draw(st.lists(spans(), min_size=1, max_size=4)))
    return request


@st.composite
def logs_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend(draw(attribute_lists))
    records = rl.scope_logs.add().log_records
    for _ in range(draw(st.integers(1, 5))):
        records.append(
            LogRecord(
                time_unix_nano=draw(times),
                observed_time_unix_nano=draw(times),
                severity_number=draw(st.integers(0, 24)),
                body=draw(any_values),
                attributes=draw(attribute_lists),
                trace_id=draw(st.one_of(st.just(b""), trace_ids)),
                span_id=draw(st.one_of(st.just(b""), span_ids)),
                dropped_attributes_count=draw(UINT32),
            )
        )
    return request


@st.composite
def metrics_requests(draw: st.DrawFn) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(draw(attribute_lists))
    metric = rm.scope_metrics.add().metrics.add()
    metric.name = draw(st.sampled_from(["gen_ai.client.token.usage", "", "x"]))
    kind = draw(st.sampled_from(["gauge", "sum", "histogram", "summary", "none"]))
    for _ in range(draw(st.integers(0, 3))):
        if kind == "none":
            break
        point = getattr(metric, kind).data_points.add()
        point.time_unix_nano = draw(times)
        point.attributes.extend(draw(attribute_lists))
        if kind in ("gauge", "sum"):
            point.as_double = draw(st.floats(allow_nan=True, allow_infinity=True))
        elif kind == "histogram":
            point.count = draw(UINT64)
            point.bucket_counts.extend(draw(st.lists(UINT64, max_size=3)))
            point.explicit_bounds.extend(draw(st.lists(st.floats(), max_size=3)))
        else:
            point.sum = draw(st.floats())
    return request


limits = st.one_of(
    st.just(DEFAULT_LIMITS),
    st.builds(
        Limits,
        max_attributes=st.integers(1, 5),
        max_value_length=st.integers(1, 20),
        max_depth=st.integers(1, 3),
        max_events=st.integers(0, 2),
        max_links=st.integers(0, 2),
    ),
)

# --- mutations -------------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few bytes flipped, inserted, deleted or a slice duplicated."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and out:
            del out[at : at + draw(st.integers(1, 8))]
        elif op == "duplicate" and out:
            out[at:at] = out[at : at + draw(st.integers(1, 64))]
        elif op == "truncate":
            del out[at:]
    return bytes(out)


def otlp_json_document(message) -> dict:
    """OTLP/JSON as a dict: protobuf JSON with ids as hex."""
    document = json_format.MessageToDict(message)

    def to_hex(node):
        if isinstance(node, dict):
            return {
                k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else to_hex(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [to_hex(item) for item in node]
        return node

    return to_hex(document)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(1 << 70), 1 << 70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=string.printable, max_size=30),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def json_mutated(draw: st.DrawFn, document: dict) -> dict:
    """The document with a few values somewhere in it replaced by arbitrary JSON."""
    for _ in range(draw(st.integers(1, 3))):
        node, path = document, []
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            key = (
                draw(st.sampled_from(list(node)))
                if isinstance(node, dict)
                else draw(st.integers(0, len(node) - 1))
            )
            path.append((node, key))
            node = node[key]
        if path:
            parent, key = path[-1]
            parent[key] = draw(json_values)
    return document


# --- the property ---------------------------------------------------------------------------------


def survives(call) -> Normalised | None:
    """The decoder's answer: a result, or None for InvalidData; anything else fails the test."""
    try:
        result = call()
    except InvalidData as error:
        assert error.message, "InvalidData must say what is wrong"
        return None
    assert isinstance(result, Normalised)
    assert result.table.num_rows >= 0 and result.rejected >= 0
    return result


def spans_in(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def depth(value) -> int:
    """How deep arrays and maps nest in an attribute value as stored (0 for a scalar)."""
    if isinstance(value, list | dict):
        inner = value.values() if isinstance(value, dict) else value
        return 1 + max((depth(v) for v in inner), default=0)
    return 0


def assert_within_limits(result: Normalised, lim: Limits) -> None:
    """Every stored span keeps to the limits: attributes, events, links, nesting, sizes."""
    # (bytes values are stored as base64, 4 characters for every 3 bytes kept)
    longest_text = -(-lim.max_value_length // 3) * 4
    columns = result.table.select(["attributes", "events", "links"]).to_pylist()
    for row in columns:
        attributes = orjson.loads(row["attributes"]) if row["attributes"] else {}
        assert len(attributes) <= lim.max_attributes + 1  # (+ muster.truncated, ours)
        for value in attributes.values():
            assert depth(value) <= lim.max_depth
            assert not isinstance(value, list | dict) or len(value) <= lim.max_value_length
            assert not isinstance(value, str) or len(value) <= longest_text
        assert len(orjson.loads(row["events"] or "[]")) <= lim.max_events
        assert len(orjson.loads(row["links"] or "[]")) <= lim.max_links


@FUZZ
@given(trace_requests(), limits)
def test_fuzz_traces_protobuf_accounts_for_every_span(request, lim):
    raw = request.SerializeToString()
    result = survives(lambda: normalise_traces(raw, lim))
    assert result is not None, "an unmutated request always parses"
    assert result.table.num_rows + result.rejected == spans_in(request)
    assert_within_limits(result, lim)
    try:
        column_wise = normalise_module._traces_column_wise(raw, lim)
    except normalise_module._PerSpan:
        return
    assert_same_result(column_wise, _traces_span_by_span(raw, lim))


@FUZZ
@given(st.data(), trace_requests(), limits)
def test_fuzz_traces_protobuf_mutated(data, request, lim):
    raw = data.draw(mutated(request.SerializeToString()))
    survives(lambda: normalise_traces(raw, lim))


@FUZZ
@given(st.data(), logs_requests(), metrics_requests(), limits)
def test_fuzz_logs_and_metrics_protobuf_mutated(data, logs, metrics, lim):
    survives(lambda: normalise_logs(logs.SerializeToString(), lim))
    survives(lambda: normalise_metrics(metrics.SerializeToString(), lim))
    survives(lambda: normalise_logs(data.draw(mutated(logs.SerializeToString())), lim))
    survives(lambda: normalise_metrics(data.draw(mutated(metrics.SerializeToString())), lim))


@FUZZ
@given(st.data(), st.sampled_from(["traces", "logs", "metrics"]), limits)
def test_fuzz_json_decoder_mutated(data, signal, lim):
    strategy = {"traces": trace_requests(), "logs": logs_requests(), "metrics": metrics_requests()}[signal]
    document = otlp_json_document(data.draw(strategy))
    if data.draw(st.booleans()):
        document = data.draw(json_mutated(document))
    body = json.dumps(document).encode()  # (orjson cannot write the integers beyond 64 bits)
    if data.draw(st.booleans()):
        body = data.draw(mutated(body))
    survives(lambda: decode(signal, body, "json", None, 1 << 26, lim))


@FUZZ
@given(st.data(), st.sampled_from(["traces", "logs", "metrics"]), st.sampled_from(["gzip", "deflate", None]))
def test_fuzz_decode_compressed_and_mutated(data, signal, encoding):
    strategy = {"traces": trace_requests(), "logs": logs_requests(), "metrics": metrics_requests()}[signal]
    raw = data.draw(strategy).SerializeToString()
    body = gzip.compress(raw) if encoding == "gzip" else raw
    if encoding == "deflate":
        import zlib

        body = zlib.compress(raw)
    body = data.draw(mutated(body))
    try:
        result = decode(signal, body, "protobuf", encoding, 1 << 20)
    except ExportError as error:  # InvalidData, or PayloadTooLarge for an inflated mutation
        assert error.message and not error.retryable
        return
    assert isinstance(result, Normalised)


# --- what the fuzzer found --------------------------------------------------------------------------


def test_found_a_senders_own_muster_truncated_beside_a_cut_log_body():
    """The long run's find: a log record carrying its own non-integer `muster.truncated` whose body
    the limits cut raised TypeError (the body's cuts were added to the sender's value)."""
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=T0)
    record.attributes.append(
        KeyValue(key="muster.truncated", value=AnyValue(array_value=ArrayValue(values=[AnyValue()])))
    )
    record.body.string_value = "x" * 100
    result = normalise_logs(request.SerializeToString(), Limits(max_value_length=10))
    [attributes] = result.table.column("attributes").to_pylist()
    assert orjson.loads(attributes) == {"muster.truncated": 1}
    assert orjson.loads(result.table.column("body")[0].as_py()) == "x" * 10
