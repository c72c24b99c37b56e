"""The findings job: load what the rules read, run every rule, reconcile the verdicts with stored findings.

It runs after the cost job (whose tables it reads: `trace_agents`, `priced_calls`) inside
`muster serve`, and on demand with `muster findings run`. Every run evaluates every rule over its
window, because most verdicts change with time alone — a budget's forecast, a dormant agent, a
silence that ends — not only with new data; the windows keep the cost of a run bounded by the
window, not by history. Pandera contracts guard what the rules read (`IDENTITIES_SCHEMA`,
`DAILY_SPEND_SCHEMA`): a violation fails the run loudly with the offending rows. A failed run
writes nothing and leaves the previous findings.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import duckdb
import pandera.polars as pa
import polars as pl

from analytics.budgets import daily_spend_since
from analytics.jobs import checked
from analytics.rules import RULES, DetectionConfig, DetectionContext, detect
from registry import Registry
from registry.matching import MatchStatus
from warehouse import detection_store, findings_store
from warehouse.registry_store import load_registry

log = logging.getLogger(__name__)

__all__ = [
    "DAILY_SPEND_SCHEMA",
    "IDENTITIES_SCHEMA",
    "FindingsResult",
    "detection_context",
    "run_findings_job",
]

IDENTITIES_SCHEMA = pa.DataFrameSchema(
    {
        "match_status": pa.Column(pl.String, pa.Check.isin([str(status) for status in MatchStatus])),
        "first_seen": pa.Column(nullable=False),
        "last_seen": pa.Column(nullable=False),
        "model_calls": pa.Column(checks=pa.Check.ge(0)),
    },
    checks=[
        pa.Check(
            lambda data: data.lazyframe.select(pl.col("first_seen") <= pl.col("last_seen")),
            name="first seen before last seen",
        )
    ],
    strict=False,
    name="identities read by the findings job",
)
"""What the sprawl and drift rules rely on: known verdicts and a sane time span per identity."""

DAILY_SPEND_SCHEMA = pa.DataFrameSchema(
    {
        "day": pa.Column(pl.Date, nullable=False),
        "spend": pa.Column(checks=pa.Check.ge(0), nullable=False),
        "calls": pa.Column(checks=pa.Check.gt(0)),
    },
    strict=False,
    name="daily spend read by the findings job",
)
"""What budgets, forecasts and anomalies rely on: a day for every row and no negative spend."""


@dataclass(frozen=True)
class FindingsResult:
    """What one run of the findings job found and changed."""

    findings: int
    opened: int
    reopened: int
    refreshed: int
    resolved: int
    duration_s: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def detection_context(
    cur: duckdb.DuckDBPyConnection, registry: Registry, now: datetime, config: DetectionConfig
) -> DetectionContext:
    """Everything the rules read, loaded from the warehouse at `now`."""
    bare = DetectionContext(registry=registry, now=now, config=config)
    # Only calls above the lowest cap in USD can break one, so only those are loaded.
    caps = (bare.cap_usd(bare.policy_for(p.spec.department)) for p in registry.policies.values())
    lowest_cap = min((cap for cap in caps if cap is not None), default=None)
    since = bare.since
    spend_since = daily_spend_since(registry, since(config.spend_history), now.date())
    return dataclasses.replace(
        bare,
        identities=checked(IDENTITIES_SCHEMA, detection_store.identities(cur, since(config.identity_window))),
        drift_identities=checked(
            IDENTITIES_SCHEMA, detection_store.identities(cur, since(config.drift_window))
        ),
        usage=detection_store.usage(cur, since(config.drift_window)),
        identity_first_seen=detection_store.identity_first_seen(cur),
        providers_first_seen=detection_store.usage_first_seen(cur, "provider"),
        endpoints_first_seen=detection_store.usage_first_seen(cur, "endpoint"),
        telemetry_start=detection_store.telemetry_start(cur),
        daily_spend=checked(DAILY_SPEND_SCHEMA, detection_store.daily_spend(cur, spend_since)),
        unpriced=detection_store.unpriced_calls(cur, since(config.drift_window)),
        mismatches=detection_store.cost_mismatches(cur, since(config.drift_window)),
        expensive_calls=None
        if lowest_cap is None
        else detection_store.expensive_calls(cur, since(config.drift_window), float(lowest_cap)),
        recent_calls=detection_store.recent_calls(cur, since(config.runaway_window)),
    )


def run_findings_job(
    cur: duckdb.DuckDBPyConnection,
    registry: Registry | None = None,
    *,
    now: datetime | None = None,
    config: DetectionConfig | None = None,
) -> FindingsResult:
    """Run every rule at `now` (default: the current time) and reconcile; raises what failed."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    try:
        ctx = detection_context(cur, registry or load_registry(cur), now, config or DetectionConfig())
        found = list(detect(ctx))
        changes = findings_store.reconcile(cur, found, now, rules={rule.id for rule in RULES})
    except Exception as exc:
        duration = time.monotonic() - started
        log.error("the findings job failed after %.2f s: %s", duration, exc)
        findings_store.record_run(cur, duration_s=duration, error=f"{type(exc).__name__}: {exc}")
        raise
    duration = round(time.monotonic() - started, 3)
    findings_store.record_run(cur, duration_s=duration)
    return FindingsResult(findings=len(found), duration_s=duration, **changes.to_dict())
