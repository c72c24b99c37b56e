"""The HTTP API served by `muster serve`; every route but health needs a bearer token.

The dashboards and the CLI read and change Muster through it while the server owns the DuckDB
file. Routes live in one module per subject; `create_app` puts them together.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
from fastapi import FastAPI

from analytics.scheduler import JobScheduler
from collector.credentials import IngestCredentials
from collector.pipeline import IngestStats
from muster import __version__
from muster.api import (
    access,
    admin,
    alerts,
    costs,
    findings,
    health,
    ingest,
    inventory,
    registry,
    traces,
    whoami,
)
from muster.api import export as export_api
from muster.api.body_limit import RequestBodyLimit
from muster.metrics import SelfMetrics
from muster.settings import Settings, load_settings

__all__ = ["create_app"]


def create_app(
    *,
    connection: duckdb.DuckDBPyConnection,
    stats: IngestStats,
    metrics: SelfMetrics,
    credentials: IngestCredentials,
    ready: Callable[[], bool],
    jobs: JobScheduler | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The API application over the server's warehouse connection, ingest state and job runner."""
    app = FastAPI(
        title="Muster",
        version=__version__,
        summary="Roll call, spend ledger and policy watch for every AI agent.",
    )
    app.state.connection = connection
    app.state.stats = stats
    app.state.metrics = metrics
    app.state.credentials = credentials
    app.state.ready = ready
    app.state.jobs = jobs
    app.state.settings = settings or load_settings()
    routes = (
        health,
        ingest,
        access,
        whoami,
        registry,
        costs,
        findings,
        alerts,
        inventory,
        traces,
        export_api,
        admin,
    )
    for module in routes:
        app.include_router(module.router)
    app.add_middleware(
        RequestBodyLimit,
        max_bytes=app.state.settings.api_max_request_bytes,
        timeout=app.state.settings.http_body_timeout_seconds,
    )
    return app
