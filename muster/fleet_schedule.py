"""When each simulated agent runs: the order and the timestamps of a fleet's traces.

The simulator (`muster.simulate`) plans and emits traces; this module decides, one trace after
another, which agent runs it, whether it is a runaway loop, and — in a backfill — when it started:

1. planted loops: each agent's `loops_hours_ago` (backfills only), so the runaway is in the last day;
2. one trace of every agent that runs in the window, recent in its active period, so every agent
   is seen lately (a fleet of N agents shows all N after N traces);
3. then agents drawn by weight, each weight scaled by the share of the window the agent was active,
   at times drawn with weekday and office-hour seasonality inside the agent's active period.

Which agent runs draws from the content generator (`rng`) and times from their own (`clock`), so
the traces a seed makes do not depend on the wall clock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from muster.simulate import AgentSpec

__all__ = ["Slot", "past_start", "schedule"]

_DAY_S = 86_400
_HOUR_NS = 3_600 * 10**9
_RECENT_DAYS = 0.5  # an agent's first trace of a backfill falls in the latest half day it ran
_WEEKEND_SHARE = 0.25  # weekend traffic relative to a weekday


@dataclass(frozen=True, slots=True)
class Slot:
    """One trace to send: who runs it, whether it loops, and (backfills) how long ago it started."""

    agent: AgentSpec
    loop: bool = False
    oldest_days: float = 0.0  # a backfill draws the start between these many days ago
    newest_days: float = 0.0
    at_ns_ago: int | None = None  # a fixed start, this many ns before now


def schedule(fleet: Sequence[AgentSpec], rng: random.Random, backfill_days: int) -> Iterator[Slot]:
    """Endless slots for the fleet, planted loops and first visits first (see the module docstring)."""
    if backfill_days:
        yield from _planted_loops(fleet, backfill_days)
    active = [agent for agent in fleet if _runs(agent, backfill_days)]
    if not active:
        raise ValueError("no agent of the fleet runs in this window: backfill further back")
    windows = [_window(agent, backfill_days) for agent in active]
    for agent, (oldest, newest) in zip(active, windows, strict=True):
        yield Slot(agent, False, min(oldest, newest + _RECENT_DAYS), newest)
    span = max(backfill_days, 1)
    weights = [
        a.weight * ((old - new) / span if backfill_days else 1.0)
        for a, (old, new) in zip(active, windows, strict=True)
    ]
    cumulative = list(itertools.accumulate(weights))
    while True:
        index = rng.choices(range(len(active)), cum_weights=cumulative)[0]
        agent = active[index]
        loop = not backfill_days and agent.loop_share > 0 and rng.random() < agent.loop_share
        yield Slot(agent, loop, *windows[index])


def _planted_loops(fleet: Sequence[AgentSpec], backfill_days: int) -> Iterator[Slot]:
    for agent in fleet:
        for hours in agent.loops_hours_ago:
            if hours < backfill_days * 24:
                yield Slot(agent, True, at_ns_ago=int(hours * _HOUR_NS))


def _runs(agent: AgentSpec, backfill_days: int) -> bool:
    """Live runs: agents still running now; backfills: agents that ran at some time in the window."""
    if agent.active_days is None:
        return True
    return agent.active_days[1] < backfill_days if backfill_days else agent.active_days[1] <= 0


def _window(agent: AgentSpec, backfill_days: int) -> tuple[float, float]:
    """(oldest, newest) days ago the agent runs within the backfill."""
    oldest, newest = agent.active_days or (math.inf, 0.0)
    return min(oldest, backfill_days), max(newest, 0.0)


def past_start(rng: random.Random, now_ns: int, oldest_days: float, newest_days: float, trace_ns: int) -> int:
    """A start time between `oldest_days` and `newest_days` ago, with weekday and working-hour seasonality.

    Rejection sampling over a uniform draw: cheap, and exact for any shape of the weights."""
    low_s, width_s = newest_days * _DAY_S, (oldest_days - newest_days) * _DAY_S
    for _ in range(10_000):
        ago_s = low_s + rng.random() * width_s
        start_ns = now_ns - int(ago_s * 1e9)
        moment = dt.datetime.fromtimestamp(start_ns / 1e9, tz=dt.UTC)
        weekday = 1.0 if moment.weekday() < 5 else _WEEKEND_SHARE
        hour = moment.hour + moment.minute / 60
        daytime = 0.25 + 0.75 * math.exp(-(((hour - 13.0) / 4.0) ** 2))  # busiest early afternoon (UTC)
        if rng.random() < weekday * daytime and start_ns + trace_ns < now_ns:
            return start_ns
    return now_ns - int(low_s * 1e9) - trace_ns  # a window too narrow to sample: its newest moment
