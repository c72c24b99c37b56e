"""Month-end forecasts and budget status on synthetic series whose answers are known in closed form.

Calendar used throughout: March 2025 has 31 days and starts on a Saturday; as_of is Monday 10 March,
so 10 days have elapsed and 21 remain (Tue 11 … Mon 31: 15 weekdays and 6 weekend days).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import polars as pl
import pytest

from analytics.forecast import FORECAST_COLUMNS, budget_status, month_end_forecast

AS_OF = date(2025, 3, 10)
HISTORY_START = date(2025, 2, 1)


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def series(agent: str, values: dict[date, float | Decimal]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "agent": [agent] * len(values),
            "day": list(values),
            "spend": [Decimal(str(v)) for v in values.values()],
        },
        schema={"agent": pl.String, "day": pl.Date, "spend": pl.Decimal(38, 6)},
    )


def constant(agent: str = "const", per_day: float = 10.0) -> pl.DataFrame:
    return series(agent, {d: per_day for d in days(HISTORY_START, AS_OF)})


def weekly(agent: str = "week", weekday: float = 100.0, weekend: float = 20.0) -> pl.DataFrame:
    return series(agent, {d: weekday if d.isoweekday() <= 5 else weekend for d in days(HISTORY_START, AS_OF)})


def row(frame: pl.DataFrame, agent: str) -> dict:
    rows = frame.filter(pl.col("agent") == agent).to_dicts()
    assert len(rows) == 1, f"expected one row for {agent}, got {rows}"
    return rows[0]


def test_constant_spend_forecasts_the_exact_month_total():
    got = row(month_end_forecast(constant(), as_of=AS_OF, key="agent"), "const")
    assert got["mtd_actual"] == Decimal("100")
    assert got["forecast_total"] == Decimal("310")  # 10/day × 31 days
    assert got["forecast_low"] == got["forecast_high"] == Decimal("310")  # no noise, no range
    assert got["daily_rate"] == 10.0
    assert (got["days_elapsed"], got["days_remaining"], got["history_days"]) == (10, 21, 28)
    assert got["daily_expected"] == [10.0] * 21
    assert got["daily_actual"] == [Decimal("10")] * 10
    assert got["month"] == date(2025, 3, 1)


def test_float_spend_is_summed_as_decimal():
    frame = constant().with_columns(pl.lit(0.1).alias("spend"))
    got = row(month_end_forecast(frame, as_of=AS_OF, key="agent"), "const")
    # ten float 0.1s add up to 0.9999999999999999; summed in Decimal they are exactly 1
    assert got["mtd_actual"] == Decimal("1")
    assert got["forecast_total"] == Decimal("3.1")


def test_weekday_weekend_pattern_is_projected_day_by_day():
    got = row(month_end_forecast(weekly(), as_of=AS_OF, key="agent"), "week")
    # March 1–10: Sat, Sun, Mon–Fri, Sat, Sun, Mon = 6 weekdays and 4 weekend days
    assert got["mtd_actual"] == Decimal(6 * 100 + 4 * 20)
    # remaining: 15 weekdays and 6 weekend days
    assert got["forecast_total"] == Decimal(680 + 15 * 100 + 6 * 20)
    assert got["method"] == "weekday"
    assert got["daily_rate"] == pytest.approx((5 * 100 + 2 * 20) / 7)  # the deseasonalised level
    assert got["daily_expected"][:7] == pytest.approx([100, 100, 100, 100, 20, 20, 100])  # Tue 11 … Mon 17


def test_weekday_only_spend_is_not_read_as_zero():
    # 70 every Monday, nothing else: a median of days would forecast 0
    frame = series("monday", {d: 70 for d in days(HISTORY_START, AS_OF) if d.isoweekday() == 1})
    got = row(month_end_forecast(frame, as_of=AS_OF, key="agent"), "monday")
    assert got["mtd_actual"] == Decimal(140)  # Mondays 3 and 10 March
    assert got["forecast_total"] == Decimal(140 + 3 * 70)  # Mondays 17, 24, 31 March
    assert got["history_days"] == 28  # days without rows count as zero spend, not as missing history


def test_linear_ramp_with_trend_is_exact_and_without_trend_uses_the_window_centre():
    # spend on day i (1 February = day 1) is i dollars: 10 March is day 38
    frame = series("ramp", {d: (d - HISTORY_START).days + 1 for d in days(HISTORY_START, AS_OF)})
    mtd = sum(range(29, 39))
    with_trend = row(month_end_forecast(frame, as_of=AS_OF, key="agent", trend=True), "ramp")
    assert with_trend["mtd_actual"] == Decimal(mtd)
    assert with_trend["daily_slope"] == pytest.approx(1.0)
    assert with_trend["forecast_total"] == Decimal(mtd + sum(range(39, 60)))  # days 39 … 59
    assert with_trend["method"] == "weekday+trend"
    # a linear series is symmetric about the middle of the 14-day window, so is its winsorised mean
    flat = row(month_end_forecast(frame, as_of=AS_OF, key="agent"), "ramp")
    assert flat["daily_rate"] == pytest.approx(31.5)
    assert flat["forecast_total"] == Decimal(mtd) + Decimal("31.5") * 21


def test_one_spike_is_not_extrapolated():
    values = {d: 10 for d in days(HISTORY_START, AS_OF)}
    values[date(2025, 3, 5)] = 500
    got = row(month_end_forecast(series("spiky", values), as_of=AS_OF, key="agent"), "spiky")
    assert got["mtd_actual"] == Decimal(9 * 10 + 500)
    assert got["daily_rate"] == pytest.approx(10.0)
    assert got["forecast_total"] == Decimal(590 + 21 * 10)


def test_new_agent_uses_a_flat_rate_and_a_wide_range():
    frame = series("new", {date(2025, 3, 8): 4, date(2025, 3, 9): 5, date(2025, 3, 10): 6})
    got = row(month_end_forecast(frame, as_of=AS_OF, key="agent"), "new")
    assert (got["method"], got["history_days"]) == ("flat", 3)
    assert got["daily_rate"] == pytest.approx(5.0)  # winsorised mean of 4, 5, 6
    assert got["forecast_total"] == Decimal(15 + 21 * 5)
    assert got["forecast_low"] < got["forecast_total"] < got["forecast_high"]
    assert got["forecast_low"] >= got["mtd_actual"]


def test_single_day_agent_gets_a_range_from_its_level():
    got = row(month_end_forecast(series("one", {AS_OF: 5}), as_of=AS_OF, key="agent"), "one")
    assert got["forecast_total"] == Decimal(5 + 21 * 5)
    assert got["forecast_low"] == Decimal(5)  # clipped at what is already spent
    # σ = level = 5, n = 1: sd² = 25·21 + 25·21², half-width = z(0.9) · sd
    sd = (25 * 21 + 25 * 21**2) ** 0.5
    assert float(got["forecast_high"]) == pytest.approx(110 + 1.2815515655446004 * sd)


def test_noisy_series_range_covers_the_forecast():
    values = {d: 100 + (15 if d.day % 2 else -15) for d in days(HISTORY_START, AS_OF)}
    got = row(month_end_forecast(series("noisy", values), as_of=AS_OF, key="agent"), "noisy")
    assert got["forecast_low"] < got["forecast_total"] < got["forecast_high"]
    narrow = row(month_end_forecast(series("noisy", values), as_of=AS_OF, key="agent", interval=0.5), "noisy")
    assert got["forecast_high"] - got["forecast_low"] > narrow["forecast_high"] - narrow["forecast_low"]


def test_first_and_last_day_of_the_month():
    first = row(month_end_forecast(constant(), as_of=date(2025, 3, 1), key="agent"), "const")
    assert (first["mtd_actual"], first["forecast_total"]) == (Decimal(10), Decimal(310))
    frame = series("const", {d: 10 for d in days(HISTORY_START, date(2025, 3, 31))})
    last = row(month_end_forecast(frame, as_of=date(2025, 3, 31), key="agent"), "const")
    assert last["forecast_total"] == last["mtd_actual"] == Decimal(310)
    assert (last["days_remaining"], last["daily_expected"]) == (0, [])


def test_rows_after_as_of_are_ignored_and_gone_keys_are_dropped():
    later = series("const", {date(2025, 3, 20): 1000})
    gone = series("gone", {date(2025, 1, 5): 50})
    frame = pl.concat([constant(), later, gone])
    got = month_end_forecast(frame, as_of=AS_OF, key="agent")
    assert got["agent"].to_list() == ["const"]
    assert row(got, "const")["forecast_total"] == Decimal(310)


def test_composite_key_with_nulls_keeps_groups_apart():
    a = constant("x").with_columns(pl.lit("eng").alias("department"), pl.lit("openai").alias("provider"))
    b = constant("x", 2).with_columns(
        pl.lit(None, pl.String).alias("department"), pl.lit("openai").alias("provider")
    )
    got = month_end_forecast(pl.concat([a, b]).drop("agent"), as_of=AS_OF, key=["department", "provider"])
    assert got.columns == ["department", "provider", *FORECAST_COLUMNS]
    totals = dict(zip(got["department"].to_list(), got["forecast_total"].to_list(), strict=True))
    assert totals == {"eng": Decimal(310), None: Decimal(62)}


def test_empty_input_gives_an_empty_frame_with_the_columns():
    got = month_end_forecast(constant().clear(), as_of=AS_OF, key="agent")
    assert got.is_empty()
    assert got.columns == ["agent", *FORECAST_COLUMNS]


def test_missing_columns_are_reported():
    with pytest.raises(ValueError, match="spend"):
        month_end_forecast(constant().drop("spend"), as_of=AS_OF, key="agent")


def budgets(*rows: tuple[str, str, float]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["agent", "budget_id", "amount"], orient="row")


def test_budget_thresholds_and_exhaustion_dates():
    forecast = month_end_forecast(pl.concat([constant(), weekly()]), as_of=AS_OF, key="agent")
    status = budget_status(
        forecast,
        budgets(
            ("const", "tight", 150),  # actual 100 = 67 %, forecast 310 = 207 %
            ("const", "spent", 100),  # actual exactly 100 %
            ("const", "roomy", 400),  # actual 25 %, forecast 77.5 %
            ("const", "edge", 387.5),  # forecast exactly 80 %
            ("week", "month", 1500),  # forecast 2300
            ("nobody", "other", 10),  # no forecast for this key: left out
        ),
    )
    by_id = {r["budget_id"]: r for r in status.to_dicts()}
    assert set(by_id) == {"tight", "spent", "roomy", "edge", "month"}

    tight = by_id["tight"]
    assert (tight["actual_threshold"], tight["forecast_threshold"]) == (0.5, 1.0)
    assert tight["actual_pct"] == pytest.approx(100 / 1.5)
    assert tight["forecast_pct"] == pytest.approx(310 / 1.5)
    assert (tight["exhausted_on"], tight["exhausted_projected"]) == (date(2025, 3, 15), True)  # 15 × 10

    spent = by_id["spent"]
    assert (spent["actual_threshold"], spent["forecast_threshold"]) == (1.0, 1.0)
    assert (spent["exhausted_on"], spent["exhausted_projected"]) == (date(2025, 3, 10), False)

    roomy = by_id["roomy"]
    assert (roomy["actual_threshold"], roomy["forecast_threshold"]) == (None, 0.5)
    assert (roomy["exhausted_on"], roomy["exhausted_projected"]) == (None, False)

    assert by_id["edge"]["forecast_threshold"] == 0.8

    # 680 by 10 March, then 100 a weekday and 20 a weekend day: 1520 on Thursday 20 March
    assert by_id["month"]["exhausted_on"] == date(2025, 3, 20)
    assert by_id["month"]["forecast_threshold"] == 1.0


def test_custom_thresholds_and_zero_budget():
    forecast = month_end_forecast(constant(), as_of=AS_OF, key="agent")
    status = budget_status(
        forecast, budgets(("const", "b", 1000), ("const", "zero", 0)), thresholds=(0.1, 0.3)
    )
    by_id = {r["budget_id"]: r for r in status.to_dicts()}
    assert (by_id["b"]["actual_threshold"], by_id["b"]["forecast_threshold"]) == (0.1, 0.3)
    assert by_id["zero"]["actual_pct"] == float("inf")
    assert by_id["zero"]["actual_threshold"] == 0.3
    assert by_id["zero"]["exhausted_on"] == date(2025, 3, 1)


def test_budget_status_rejects_bad_input():
    forecast = month_end_forecast(constant(), as_of=AS_OF, key="agent")
    with pytest.raises(ValueError, match="amount"):
        budget_status(forecast, budgets(("const", "b", 10)).drop("amount"))
    with pytest.raises(ValueError, match="thresholds"):
        budget_status(forecast, budgets(("const", "b", 10)), thresholds=())
