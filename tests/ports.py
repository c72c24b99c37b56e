"""Loopback ports for the servers the tests start.

The kernel may hand the same ephemeral port to two `bind(0)` calls in a row once the first socket
is closed, so a server given "three free ports" could get one twice and fail to listen. Every port
handed out here is remembered and never handed out again in this test process."""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now and that no other caller in this process was given."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
