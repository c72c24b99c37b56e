"""Hostile clients over real sockets: the server closes what it must and keeps serving everyone else.

Each abuse runs against a real server while a well-behaved exporter (HTTP protobuf and gRPC) keeps
sending; every one of its exports must succeed and be stored. Its latencies are printed (run with
`-s` to see them; docs/reliability.md records a run) — never asserted, on a shared 2-core machine.
The server runs with short timeouts so the tests are quick; the defaults are in the settings.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest

from tests.conftest import start_server
from tests.payloads import trace_request

HEADER_TIMEOUT, BODY_TIMEOUT = 1.5, 2.0
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    running = start_server(
        tmp_path_factory.mktemp("clients") / "data",
        decode_workers=1,
        http_header_timeout_seconds=HEADER_TIMEOUT,
        http_body_timeout_seconds=BODY_TIMEOUT,
        grpc_max_metadata_bytes=8192,
    )
    yield running
    running.stop()


def spans(server) -> int:
    return server.query("SELECT count(*) FROM spans")[0][0]


class GoodExporter:
    """Exports 10 spans at a time over HTTP protobuf and gRPC, in turn, recording latencies."""

    def __init__(self, server) -> None:
        self.server, self.latencies, self.failures, self.sent = server, [], [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GoodExporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # at least a few exports once the abuse is at full strength
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http, grpc.insecure_channel(self.server.grpc_endpoint) as channel:
            export = channel.unary_unary(TRACE_METHOD)
            while not self._stop.is_set() or self.sent < 4:
                body = trace_request(10).SerializeToString()
                began = time.perf_counter()
                try:
                    if self.sent % 2:
                        export(body, timeout=30)
                    else:
                        response = http.post(
                            self.server.http_url + "/v1/traces",
                            content=body,
                            headers={"Content-Type": "application/x-protobuf"},
                        )
                        response.raise_for_status()
                except Exception as exc:  # recorded, and fails the test
                    self.failures.append(repr(exc))
                self.latencies.append(time.perf_counter() - began)
                self.sent += 1

    def report(self, abuse: str) -> None:
        ms = [x * 1000 for x in sorted(self.latencies)]
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(
            f"\n[{abuse}] good exporter: {len(ms)} exports, "
            f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
        )


def under_abuse(server, abuse: str, attack: Callable[[], None]) -> None:
    """Run `attack` while the good exporter sends; every good export must be stored."""
    before = spans(server)
    with GoodExporter(server) as good:
        attack()
    good.report(abuse)
    assert good.failures == []
    assert spans(server) - before == 10 * good.sent


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def http_port(server) -> int:
    return server.server.ports["OTLP/HTTP"]


def grpc_port(server) -> int:
    return server.server.ports["OTLP/gRPC"]


def test_baseline_a_good_exporter_alone(server):
    under_abuse(server, "no abuse (baseline)", lambda: time.sleep(3))


# --- HTTP ------------------------------------------------------------------------------------------


def test_slowloris_headers_are_cut_off_and_others_are_served(server):
    socks: list[socket.socket] = []

    def attack() -> None:
        for _ in range(200):
            sock = connect(http_port(server))
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
            socks.append(sock)
        deadline = time.monotonic() + HEADER_TIMEOUT * 2
        while time.monotonic() < deadline:  # one more header byte each 0.2 s: never complete
            for sock in socks:
                with contextlib.suppress(OSError):  # already closed by the server
                    sock.sendall(b"X")
            time.sleep(0.2)

    under_abuse(server, "200 slowloris clients", attack)
    assert all(closed_by_server(sock, HEADER_TIMEOUT * 3) for sock in socks)
    for sock in socks:
        sock.close()


def test_thousands_of_idle_connections_are_closed_and_others_are_served(server):
    socks: list[socket.socket] = []

    def attack() -> None:
        for _ in range(2000):
            socks.append(connect(http_port(server)))
        for _ in range(1000):
            socks.append(connect(grpc_port(server)))
        time.sleep(HEADER_TIMEOUT)

    under_abuse(server, "2,000 idle HTTP + 1,000 idle gRPC connections", attack)
    http_socks = socks[:2000]
    assert sum(closed_by_server(sock, HEADER_TIMEOUT * 3) for sock in http_socks) == 2000
    for sock in socks:
        sock.close()


def test_a_slow_body_gets_408_and_abrupt_disconnects_mid_body_store_nothing(server):
    before = spans(server)
    body = trace_request(50).SerializeToString()
    head = (
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )

    def attack() -> None:
        for _ in range(200):  # half a body, then gone (reset)
            sock = connect(http_port(server))
            sock.sendall(head + body[: len(body) // 2])
            sock.close()

    under_abuse(server, "200 disconnects mid-body", attack)
    stalled = connect(http_port(server))
    stalled.sendall(head + body[:100])
    stalled.settimeout(BODY_TIMEOUT * 4)
    answer = stalled.recv(65536)
    stalled.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    stored = spans(server) - before
    assert stored % 10 == 0, "only the good exporter's spans (10 per export) were stored"


def test_oversized_headers_are_refused_and_others_are_served(server):
    answers: list[bytes] = []

    def attack() -> None:
        for size in (64 * 1024, 1024 * 1024, 8 * 1024 * 1024):
            sock = connect(http_port(server))
            try:
                sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
                sock.settimeout(HEADER_TIMEOUT * 3)
                answers.append(sock.recv(65536))
            except OSError:  # the server closed or reset while we were still sending
                answers.append(b"")
            sock.close()

    under_abuse(server, "headers of 64 KiB, 1 MiB, 8 MiB", attack)
    for answer in answers:  # refused (400/431) or cut off; never accepted
        assert answer == b"" or answer.startswith((b"HTTP/1.1 4",)), answer[:100]


# --- gRPC -------------------------------------------------------------------------------------------


def test_garbage_on_the_grpc_port_is_dropped_and_others_are_served(server):
    closed: list[bool] = []

    def attack() -> None:
        for n in range(100):
            sock = connect(grpc_port(server))
            try:
                garbage = b"GET / HTTP/1.1\r\n\r\n" if n % 2 else os.urandom(4096)
                sock.sendall(garbage)
                closed.append(closed_by_server(sock, 10))
            except OSError:
                closed.append(True)
            sock.close()

    under_abuse(server, "100 connections of garbage on the gRPC port", attack)
    assert all(closed)


def test_oversized_grpc_metadata_is_refused(server):
    body = trace_request(1).SerializeToString()
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        export = channel.unary_unary(TRACE_METHOD)
        with pytest.raises(grpc.RpcError) as caught:
            export(body, timeout=10, metadata=[("x-big", "a" * 64 * 1024)])
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        export(body, timeout=10)  # the same channel still works


def test_a_grpc_call_stalled_mid_message_is_cut_off_with_its_connection_and_others_are_served(tmp_path):
    # A call whose message never comes keeps its connection busy, so the idle limit never frees it;
    # the connection's age does (GOAWAY at the age, closed after the grace).
    aged = start_server(
        tmp_path / "data",
        decode_workers=1,
        grpc_max_connection_age_seconds=1.0,
        grpc_max_connection_age_grace_seconds=1.0,
    )
    try:
        release = threading.Event()

        def never_sent() -> Iterator[bytes]:
            release.wait(60)  # headers go out, the message never does
            yield b""

        with grpc.insecure_channel(aged.grpc_endpoint) as channel:
            stalled = channel.stream_unary(TRACE_METHOD).future(never_sent(), timeout=30)
            # (the good exporter reconnects each second here, transparently: every export counts)
            under_abuse(aged, "a gRPC call stalled mid-message, connections aged 1 s", lambda: time.sleep(4))
            with pytest.raises(grpc.RpcError) as caught:
                stalled.result(timeout=30)
            release.set()
        # cut off by the server's age limit, not by the client's own 30 s deadline
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
    finally:
        aged.stop()


def test_idle_grpc_connections_are_closed_and_others_are_served(tmp_path):
    # Connections that finish the HTTP/2 handshake and then send nothing hold a socket and memory
    # each; the idle limit closes them (GOAWAY, then close), as it would after the default 300 s.
    idle = start_server(tmp_path / "data", decode_workers=1, grpc_max_connection_idle_seconds=1.0)
    preface = (
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    )  # + empty SETTINGS
    socks: list[socket.socket] = []
    try:
        for _ in range(50):
            socks.append(connect(grpc_port(idle)))
            socks[-1].sendall(preface)
        closed: list[bool] = []
        under_abuse(
            idle,
            "50 idle HTTP/2 connections, idle limit 1 s",
            lambda: closed.extend(closed_by_server(sock, 10) for sock in socks),
        )
        assert all(closed)
    finally:
        for sock in socks:
            sock.close()
        idle.stop()
