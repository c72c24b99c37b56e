"""TLS: with a certificate configured, the receivers and the API speak only TLS."""

from __future__ import annotations

import ssl

import grpc
import httpx
import pytest
import trustme
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.conftest import start_server
from tests.payloads import trace_request


@pytest.fixture
def tls_server(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_pem.write_to_path(str(key))
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    ca.cert_pem.write_to_path(str(ca_file))
    server = start_server(tmp_path / "data", decode_workers=1, tls_cert_file=chain, tls_key_file=key)
    server.ca_file = ca_file
    yield server
    server.stop()


def test_real_exporters_send_over_tls(tls_server):
    ca = tls_server.ca_file.read_bytes()
    port = tls_server.server.ports
    provider = TracerProvider(resource=Resource.create({"service.name": "tls-agent"}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            GrpcSpanExporter(
                endpoint=f"localhost:{port['OTLP/gRPC']}", credentials=grpc.ssl_channel_credentials(ca)
            )
        )
    )
    provider.add_span_processor(
        SimpleSpanProcessor(
            HttpSpanExporter(
                endpoint=f"https://localhost:{port['OTLP/HTTP']}/v1/traces",
                certificate_file=str(tls_server.ca_file),
            )
        )
    )
    provider.get_tracer("t").start_span("chat", attributes={"gen_ai.request.model": "gpt-4o"}).end()
    provider.shutdown()
    # one span, sent twice (once per transport), stored once
    assert tls_server.query("SELECT service_name, count(*) FROM spans GROUP BY ALL") == [("tls-agent", 1)]
    api = f"https://localhost:{port['API']}/healthz"
    trusted = ssl.create_default_context(cafile=tls_server.ca_file)
    assert httpx.get(api, verify=trusted).json() == {"status": "ok"}


def test_plaintext_is_refused_when_tls_is_on(tls_server):
    port = tls_server.server.ports
    with pytest.raises(httpx.HTTPError):
        httpx.post(
            f"http://127.0.0.1:{port['OTLP/HTTP']}/v1/traces",
            content=trace_request(1).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
    with grpc.insecure_channel(f"127.0.0.1:{port['OTLP/gRPC']}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError):
            export(trace_request(1).SerializeToString(), timeout=5)
    assert tls_server.query("SELECT count(*) FROM spans") == [(0,)]
