"""Hostile OTLP, by hand: each case over gRPC, HTTP protobuf and HTTP JSON against a real server.

Every case has a bounded answer: stored with the limits applied and recorded, or refused with a
clear message; where part of a request is good, that part is stored (partial success). The limits
are the defaults (collector.normalise.DEFAULT_LIMITS, the settings' defaults).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector.normalise import DEFAULT_LIMITS
from tests.conftest import start_server
from tests.payloads import kv, logs_request, metrics_request, otlp_json

TRANSPORTS = ["grpc", "http-protobuf", "http-json"]
LIMITS = DEFAULT_LIMITS
T0 = 1_760_000_000_000_000_000
_serial = itertools.count(1)
_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
_RESPONSES = {
    "traces": ExportTraceServiceResponse,
    "metrics": ExportMetricsServiceResponse,
    "logs": ExportLogsServiceResponse,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    running = start_server(tmp_path_factory.mktemp("hostile") / "data", decode_workers=1)
    yield running
    running.stop()


@dataclass
class Answer:
    ok: bool
    rejected: int = 0
    message: str = ""


def send(server, transport: str, body: bytes, signal: str = "traces") -> Answer:
    """Export one body (protobuf bytes, or OTLP/JSON for http-json) and read the answer."""
    if transport == "grpc":
        with grpc.insecure_channel(
            server.grpc_endpoint, options=[("grpc.max_send_message_length", 128 << 20)]
        ) as channel:
            try:
                raw = channel.unary_unary(_METHODS[signal])(body, timeout=120)
            except grpc.RpcError as error:
                return Answer(False, message=f"{error.code().name}: {error.details()}")
        answer = _RESPONSES[signal].FromString(raw)
    else:
        media = "application/json" if transport == "http-json" else "application/x-protobuf"
        response = httpx.post(
            f"{server.http_url}/v1/{signal}", content=body, headers={"Content-Type": media}, timeout=120
        )
        if response.status_code != 200:
            return Answer(False, message=f"{response.status_code}: {response.text}")
        if transport == "http-json":
            partial = response.json().get("partialSuccess", {})
            rejected = sum(int(v) for k, v in partial.items() if k.startswith("rejected"))
            return Answer(True, rejected, partial.get("errorMessage", ""))
        answer = _RESPONSES[signal].FromString(response.content)
    partial = answer.partial_success
    rejected = sum(
        getattr(partial, f.name) for f in partial.DESCRIPTOR.fields if f.name.startswith("rejected")
    )
    return Answer(True, rejected, partial.error_message)


# --- building requests ----------------------------------------------------------------------------


def service_name() -> str:
    return f"hostile-{next(_serial)}"


def span(name: str = "chat", attributes: list[KeyValue] | None = None, **fields: Any) -> Span:
    n = next(_serial)
    fields = {
        "trace_id": os.urandom(8) + n.to_bytes(8, "big"),
        "span_id": n.to_bytes(8, "big"),
        "start_time_unix_nano": T0,
        "end_time_unix_nano": T0 + 1_000,
    } | fields
    return Span(name=name, attributes=attributes or [kv("ok", True)], **fields)


def request(service: str, *spans: Span) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", service))
    rs.scope_spans.add().spans.extend(spans)
    return req


def body_of(req: Any, transport: str) -> bytes:
    return otlp_json(req) if transport == "http-json" else req.SerializeToString()


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (for bytes the message classes refuse to build)."""
    size, length = len(payload), b""
    while size >= 0x80:
        length += bytes([size & 0x7F | 0x80])
        size >>= 7
    return bytes([number << 3 | 2]) + length + bytes([size]) + payload


def _varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def with_raw_spans(service: str, *spans: bytes) -> bytes:
    """A serialized trace request whose spans are given as bytes."""
    resource = _field(1, _field(1, kv("service.name", service).SerializeToString()))
    return _field(1, resource + _field(2, b"".join(_field(2, s) for s in spans)))


def rows(server, service: str) -> list[dict[str, Any]]:
    with server.server.warehouse.cursor() as cur:
        cur.execute("SELECT * FROM spans WHERE service_name = ? ORDER BY name", [service])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def attributes(row: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(row["attributes"])


def depth_of(node: Any) -> tuple[int, Any]:
    depth = 0
    while isinstance(node, list | dict) and node:
        node = node[0] if isinstance(node, list) else node["k"]
        depth += 1
    return depth, node


# --- nesting ----------------------------------------------------------------------------------------


def nested_protobuf(levels: int) -> bytes:
    value = AnyValue(string_value="bottom").SerializeToString()
    for _ in range(levels):
        value = _field(5, _field(1, value))  # array_value { values: [value] }
    return value


def nested_json(levels: int) -> bytes:
    """An OTLP/JSON AnyValue, as text (json.dumps itself recurses too deep for 10,000 levels)."""
    return b'{"arrayValue":{"values":[' * levels + b'{"stringValue":"bottom"}' + b"]}}" * levels


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf"])
def test_anyvalue_nested_10000_deep_is_cut_at_the_depth_limit_and_recorded(server, transport):
    service = service_name()
    deep = _field(9, _field(1, b"deep") + _field(2, nested_protobuf(10_000)))  # Span.attributes
    good = span("good").SerializeToString()
    bad = span("deep").SerializeToString() + deep
    assert send(server, transport, with_raw_spans(service, bad, good)) == Answer(True)
    deep_row, good_row = rows(server, service)
    assert depth_of(attributes(deep_row)["deep"]) == (LIMITS.max_depth, "<nesting depth limit exceeded>")
    assert attributes(deep_row)["muster.truncated"] == 1
    assert "muster.truncated" not in attributes(good_row)


def test_json_nested_past_the_limit_is_cut_and_past_the_parser_refused_clearly(server):
    service = service_name()
    body = otlp_json(request(service, span("deep", [kv("deep", "PLACEHOLDER")])))
    placeholder = b'{"stringValue": "PLACEHOLDER"}'
    deep = body.replace(placeholder, nested_json(300))  # 900 JSON levels: orjson reads 1,024
    assert send(server, "http-json", deep) == Answer(True)
    [row] = rows(server, service)
    assert depth_of(attributes(row)["deep"]) == (LIMITS.max_depth, "<nesting depth limit exceeded>")
    assert attributes(row)["muster.truncated"] == 1
    # 10,000 levels: no JSON parser here reads it; the whole body is refused and says why
    answer = send(server, "http-json", body.replace(placeholder, nested_json(10_000)))
    assert not answer.ok and answer.message.startswith("400") and "depth limit exceeded" in answer.message


@functools.cache
def million_protobuf() -> bytes:
    """Span.attributes k1..k999999 = i, serialized (every length here fits one byte)."""
    out = []
    for i in range(1, 1_000_000):
        key, value = b"k%d" % i, b"\x18" + _varint(i)
        entry = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(value)]) + value
        out.append(b"\x4a" + bytes([len(entry)]) + entry)
    return b"".join(out)


@functools.cache
def million_json() -> bytes:
    return b",".join(b'{"key":"k%d","value":{"intValue":"%d"}}' % (i, i) for i in range(1_000_000))


# --- sizes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_million_attributes_keep_the_first_128_and_count_the_rest(server, transport):
    service = service_name()
    if transport == "http-json":  # (otlp_json would take ~30 s over a million attributes)
        req = request(service, span("many", [kv("k", "X")], dropped_attributes_count=7), span("good"))
        body = otlp_json(req).replace(b'{"key": "k", "value": {"stringValue": "X"}}', million_json())
    else:  # (a million KeyValue messages would take longer to build than the server takes)
        many = span("many", [kv("k0", 0)], dropped_attributes_count=7).SerializeToString()
        body = with_raw_spans(service, many + million_protobuf(), span("good").SerializeToString())
    assert send(server, transport, body) == Answer(True)
    good_row, many_row = rows(server, service)
    assert attributes(many_row) == {f"k{i}": i for i in range(LIMITS.max_attributes)}
    assert many_row["dropped_attributes_count"] == 7 + 1_000_000 - LIMITS.max_attributes
    assert good_row["dropped_attributes_count"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_10_mb_attribute_value_is_cut_to_the_length_limit_and_recorded(server, transport):
    service = service_name()
    huge = "é" + "x" * 10_000_000
    req = request(
        service,
        span("huge", [kv("gen_ai.request.model", "gpt-4o"), kv("prompt", huge)]),
        span("bytes", [KeyValue(key="blob", value=AnyValue(bytes_value=os.urandom(10_000_000)))]),
    )
    assert send(server, transport, body_of(req, transport)) == Answer(True)
    bytes_row, huge_row = rows(server, service)
    attrs = attributes(huge_row)
    assert attrs["prompt"] == huge[: LIMITS.max_value_length]
    assert attrs["muster.truncated"] == 1 and huge_row["request_model"] == "gpt-4o"
    assert len(attributes(bytes_row)["blob"]) == math.ceil(LIMITS.max_value_length / 3) * 4  # base64


# --- text ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf"])
def test_invalid_utf8_rejects_only_the_spans_that_carry_it(server, transport):
    service = service_name()
    bad_value = span("bad-value").SerializeToString() + _field(
        9, _field(1, b"k") + _field(2, _field(1, b"\xff"))
    )
    bad_name = span("x").SerializeToString() + _field(5, b"caf\xe9")  # a second name field wins
    body = with_raw_spans(service, bad_value, span("good").SerializeToString(), bad_name)
    answer = send(server, transport, body)
    assert (answer.ok, answer.rejected) == (True, 2)
    assert "invalid UTF-8" in answer.message
    assert [r["name"] for r in rows(server, service)] == ["good"]


@pytest.mark.parametrize("text", [b'"caf\xe9"', b'"\\udc00"'], ids=["raw-byte", "lone-surrogate"])
def test_invalid_utf8_in_json_refuses_the_body_clearly(server, text):
    service = service_name()
    body = otlp_json(request(service, span("chat", [kv("k", "PLACEHOLDER")])))
    answer = send(server, "http-json", body.replace(b'"PLACEHOLDER"', text))
    assert not answer.ok and answer.message.startswith("400")
    assert "not valid JSON" in answer.message and ("UTF-8" in answer.message or "surrogate" in answer.message)
    assert rows(server, service) == []


# --- numbers ----------------------------------------------------------------------------------------


def double(key: str, x: float) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(double_value=x))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nan_and_infinity_are_kept_as_text_and_never_become_numbers(server, transport):
    service = service_name()
    attrs = [
        double("gen_ai.usage.input_tokens", math.nan),
        double("gen_ai.usage.output_tokens", math.inf),
        double("llm.cost.total", -math.inf),
        double("gen_ai.request.temperature", math.nan),
    ]
    assert send(server, transport, body_of(request(service, span("nan", attrs)), transport)) == Answer(True)
    [row] = rows(server, service)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"], row["reported_cost_usd"]) == (
        None,
        None,
        None,
        None,
    )
    assert attributes(row)["gen_ai.usage.output_tokens"] == "Infinity"
    assert attributes(row)["llm.cost.total"] == "-Infinity"


def test_bare_nan_in_json_refuses_the_body_clearly(server):
    body = otlp_json(request(service_name(), span("chat", [double("x", 1.5)])))
    answer = send(server, "http-json", body.replace(b'"doubleValue": 1.5', b'"doubleValue": NaN'))
    assert not answer.ok and answer.message.startswith("400") and "not valid JSON" in answer.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_negative_and_int64_max_token_counts_give_null_not_a_wrong_total(server, transport):
    service = service_name()
    attrs = [kv("gen_ai.usage.input_tokens", -5), kv("gen_ai.usage.output_tokens", (1 << 63) - 1)]
    assert send(server, transport, body_of(request(service, span("t", attrs)), transport)) == Answer(True)
    [row] = rows(server, service)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (None, None, None)
    assert attributes(row)["gen_ai.usage.output_tokens"] == (1 << 63) - 1


@pytest.mark.parametrize("literal", ["99999999999999999999999", '"99999999999999999999999"', '"-1e400"'])
def test_json_token_counts_beyond_int64_are_stored_as_doubles_with_a_null_count(server, literal):
    service = service_name()
    body = otlp_json(request(service, span("t", [kv("gen_ai.usage.input_tokens", 1234567)])))
    body = body.replace(b'"intValue": "1234567"', b'"intValue": ' + literal.encode())
    answer = send(server, "http-json", body)
    if literal == '"-1e400"':  # not an integer at all: malformed OTLP/JSON, refused saying where
        assert not answer.ok and answer.message.startswith("400") and "intValue" in answer.message
        return
    assert answer == Answer(True)
    [row] = rows(server, service)
    assert row["input_tokens"] is None
    assert attributes(row)["gen_ai.usage.input_tokens"] == 1e23


# --- timestamps and ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_timestamps_at_zero_and_past_int64_reject_only_their_spans(server, transport):
    service = service_name()
    far = (1 << 64) - 1  # year 2554: the largest fixed64; year 9999 cannot even be encoded
    req = request(
        service,
        span("zero", start_time_unix_nano=0),
        span("far", start_time_unix_nano=far, end_time_unix_nano=far),
        span("good"),
    )
    answer = send(server, transport, body_of(req, transport))
    assert (answer.ok, answer.rejected) == (True, 2)
    assert "start_time_unix_nano must be set" in answer.message and "2262" in answer.message
    assert [r["name"] for r in rows(server, service)] == ["good"]


def test_json_timestamp_in_year_9999_rejects_only_its_span(server):
    service = service_name()
    document = json.loads(otlp_json(request(service, span("y9999"), span("good"))))
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    year_9999 = "253402300799000000000"  # 9999-12-31T23:59:59Z in nanoseconds: beyond fixed64
    spans[0]["startTimeUnixNano"] = spans[0]["endTimeUnixNano"] = year_9999
    answer = send(server, "http-json", json.dumps(document).encode())
    assert (answer.ok, answer.rejected) == (True, 1) and "2262" in answer.message
    assert [r["name"] for r in rows(server, service)] == ["good"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ids_of_the_wrong_length_reject_only_their_spans(server, transport):
    service = service_name()
    req = request(
        service,
        span("short-trace", trace_id=os.urandom(15)),
        span("long-span", span_id=os.urandom(9)),
        span("odd-parent", parent_span_id=os.urandom(3)),
        span("good"),
    )
    answer = send(server, transport, body_of(req, transport))
    assert (answer.ok, answer.rejected) == (True, 3)
    assert "trace_id must be 16 bytes, got 15" in answer.message
    assert [r["name"] for r in rows(server, service)] == ["good"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_duplicate_attribute_keys_keep_the_last_value(server, transport):
    service = service_name()
    attrs = [kv("gen_ai.request.model", "first"), kv("n", 1), kv("gen_ai.request.model", "last")]
    assert send(server, transport, body_of(request(service, span("dup", attrs)), transport)) == Answer(True)
    [row] = rows(server, service)
    assert attributes(row) == {"gen_ai.request.model": "last", "n": 1}
    assert row["request_model"] == "last"


def test_duplicate_json_object_keys_keep_the_last_value(server):
    service = service_name()
    body = otlp_json(request(service, span("dup", [kv("k", "PLACEHOLDER")])))
    body = body.replace(b'"stringValue": "PLACEHOLDER"', b'"stringValue": "first", "stringValue": "last"')
    assert send(server, "http-json", body) == Answer(True)
    [row] = rows(server, service)
    assert attributes(row) == {"k": "last"}


# --- logs and metrics --------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_log_records_and_data_points_get_the_same_limits(server, transport):
    service = service_name()
    logs = logs_request(1, service=service)
    record = logs.resource_logs[0].scope_logs[0].log_records[0]
    record.attributes.extend([kv(f"k{i}", i) for i in range(10_000)])
    record.body.string_value = "y" * 1_000_000
    assert send(server, transport, body_of(logs, transport), "logs") == Answer(True)
    metrics = metrics_request(1, service=service)
    point = metrics.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
    point.attributes.extend([kv(f"k{i}", "z" * 100_000 if i == 0 else i) for i in range(10_000)])
    assert send(server, transport, body_of(metrics, transport), "metrics") == Answer(True)
    with server.server.warehouse.cursor() as cur:
        body, attrs, dropped = cur.execute(
            "SELECT body, attributes, dropped_attributes_count FROM log_records WHERE service_name = ?",
            [service],
        ).fetchone()
        [(point_attrs,)] = cur.execute(
            "SELECT attributes FROM metric_points WHERE service_name = ?", [service]
        ).fetchall()
    assert len(orjson.loads(body)) == LIMITS.max_value_length
    assert (orjson.loads(attrs)["muster.truncated"], dropped) == (1, 10_000 - LIMITS.max_attributes)
    point_attrs = orjson.loads(point_attrs)
    assert len(point_attrs["gen_ai.token.type"]) == len("input")
    assert point_attrs["muster.dropped_attributes"] == 10_001 - LIMITS.max_attributes
    assert point_attrs["muster.truncated"] == 1


# --- the server keeps serving ---------------------------------------------------------------------


def test_after_all_of_it_the_server_still_stores_a_plain_export(server):
    service = service_name()
    for transport in TRANSPORTS:
        assert send(server, transport, body_of(request(service, span(transport)), transport)) == Answer(True)
    assert len(rows(server, service)) == 3
