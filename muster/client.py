"""The CLI's way into Muster: the running server's API, or the same API in-process over the file.

DuckDB lets only one process open the warehouse while the server writes, so when a server runs
(it records where in `<data dir>/server.json`) the CLI calls its HTTP API with the local admin
token. When none runs, the CLI builds the very same API application over the warehouse file and
calls it in-process, so every command has one code path and one set of rules either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from typing import Any

import httpx

from muster.auth import read_admin_token
from muster.server import read_runtime
from muster.settings import Settings
from warehouse.errors import WarehouseError


class MusterClientError(Exception):
    """The server or the warehouse could not answer; the message says why."""


class Muster:
    """A session with Muster's API; `source` says which server or file answers."""

    def __init__(self, http: httpx.Client, source: str) -> None:
        self._http = http
        self.source = source

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, *, content: str | None = None) -> Any:
        if content is not None:
            return self._call("POST", path, content=content, headers={"Content-Type": "application/yaml"})
        return self._call("POST", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self._call("PUT", path, json=body)

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def download(self, path: str, **params: Any) -> httpx.Response:
        """A file the API serves, whole: its bytes in `content`, what it is in the headers."""
        return self._request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise MusterClientError(f"cannot reach Muster at {self.source}: {exc}") from None
        if response.status_code >= 400:
            raise MusterClientError(_explain(response))
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text


def _explain(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', ())))}: {d.get('msg')}" for d in detail)
    return f"{detail} (HTTP {response.status_code})"


def api_url(settings: Settings) -> str | None:
    """The base URL of the running server's API, or None when no server has recorded one."""
    runtime = read_runtime(settings.data_dir)
    if not runtime:
        return None
    host = runtime["host"] if runtime["host"] not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    scheme = "https" if runtime.get("tls") else "http"
    return f"{scheme}://{host}:{runtime['ports']['API']}"


@contextlib.contextmanager
def connect(settings: Settings) -> Iterator[Muster]:
    """A session with the running server, or with an in-process API over the warehouse file."""
    url = api_url(settings)
    if url and answers_at(url, settings):
        token = read_admin_token(settings.data_dir)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(base_url=url, headers=headers, timeout=60, verify=_verify(settings)) as http:
            yield Muster(http, f"server at {url}")
        return
    with _in_process(settings) as muster:
        yield muster


def _verify(settings: Settings) -> bool | ssl.SSLContext:
    # The local CLI trusts the server's own certificate, which may be self-signed.
    return ssl.create_default_context(cafile=settings.tls_cert_file) if settings.tls else True


def answers_at(url: str, settings: Settings) -> bool:
    """Whether a server answers at `url` (a server that died leaves its runtime file behind)."""
    try:
        return httpx.get(url + "/healthz", timeout=5, verify=_verify(settings)).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def _in_process(settings: Settings) -> Iterator[Muster]:
    from analytics.scheduler import JobScheduler
    from collector.credentials import IngestCredentials
    from collector.pipeline import IngestStats
    from muster.api import create_app
    from muster.auth import ensure_admin_token
    from muster.metrics import SelfMetrics
    from warehouse.access_store import live_credentials
    from warehouse.database import open_warehouse

    if not settings.warehouse_path.exists():
        raise MusterClientError(
            f"no warehouse at {settings.warehouse_path}: start `muster serve` once to create it,"
            " or set MUSTER_DATA_DIR"
        )
    try:
        con = open_warehouse(settings.warehouse_path)
    except WarehouseError as exc:
        raise MusterClientError(str(exc)) from None
    with con:
        stats = IngestStats()
        app = create_app(
            connection=con,
            stats=stats,
            metrics=SelfMetrics(stats),
            credentials=IngestCredentials(lambda: live_credentials(con.cursor()), required=False),
            ready=lambda: True,
            jobs=JobScheduler(con, interval=0, prices_file=settings.prices_file),
            settings=settings,
        )
        token = ensure_admin_token(con.cursor(), settings.data_dir)
        headers = {"Authorization": f"Bearer {token}"}
        transport = _InProcess(app)
        with httpx.Client(transport=transport, base_url="http://muster.local", headers=headers) as http:
            yield Muster(http, f"file {settings.warehouse_path}")


class _InProcess(httpx.BaseTransport):
    """Calls an ASGI app in this process, synchronously: httpx's ASGITransport is async-only."""

    def __init__(self, app) -> None:
        self._asgi = httpx.ASGITransport(app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            replay = httpx.Request(
                request.method, request.url, headers=request.headers, content=request.read()
            )
            response = await self._asgi.handle_async_request(replay)
            content = b"".join([chunk async for chunk in response.stream])
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return asyncio.run(call())
