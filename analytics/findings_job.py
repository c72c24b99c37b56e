"""The findings job: load what the rules read, run every rule, reconcile the verdicts with stored findings.

It runs after the cost job (whose tables it reads: `trace_agents`, `priced_calls`) inside
`muster serve`, and on demand with `muster findings run`. Every run evaluates every rule over its
window, because most verdicts change with time alone — a budget's forecast, a dormant agent, a
silence that ends — not only with new data; the windows keep the cost of a run bounded by the
window, not by history. A failed run writes nothing and leaves the previous findings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import duckdb

from analytics.rules import RULES, DetectionConfig, DetectionContext, detect
from registry import Registry
from warehouse import detection_store, findings_store
from warehouse.registry_store import load_registry

log = logging.getLogger(__name__)

__all__ = ["FindingsResult", "detection_context", "run_findings_job"]


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
    since = lambda window: (now - window).replace(tzinfo=None)  # noqa: E731 - warehouse times are naive UTC
    policies = registry.policies.values()
    caps = [p.spec.max_cost_per_call for p in policies if p.spec.max_cost_per_call is not None]
    return DetectionContext(
        registry=registry,
        now=now,
        config=config,
        identities=detection_store.identities(cur, since(config.identity_window)),
        drift_identities=detection_store.identities(cur, since(config.drift_window)),
        usage=detection_store.usage(cur, since(config.drift_window)),
        identity_first_seen=detection_store.identity_first_seen(cur),
        providers_first_seen=detection_store.usage_first_seen(cur, "provider"),
        endpoints_first_seen=detection_store.usage_first_seen(cur, "endpoint"),
        telemetry_start=detection_store.telemetry_start(cur),
        daily_spend=detection_store.daily_spend(cur, since(config.spend_history)),
        unpriced=detection_store.unpriced_calls(cur, since(config.drift_window)),
        mismatches=detection_store.cost_mismatches(cur, since(config.drift_window)),
        expensive_calls=detection_store.expensive_calls(cur, since(config.drift_window), min(caps))
        if caps
        else None,
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
