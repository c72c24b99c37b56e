"""What every API route needs: a DuckDB cursor of its own, and the authenticated principal."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from muster.auth import Permission, Principal, authenticate

_bearer = HTTPBearer(auto_error=False, description="An API token: `muster tokens create --role ROLE`")


def cursor(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor for this request (DuckDB wants one per thread), closed when the request ends."""
    cur = request.app.state.connection.cursor()
    try:
        yield cur
    finally:
        cur.close()


def principal(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> Principal:
    """The holder of the request's bearer token; 401 when it is missing, wrong or revoked."""
    found = authenticate(cur, credentials.credentials if credentials else None)
    if found is None:
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


def job_scheduler(request: Request):
    """The server's job runner; 503 in a process that runs no jobs."""
    jobs = request.app.state.jobs
    if jobs is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "jobs do not run in this process")
    return jobs
