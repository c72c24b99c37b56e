"""What every rule reads: the registry, the time, the windows, and the frames the findings job loaded.

Rules are pure: given a `DetectionContext` they return the findings that hold now. The job builds
the context from the warehouse (`warehouse.detection_store`); tests build it from crafted frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import polars as pl

from analytics.budgets import exchange_rate
from registry import Registry
from registry.model import Agent, matches_any

__all__ = ["DetectionConfig", "DetectionContext", "EffectivePolicy", "matches_any"]


@dataclass(frozen=True)
class DetectionConfig:
    """Windows and thresholds of the rules, and why the defaults."""

    identity_window: timedelta = timedelta(days=30)  # sprawl: a month shows what runs, not one day's mix
    drift_window: timedelta = timedelta(days=7)  # drift resolves a week after the cause stops
    retired_window: timedelta = timedelta(days=1)  # a retired agent that ran today is running
    dormant_after: timedelta = timedelta(days=30)  # a month without a call: nobody uses it
    sprawl_rate_per_week: int = 3  # new unregistered identities in 7 days that make a trend
    duplicate_min_tools: int = 3  # identical tool sets of this size are hardly a coincidence
    spend_history: timedelta = timedelta(days=35)  # four weeks of baseline plus this week
    runaway_window: timedelta = timedelta(hours=24)  # runaway is about now; a day gives the norm
    # USD per unit of a budget's or a per-call cap's currency (the exchange_rates setting); USD needs none
    exchange_rates: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class EffectivePolicy:
    """The policy fields that apply to one department: global policies, then the department's own."""

    approved_providers: list[str] | None = None
    approved_endpoints: list[str] | None = None
    forbidden_models: list[str] | None = None
    required_resource_attributes: list[str] | None = None
    max_cost_per_call: float | None = None
    max_cost_per_call_currency: str = "USD"  # the currency of the policy that set the cap
    prototypes_may_serve_production: bool | None = None
    allow_content_capture: bool | None = None
    sources: tuple[str, ...] = ()  # the policy ids that set any of the above


@dataclass(frozen=True)
class DetectionContext:
    registry: Registry
    now: datetime
    config: DetectionConfig = field(default_factory=DetectionConfig)
    identities: pl.DataFrame | None = None  # detection_store.identities over identity_window
    usage: pl.DataFrame | None = None  # detection_store.usage over drift_window
    drift_identities: pl.DataFrame | None = None  # detection_store.identities over drift_window
    identity_first_seen: pl.DataFrame | None = None
    endpoints_first_seen: pl.DataFrame | None = None
    providers_first_seen: pl.DataFrame | None = None
    telemetry_start: datetime | None = None
    daily_spend: pl.DataFrame | None = None
    unpriced: pl.DataFrame | None = None
    mismatches: pl.DataFrame | None = None
    expensive_calls: pl.DataFrame | None = None
    recent_calls: pl.DataFrame | None = None

    @property
    def today(self) -> date:
        return self.now.date()

    def since(self, window: timedelta) -> datetime:
        """`now - window` as naive UTC, the way the warehouse stores span times."""
        return (self.now - window).replace(tzinfo=None)

    def policy_for(self, department: str | None) -> EffectivePolicy:
        """Global policies in id order, then the department's, each overriding only what it sets."""
        fields: dict[str, Any] = {}
        sources: list[str] = []
        ordered = sorted(self.registry.policies.values(), key=lambda p: (p.spec.department is not None, p.id))
        for policy in ordered:
            if policy.spec.department not in (None, department):
                continue
            set_here = {
                name: value
                for name, value in policy.spec.model_dump(by_alias=False).items()
                if name in EffectivePolicy.__dataclass_fields__ and value is not None
            }
            if set_here:
                sources.append(policy.id)
            if "max_cost_per_call" in set_here:
                set_here["max_cost_per_call_currency"] = policy.spec.currency
            fields |= set_here
        return EffectivePolicy(**fields, sources=tuple(sources))

    def cap_usd(self, policy: EffectivePolicy) -> Decimal | None:
        """The policy's maxCostPerCall in USD, the currency calls are priced in; None when it sets no
        cap or its currency has no exchange rate (then `hygiene.policy_not_evaluated` says so)."""
        if policy.max_cost_per_call is None:
            return None
        rate = exchange_rate(policy.max_cost_per_call_currency, self.config.exchange_rates)
        return None if rate is None else Decimal(str(policy.max_cost_per_call)) * rate

    def agent(self, agent_id: str | None) -> Agent | None:
        return self.registry.agents.get(agent_id) if agent_id else None

    def department_name(self, department_id: str | None) -> str:
        department = self.registry.departments.get(department_id) if department_id else None
        return department.spec.name if department else (department_id or "no department")
