"""Crash safety: SIGKILL the server while exporters send; every acknowledged span survives, once.

The server runs as a real subprocess (`muster serve`) so it can be killed without warning.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import grpc
import httpx
import psutil

from tests.payloads import trace_request
from tests.ports import free_port

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


class ServerProcess:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.grpc_port, self.http_port, self.api_port = free_port(), free_port(), free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = os.environ | {
            "MUSTER_DATA_DIR": str(self.data_dir),
            "MUSTER_OTLP_GRPC_PORT": str(self.grpc_port),
            "MUSTER_OTLP_HTTP_PORT": str(self.http_port),
            "MUSTER_API_PORT": str(self.api_port),
            "MUSTER_DECODE_WORKERS": "1",
        }
        self.process = subprocess.Popen([sys.executable, "-m", "muster", "serve"], env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited during start-up"
            try:
                if httpx.get(f"http://127.0.0.1:{self.api_port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not become ready")

    def kill(self) -> None:
        workers = psutil.Process(self.process.pid).children(recursive=True)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, "decode workers outlived their killed server"

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(60) == 0


def send_until_stopped(port: int, stop: threading.Event, sent: list, acked: list) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        export = channel.unary_unary(METHOD)
        while not stop.is_set():
            body = trace_request(200).SerializeToString()
            sent.append(body)
            try:
                export(body, timeout=10)
            except grpc.RpcError:
                return
            acked.append(body)


def span_ids(body: bytes) -> list[str]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(body)
    return [s.span_id.hex() for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def stored_counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return dict(con.execute("SELECT span_id, count(*) FROM spans GROUP BY span_id").fetchall())


def test_sigkill_during_ingest_loses_no_acknowledged_span(tmp_path):
    server = ServerProcess(tmp_path / "data")
    server.start()
    stop = threading.Event()
    sent: list[bytes] = []
    acked: list[bytes] = []
    senders = [
        threading.Thread(target=send_until_stopped, args=(server.grpc_port, stop, sent, acked))
        for _ in range(4)
    ]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # no warning, mid-traffic
    stop.set()
    for sender in senders:
        sender.join(30)
    assert len(acked) >= 20, "the exporters did not get going before the kill"

    server.start()  # recovery replays the write-ahead log
    server.stop()
    counts = stored_counts(server.data_dir / "muster.duckdb")
    acked_ids = [span for body in acked for span in span_ids(body)]
    assert all(counts.get(span) == 1 for span in acked_ids), "an acknowledged span was lost or doubled"

    server.start()
    for body in sent:  # exporters retry what was not acknowledged, and some of it had been stored
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            channel.unary_unary(METHOD)(body, timeout=30)
    server.stop()
    counts = stored_counts(server.data_dir / "muster.duckdb")
    sent_ids = {span for body in sent for span in span_ids(body)}
    assert set(counts) == sent_ids and set(counts.values()) == {1}
