"""Shared fixtures: a real warehouse file in a temp dir, and a real server on ephemeral ports."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from muster.settings import load_settings
from warehouse.database import open_warehouse


@pytest.fixture
def warehouse(tmp_path: Path):
    con = open_warehouse(tmp_path / "muster.duckdb")
    yield con
    con.close()


class RunningServer:
    """A `muster serve` running in a thread of the test process, on free ports."""

    def __init__(self, server, thread: threading.Thread) -> None:
        self.server, self.thread = server, thread

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.server.ports['OTLP/gRPC']}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.ports['OTLP/HTTP']}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.ports['API']}"

    def query(self, sql: str, params: object = None) -> list[tuple]:
        with self.server.warehouse.cursor() as cur:
            return cur.execute(sql, params).fetchall()

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the server did not stop"


def start_server(data_dir: Path, **overrides: object) -> RunningServer:
    from muster.server import Server

    settings = load_settings(data_dir=data_dir, otlp_grpc_port=0, otlp_http_port=0, api_port=0, **overrides)
    server = Server(settings)
    errors: list[BaseException] = []

    def run() -> None:
        import asyncio

        try:
            asyncio.run(server.run())
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.ready:
        if errors:
            raise errors[0]
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.02)
    return RunningServer(server, thread)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path / "data", decode_workers=1)
    yield running
    running.stop()
