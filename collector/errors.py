"""Why an export failed, decided once: permanent or retryable, and how each transport says it.

Every failure the collector can report is an `ExportError`. Each subclass fixes the one bit that
matters to an OTLP exporter — retry or not — and maps it to a gRPC status code and an HTTP status,
so the gRPC and HTTP receivers answer the same failure the same way (see CONVENTIONS: OTLP rules).

    ExportError
    ├── InvalidData          permanent   INVALID_ARGUMENT    400
    ├── PayloadTooLarge      permanent   RESOURCE_EXHAUSTED  413  (no RetryInfo: do not retry)
    ├── UnsupportedMediaType permanent   INVALID_ARGUMENT    415
    ├── Unauthenticated      permanent   UNAUTHENTICATED     401
    ├── BodyTimeout          permanent   DEADLINE_EXCEEDED   408  (HTTP only: a body trickled too slowly)
    ├── Throttled            retryable   UNAVAILABLE         503  (+ RetryInfo / Retry-After)
    └── Unavailable          retryable   UNAVAILABLE         503  (+ RetryInfo / Retry-After)
"""

from __future__ import annotations

# The codes as google.rpc's plain protobuf enum, not grpcio's: decode workers raise these errors
# and should not have to load gRPC.
from google.rpc import code_pb2


class ExportError(Exception):
    """An export that was not accepted; `message` tells the sender what was wrong."""

    grpc_code: int = code_pb2.INTERNAL
    http_status: int = 500
    retryable: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after if self.retryable else None


class InvalidData(ExportError):
    """The request cannot be decoded or violates OTLP; sending it again will not help."""

    grpc_code = code_pb2.INVALID_ARGUMENT
    http_status = 400


class PayloadTooLarge(ExportError):
    """The body, after decompression, is larger than the configured limit."""

    grpc_code = code_pb2.RESOURCE_EXHAUSTED
    http_status = 413


class UnsupportedMediaType(ExportError):
    """The HTTP Content-Type or Content-Encoding is not one OTLP defines."""

    grpc_code = code_pb2.INVALID_ARGUMENT
    http_status = 415


class Unauthenticated(ExportError):
    """The exporter sent no credential, or one that is not valid, where one is required."""

    grpc_code = code_pb2.UNAUTHENTICATED
    http_status = 401


class BodyTimeout(ExportError):
    """The client did not send its whole body in time (a slow or stalled client)."""

    grpc_code = code_pb2.DEADLINE_EXCEEDED
    http_status = 408


class Throttled(ExportError):
    """The ingest queue is full; the exporter should back off and send the same data again."""

    grpc_code = code_pb2.UNAVAILABLE
    http_status = 503
    retryable = True


class Unavailable(ExportError):
    """The warehouse could not store the data (for instance a full disk); retry later."""

    grpc_code = code_pb2.UNAVAILABLE
    http_status = 503
    retryable = True
