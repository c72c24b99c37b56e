"""The OTLP collector: receivers for gRPC and HTTP, decoding, normalisation, and the ingest pipeline.

receiver (gRPC | HTTP) → Ingest.export → decode worker (decompress, parse, normalise)
                       → warehouse Writer (group commit) → answer the exporter
"""

from collector.errors import (
    ExportError,
    InvalidData,
    PayloadTooLarge,
    Throttled,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from collector.grpc_receiver import GrpcReceiver
from collector.http_receiver import http_receiver
from collector.normalise import Limits
from collector.pipeline import ExportResult, Ingest, IngestStats

__all__ = [
    "ExportError",
    "ExportResult",
    "GrpcReceiver",
    "Ingest",
    "IngestStats",
    "InvalidData",
    "Limits",
    "PayloadTooLarge",
    "Throttled",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
    "http_receiver",
]
