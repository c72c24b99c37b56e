"""What `muster simulate` asks for, turned into the simulator's arguments: which fleet, how far back.

Kept apart from `muster.cli` so the command stays a thin wrapper and these rules have tests.
"""

from __future__ import annotations

import re

from muster.fleet import DEMO_TRACES_PER_DAY, demo_fleet
from muster.simulate import AgentSpec, build_fleet

__all__ = ["FLEETS", "backfill_plan", "chosen_fleet", "parse_days"]

FLEETS = ("demo", "basic")
BASIC_TRACES_PER_DAY = 100
_DAYS = re.compile(r"^\s*(\d+)\s*d?\s*$", re.IGNORECASE)


def parse_days(text: str) -> int:
    """`30d`, `30D` or `30` → 30 days."""
    match = _DAYS.match(text)
    if not match:
        raise ValueError(f"--backfill takes days, such as 35d or 35, not {text!r}")
    return int(match.group(1))


def chosen_fleet(name: str, *, seed: int, agents: int) -> list[AgentSpec]:
    if name == "demo":
        return demo_fleet(seed)
    if name == "basic":
        return build_fleet(seed=seed, agents=agents)
    raise ValueError(f"no fleet named {name!r}: choose one of {', '.join(FLEETS)}")


def backfill_plan(fleet: str, backfill: str | None, traces: int | None) -> tuple[int, int | None]:
    """(days, traces): a backfill without --traces sends the fleet's daily volume for every day."""
    if fleet not in FLEETS:
        raise ValueError(f"no fleet named {fleet!r}: choose one of {', '.join(FLEETS)}")
    if backfill is None:
        return 0, traces
    days = parse_days(backfill)
    if traces is None and days:
        traces = days * (DEMO_TRACES_PER_DAY if fleet == "demo" else BASIC_TRACES_PER_DAY)
    return days, traces
