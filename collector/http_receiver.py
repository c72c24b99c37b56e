"""OTLP/HTTP receiver: `POST /v1/traces|metrics|logs`, protobuf or JSON, answered in kind.

The body is read with a running size check, so an oversized request is refused before it is all
in memory, and within a time limit, so a client trickling its body cannot hold a request open
(408, retryable by OTLP's rules only if the exporter chooses; the headers have their own limit in
`asgi_server`); decompression (gzip, deflate) and parsing happen in the shared pipeline. Errors are a
`google.rpc.Status` in the request's content type, with `Retry-After` when the exporter should
retry (OTLP/HTTP: 400 bad data, 413 too large, 415 wrong type, 503 retry later).
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from collector.asgi_server import AsgiServer
from collector.credentials import bearer
from collector.decode import Format, Signal
from collector.errors import BodyTimeout, ExportError, PayloadTooLarge, UnsupportedMediaType
from collector.grpc_receiver import export_response, rpc_status_of
from collector.pipeline import Ingest

log = logging.getLogger(__name__)

_MEDIA_TYPES: dict[str, Format] = {"application/x-protobuf": "protobuf", "application/json": "json"}
_CONTENT_TYPES = {fmt: media for media, fmt in _MEDIA_TYPES.items()}


def request_format(content_type: str | None) -> Format:
    """The OTLP encoding named by a Content-Type header, or `UnsupportedMediaType`."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in _MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not supported; use application/x-protobuf or application/json"
        )
    return _MEDIA_TYPES[media]


def encode(message, fmt: Format) -> bytes:
    """Serialize a protobuf message as OTLP protobuf or OTLP/JSON."""
    if fmt == "json":
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The request body, refusing it as soon as it grows past `limit` bytes or takes `timeout` s."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"request body not received within {timeout:g} s ({size} bytes arrived)") from None
    return b"".join(chunks)


def error_response(error: ExportError, fmt: Format) -> Response:
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    body = encode(rpc_status_of(error), fmt)
    return Response(body, status_code=error.http_status, media_type=_CONTENT_TYPES[fmt], headers=headers)


def otlp_app(ingest: Ingest, *, max_request_bytes: int, body_timeout: float | None = None) -> Starlette:
    """The Starlette application serving the three OTLP/HTTP paths."""

    def route(signal: Signal) -> Route:
        async def export(request: Request) -> Response:
            fmt: Format = "protobuf"
            try:
                fmt = request_format(request.headers.get("content-type"))
                body = await read_body(request, max_request_bytes, body_timeout)
                encoding = request.headers.get("content-encoding")
                credential = bearer(request.headers.get("authorization"))
                client = request.client.host if request.client else None
                result = await ingest.export(signal, body, fmt, encoding, credential, client)
            except ExportError as error:
                return error_response(error, fmt)
            except ClientDisconnect:
                return Response(status_code=400)
            return Response(encode(export_response(signal, result), fmt), media_type=_CONTENT_TYPES[fmt])

        return Route(f"/v1/{signal}", export, methods=["POST"])

    return Starlette(routes=[route("traces"), route("metrics"), route("logs")])


def http_receiver(
    ingest: Ingest,
    *,
    host: str,
    port: int,
    max_request_bytes: int,
    tls: tuple[Path, Path] | None = None,
    header_timeout: float = 10.0,
    body_timeout: float | None = 60.0,
    keep_alive: float = 5.0,
) -> AsgiServer:
    """The OTLP/HTTP server component."""
    app = otlp_app(ingest, max_request_bytes=max_request_bytes, body_timeout=body_timeout)
    return AsgiServer(
        app,
        host=host,
        port=port,
        name="OTLP/HTTP",
        tls=tls,
        header_timeout=header_timeout,
        keep_alive=keep_alive,
    )
