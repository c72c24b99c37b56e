"""The inventory over HTTP: every identity observed in telemetry, registered or not, and sprawl.

Scoped like spend: a department's token sees the identities attributed to its agents, an owner
token its own agent's; unregistered identities belong to no department, so only unscoped tokens
(admin, platform, unscoped finance and viewers) see them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Query, status

from muster.api.deps import cursor, reader
from muster.api.scope import agent_filter, department_filter
from muster.auth import Principal
from warehouse import inventory_store

router = APIRouter(prefix="/api/v1", tags=["inventory"])

_FROM = Query(None, alias="from", description="First UTC day included (YYYY-MM-DD).")
_TO = Query(None, alias="to", description="Last UTC day included (YYYY-MM-DD).")


@router.get("/inventory")
def inventory(
    start: date | None = _FROM,
    end: date | None = _TO,
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> list[dict[str, Any]]:
    """Every observed identity: registry verdict, agent, department, owner, platform, lifecycle,
    first and last seen, calls and spend. Unregistered and ambiguous identities first."""
    _check_days(start, end)
    return inventory_store.observed_identities(
        cur, start=start, end=end, department_ids=department_filter(who), agent_ids=agent_filter(who)
    )


@router.get("/inventory/sprawl")
def sprawl(
    start: date | None = _FROM,
    end: date | None = _TO,
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> list[dict[str, Any]]:
    """Per week: how many registered, unregistered and ambiguous identities sent telemetry."""
    _check_days(start, end)
    return inventory_store.sprawl_by_week(
        cur, start=start, end=end, department_ids=department_filter(who), agent_ids=agent_filter(who)
    )


def _check_days(start: date | None, end: date | None) -> None:
    if start and end and start > end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"from ({start}) is after to ({end})")
