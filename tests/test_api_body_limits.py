"""The API bounds request bodies as the OTLP/HTTP receiver does: size (413) and arrival time (408).

FastAPI buffers a body before it authenticates, so these run against a real server, over raw
sockets, without a token: an anonymous client must not make the server hold a large body or a
request open. The limits are small here so the tests are quick; the defaults are in the settings.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import start_server
from tests.test_access import admin_headers

LIMIT, BODY_TIMEOUT = 1 << 20, 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Any]:
    running = start_server(
        tmp_path_factory.mktemp("api-body") / "data",
        decode_workers=0,
        jobs_interval_seconds=0,
        api_max_request_bytes=LIMIT,
        http_body_timeout_seconds=BODY_TIMEOUT,
    )
    yield running
    running.stop()


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server.ports["API"]), timeout=30)


def head(path: str, **headers: str | int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer_then_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (which it must, within 30 s)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_declared_oversized_body_is_refused_before_a_byte_of_it_is_sent(server):
    with connect(server) as sock:
        sock.sendall(head("/api/v1/registry/apply", Content_Length=600 << 20))  # and no body at all
        answer = answer_then_close(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request body is 629145600 bytes; the limit is 1048576" in answer


def test_a_streamed_body_is_refused_once_it_grows_past_the_limit(server):
    chunk = b"a" * 65536
    with connect(server) as sock:
        sock.sendall(head("/api/v1/registry/apply", Transfer_Encoding="chunked"))
        for _ in range(LIMIT // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"1\r\na\r\n")  # one byte past the limit, then silence (no last chunk)
        try:
            answer = answer_then_close(sock)
        except ConnectionResetError:  # closed with bytes of ours unread: the kernel resets instead
            answer = b"reset"
    # never 408 (the body would have been waited for) and never a route's answer
    assert answer == b"reset" or answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert answer == b"reset" or b"larger than 1048576 bytes" in answer
    assert httpx.get(server.api_url + "/healthz").status_code == 200


def test_a_stalled_body_gets_408_while_others_are_served(server):
    stalled = connect(server)
    stalled.sendall(head("/api/v1/registry/apply", Content_Length=1000) + b'{"files": ')
    answers: list[bytes] = []
    waiting = threading.Thread(target=lambda: answers.append(answer_then_close(stalled)))
    waiting.start()
    good = httpx.get(server.api_url + "/api/v1/whoami", headers=admin_headers(server), timeout=30)
    assert good.status_code == 200  # served while the stalled request waits for its body
    waiting.join(60)
    stalled.close()
    assert answers and answers[0].startswith(b"HTTP/1.1 408"), answers[:1]
    assert b"request body not received within 2 s" in answers[0]


def test_a_body_within_the_limit_reaches_the_route_whole(server):
    big_comment = "# " + "x" * (LIMIT - 4096) + "\n"  # valid YAML with nothing in it
    response = httpx.post(
        server.api_url + "/api/v1/registry/plan",
        json={"empty.yaml": big_comment},
        headers=admin_headers(server),
        timeout=60,
    )
    assert response.status_code == 200, response.text[:300]
    unauthenticated = httpx.post(server.api_url + "/api/v1/registry/plan", json={"empty.yaml": "# x"})
    assert unauthenticated.status_code == 401  # the limit comes first; authentication still applies
