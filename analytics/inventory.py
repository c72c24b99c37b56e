"""The inventory as the registry stands now: each observed identity's verdict decided afresh.

The cost job records a verdict with the spend it attributes, but a registration made since would
show only after the next run (a full one: minutes over a large history). Here each identity's keys
are matched against the current registry with `identity_verdicts`, exactly as the job matches
them, so an agent registered a moment ago is `registered` at once. Calls and spend stay as the
job attributed them; `spend_pending` says when that attribution differs from the verdict now,
until the next run moves the spend.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import polars as pl

from analytics.attribution import identity_verdicts
from registry import IDENTITY_COLUMNS, MatchStatus, Registry

__all__ = ["INVENTORY_COLUMNS", "live_inventory"]

INVENTORY_COLUMNS = (
    "observed_identity",
    "match_status",
    "agent_id",
    "department_id",
    "agent_name",
    "owner",
    "platform",
    "lifecycle",
    "environment",
    "first_seen",
    "last_seen",
    "calls",
    "cost_usd",
    "unpriced_calls",
    "spend_pending",
    "attributed_status",
    "attributed_agent_id",
)
"""Each inventory row; the last three tell how the cost job attributed the identity's spend."""

_KEYS = list(IDENTITY_COLUMNS)
_AGENT_SCHEMA = {
    "agent_id": pl.String,
    "agent_name": pl.String,
    "owner": pl.String,
    "platform": pl.String,
    "lifecycle": pl.String,
}


def live_inventory(
    spend: pl.DataFrame,
    registry: Registry,
    *,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per observed identity of `spend` (`warehouse.inventory_store.identity_spend`), with
    `INVENTORY_COLUMNS`: the verdict, agent and department as `registry` decides them now.

    Scope follows that verdict: None means all, an empty collection nothing; identities without a
    department (not registered) are outside every department's scope. Unregistered and ambiguous
    identities come first, then by spend.
    """
    verdicts = identity_verdicts(spend.select(_KEYS).unique(), registry).select(
        *_KEYS, "agent_id", "match_status", "department_id"
    )
    joined = spend.join(verdicts, on=_KEYS, how="left", nulls_equal=True, maintain_order="left")
    # the keys are in `observed_identity` already; dropping them frees `agent_name` for the registration's
    keys = [name for name in _KEYS if name != "environment"]
    rows = _per_identity(joined).drop(keys).join(_agents(registry), on="agent_id", how="left")
    rows = rows.filter(_in_scope(department_ids, agent_ids)).sort(
        pl.col("match_status") == MatchStatus.REGISTERED.value,
        pl.col("cost_usd"),
        pl.col("observed_identity"),
        descending=[False, True, False],
        nulls_last=True,
    )
    return rows.select(INVENTORY_COLUMNS).to_dicts()


def _per_identity(joined: pl.DataFrame) -> pl.DataFrame:
    """The verdicts the job gave one identity folded into one row (two only mid-run)."""
    moved = pl.col("attributed_status").ne_missing(pl.col("match_status")) | pl.col(
        "attributed_agent_id"
    ).ne_missing(pl.col("agent_id"))
    # the job's verdict shown is one that differs from now, when any does: that spend is pending
    first_moved = pl.col("_moved").cast(pl.UInt8).arg_max()
    return (
        joined.with_columns(_moved=moved)
        .group_by(*_KEYS, "agent_id", "match_status", "department_id")
        .agg(
            pl.col("observed_identity").first(),
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
            pl.col("calls").sum(),
            pl.col("cost_usd").sum(),
            pl.col("unpriced_calls").sum(),
            pl.col("_moved").any().alias("spend_pending"),
            pl.col("attributed_status").get(first_moved),
            pl.col("attributed_agent_id").get(first_moved),
        )
    )


def _agents(registry: Registry) -> pl.DataFrame:
    """Per registered agent: what the inventory shows of its registration."""
    rows = [
        (agent.id, agent.spec.name, agent.spec.owner, agent.spec.platform, agent.spec.lifecycle.value)
        for agent in registry.agents.values()
    ]
    return pl.DataFrame(rows, schema=_AGENT_SCHEMA, orient="row")


def _in_scope(department_ids: Collection[str] | None, agent_ids: Collection[str] | None) -> pl.Expr:
    keep = pl.lit(True)
    if department_ids is not None:
        keep &= pl.col("department_id").is_in(list(department_ids))
    if agent_ids is not None:
        keep &= pl.col("agent_id").is_in(list(agent_ids))
    return keep.fill_null(False)
