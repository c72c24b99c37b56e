"""The inventory over HTTP: every identity observed in telemetry, registered or not, and sprawl.

Each identity's verdict is the registry's as it stands now, not as of the last cost job run, so a
registration shows at once; its calls and spend stay as the job attributed them until it runs
again (`spend_pending`). Scoped by that verdict: a department's token sees the identities of its
agents, an owner token its own agent's; unregistered identities belong to no department, so only
unscoped tokens (admin, platform, unscoped finance and viewers) see them. The sprawl counts are
the job's.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Query, status

from analytics.inventory import live_inventory
from muster.api.deps import cursor, reader
from muster.api.scope import agent_filter, department_filter
from muster.auth import Principal
from warehouse import inventory_store, registry_store

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
    """Every observed identity: registry verdict now, agent, department, owner, platform, lifecycle,
    first and last seen, calls and spend. Unregistered and ambiguous identities first.

    Calls and spend are as the last cost job run attributed them: `spend_pending` is true when
    that differs from the verdict now (`attributed_status`, `attributed_agent_id` say how), until
    the next run moves the spend."""
    _check_days(start, end)
    rows = live_inventory(
        inventory_store.identity_spend(cur, start=start, end=end),
        registry_store.load_registry(cur),
        department_ids=department_filter(who),
        agent_ids=agent_filter(who),
    )
    return [_json_row(row) for row in rows]


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


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    """Spend as an exact decimal string, times as ISO 8601 text."""
    row["cost_usd"] = inventory_store.money_text(row["cost_usd"])
    for key in ("first_seen", "last_seen"):
        seen: datetime | None = row[key]
        row[key] = seen.isoformat() if seen is not None else None
    return row


def _check_days(start: date | None, end: date | None) -> None:
    if start and end and start > end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"from ({start}) is after to ({end})")
