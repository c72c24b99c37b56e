"""OTLP/gRPC receiver: `{Trace,Metrics,Logs}Service/Export` on grpc.aio, answering after commit.

Requests arrive as raw bytes (no deserializer): parsing happens once, in a decode worker, through
the same pipeline as HTTP. Failures become gRPC statuses with a `google.rpc.Status` in the
trailers; retryable ones carry `RetryInfo`, which OTLP exporters honour when backing off.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace

from collector.credentials import bearer
from collector.decode import Signal
from collector.errors import ExportError
from collector.pipeline import ExportResult, Ingest

log = logging.getLogger(__name__)

_SERVICES: dict[str, Signal] = {
    "opentelemetry.proto.collector.trace.v1.TraceService": "traces",
    "opentelemetry.proto.collector.metrics.v1.MetricsService": "metrics",
    "opentelemetry.proto.collector.logs.v1.LogsService": "logs",
}


def export_response(signal: Signal, result: ExportResult):
    """The signal's Export*ServiceResponse; `partial_success` is set only when something was refused."""
    if signal == "traces":
        response = trace.ExportTraceServiceResponse()
        if result.rejected:
            response.partial_success.rejected_spans = result.rejected
    elif signal == "metrics":
        response = metrics.ExportMetricsServiceResponse()
        if result.rejected:
            response.partial_success.rejected_data_points = result.rejected
    else:
        response = logs.ExportLogsServiceResponse()
        if result.rejected:
            response.partial_success.rejected_log_records = result.rejected
    if result.rejected:
        response.partial_success.error_message = result.error_message
    return response


def _address(peer: str) -> str:
    """The address of a gRPC peer (`ipv4:10.0.0.7:51234`, `ipv6:[::1]:51234`), without its port."""
    if not peer.startswith(("ipv4:", "ipv6:")):
        return peer  # e.g. unix:/path
    return peer.partition(":")[2].rpartition(":")[0].strip("[]")


def rpc_status_of(error: ExportError) -> status_pb2.Status:
    """The `google.rpc.Status` describing an export error, with RetryInfo when it is retryable."""
    status = status_pb2.Status(code=error.grpc_code, message=error.message)
    if error.retry_after is not None:
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration())
        retry.retry_delay.FromNanoseconds(int(error.retry_after * 1e9))
        detail = any_pb2.Any()
        detail.Pack(retry)
        status.details.append(detail)
    return status


class GrpcReceiver:
    """The OTLP/gRPC server; `start()` binds and serves, `shutdown()` drains and stops."""

    name = "OTLP/gRPC"

    def __init__(
        self,
        ingest: Ingest,
        *,
        host: str,
        port: int,
        max_message_bytes: int,
        tls: tuple[Path, Path] | None = None,
        max_concurrent_streams: int = 100,
        max_connection_idle: float = 300.0,
        max_connection_age: float = 600.0,
        max_connection_age_grace: float = 60.0,
        max_metadata_bytes: int = 16 * 1024,
    ) -> None:
        self._ingest = ingest
        self._tls = tls  # (certificate chain, private key), PEM
        self._address = f"{host}:{port}"
        self._max_message_bytes = max_message_bytes
        # Hostile clients: streams per connection, idle connections and header (metadata) size
        # are bounded; grpc-core already drops connections that speak garbage instead of HTTP/2.
        # A call that stalls mid-message keeps its connection busy, not idle: the connection's age
        # bounds it (GOAWAY at max age, closed after the grace; exporters simply reconnect).
        self._limits = [
            ("grpc.max_concurrent_streams", max_concurrent_streams),
            ("grpc.max_connection_idle_ms", int(max_connection_idle * 1000)),
            ("grpc.max_connection_age_ms", int(max_connection_age * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace * 1000)),
            ("grpc.max_metadata_size", max_metadata_bytes),
        ]
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the gRPC receiver is already started")
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max_message_bytes),
                ("grpc.so_reuseport", 0),
                *self._limits,
            ]
        )
        server.add_generic_rpc_handlers([self._handler(name, signal) for name, signal in _SERVICES.items()])
        try:
            if self._tls:
                chain, key = (path.read_bytes() for path in self._tls)
                credentials = grpc.ssl_server_credentials([(key, chain)])
                self.port = server.add_secure_port(self._address, credentials)
            else:
                self.port = server.add_insecure_port(self._address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for OTLP/gRPC on {self._address}: {exc}") from None
        await server.start()
        self._server = server
        log.info("OTLP/gRPC listening on %s", self._address.rsplit(":", 1)[0] + f":{self.port}")

    async def shutdown(self, grace: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    def _handler(self, service: str, signal: Signal) -> grpc.GenericRpcHandler:
        async def export(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
            encoding = None  # gRPC has already undone its own message compression
            metadata = dict(context.invocation_metadata() or ())
            try:
                credential = bearer(metadata.get("authorization"))
                client = _address(context.peer())
                result = await self._ingest.export(signal, body, "protobuf", encoding, credential, client)
            except ExportError as error:
                await context.abort_with_status(rpc_status.to_status(rpc_status_of(error)))
            return export_response(signal, result).SerializeToString()

        method = grpc.unary_unary_rpc_method_handler(export)  # bytes in, bytes out
        return grpc.method_handlers_generic_handler(service, {"Export": method})
