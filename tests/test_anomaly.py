"""Daily spend anomalies on synthetic series with known expected values, impacts and scores."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from analytics.anomaly import daily_anomalies, daily_baseline

START = date(2025, 1, 6)  # a Monday
WEEKS = 8
LAST = START + timedelta(days=7 * WEEKS - 1)  # a Sunday, the day most tests evaluate


def series(agent: str, values: list[float], start: date = START) -> pl.DataFrame:
    return pl.DataFrame(
        {"agent": agent, "day": [start + timedelta(days=i) for i in range(len(values))], "spend": values},
        schema={"agent": pl.String, "day": pl.Date, "spend": pl.Float64},
    )


def steady(agent: str, level: float = 100.0, last: float | None = None) -> pl.DataFrame:
    values = [level] * (7 * WEEKS)
    if last is not None:
        values[-1] = last
    return series(agent, values)


def weekly(agent: str = "week", weekday: float = 100.0, weekend: float = 20.0) -> pl.DataFrame:
    days = range(7 * WEEKS)
    return series(
        agent, [weekday if (START + timedelta(days=i)).isoweekday() <= 5 else weekend for i in days]
    )


def one(frame: pl.DataFrame, agent: str) -> dict:
    rows = frame.filter(pl.col("agent") == agent).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


def spread(sigma: float, median_of: int, differences: int, k: float = 3.5) -> float:
    """The score's unit, from the method: σ, widened for the median's error and for σ's own."""
    return sigma * math.sqrt(1 + math.pi / (2 * median_of)) * (1 + (k * k + 1) / (4 * (differences - 1)))


# a series without noise sits on the σ floor (0.1); four Mondays behind the median, 21 differences
STEADY = spread(0.1, median_of=4, differences=21)


def test_triple_spike_fires_with_expected_actual_and_impact():
    got = daily_anomalies(steady("spike", last=300.0), key="agent", as_of=LAST)
    row = one(got, "spike")
    assert (row["day"], row["expected"], row["actual"]) == (LAST, 100.0, 300.0)
    assert (row["impact_usd"], row["impact_pct"]) == (200.0, 200.0)
    assert row["score"] == pytest.approx(math.log(310 / 110) / STEADY)  # on log(spend + $10)
    assert row["upper_bound"] == pytest.approx(110 * math.exp(3.5 * STEADY) - 10)
    assert row["baseline"] == "weekday"


def test_near_miss_stays_quiet():
    baseline = one(daily_baseline(steady("near", last=130.0), key="agent", as_of=LAST), "near")
    assert (baseline["expected"], baseline["impact_usd"], baseline["impact_pct"]) == (100.0, 30.0, 30.0)
    assert baseline["score"] == pytest.approx(math.log(140 / 110) / STEADY)
    assert baseline["score"] < 3.5
    assert not baseline["is_anomaly"]
    assert daily_anomalies(steady("near", last=130.0), key="agent", as_of=LAST).is_empty()


def test_steady_series_never_alerts():
    assert daily_anomalies(steady("flat"), key="agent").is_empty()


def test_weekly_seasonality_does_not_alert_on_mondays():
    frame = weekly()
    assert daily_anomalies(frame, key="agent").is_empty()
    baseline = daily_baseline(frame, key="agent")
    mondays = baseline.filter((pl.col("day").dt.weekday() == 1) & (pl.col("baseline") == "weekday"))
    assert len(mondays) == WEEKS - 2  # weeks 3 … 8 have two earlier Mondays to take a median of
    assert mondays["expected"].to_list() == [100.0] * (WEEKS - 2)
    # a flat median of the last four weeks would expect 100 on a Saturday too, and miss this
    saturday = LAST - timedelta(days=1)
    spiked = frame.with_columns(
        pl.when(pl.col("day") == saturday).then(60.0).otherwise("spend").alias("spend")
    )
    row = one(daily_anomalies(spiked, key="agent", as_of=saturday), "week")
    assert (row["expected"], row["actual"], row["impact_usd"], row["impact_pct"]) == (20.0, 60.0, 40.0, 200.0)


def test_step_up_alerts_until_the_weekday_median_catches_up():
    step = START + timedelta(days=30)  # a Wednesday
    values = [100.0 if i < 30 else 200.0 for i in range(7 * WEEKS)]
    frame = series("step", values)
    first = one(daily_anomalies(frame, key="agent", as_of=step), "step")
    assert (first["expected"], first["actual"], first["impact_pct"]) == (100.0, 200.0, 100.0)
    flagged = daily_anomalies(frame, key="agent")["day"].to_list()
    # the same-weekday median of four weeks still holds three (then two) old values for two weeks
    assert flagged == [step + timedelta(days=i) for i in range(14)]
    assert (
        one(daily_baseline(frame, key="agent", as_of=step + timedelta(days=21)), "step")["expected"] == 200.0
    )


def test_cent_agent_never_alerts():
    frame = steady("cents", 0.01, last=0.05)
    row = one(daily_baseline(frame, key="agent", as_of=LAST), "cents")
    assert row["impact_usd"] == pytest.approx(0.04)
    assert row["score"] < 1  # on log(spend + $10) four cents is nothing
    # even with the offset shrunk until five cents is a huge score, four cents is below min_impact_usd
    sharp = one(daily_baseline(frame, key="agent", as_of=LAST, offset_usd=0.001), "cents")
    assert sharp["score"] > 3.5
    assert not sharp["is_anomaly"]
    assert daily_anomalies(frame, key="agent").is_empty()


def test_noisy_series_uses_its_own_spread():
    rng = np.random.default_rng(7)
    values = (100 + rng.normal(0, 15, size=7 * WEEKS)).tolist()
    quiet = daily_baseline(series("noisy", values), key="agent")
    assert not quiet["is_anomaly"].any()
    bound = one(quiet.filter(pl.col("day") == LAST), "noisy")["upper_bound"]
    # σ ≈ 15/110 on the log scale is above the floor, so the bound is wider than a steady series'
    assert 110 * math.exp(3.5 * STEADY) - 10 < bound < 300
    values[-1] = 300.0
    assert not daily_anomalies(series("noisy", values), key="agent", as_of=LAST).is_empty()
    values[-1] = 130.0
    assert daily_anomalies(series("noisy", values), key="agent", as_of=LAST).is_empty()


def test_single_day_and_backfill_agree():
    frame = pl.concat([weekly(), steady("spike", last=300.0)])
    backfill = daily_baseline(frame, key="agent").filter(pl.col("day") == LAST)
    single = daily_baseline(frame, key="agent", as_of=LAST)
    assert single.equals(backfill)


def test_missing_days_are_zero_and_new_agents_wait_for_history():
    # spend on weekdays only, weekends absent: a Saturday with spend is new, a Monday is normal
    weekdays = weekly(weekend=0.0).filter(pl.col("spend") > 0)
    baseline = daily_baseline(weekdays, key="agent", as_of=LAST - timedelta(days=6))  # a Monday
    assert one(baseline, "week")["expected"] == 100.0
    assert not one(baseline, "week")["is_anomaly"]
    saturday = pl.DataFrame(
        {"agent": ["week"], "day": [LAST - timedelta(days=1)], "spend": [50.0]}, schema=weekdays.schema
    )
    row = one(
        daily_anomalies(pl.concat([weekdays, saturday]), key="agent", as_of=LAST - timedelta(days=1)), "week"
    )
    assert (row["expected"], row["impact_usd"], row["impact_pct"]) == (0.0, 50.0, None)
    # zero-spend weekends are days like any other: 21 differences, all zero, σ on its floor
    assert row["score"] == pytest.approx(math.log(60 / 10) / STEADY)
    young = series("young", [10.0] * 5 + [100.0])
    assert daily_baseline(young, key="agent").is_empty()  # six days: fewer than min_history_days


def test_short_history_uses_a_flat_median_and_a_wider_spread():
    frame = series("young", [10.0] * 9 + [50.0])
    row = one(daily_anomalies(frame, key="agent"), "young")
    assert (row["baseline"], row["history_days"], row["expected"], row["impact_usd"]) == (
        "flat",
        9,
        10.0,
        40.0,
    )
    # nine days behind the median, eight day-over-day differences behind σ
    assert row["score"] == pytest.approx(math.log(60 / 20) / spread(0.1, median_of=9, differences=8))


def test_keys_are_independent_and_may_be_composite_with_nulls():
    a = steady("a", last=300.0).with_columns(pl.lit("eng").alias("department"))
    b = steady("a").with_columns(pl.lit(None, dtype=pl.String).alias("department"))
    got = daily_anomalies(pl.concat([a, b]), key=["agent", "department"], as_of=LAST)
    assert got.select("agent", "department").rows() == [("a", "eng")]


def test_parameters_move_the_line():
    frame = steady("near", last=130.0)
    assert not daily_anomalies(frame, key="agent", as_of=LAST, k=1.5).is_empty()
    assert daily_anomalies(
        steady("spike", last=300.0), key="agent", as_of=LAST, min_impact_usd=500
    ).is_empty()
    with pytest.raises(ValueError, match="lookback_days"):
        daily_baseline(frame, key="agent", lookback_days=7)
    with pytest.raises(ValueError, match="offset_usd"):
        daily_baseline(frame, key="agent", offset_usd=0)
