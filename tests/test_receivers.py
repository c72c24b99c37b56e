"""OTLP receivers over real sockets: status codes, partial success, limits, formats, retries."""

from __future__ import annotations

import gzip
import json
import zlib

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.conftest import start_server
from tests.payloads import logs_request, metrics_request, otlp_json, trace_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def span_count(server) -> int:
    return server.query("SELECT count(*) FROM spans")[0][0]


def post(server, path: str, body: bytes, headers: dict) -> httpx.Response:
    return httpx.post(server.http_url + path, content=body, headers=headers, timeout=30)


def grpc_export(server, body: bytes, method: str = TRACE_METHOD) -> bytes:
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        return channel.unary_unary(method)(body, timeout=30)


# --- HTTP -----------------------------------------------------------------------------------------


def test_http_protobuf_traces_are_stored_and_answered_in_protobuf(server):
    response = post(server, "/v1/traces", trace_request(3).SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert not answer.HasField("partial_success")
    assert span_count(server) == 3


def test_http_json_with_hex_ids_and_string_int64(server):
    request = json.loads(otlp_json(trace_request(1)))
    span = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["traceId"] = "5B8EFFF798038103D269B633813FC60C"  # hex, upper case
    span["spanId"] = "eee19b7ec3c1b174"
    span["startTimeUnixNano"] = "1700000000000000000"  # int64 as a string
    span["endTimeUnixNano"] = 1700000000500000000  # int64 as a number
    span["kind"] = 3
    span["someFieldFromTheFuture"] = {"ignored": True}
    response = post(server, "/v1/traces", json.dumps(request).encode(), JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    rows = server.query("SELECT trace_id, span_id, kind, duration_ns FROM spans")
    assert rows == [("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "client", 500_000_000)]


@pytest.mark.parametrize("encoding, compress", [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_http_compressed_bodies(server, encoding, compress):
    body = compress(trace_request(4).SerializeToString())
    response = post(server, "/v1/traces", body, PROTOBUF | {"Content-Encoding": encoding})
    assert response.status_code == 200
    assert span_count(server) == 4


def test_http_partial_success_keeps_the_good_spans(server):
    body = trace_request(3, bad=2, service="billing-agent").SerializeToString()
    response = post(server, "/v1/traces", body, PROTOBUF)
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 2
    assert "trace_id" in answer.partial_success.error_message
    assert span_count(server) == 3
    rejects = server.query("SELECT signal, service_name, rejected FROM ingest_rejects")
    assert rejects == [("traces", "billing-agent", 2)]


def test_http_partial_success_in_json(server):
    body = otlp_json(trace_request(1, bad=1))
    response = post(server, "/v1/traces", body, JSON)
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"  # int64 in OTLP/JSON


def test_http_malformed_protobuf_is_400_with_a_status_body(server):
    response = post(server, "/v1/traces", b"\xff\xfe not protobuf", PROTOBUF)
    assert response.status_code == 400
    status = status_pb2.Status.FromString(response.content)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "not a valid OTLP protobuf" in status.message
    assert span_count(server) == 0


def test_http_malformed_json_is_400_in_json(server):
    response = post(server, "/v1/traces", b'{"resourceSpans": [', JSON)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["message"]


def test_http_wrong_content_type_method_and_path(server):
    assert post(server, "/v1/traces", b"{}", {"Content-Type": "text/plain"}).status_code == 415
    assert post(server, "/v1/traces", b"{}", JSON | {"Content-Encoding": "br"}).status_code == 415
    assert httpx.get(server.http_url + "/v1/traces").status_code == 405
    assert post(server, "/v1/spans", b"{}", JSON).status_code == 404


def test_http_retry_of_the_same_export_stores_each_span_once(server):
    body = trace_request(5).SerializeToString()
    for _ in range(3):
        assert post(server, "/v1/traces", body, PROTOBUF).status_code == 200
    assert span_count(server) == 5


def test_http_metrics_and_logs(server):
    response = post(server, "/v1/metrics", metrics_request(3).SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    assert not ExportMetricsServiceResponse.FromString(response.content).HasField("partial_success")
    body = otlp_json(logs_request(2))
    response = post(server, "/v1/logs", body, JSON)
    assert response.status_code == 200
    assert server.query("SELECT count(*) FROM metric_points")[0][0] == 3
    assert server.query("SELECT count(*) FROM log_records")[0][0] == 2


@pytest.fixture
def small_server(tmp_path):
    running = start_server(tmp_path / "data", decode_workers=1, max_request_bytes=64 * 1024)
    yield running
    running.stop()


def test_http_body_over_the_limit_is_413(small_server):
    body = trace_request(1, pad=100 * 1024).SerializeToString()
    response = post(small_server, "/v1/traces", body, PROTOBUF)
    assert response.status_code == 413
    assert "limit" in status_pb2.Status.FromString(response.content).message


def test_http_gzip_bomb_is_413_and_the_server_carries_on(small_server):
    bomb = gzip.compress(b"\0" * (256 * 1024 * 1024), compresslevel=9)
    response = post(small_server, "/v1/traces", bomb, PROTOBUF | {"Content-Encoding": "gzip"})
    assert response.status_code == 413
    ok = post(small_server, "/v1/traces", trace_request(2).SerializeToString(), PROTOBUF)
    assert ok.status_code == 200


# --- gRPC -----------------------------------------------------------------------------------------


def test_grpc_traces_partial_success(server):
    answer = ExportTraceServiceResponse.FromString(
        grpc_export(server, trace_request(2, bad=1).SerializeToString())
    )
    assert answer.partial_success.rejected_spans == 1
    assert span_count(server) == 2


def test_grpc_metrics_and_logs(server):
    metrics = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
    logs = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    ExportMetricsServiceResponse.FromString(
        grpc_export(server, metrics_request(4).SerializeToString(), metrics)
    )
    ExportLogsServiceResponse.FromString(grpc_export(server, logs_request(3).SerializeToString(), logs))
    assert server.query("SELECT count(*) FROM metric_points")[0][0] == 4
    assert server.query("SELECT count(*) FROM log_records")[0][0] == 3


def test_grpc_malformed_is_invalid_argument(server):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_export(server, b"\xff\xfe not protobuf")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid OTLP protobuf" in caught.value.details()


def test_grpc_oversize_is_resource_exhausted_without_retry_info(small_server):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_export(small_server, trace_request(1, pad=100 * 1024).SerializeToString())
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(caught.value)
    assert status is None or not status.details


def test_grpc_retry_is_stored_once(server):
    body = trace_request(4).SerializeToString()
    grpc_export(server, body)
    grpc_export(server, body)
    assert span_count(server) == 4


def test_a_full_queue_throttles_with_retry_info_and_retry_after(server):
    server.server.ingest.stats.queued_bytes = 1 << 40  # as if the queue were full
    try:
        with pytest.raises(grpc.RpcError) as caught:
            grpc_export(server, trace_request(1).SerializeToString())
        response = post(server, "/v1/traces", trace_request(1).SerializeToString(), PROTOBUF)
    finally:
        server.server.ingest.stats.queued_bytes = 0
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    details = rpc_status.from_call(caught.value).details
    retry = error_details_pb2.RetryInfo()
    assert details[0].Unpack(retry) and retry.retry_delay.seconds == 1
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert span_count(server) == 0
    assert server.server.ingest.stats.throttled["traces"] == 2
