"""Reading Muster from outside the server: through its API when one runs, else from the file.

DuckDB lets only one process open the warehouse while the server writes, so the CLI finds the
running server from `<data dir>/server.json` and calls its API with the local admin token.
"""

from __future__ import annotations

import json

import httpx

from muster.auth import read_admin_token
from muster.server import read_runtime
from muster.settings import Settings
from warehouse.database import open_warehouse
from warehouse.errors import WarehouseError
from warehouse.queries import ingest_status


class MusterClientError(Exception):
    """The server or the warehouse could not answer; the message says why."""


def api_url(settings: Settings) -> str | None:
    """The base URL of the running server's API, or None when no server has recorded one."""
    runtime = read_runtime(settings.data_dir)
    if not runtime:
        return None
    host = runtime["host"] if runtime["host"] not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    return f"http://{host}:{runtime['ports']['API']}"


def read_status(settings: Settings) -> dict:
    """The ingest status, from the running server or, when none runs, from the warehouse file."""
    url = api_url(settings)
    if url:
        try:
            return _get(url, "/api/v1/status", settings) | {"source": f"server at {url}"}
        except httpx.ConnectError:
            pass  # a server that died left its runtime file behind: read the file instead
    try:
        con = open_warehouse(settings.warehouse_path, read_only=True)
    except WarehouseError as exc:
        raise MusterClientError(str(exc)) from None
    with con:
        answer = ingest_status(con).to_dict()
    return json.loads(json.dumps(answer, default=str)) | {"source": f"file {settings.warehouse_path}"}


def _get(url: str, path: str, settings: Settings) -> dict:
    token = read_admin_token(settings.data_dir)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url + path, headers=headers, timeout=30)
    if response.status_code != 200:
        raise MusterClientError(f"the server answered {response.status_code}: {response.text}")
    return response.json()
