"""Liveness and readiness, open to all so orchestrators and load balancers can probe them."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> dict:
    """The receivers, the writer and the warehouse are ready for data."""
    if not request.app.state.ready():
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "starting or stopping")
    return {"status": "ready"}
