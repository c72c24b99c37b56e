"""Daily spend anomalies: days on which a key spent materially more than its recent pattern predicts.

Method, per key and evaluated day d, using only the `lookback_days` before d (never d itself):

- Expected spend: the median of spend on the same weekday in the window (4 values at the default
  28 days), so a Monday is compared with Mondays and a weekday-high/weekend-low week raises
  nothing. Keys with less than two weeks of history use the median of every day they have
  (`baseline = "flat"`); keys with fewer than `min_history_days` days are not evaluated.
- Scale: spend is compared on u = log(spend + `offset_usd`). Spend noise is multiplicative and
  right-skewed (a busy day is +50 %, not +$50), so on the dollar scale a normal-theory threshold
  fires on ordinary busy days of noisy agents and is blind on weekends; on the log scale one σ
  means the same everywhere. The offset keeps zero-spend days finite and flattens differences of
  a few dollars, which are not worth an alert anyway.
- Spread σ (of u for one day): from week-over-week differences u_h − u_{h−7} (both days inside the
  window), which cancel the weekday pattern and the level. Their scale is a winsorised standard
  deviation — clipped at median ± 2.5 × 1.4826 × MAD, so one past spike cannot inflate it, yet
  nearly as efficient as a plain standard deviation (a raw MAD of ~21 differences is so noisy
  that, in simulation, it doubled to tripled the false alarms) — divided by √2 for one day. Flat
  baselines use day-over-day differences. σ is at least `sigma_floor`.
- The prediction's spread adds the error of the median itself, about σ·√(π/2n) for n days, so a
  two-week-old key is not held to the certainty of a four-week-old one. σ is itself estimated from
  ν differences, so `k`, read as a normal quantile, is widened to the matching Student-t quantile
  (t_ν ≈ z·(1 + (z² + 1)/4ν)); with that, `k` means roughly the same false-alarm rate whether a key
  has one week of history or four.
- A day is an anomaly when score = (u_actual − u_expected) / spread exceeds `k` AND the impact
  actual − expected is at least `min_impact_usd`, so an agent spending cents never alerts.

Defaults, and why (checked by simulating 400 keys × 13 weeks of noise): `k=3.5` (a one-sided
normal tail of 2 in 10,000) gave 3–5 false alarms per 10,000 key-days on gamma or log-normal daily
spend with a 20–30 % coefficient of variation, about 20 on heavy-tailed (Student t, 3 df) noise,
and caught a 3× day on an agent whose spend varies ±20 % three times in four; `sigma_floor=0.1`
(≈ ±10 %) makes about +60 % the smallest rise that can alert on a perfectly steady agent, so 1.3×
stays quiet; `offset_usd=10` and `min_impact_usd=10`: a few dollars a day is below anyone's
attention; `lookback_days=28`: four of each weekday — the fewest for which one odd week cannot
move the median — while a new level becomes the expectation within three weeks;
`min_history_days=7`: a week is the least history a median says anything about.

Impact is reported as cloud anomaly detectors do: `expected`, `actual`, `impact_usd` =
actual − expected, `impact_pct` = 100 × impact / expected (null when nothing was expected).
Spend is summed per key and day in Decimal; the statistics are Float64 — round them for display.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from statistics import NormalDist

import polars as pl

from analytics.forecast import dense_daily_spend, key_columns

_MAD_TO_SIGMA = 1.4826  # MAD × this estimates σ for normal noise
_WINSOR_AT = 2.5  # robust σ units from the median at which differences are clipped


def _winsorised_normal_sd(c: float) -> float:
    """The standard deviation of a standard normal clipped at ±c, to make the clipped sd consistent."""
    normal = NormalDist()
    inside = (2 * normal.cdf(c) - 1) - 2 * c * normal.pdf(c)
    return math.sqrt(inside + 2 * c * c * normal.cdf(-c))


# the difference of two days has √2 times a day's σ
_DIFF_TO_DAY_SIGMA = 1 / (_winsorised_normal_sd(_WINSOR_AT) * math.sqrt(2))


def mad(expr: pl.Expr) -> pl.Expr:
    """Median absolute deviation from the median (within the current group)."""
    return (expr - expr.median()).abs().median()


def day_sigma(diffs: pl.Expr) -> pl.Expr:
    """One day's σ from differences of two days: their winsorised sd, made consistent, over √2."""
    centre, scale = diffs.median(), mad(diffs) * _MAD_TO_SIGMA
    clipped = diffs.clip(centre - _WINSOR_AT * scale, centre + _WINSOR_AT * scale)
    return clipped.std() * _DIFF_TO_DAY_SIGMA


def windows(
    dense: pl.DataFrame, targets: pl.DataFrame, *, key: list[str], lookback_days: int
) -> pl.DataFrame:
    """Each evaluated (key, day) joined with the key's days in the `lookback_days` before it.

    `lag` is how many days before the evaluated day the history day lies (1 … lookback_days).
    """
    history = dense.select(*key, pl.col("day").alias("history_day"), "y", "wow", "dod")
    return (
        targets.select(*key, "day", pl.col("y").alias("actual"))
        .with_columns(pl.int_ranges(1, lookback_days + 1, dtype=pl.Int32).alias("lag"))
        .explode("lag")
        .with_columns((pl.col("day") - pl.duration(days=pl.col("lag"))).alias("history_day"))
        .join(history, on=[*key, "history_day"], how="inner", nulls_equal=True)
    )


def baseline_statistics(window: pl.DataFrame, *, key: list[str], lookback_days: int) -> pl.DataFrame:
    """Per evaluated (key, day): actual, history length, the weekday and flat medians, their spreads."""
    same_weekday = pl.col("lag") % 7 == 0
    # both days of a difference must lie inside the window, so the window bounds what is seen
    wow = pl.col("wow").filter(pl.col("lag") <= lookback_days - 7)
    dod = pl.col("dod").filter(pl.col("lag") <= lookback_days - 1)
    return window.group_by([*key, "day"]).agg(
        pl.col("actual").first(),
        pl.len().alias("history_days"),
        same_weekday.sum().alias("same_weekday_days"),
        pl.col("y").filter(same_weekday).median().alias("weekday_median"),
        pl.col("y").median().alias("flat_median"),
        day_sigma(wow).alias("wow_sigma"),
        wow.count().alias("wow_n"),
        day_sigma(dod).alias("dod_sigma"),
        dod.count().alias("dod_n"),
    )


def chosen_baseline(stats: pl.DataFrame, *, sigma_floor: float) -> pl.DataFrame:
    """`stats` with the baseline chosen: `expected`, one day's `sigma`, the days behind the median
    (`baseline_days`) and the differences behind σ (`sigma_days`)."""
    weekday = pl.col("same_weekday_days") >= 2
    return stats.with_columns(
        pl.when(weekday).then(pl.lit("weekday")).otherwise(pl.lit("flat")).alias("baseline"),
        pl.when(weekday).then(pl.col("weekday_median")).otherwise(pl.col("flat_median")).alias("expected"),
        pl.when(weekday)
        .then(pl.col("same_weekday_days"))
        .otherwise(pl.col("history_days"))
        .cast(pl.Float64)
        .alias("baseline_days"),
        pl.max_horizontal(
            pl.when(weekday & (pl.col("wow_n") >= 2))
            .then(pl.col("wow_sigma"))
            .otherwise(pl.col("dod_sigma")),
            pl.lit(sigma_floor),
        ).alias("sigma"),
        pl.when(weekday & (pl.col("wow_n") >= 2))
        .then(pl.col("wow_n"))
        .otherwise(pl.col("dod_n"))
        .cast(pl.Float64)
        .alias("sigma_days"),
    )


def anomaly_scores(
    stats: pl.DataFrame,
    *,
    k: float,
    sigma_floor: float,
    offset_usd: float,
    min_impact_usd: float,
    min_history_days: int,
) -> pl.DataFrame:
    """Expected spend, impact, score, the alerting bound and the anomaly flag per evaluated day."""
    expected = pl.col("expected")
    excess = pl.col("actual") - expected
    log_expected = (expected.clip(lower_bound=0) + offset_usd).log()
    # a median of n days misses the true level by about σ·√(π/2n): the prediction's σ includes it
    prediction = pl.col("sigma") * (1 + math.pi / (2 * pl.col("baseline_days"))).sqrt()
    # σ itself is estimated from ν differences, so the k-quantile of a normal becomes that of a t
    # with ν degrees of freedom; t_ν ≈ z·(1 + (z² + 1)/4ν) (Cornish–Fisher), folded into the spread
    degrees = pl.max_horizontal(pl.col("sigma_days") - 1, 1.0)
    spread = prediction * (1 + (k * k + 1) / (4 * degrees))
    return (
        chosen_baseline(stats.filter(pl.col("history_days") >= min_history_days), sigma_floor=sigma_floor)
        .with_columns(
            excess.alias("impact_usd"),
            pl.when(expected > 0).then(excess / expected * 100).alias("impact_pct"),
            (((pl.col("actual").clip(lower_bound=0) + offset_usd).log() - log_expected) / spread).alias(
                "score"
            ),
            ((log_expected + k * spread).exp() - offset_usd).alias("upper_bound"),
        )
        .with_columns(((pl.col("score") > k) & (pl.col("impact_usd") >= min_impact_usd)).alias("is_anomaly"))
    )


def daily_baseline(
    daily: pl.DataFrame,
    *,
    key: str | list[str],
    as_of: date | None = None,
    lookback_days: int = 28,
    k: float = 3.5,
    sigma_floor: float = 0.1,
    offset_usd: float = 10.0,
    min_impact_usd: float = 10.0,
    min_history_days: int = 7,
) -> pl.DataFrame:
    """Per key and evaluated day: actual and expected spend, impact, score and the anomaly flag.

    `daily` has one row per key and day with `day` and `spend`; a missing day after a key's first is
    zero spend. `as_of` evaluates that one day (the daily job: yesterday); None evaluates every day
    that has `min_history_days` of history (a backfill, or a chart of expected against actual).

    Parameters, and why the defaults: see the module docstring.

    Columns: the key, `day`, `actual`, `expected`, `impact_usd`, `impact_pct`, `score`,
    `upper_bound` (the spend above which the day would have scored over `k`), `baseline`
    (`weekday` or `flat`), `history_days`, `is_anomaly`. A step up keeps alerting until the new
    level is the same-weekday median (two weeks at the defaults); findings dedupe it by fingerprint.
    """
    keys = key_columns(key)
    if lookback_days < 14:
        raise ValueError(f"lookback_days must be at least 14 (two of each weekday), got {lookback_days}")
    if offset_usd <= 0:
        raise ValueError(
            f"offset_usd must be positive (it keeps log(spend + offset) finite), got {offset_usd}"
        )
    end = as_of if as_of is not None else daily_end(daily)
    if end is None:
        return _empty_baseline(daily, keys)
    start = None if as_of is None else as_of - timedelta(days=lookback_days)
    u = pl.col("u")
    dense = dense_daily_spend(daily, key=keys, start=start, end=end).with_columns(
        pl.col("spend").cast(pl.Float64).alias("y"),
        (pl.col("spend").cast(pl.Float64).clip(lower_bound=0) + offset_usd).log().alias("u"),
    )
    dense = dense.with_columns(
        (u - u.shift(7)).over(keys).alias("wow"), (u - u.shift(1)).over(keys).alias("dod")
    )
    targets = dense if as_of is None else dense.filter(pl.col("day") == as_of)
    stats = baseline_statistics(
        windows(dense, targets, key=keys, lookback_days=lookback_days), key=keys, lookback_days=lookback_days
    )
    scored = anomaly_scores(
        stats,
        k=k,
        sigma_floor=sigma_floor,
        offset_usd=offset_usd,
        min_impact_usd=min_impact_usd,
        min_history_days=min_history_days,
    )
    return scored.select(*keys, *_BASELINE_COLUMNS).sort([*keys, "day"], nulls_last=True)


def daily_anomalies(
    daily: pl.DataFrame,
    *,
    key: str | list[str],
    as_of: date | None = None,
    lookback_days: int = 28,
    k: float = 3.5,
    sigma_floor: float = 0.1,
    offset_usd: float = 10.0,
    min_impact_usd: float = 10.0,
    min_history_days: int = 7,
) -> pl.DataFrame:
    """The rows of `daily_baseline` (same parameters) that are anomalies: spend above what was expected."""
    return daily_baseline(
        daily,
        key=key,
        as_of=as_of,
        lookback_days=lookback_days,
        k=k,
        sigma_floor=sigma_floor,
        offset_usd=offset_usd,
        min_impact_usd=min_impact_usd,
        min_history_days=min_history_days,
    ).filter(pl.col("is_anomaly"))


def daily_end(daily: pl.DataFrame) -> date | None:
    """The last day in `daily`, or None when it is empty."""
    if "day" not in daily.columns:
        raise ValueError(
            "daily spend lacks column `day`: pass one row per key and day with `day` and `spend`"
        )
    return daily.select(pl.col("day").cast(pl.Date).max()).item()


_BASELINE_COLUMNS = (
    "day",
    "actual",
    "expected",
    "impact_usd",
    "impact_pct",
    "score",
    "upper_bound",
    "baseline",
    "history_days",
    "is_anomaly",
)


def _empty_baseline(daily: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    schema = {c: daily.schema[c] for c in keys} | {
        "day": pl.Date,
        "actual": pl.Float64,
        "expected": pl.Float64,
        "impact_usd": pl.Float64,
        "impact_pct": pl.Float64,
        "score": pl.Float64,
        "upper_bound": pl.Float64,
        "baseline": pl.String,
        "history_days": pl.UInt32,
        "is_anomaly": pl.Boolean,
    }
    return pl.DataFrame(schema=schema)
