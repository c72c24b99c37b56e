"""Runaway agents: loops caught against each agent's own norm, busy-but-normal agents left alone."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from analytics.runaway import runaway_conversations, runaway_rates

T0 = datetime(2025, 3, 3, 9, 0)
SCHEMA = {
    "agent_id": pl.String,
    "conversation_id": pl.String,
    "start_time": pl.Datetime("us"),
    "total_tokens": pl.Int64,
    "trace_id": pl.String,
}


def conversation(
    agent: str, cid: str, calls: int, *, start: datetime, every: float = 5.0, tokens: int = 1000
):
    """`calls` model calls `every` seconds apart, each trace_id naming its conversation."""
    return [(agent, cid, start + timedelta(seconds=every * i), tokens, f"trace-{cid}") for i in range(calls)]


def frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def chatty(agent: str = "support", conversations: int = 50) -> list[tuple]:
    """Conversations of 4, 5, 6, 7, 8 calls in turn: median 6, MAD 1."""
    rows = []
    for c in range(conversations):
        rows += conversation(
            agent, f"{agent}-{c}", [4, 5, 6, 7, 8][c % 5], start=T0 + timedelta(minutes=10 * c)
        )
    return rows


def busy(agent: str = "coder", conversations: int = 40) -> list[tuple]:
    """Long but normal conversations: 200 … 400 calls (median 300), a call every 2 s."""
    rows = []
    for c in range(conversations):
        calls = 200 + (c * 37) % 201
        rows += conversation(agent, f"{agent}-{c}", calls, start=T0 + timedelta(hours=c), every=2.0)
    return rows


def test_loop_is_caught_against_the_agents_own_norm():
    loop = conversation("support", "stuck", 400, start=T0 + timedelta(hours=10), every=1.0)
    got = runaway_conversations(frame(chatty() + busy() + loop))
    calls = got.filter(pl.col("metric") == "calls_per_conversation").to_dicts()
    assert len(calls) == 1, calls  # the coder's 400-call conversations are its normal
    row = calls[0]
    assert (row["agent_id"], row["conversation_id"], row["observed"], row["norm"]) == (
        "support",
        "stuck",
        400,
        6,
    )
    # max(6 + 6 × 1.4826 × 1, 3 × 6, 30): the floor decides for so small a norm
    assert row["threshold"] == 30.0
    assert row["ratio"] == pytest.approx(400 / 6)
    assert row["history"] == 51
    assert row["sample_trace_ids"] == ["trace-stuck"]
    assert (row["first_call"], row["last_call"]) == (
        T0 + timedelta(hours=10),
        T0 + timedelta(hours=10, seconds=399),
    )
    # 400 calls × 1000 tokens also breaks the tokens floor (300k) and ratio
    tokens = got.filter(pl.col("metric") == "tokens_per_conversation").to_dicts()
    assert [(r["conversation_id"], r["observed"], r["norm"]) for r in tokens] == [("stuck", 400_000, 6000)]


def test_busy_but_normal_agent_is_quiet():
    assert runaway_conversations(frame(busy())).is_empty()
    assert runaway_rates(frame(busy())).is_empty()


def test_heavy_tailed_agent_is_judged_on_the_log_scale():
    # conversation lengths log-normal around 10 calls (σ = 0.8): 50+ calls happen a few times in 100
    rng = np.random.default_rng(11)
    lengths = np.maximum(1, np.round(10 * rng.lognormal(0, 0.8, 500))).astype(int)
    rows = []
    for c, n in enumerate(lengths):
        rows += conversation("researcher", f"r{c}", int(n), start=T0 + timedelta(minutes=c), every=0.1)
    assert lengths.max() > 3 * np.median(lengths)  # a linear median + k·MAD rule would flag these
    assert runaway_conversations(frame(rows), tokens=None).is_empty()
    loop = conversation("researcher", "stuck", 2000, start=T0 + timedelta(days=1), every=0.1)
    assert runaway_conversations(frame(rows + loop), tokens=None)["conversation_id"].to_list() == ["stuck"]


def test_tight_busy_agent_is_held_to_min_ratio_times_its_median():
    rows = []
    for c in range(30):
        rows += conversation("batch", f"b{c}", 38 + c % 5, start=T0 + timedelta(minutes=c))  # median 40
    rows += conversation("batch", "long", 110, start=T0 + timedelta(hours=1))
    rows += conversation("batch", "stuck", 130, start=T0 + timedelta(hours=2))
    got = runaway_conversations(frame(rows), tokens=None)
    assert got.select("conversation_id", "norm", "threshold").rows() == [("stuck", 40.0, 120.0)]


def test_context_blowup_is_a_tokens_runaway_with_normal_calls():
    blowup = conversation("support", "huge", 6, start=T0 + timedelta(hours=10), tokens=200_000)
    got = runaway_conversations(frame(chatty() + blowup))
    assert got.select("conversation_id", "metric", "observed").rows() == [
        ("huge", "tokens_per_conversation", 1_200_000.0)
    ]


def test_new_agent_is_held_to_ratio_times_floor():
    rows = conversation("fresh", "f1", 5, start=T0) + conversation("fresh", "f2", 20, start=T0)
    rows += conversation("fresh", "f3", 100, start=T0)
    got = runaway_conversations(frame(rows), tokens=None)
    assert got.select("conversation_id", "threshold", "history").rows() == [("f3", 90.0, 3)]  # 3 × 30


def test_conversations_without_id_are_not_grouped_and_tokens_may_be_null():
    rows = chatty() + [("support", None, T0, None, None)] * 500
    assert runaway_conversations(frame(rows)).is_empty()


def steady_minutes(agent: str, per_minute: list[int], start: datetime = T0) -> list[tuple]:
    """Calls spread inside consecutive minutes, one conversation per minute."""
    rows = []
    for m, n in enumerate(per_minute):
        minute = start + timedelta(minutes=m)
        rows += conversation(agent, f"{agent}-m{m}", n, start=minute, every=59.0 / max(n, 1))
    return rows


def test_sustained_rate_loop_is_one_episode():
    normal = steady_minutes("support", [1, 2, 3] * 160)  # 8 hours, median 2 calls a minute
    loop_start = T0 + timedelta(hours=8, minutes=30)
    loop = []
    for m in range(5):
        loop += conversation("support", "stuck", 60, start=loop_start + timedelta(minutes=m), every=1.0)
    burst = conversation("support", "burst", 80, start=T0 + timedelta(hours=9), every=0.5)  # one minute
    got = runaway_rates(frame(normal + loop + burst), tokens=None)
    assert len(got) == 1, got
    row = got.to_dicts()[0]
    assert row["metric"] == "calls_per_minute"
    assert (row["first_minute"], row["last_minute"], row["minutes"]) == (
        loop_start,
        loop_start + timedelta(minutes=4),
        5,
    )
    assert (row["peak"], row["total"], row["norm"], row["threshold"]) == (60, 300, 2, 30)
    assert row["ratio"] == 30
    assert row["sample_conversation_ids"] == ["stuck"]


def test_busy_rate_agent_with_traffic_swings_is_quiet():
    # 40 calls a minute with ±25 % swings, and an hour at 60: still below 3 × median
    per_minute = [30, 40, 50, 40] * 120 + [60] * 60
    assert runaway_rates(frame(steady_minutes("gateway", per_minute)), tokens=None).is_empty()


def test_rate_loop_on_a_young_agent_uses_ratio_times_floor():
    loop = []
    for m in range(4):
        loop += conversation("fresh", "stuck", 100, start=T0 + timedelta(minutes=m), every=0.5)
    got = runaway_rates(frame(loop), tokens=None)
    assert got.select("minutes", "threshold", "history").rows() == [(4, 90.0, 4)]


def test_missing_columns_are_reported():
    with pytest.raises(ValueError, match="conversation_id"):
        runaway_conversations(frame(chatty()).drop("conversation_id"))
    with pytest.raises(ValueError, match="total_tokens"):
        runaway_rates(frame(chatty()).drop("total_tokens"))
