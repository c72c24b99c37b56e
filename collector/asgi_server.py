"""Run an ASGI application with uvicorn on the current event loop, as a start/shutdown component.

Used for the OTLP/HTTP receiver and the HTTP API, which share the server's loop with gRPC. The
socket is bound here, so a port in use fails `start()` with a clear `OSError` instead of uvicorn
exiting the process, and port 0 reports the port it got. Signals stay with the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path

import uvicorn

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # the application, not uvicorn, decides what a signal does
        yield


class AsgiServer:
    """One ASGI app on one port; `start()` listens, `shutdown()` finishes requests and stops."""

    def __init__(self, app, *, host: str, port: int, name: str, tls: tuple[Path, Path] | None = None) -> None:
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
