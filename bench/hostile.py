"""What a hostile OTLP request costs a decode worker: time, CPU and memory, case by case.

Each case of tests/test_hostile_input.py that is large by design — a million attributes, 10 MB
values, nesting 10,000 deep — and, for scale, one realistic 1,000-span request, is decoded by
`collector.decode.decode` (what a decode worker runs) in a fresh spawned process, under the default
limits. Reported per case: the body's size, the answer (stored rows or the refusal), wall and CPU
time, and the peak memory the decode added to the worker (VmHWM after minus VmRSS before, the body
already in memory).

    python bench/hostile.py
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from bench.normalise import build_request
from tests.payloads import kv, otlp_json
from tests.test_hostile_input import (
    _field,
    million_json,
    million_protobuf,
    nested_json,
    nested_protobuf,
    request,
    span,
    with_raw_spans,
)


def _a_million_attributes(fmt: str) -> bytes:
    if fmt == "json":
        body = otlp_json(request("s", span("many", [kv("k", "X")])))
        return body.replace(b'{"key": "k", "value": {"stringValue": "X"}}', million_json())
    return with_raw_spans("s", span("many", [kv("k0", 0)]).SerializeToString() + million_protobuf())


def _ten_mb_values(fmt: str) -> bytes:
    blob = KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00" * 10_000_000))
    req = request("s", span("huge", [kv("prompt", "é" + "x" * 10_000_000)]), span("bytes", [blob]))
    return otlp_json(req) if fmt == "json" else req.SerializeToString()


def _nested_10000_deep(fmt: str) -> bytes:
    if fmt == "json":
        body = otlp_json(request("s", span("deep", [kv("deep", "X")])))
        return body.replace(b'{"stringValue": "X"}', nested_json(10_000))
    deep = _field(9, _field(1, b"deep") + _field(2, nested_protobuf(10_000)))  # Span.attributes
    return with_raw_spans("s", span("deep").SerializeToString() + deep)


def _realistic(fmt: str) -> bytes:
    req = build_request(1_000)
    return otlp_json(req) if fmt == "json" else req.SerializeToString()


CASES: dict[str, Callable[[str], bytes]] = {
    "1,000 realistic spans (for scale)": _realistic,
    "a million attributes on one span": _a_million_attributes,
    "a 10 MB string and a 10 MB bytes value": _ten_mb_values,
    "an AnyValue nested 10,000 deep": _nested_10000_deep,
}


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _decode_once(body: bytes, fmt: str) -> tuple[str, float, float, float]:
    """In a fresh worker: (answer, wall s, CPU s, MiB added at peak)."""
    from collector.decode import decode
    from collector.errors import ExportError
    from collector.worker import start_worker

    start_worker()  # as a decode worker starts: the decoder imported, pandas refused
    before = _kib("VmRSS")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    try:
        result = decode("traces", body, fmt, None, 64 * 1024 * 1024)
        answer = f"{result.table.num_rows} stored, {result.rejected} rejected"
    except ExportError as exc:
        answer = f"refused: {exc.message[:60]}"
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    return answer, wall, cpu, (_kib("VmHWM") - before) / 1024


def main() -> None:
    context = multiprocessing.get_context("spawn")
    print(f"{'case':40s} {'format':8s} {'body MB':>8s} {'wall s':>7s} {'CPU s':>6s} {'+MiB':>6s}  answer")
    for name, build in CASES.items():
        for fmt in ("protobuf", "json"):
            body = build(fmt)
            with context.Pool(1, maxtasksperchild=1) as pool:
                answer, wall, cpu, added = pool.apply(_decode_once, (body, fmt))
            size = len(body) / 1e6
            print(f"{name:40s} {fmt:8s} {size:8.1f} {wall:7.2f} {cpu:6.2f} {added:6.0f}  {answer}")


if __name__ == "__main__":
    main()
