"""Run an ASGI application with uvicorn on the current event loop, as a start/shutdown component.

Used for the OTLP/HTTP receiver and the HTTP API, which share the server's loop with gRPC. The
socket is bound here, so a port in use fails `start()` with a clear `OSError` instead of uvicorn
exiting the process, and port 0 reports the port it got. Signals stay with the application.

Hostile clients: uvicorn closes a connection idle between requests (`keep_alive`), but not one
that never finishes sending a request's headers — a slowloris client trickling a byte now and
then would hold its socket forever, and thousands of them the file descriptors. So the HTTP
protocol here is uvicorn's httptools protocol with one more timer: a request's headers must be
complete within `header_timeout` seconds of the connection opening (or of the previous response),
else the connection is closed. Bodies are bounded by the application (see `http_receiver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # the application, not uvicorn, decides what a signal does
        yield


class _HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request headers take too long."""

    header_timeout = 10.0  # set per server by `_with_header_timeout`
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request on this connection gets the same time

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def _with_header_timeout(seconds: float) -> type[HttpToolsProtocol]:
    return type("HeaderTimeoutProtocol", (_HeaderTimeoutProtocol,), {"header_timeout": seconds})


class AsgiServer:
    """One ASGI app on one port; `start()` listens, `shutdown()` finishes requests and stops."""

    def __init__(
        self,
        app,
        *,
        host: str,
        port: int,
        name: str,
        tls: tuple[Path, Path] | None = None,
        header_timeout: float = 10.0,
        keep_alive: float = 5.0,
    ) -> None:
        certfile, keyfile = tls if tls else (None, None)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="none",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            http=_with_header_timeout(header_timeout),
            timeout_keep_alive=keep_alive,
        )
        self._server = _Server(config)
        self._host, self._requested_port, self.name = host, port, name
        self._task: asyncio.Task | None = None
        self.port: int | None = None

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"the {self.name} server is already started")
        try:
            sock = socket.create_server((self._host, self._requested_port), reuse_port=False)
        except OSError as exc:
            raise OSError(
                f"cannot listen for {self.name} on {self._host}:{self._requested_port}: {exc}"
            ) from exc
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OSError(f"the {self.name} server stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("%s listening on %s:%d", self.name, self._host, self.port)

    async def shutdown(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None
