"""What receiving OTLP over gRPC alone costs: a server that answers every export and does nothing else.

A grpc.aio server in its own process, configured as Muster's receiver is (raw bytes, no
deserializer, the same message size limit), answers `TraceService/Export` with an empty response.
`bench/ingest.py`'s gRPC exporters send it the same benchmark requests (`genai_load`, 1,000 spans
each) for `--duration` seconds after a warm-up, and the server process's CPU is read before and
after: the figure is the CPU a span costs gRPC itself, the floor beneath Muster's receiver.

    python bench/grpc_receive.py [--clients 64] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # ingest and genai_load beside this file
from genai_load import RequestStream, build_templates
from ingest import GrpcExporters, _accepts, free_port

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def serve(port: int) -> None:
    import grpc

    async def export(body: bytes, context: object) -> bytes:
        return b""

    async def run() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
        method = grpc.unary_unary_rpc_method_handler(export)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Export": method})])
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


async def drive(port: int, server: psutil.Process, clients: int, duration: float, warmup: float) -> str:
    stream = RequestStream(build_templates())
    bodies = [stream.next_body() for _ in range(64)]
    exporters = GrpcExporters(port, clients, timeout=30)
    measuring, spans = False, 0
    stop = time.monotonic() + warmup + duration

    async def exporter(slot: int) -> None:
        nonlocal spans
        turn = slot
        while time.monotonic() < stop:
            body, count = bodies[turn % len(bodies)]
            await exporters.send(slot, body)
            spans += count if measuring else 0
            turn += 1

    tasks = [asyncio.create_task(exporter(slot)) for slot in range(clients)]
    await asyncio.sleep(warmup)
    measuring, cpu0, t0 = True, sum(server.cpu_times()[:2]), time.monotonic()
    await asyncio.gather(*tasks)
    seconds, cpu = time.monotonic() - t0, sum(server.cpu_times()[:2]) - cpu0
    await exporters.close()
    return (
        f"gRPC receive alone: {spans / seconds:,.0f} spans/s answered, server {cpu / seconds:.2f} cores,"
        f" {cpu / spans * 1e6:.2f} µs of CPU a span ({clients} exporters, {seconds:.1f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent exporters")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    args = parser.parse_args(argv)
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(port,), daemon=True)
    process.start()
    try:
        while not _accepts(port):  # the spawned server is still starting
            time.sleep(0.1)
        print(asyncio.run(drive(port, psutil.Process(process.pid), args.clients, args.duration, args.warmup)))
    finally:
        process.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
