"""Bound what one API request may send: the size of its body and the time the body takes to arrive.

FastAPI reads a request's whole body into memory before any dependency runs, authentication
included, so without this an anonymous client could make the server (which also holds the
warehouse and the ingest queue) buffer a body of any size, and a client that sends its headers and
then stalls would hold a request open for ever (the header timer of `collector.asgi_server` stops
at the end of the headers). The OTLP/HTTP receiver bounds its own bodies; this middleware does the
same for the API: a declared `Content-Length` over the limit is refused before a byte of the body
is read (413), a body that grows past it while streaming likewise, and one not complete within the
timeout gets 408. Both answers close the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class _Disconnected(Exception):
    """The client went away before its body was complete: there is no one to answer."""


class RequestBodyLimit:
    """ASGI middleware: read the body first, within `max_bytes` and `timeout` seconds, then pass it on."""

    def __init__(self, app: App, *, max_bytes: int, timeout: float) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_declared(scope)
            async with asyncio.timeout(self.timeout):
                messages = await self._read(receive)
        except _Refused as refused:
            await _answer(send, refused.status, refused.detail)
            return
        except TimeoutError:
            detail = f"request body not received within {self.timeout:g} s"
            await _answer(send, 408, detail)
            return
        except _Disconnected:
            return
        await self.app(scope, _replay(messages, receive), send)

    def _check_declared(self, scope: MutableMapping[str, Any]) -> None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                raise _Refused(413, f"request body is {int(value)} bytes; the limit is {self.max_bytes}")

    async def _read(self, receive: Receive) -> list[Message]:
        """Every `http.request` message of the body, counting its bytes as they arrive."""
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                raise _Refused(413, f"request body is larger than {self.max_bytes} bytes")
            messages.append(message)
            if not message.get("more_body", False):
                return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the buffered body, then waits on the client (for a disconnect)."""
    pending = iter(messages)

    async def replayed() -> Message:
        return next(pending, None) or await receive()

    return replayed


async def _answer(send: Send, status: int, detail: str) -> None:
    """A FastAPI-style JSON error that also closes the connection (the rest of the body is unread)."""
    body = orjson.dumps({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
