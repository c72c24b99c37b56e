"""Whole-warehouse operations over HTTP: a consistent backup while the server runs, retention on demand.

Both need the `operate` permission (admin tokens). A backup is written only inside
`<data dir>/backups/`, under a plain file name, never over an existing file.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from muster.api.deps import cursor, operator
from warehouse.maintenance import BackupError, apply_retention, backup_path, backup_to

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(operator)])

BACKUP_DIRECTORY = "backups"


class BackupRequest(BaseModel):
    name: str | None = Field(
        None, description="File name ending in .duckdb; default muster-<UTC time>.duckdb"
    )


@router.post("/backup", status_code=status.HTTP_201_CREATED)
def backup(
    body: BackupRequest, request: Request, cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> dict[str, Any]:
    """Copy the whole warehouse, as one consistent snapshot, into a new file under the data directory."""
    settings = request.app.state.settings
    started = time.monotonic()
    try:
        target = backup_path(settings.data_dir / BACKUP_DIRECTORY, body.name, datetime.now(UTC))
    except BackupError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    tables = backup_to(cur, target)
    return {"path": str(target), "tables": tables, "duration_s": round(time.monotonic() - started, 3)}


@router.post("/retention")
def retention(request: Request, cur: duckdb.DuckDBPyConnection = Depends(cursor)) -> dict[str, Any]:
    """Delete raw telemetry and cost facts past their retention days now (the server does it hourly)."""
    settings = request.app.state.settings
    deleted = apply_retention(
        cur,
        now=datetime.now(UTC),
        raw_days=settings.raw_retention_days,
        cost_days=settings.cost_retention_days,
        span_grace=timedelta(seconds=settings.raw_retention_grace_seconds),
    )
    return {"deleted": deleted}
