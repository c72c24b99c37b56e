"""Decompression within a limit: gzip, deflate, bombs, truncation, unknown encodings."""

from __future__ import annotations

import gzip
import zlib

import pytest

from collector.decode import decode, decompress
from collector.errors import InvalidData, PayloadTooLarge, UnsupportedMediaType

LIMIT = 1024 * 1024


def test_identity_and_gzip_and_deflate_round_trip():
    body = b"otlp" * 1000
    assert decompress(body, None, LIMIT) == body
    assert decompress(body, "identity", LIMIT) == body
    assert decompress(gzip.compress(body), "gzip", LIMIT) == body
    assert decompress(zlib.compress(body), "deflate", LIMIT) == body
    assert decompress(gzip.compress(body), " GZIP ", LIMIT) == body


def test_gzip_bomb_stops_at_the_limit_without_inflating_it_all():
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)  # 200 MiB in ~200 KiB
    assert len(bomb) < 1024 * 1024
    with pytest.raises(PayloadTooLarge, match="larger than"):
        decompress(bomb, "gzip", LIMIT)


def test_body_over_the_limit_is_too_large():
    with pytest.raises(PayloadTooLarge):
        decompress(b"x" * (LIMIT + 1), None, LIMIT)


def test_exactly_the_limit_is_accepted():
    body = b"x" * LIMIT
    assert decompress(gzip.compress(body), "gzip", LIMIT) == body


def test_corrupt_and_truncated_gzip_are_invalid():
    with pytest.raises(InvalidData, match="cannot be decompressed"):
        decompress(b"not gzip at all", "gzip", LIMIT)
    with pytest.raises(InvalidData, match="truncated"):
        decompress(gzip.compress(b"x" * 10000)[:-20], "gzip", LIMIT)


def test_unknown_encoding_is_unsupported():
    with pytest.raises(UnsupportedMediaType, match="br"):
        decompress(b"", "br", LIMIT)


def test_garbage_protobuf_is_invalid_with_a_message():
    for signal in ("traces", "metrics", "logs"):
        with pytest.raises(InvalidData, match="not a valid OTLP protobuf"):
            decode(signal, b"\xff\xff\xff\xff garbage", "protobuf", None, LIMIT)
