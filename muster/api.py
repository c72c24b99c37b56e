"""The HTTP API served by `muster serve`: health, readiness and ingest status, behind a token.

The dashboards and the CLI read through this API while the server owns the DuckDB file. Each
request gets its own DuckDB cursor, as DuckDB asks of threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

import duckdb
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from collector.pipeline import IngestStats
from muster.auth import token_matches
from warehouse.queries import ingest_status

_bearer = HTTPBearer(auto_error=False)


def create_app(
    *,
    cursor: Callable[[], duckdb.DuckDBPyConnection],
    admin_token: str,
    stats: IngestStats,
    ready: Callable[[], bool],
) -> FastAPI:
    """The API application, given how to get a cursor and what the server knows of itself."""
    app = FastAPI(title="Muster", summary="Roll call, spend ledger and policy watch for AI agents")

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        presented = credentials.credentials if credentials else None
        if not token_matches(presented, admin_token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required (see data/admin.token)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> dict:
        """The receivers, the writer and the warehouse are ready for data."""
        if not ready():
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "starting or stopping")
        return {"status": "ready"}

    @app.get("/api/v1/status", tags=["ingest"], dependencies=[Depends(authorised)])
    def ingest() -> dict:
        """What has arrived: per service spans, metric points and log records; rejects; counters."""
        with cursor() as cur:
            answer = ingest_status(cur).to_dict()
        answer["since_start"] = {
            key: dict(value) if hasattr(value, "items") else value for key, value in asdict(stats).items()
        }
        return answer

    return app
