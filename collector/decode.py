"""Body bytes → normalised Arrow rows: decompress within a limit, parse, normalise.

This is the work done off the event loop, in decode worker processes (see `pipeline`), so it is a
plain function of picklable arguments. It is the only place OTLP payloads are parsed, for every
transport and format: gRPC and HTTP protobuf bodies and OTLP/JSON bodies all end here.
"""

from __future__ import annotations

import zlib
from typing import Literal

from collector.errors import InvalidData, PayloadTooLarge, UnsupportedMediaType
from collector.normalise import (
    DEFAULT_LIMITS,
    Limits,
    Normalised,
    normalise_logs,
    normalise_metrics,
    normalise_traces,
)
from collector.otlp_json import parse_json

Signal = Literal["traces", "metrics", "logs"]
Format = Literal["protobuf", "json"]

_NORMALISERS = {"traces": normalise_traces, "metrics": normalise_metrics, "logs": normalise_logs}
# zlib's wbits: 16+ reads a gzip header, + reads a zlib header (HTTP "deflate" is zlib-wrapped).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_CHUNK = 1024 * 1024


def decode(
    signal: Signal,
    body: bytes,
    fmt: Format,
    encoding: str | None,
    limit: int,
    limits: Limits = DEFAULT_LIMITS,
) -> Normalised:
    """Turn one export body into rows; raise an `ExportError` if the whole request is unusable.

    `limit` bounds the decompressed body; `limits` what one item may carry (cut and recorded).
    """
    raw = decompress(body, encoding, limit)
    # Protobuf bodies go to the normaliser as bytes: it parses them itself, leaving attribute
    # values undecoded until needed, which is cheaper than a full parse first.
    request = parse_json(signal, raw, limits) if fmt == "json" else raw
    return _NORMALISERS[signal](request, limits)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding, never producing more than `limit` bytes (a gzip bomb stops early)."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is {len(body)} bytes; the limit is {limit}")
        return body
    if encoding not in _WBITS:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none"
        )
    inflater = zlib.decompressobj(_WBITS[encoding])
    parts, size, data = [], 0, body
    try:
        while data:
            part = inflater.decompress(data, min(_CHUNK, limit + 1 - size))
            size += len(part)
            if size > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes after decompression")
            parts.append(part)
            data = inflater.unconsumed_tail
        if not inflater.eof:
            raise InvalidData(f"{encoding} body is truncated")
    except zlib.error as exc:
        raise InvalidData(f"{encoding} body cannot be decompressed: {exc}") from None
    return b"".join(parts)
