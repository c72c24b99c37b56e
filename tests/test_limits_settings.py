"""The five limit settings reach the normaliser of a real server, each to its own limit.

tests/test_hostile_input.py proves the defaults; this starts a server with small, distinct values
(so that two settings wired to each other's limit would show) and a decode worker process (so the
limits must travel there too), and sends one span over gRPC, HTTP protobuf and HTTP JSON.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import start_server
from tests.payloads import kv, otlp_json

T0 = 1_760_000_000_000_000_000
SETTINGS = {
    "max_attributes_per_item": 4,
    "max_attribute_value_length": 6,
    "max_attribute_depth": 2,
    "max_events_per_span": 1,
    "max_links_per_span": 3,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    running = start_server(tmp_path_factory.mktemp("limits") / "data", decode_workers=1, **SETTINGS)
    yield running
    running.stop()


def nested(levels: int) -> AnyValue:
    value = AnyValue(string_value="bottom")
    for _ in range(levels):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    return value


def request(service: str) -> ExportTraceServiceRequest:
    span = Span(
        trace_id=os.urandom(16),
        span_id=os.urandom(8),
        name="chat",
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 1_000,
        attributes=[
            kv("long", "abcdefghij" * 20),  # 200 characters (see the test at the end for short ones)
            KeyValue(key="deep", value=nested(5)),
            kv("a", 1),
            kv("b", 2),
            kv("c", 3),
            kv("d", 4),
        ],
    )
    for i in range(5):
        span.events.add(name=f"e{i}", time_unix_nano=T0 + i)
        span.links.add(trace_id=os.urandom(16), span_id=os.urandom(8))
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", service))
    rs.scope_spans.add().spans.append(span)
    return req


def send(server, transport: str, req: ExportTraceServiceRequest) -> None:
    if transport == "grpc":
        with grpc.insecure_channel(server.grpc_endpoint) as channel:
            method = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            channel.unary_unary(method)(req.SerializeToString(), timeout=60)
        return
    media, body = (
        ("application/json", otlp_json(req))
        if transport == "http-json"
        else ("application/x-protobuf", req.SerializeToString())
    )
    response = httpx.post(f"{server.http_url}/v1/traces", content=body, headers={"Content-Type": media})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("transport", ["grpc", "http-protobuf", "http-json"])
def test_each_limit_setting_is_applied_by_the_server(server, transport):
    service = f"lim-{transport[-1]}"  # (the resource's service.name is cut to the 6-byte limit too)
    send(server, transport, request(service))
    [(attributes, events, links, dropped)] = server.query(
        "SELECT attributes, events, links, "
        "[dropped_attributes_count, dropped_events_count, dropped_links_count] "
        "FROM spans WHERE service_name = ?",
        [service],
    )
    attributes = orjson.loads(attributes)
    assert attributes == {
        "long": "abcdef",  # max_attribute_value_length = 6
        "deep": [["<nesting depth limit exceeded>"]],  # max_attribute_depth = 2
        "a": 1,
        "b": 2,  # max_attributes_per_item = 4: c and d dropped
        "muster.truncated": 2,
    }
    assert len(orjson.loads(events)) == 1  # max_events_per_span = 1
    assert len(orjson.loads(links)) == 3  # max_links_per_span = 3
    assert dropped == [2, 4, 2]


@pytest.mark.parametrize("transport", ["grpc", "http-json"])
def test_a_value_limit_below_128_also_cuts_strings_shorter_than_128_bytes(server, transport):
    req = request(f"s-{transport[-1]}")
    req.resource_spans[0].scope_spans[0].spans[0].attributes[0].value.string_value = "abcdefghij"
    send(server, transport, req)
    [(attributes,)] = server.query(
        "SELECT attributes FROM spans WHERE service_name = ?", [f"s-{transport[-1]}"]
    )
    assert orjson.loads(attributes)["long"] == "abcdef"
