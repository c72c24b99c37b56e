"""What the fault and security tests share: `muster serve` as a real subprocess that can be killed,
its log in a file, and an admin session with its API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import grpc
import httpx

from tests.ports import free_port

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def wait_for(condition: Callable[[], Any], message: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
    return found


class Serve:
    """`muster serve` over `data_dir` on free loopback ports; `env` adds or overrides MUSTER_* variables."""

    def __init__(self, data_dir: Path, log: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.log = log
        self.grpc_port, self.http_port, self.api_port = free_port(), free_port(), free_port()
        self.env = (
            os.environ
            | {
                "MUSTER_DATA_DIR": str(data_dir),
                "MUSTER_OTLP_GRPC_PORT": str(self.grpc_port),
                "MUSTER_OTLP_HTTP_PORT": str(self.http_port),
                "MUSTER_API_PORT": str(self.api_port),
                "MUSTER_DECODE_WORKERS": "0",
                "MUSTER_JOBS_INTERVAL_SECONDS": "0",
                "MUSTER_ALERTS_INTERVAL_SECONDS": "0",
                "MUSTER_CONFIG": str(log.parent / "no-muster.toml"),  # never a stray ./muster.toml
            }
            | env
        )
        self.process: subprocess.Popen | None = None
        self.command = [sys.executable, "-m", "muster", "serve"]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def launch(self, preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=log,
                preexec_fn=preexec_fn,
            )
        return self.process

    def start(self, preexec_fn: Callable[[], None] | None = None) -> Serve:
        self.launch(preexec_fn)
        wait_for(self._ready, f"the server did not become ready:\n{self.log_text()[-3000:]}", timeout=90)
        return self

    def _ready(self) -> bool:
        assert self.process.poll() is None, f"the server exited:\n{self.log_text()[-3000:]}"
        try:
            return httpx.get(f"{self.api_url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def api(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token()}"}
        return httpx.request(method, self.api_url + path, headers=headers, timeout=300, **kwargs)

    def export(self, body: bytes, timeout: float = 30) -> None:
        """One OTLP/gRPC trace export; raises grpc.RpcError when refused."""
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            channel.unary_unary(TRACES)(body, timeout=timeout)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(120) == 0, self.log_text()[-3000:]

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def query(path: Path, sql: str) -> list[tuple]:
    """Read the warehouse file of a stopped server."""
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()
