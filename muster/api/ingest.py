"""Ingest status (the answer behind `muster status`) and Prometheus self-metrics."""

from __future__ import annotations

from dataclasses import asdict

import duckdb
from fastapi import APIRouter, Depends, Request, Response

from muster.api.deps import cursor, ingest_reader
from muster.metrics import CONTENT_TYPE
from warehouse.queries import ingest_status

router = APIRouter(tags=["ingest"])


@router.get("/api/v1/status", dependencies=[Depends(ingest_reader)])
def status(request: Request, cur: duckdb.DuckDBPyConnection = Depends(cursor)) -> dict:
    """What has arrived: per service spans, metric points and log records; rejects; counters."""
    answer = ingest_status(cur).to_dict()
    stats = asdict(request.app.state.stats)
    answer["since_start"] = {
        key: dict(value) if isinstance(value, dict) else value for key, value in stats.items()
    }
    return answer


@router.get("/metrics", dependencies=[Depends(ingest_reader)])
def metrics(request: Request) -> Response:
    """Prometheus text format: received, rejected, throttled, queue depth, commit latency."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
