"""The detection rules by category: each module lists its `RULES`; `detect(ctx)` yields what holds.

    sprawl   unregistered, unidentified, ambiguous, duplicate, dormant, retired-but-running agents
    drift    models, providers, tools, data, endpoints, environments and telemetry outside policy
    spend    budgets (actual and forecast), anomalies, runaway loops, unpriced calls, cost mismatches
    hygiene  registrations past review, without a real owner or department

`docs/rules.md` is generated from `RULES` (`muster findings rules`), so the reference cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterator

from analytics.findings import Finding, Rule
from analytics.rules import drift, hygiene, spend, sprawl
from analytics.rules.context import DetectionConfig, DetectionContext

__all__ = ["RULES", "DetectionConfig", "DetectionContext", "detect"]

_MODULES = (sprawl, drift, spend, hygiene)
RULES: tuple[Rule, ...] = tuple(rule for module in _MODULES for rule in module.RULES)


def detect(ctx: DetectionContext) -> Iterator[Finding]:
    """Every finding that holds in `ctx`, each fingerprint once (the first verdict wins)."""
    seen: set[str] = set()
    for module in _MODULES:
        for finding in module.detect(ctx):
            if finding.fingerprint not in seen:
                seen.add(finding.fingerprint)
                yield finding
