"""What every API route needs: a DuckDB cursor of its own, and the authenticated principal.

Failed authentications are limited per client address: past `auth_failure_limit` failures within
`auth_failure_window_seconds`, every request from that address gets 429 with Retry-After until the
window has moved on, valid token or not — otherwise a guesser would simply keep guessing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import duckdb
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from muster.auth import Permission, Principal, authenticate

if TYPE_CHECKING:
    from analytics.scheduler import JobScheduler

_bearer = HTTPBearer(auto_error=False, description="An API token: `muster tokens create --role ROLE`")


def cursor(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor for this request (DuckDB wants one per thread), closed when the request ends."""
    cur = request.app.state.connection.cursor()
    try:
        yield cur
    finally:
        cur.close()


class FailedAuthLimit:
    """Failed authentications per client address in a moving window (limits' MovingWindowRateLimiter)."""

    def __init__(self, failures: int, window_seconds: int) -> None:
        self._item = RateLimitItemPerSecond(failures, window_seconds) if failures > 0 else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it is within its limit."""
        if self._item is None or self._limiter.test(self._item, client):
            return None
        reset = self._limiter.get_window_stats(self._item, client).reset_time
        return max(1, math.ceil(reset - time.time()))

    def failed(self, client: str) -> None:
        if self._item is not None:
            self._limiter.hit(self._item, client)


_limit_lock = threading.Lock()


def failed_auth_limit(app: FastAPI) -> FailedAuthLimit:
    """The app's limit, made on first use from its settings."""
    with _limit_lock:
        limit = getattr(app.state, "failed_auth_limit", None)
        if limit is None:
            settings = app.state.settings
            limit = FailedAuthLimit(settings.auth_failure_limit, settings.auth_failure_window_seconds)
            app.state.failed_auth_limit = limit
        return limit


def principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> Principal:
    """The holder of the request's bearer token; 401 when it is missing, wrong or revoked, 429 when
    the client's address has failed too often lately."""
    limit = failed_auth_limit(request.app)
    client = request.client.host if request.client else "unknown"
    wait = limit.retry_after(client)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed authentications from {client}: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    found = authenticate(cur, credentials.credentials if credentials else None)
    if found is None:
        limit.failed(client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is required: create one with `muster tokens create`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


def allowed(permission: Permission):
    """A dependency that admits principals holding `permission` and refuses others with 403."""

    def check(who: Principal = Depends(principal)) -> Principal:
        if not who.may(permission):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {who.role} role may not {permission.value}")
        return who

    return check


def not_found(what: str) -> HTTPException:
    """404: also what a scoped token gets for things outside its scope, so it learns nothing."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


# One dependency per permission, made once, for routes to name.
reader = allowed(Permission.READ)
ingest_reader = allowed(Permission.READ_INGEST)
registry_writer = allowed(Permission.WRITE_REGISTRY)
credential_manager = allowed(Permission.MANAGE_CREDENTIALS)
token_manager = allowed(Permission.MANAGE_TOKENS)
triager = allowed(Permission.TRIAGE)
operator = allowed(Permission.OPERATE)


def job_scheduler(request: Request) -> JobScheduler:
    """The server's job runner; 503 in a process that runs no jobs."""
    jobs = request.app.state.jobs
    if jobs is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "jobs do not run in this process")
    return jobs
