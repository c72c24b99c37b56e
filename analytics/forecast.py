"""Month-end spend forecasts and budget status: what each key has spent, will spend, and when it runs out.

Input is daily spend, one row per key and day (`day`, `spend`); a day without a row is a day without
spend. Money that is summed stays Decimal (`MONEY`); the statistics behind a forecast are Float64.

Forecast method (`month_end_forecast`), per key:

1. History: the last `history_days` days up to `as_of`, from the key's first day if it is newer
   (a new agent has no zero-spend past). `as_of` is the last *complete* day: a partial today would
   pull the rate down.
2. Weekday factors (multiplicative seasonality), only for keys with at least `min_season_days` of
   history: each day's spend divided by its centred 7-day moving average, the median of those ratios
   per weekday, normalised to average 1 over the week. Ratios to a centred moving average cancel a
   linear trend, so a growing key does not look "seasonal"; the median ignores one odd week. Shorter
   histories use factor 1 for every weekday (a flat week).
3. Level: spend divided by its weekday factor over the last `level_days` days, winsorised at the
   10th/90th percentiles, then averaged. Winsorising keeps one spike or one outage from moving the
   rate, yet unlike a median it does not read an agent that spends on a third of days as zero.
   With `trend=True` a Theil–Sen slope (median of pairwise slopes) is fitted to the same days and
   the level is the winsorised mean of the detrended values, anchored at `as_of`.
4. Projection: each remaining day of the month expects `max(0, level + slope·t) × factor(weekday)`;
   the forecast is month-to-date actual plus their sum.
5. Range: with σ the standard deviation of the winsorised deseasonalised values and n their count,
   remaining spend has variance `σ²·Σf² + (σ²/n)·(Σf)²` — independent daily noise plus the error of
   the estimated level, which every remaining day shares. low/high are the central `interval`
   normal range around the forecast; low never goes below month-to-date actual. A key with a single
   day of history gets σ = its level (a coefficient of variation of 1).

`period_end_forecast` is the same method for any period (a calendar quarter or year): actual from
the period's first day to `as_of`, projection to the period's last day. It learns from the same
recent weeks whatever the horizon — see its docstring for what that means for a quarter or a year.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from statistics import NormalDist

import polars as pl

MONEY = pl.Decimal(38, 12)  # the scale pricing uses for cost_usd, so casting its costs loses nothing

# Columns month_end_forecast adds after the key columns; budget_status recovers the key as the rest.
FORECAST_COLUMNS = (
    "month",
    "as_of",
    "days_elapsed",
    "days_remaining",
    "history_days",
    "method",
    "daily_rate",
    "daily_slope",
    "mtd_actual",
    "forecast_total",
    "forecast_low",
    "forecast_high",
    "daily_actual",
    "daily_expected",
)

# period_end_forecast's columns: the period's first and last day in place of `month`, then the same.
PERIOD_FORECAST_COLUMNS = ("period_start", "period_end", *FORECAST_COLUMNS[1:])

_WEEKDAYS = pl.DataFrame({"weekday": list(range(1, 8))}, schema={"weekday": pl.Int8})


def key_columns(key: str | Sequence[str]) -> list[str]:
    """The key as a list of column names."""
    return [key] if isinstance(key, str) else list(key)


def daily_spend_by_key(daily: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Spend summed per key and day in Decimal; duplicate rows for one day add up."""
    missing = [c for c in [*key, "day", "spend"] if c not in daily.columns]
    if missing:
        raise ValueError(
            f"daily spend lacks column(s) {missing}: pass one row per key and day with `day` (Date) "
            f"and `spend` (Decimal or float)"
        )
    return (
        daily.group_by([*key, "day"])
        .agg(pl.col("spend").cast(MONEY).sum())
        .with_columns(pl.col("day").cast(pl.Date))
    )


def dense_daily_spend(daily: pl.DataFrame, *, key: list[str], start: date | None, end: date) -> pl.DataFrame:
    """One row per key and day from the key's first day (or `start`, if later) to `end`; no row means zero.

    Keys whose first spend is after `end` are left out. Sorted by key and day, so row-based windows
    (`shift`, `rolling_*` over the key) are day-based.
    """
    sums = daily_spend_by_key(daily, key).filter(pl.col("day") <= end)
    first = pl.col("day").min()
    if start is not None:
        first = pl.max_horizontal(first, pl.lit(start))
    grid = (
        sums.group_by(key)
        .agg(first.alias("first"))
        .select(*key, pl.date_ranges("first", pl.lit(end)).alias("day"))
    )
    return (
        grid.explode("day")
        .join(sums, on=[*key, "day"], how="left", nulls_equal=True)
        .with_columns(pl.col("spend").fill_null(Decimal(0)))
        .sort([*key, "day"], nulls_last=True)
    )


def weekday_factors(history: pl.DataFrame, *, key: list[str], min_season_days: int) -> pl.DataFrame:
    """Per key and weekday (1 = Monday), the multiplicative factor; 1.0 for keys without enough history.

    `history` is dense (see `dense_daily_spend`) with a Float64 `y`.
    """
    ratios = (
        history.with_columns(
            pl.col("y").rolling_mean(7, center=True).over(key).alias("ma"),
            pl.len().over(key).alias("n"),
            pl.col("day").dt.weekday().alias("weekday"),
        )
        .filter((pl.col("n") >= min_season_days) & (pl.col("ma") > 0))
        .group_by([*key, "weekday"])
        .agg((pl.col("y") / pl.col("ma")).median().alias("raw"))
    )
    seasonal = ratios.with_columns(
        (pl.col("raw") / pl.col("raw").mean().over(key)).alias("factor"),
        pl.len().over(key).alias("weekdays_seen"),
    ).filter((pl.col("weekdays_seen") == 7) & pl.col("factor").is_finite())
    return (
        history.select(key)
        .unique()
        .join(_WEEKDAYS, how="cross")
        .join(seasonal.select(*key, "weekday", "factor"), on=[*key, "weekday"], how="left", nulls_equal=True)
        .with_columns(pl.col("factor").is_not_null().all().over(key).alias("seasonal"))
        .with_columns(pl.col("factor").fill_null(1.0))
    )


def winsorised(expr: pl.Expr, *, low: float = 0.1, high: float = 0.9) -> pl.Expr:
    """`expr` clipped to its own low/high quantiles (within the current group)."""
    return expr.clip(expr.quantile(low, interpolation="linear"), expr.quantile(high, interpolation="linear"))


def theil_sen_slopes(points: pl.DataFrame, *, key: list[str]) -> pl.DataFrame:
    """Per key, the median of pairwise slopes of `z` over `t` (0.0 for a key with a single point)."""
    pairs = points.select(*key, "t", "z").join(
        points.select(*key, "t", "z"), on=key, how="inner", suffix="_b", nulls_equal=True
    )
    slopes = (
        pairs.filter(pl.col("t_b") > pl.col("t"))
        .group_by(key)
        .agg(((pl.col("z_b") - pl.col("z")) / (pl.col("t_b") - pl.col("t"))).median().alias("slope"))
    )
    return (
        points.select(key)
        .unique()
        .join(slopes, on=key, how="left", nulls_equal=True)
        .with_columns(pl.col("slope").fill_null(0.0))
    )


def level_fits(
    history: pl.DataFrame, factors: pl.DataFrame, *, key: list[str], as_of: date, level_days: int, trend: bool
) -> pl.DataFrame:
    """Per key: deseasonalised level at `as_of`, slope per day, spread σ and the number of days used."""
    points = (
        history.filter(pl.col("day") > as_of - timedelta(days=level_days))
        .with_columns(pl.col("day").dt.weekday().alias("weekday"))
        .join(factors, on=[*key, "weekday"], how="left", nulls_equal=True)
        # a weekday with factor 0 (no spend on Saturdays) says nothing about the level
        .filter(pl.col("factor") > 0)
        .with_columns(
            (pl.col("y") / pl.col("factor")).alias("z"),
            (pl.col("day") - pl.lit(as_of)).dt.total_days().cast(pl.Float64).alias("t"),
        )
    )
    slopes = (
        theil_sen_slopes(points, key=key) if trend else points.select(key).unique().with_columns(slope=0.0)
    )
    detrended = winsorised(pl.col("z") - pl.col("slope") * pl.col("t"))
    return (
        points.join(slopes, on=key, how="left", nulls_equal=True)
        .group_by(key)
        .agg(
            detrended.mean().alias("level"),
            detrended.std().alias("sigma"),
            pl.len().alias("level_n"),
            pl.col("slope").first(),
        )
        .with_columns(pl.col("sigma").fill_null(pl.col("level")))
    )


def month_to_date(
    daily: pl.DataFrame, *, key: list[str], keys: pl.DataFrame, as_of: date, start: date | None = None
) -> pl.DataFrame:
    """Per key: period-to-date actual (Decimal) and the list of daily actuals from `start` to `as_of`.

    `start` is the period's first day, by default the 1st of `as_of`'s month.
    """
    month_start = start or as_of.replace(day=1)
    days = pl.DataFrame({"day": pl.date_range(month_start, as_of, eager=True)})
    sums = daily_spend_by_key(daily, key).filter(pl.col("day").is_between(month_start, as_of))
    return (
        keys.join(days, how="cross")
        .join(sums, on=[*key, "day"], how="left", nulls_equal=True)
        .with_columns(pl.col("spend").fill_null(Decimal(0)))
        .sort([*key, "day"], nulls_last=True)
        .group_by(key, maintain_order=True)
        .agg(pl.col("spend").sum().alias("mtd_actual"), pl.col("spend").alias("daily_actual"))
    )


def remaining_days(
    fits: pl.DataFrame, factors: pl.DataFrame, *, key: list[str], as_of: date, month_end: date
) -> pl.DataFrame:
    """Per key: expected spend for each remaining day of the month, their sum and its standard deviation."""
    if as_of >= month_end:
        return fits.select(
            *key,
            pl.lit(0.0).alias("remaining"),
            pl.lit(0.0).alias("remaining_sd"),
            pl.lit([], dtype=pl.List(pl.Float64)).alias("daily_expected"),
        )
    days = pl.DataFrame({"day": pl.date_range(as_of + timedelta(days=1), month_end, eager=True)})
    expected = pl.max_horizontal(pl.col("level") + pl.col("slope") * pl.col("t"), 0.0) * pl.col("factor")
    return (
        fits.join(days, how="cross")
        .with_columns(
            pl.col("day").dt.weekday().alias("weekday"),
            (pl.col("day") - pl.lit(as_of)).dt.total_days().cast(pl.Float64).alias("t"),
        )
        .join(factors, on=[*key, "weekday"], how="left", nulls_equal=True)
        .sort([*key, "day"], nulls_last=True)
        .group_by(key, maintain_order=True)
        .agg(
            expected.sum().alias("remaining"),
            (
                pl.col("sigma").first().pow(2) * pl.col("factor").pow(2).sum()
                + pl.col("sigma").first().pow(2) / pl.col("level_n").first() * pl.col("factor").sum().pow(2)
            )
            .sqrt()
            .alias("remaining_sd"),
            expected.alias("daily_expected"),
        )
    )


def month_end_forecast(
    daily: pl.DataFrame,
    *,
    as_of: date,
    key: str | list[str],
    history_days: int = 28,
    level_days: int = 14,
    min_season_days: int = 21,
    trend: bool = False,
    interval: float = 0.8,
) -> pl.DataFrame:
    """Per key: month-to-date actual spend and the forecast month-end total with a low/high range.

    Parameters, and why the defaults:
    - `as_of`: the last complete day; the month is `as_of`'s month.
    - `history_days=28`: four whole weeks for the weekday factors — each weekday is seen four times,
      and the centred moving average still leaves three ratios per weekday.
    - `level_days=14`: two whole weeks (every weekday twice) for the level: recent enough to follow a
      change within a week or two, long enough that 10 % winsorising drops a single spike.
    - `min_season_days=21`: three weeks give every weekday at least two ratios to a centred 7-day
      average; with less, one odd day would become a weekday's factor, so the week is flat instead.
    - `trend=False`: a two-week ramp is often a rollout that levels off, and extrapolating it to the
      end of the month overstates spend. Turn it on for keys known to grow steadily.
    - `interval=0.8`: the 80 % range cloud cost forecasts show; wider ranges are rarely acted on.

    Output columns: the key, then `FORECAST_COLUMNS`: `month` (its first day), `as_of`,
    `days_elapsed`, `days_remaining`, `history_days` (days of history used), `method` (`flat`,
    `weekday`, with `+trend`), `daily_rate` (deseasonalised level at `as_of`), `daily_slope`,
    `mtd_actual`, `forecast_total`, `forecast_low`, `forecast_high` (Decimal), `daily_actual`
    (Decimal per day from the 1st to `as_of`) and `daily_expected` (Float64 per remaining day).
    Keys without spend up to `as_of` are absent.
    """
    month_start = as_of.replace(day=1)
    month_end = (month_start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return (
        period_end_forecast(
            daily,
            as_of=as_of,
            key=key,
            period_start=month_start,
            period_end=month_end,
            history_days=history_days,
            level_days=level_days,
            min_season_days=min_season_days,
            trend=trend,
            interval=interval,
        )
        .rename({"period_start": "month"})
        .drop("period_end")
    )


def period_end_forecast(
    daily: pl.DataFrame,
    *,
    as_of: date,
    key: str | list[str],
    period_start: date,
    period_end: date,
    history_days: int = 28,
    level_days: int = 14,
    min_season_days: int = 21,
    trend: bool = False,
    interval: float = 0.8,
) -> pl.DataFrame:
    """Per key: period-to-date actual spend and the forecast total at `period_end`, with a low/high range.

    `month_end_forecast`'s method and parameters for any period that holds `as_of`, such as a
    calendar quarter or year; the horizon is the period's remaining days. Output columns: the key,
    then `PERIOD_FORECAST_COLUMNS` (`period_start` and `period_end` in place of `month`;
    `days_elapsed` counts from `period_start`, `mtd_actual` is the period-to-date actual).

    For long horizons the forecast still learns only from the last `history_days` (weekday factors)
    and `level_days` (level) before `as_of`: each remaining day of a quarter or a year expects the
    recent deseasonalised rate times its weekday factor. It does not learn month-of-year or
    end-of-quarter patterns (a year of history would be needed, and budgets must be judged in
    their first weeks), and with `trend=False` it does not extrapolate growth over months; the
    low/high range widens with the number of remaining days, as the variance above says.
    """
    if not period_start <= as_of <= period_end:
        raise ValueError(
            f"as_of {as_of} is outside the period {period_start} .. {period_end}: forecast a period "
            f"that holds the last complete day"
        )
    keys = key_columns(key)
    if not 0 < interval < 1:
        raise ValueError(f"interval must be between 0 and 1 (a central probability), got {interval}")
    start = as_of - timedelta(days=history_days - 1)
    # keys last seen before both the history window and the period are gone, not forecast at zero
    current = (
        daily_spend_by_key(daily, keys)
        .filter(pl.col("day").is_between(min(start, period_start), as_of))
        .select(keys)
        .unique()
    )
    daily = daily.join(current, on=keys, how="semi", nulls_equal=True)
    history = dense_daily_spend(daily, key=keys, start=start, end=as_of).with_columns(
        pl.col("spend").cast(pl.Float64).alias("y")
    )
    if history.is_empty():
        return _empty_forecast(daily, keys)
    factors = weekday_factors(history, key=keys, min_season_days=min_season_days)
    fits = level_fits(history, factors, key=keys, as_of=as_of, level_days=level_days, trend=trend)
    ahead = remaining_days(fits, factors, key=keys, as_of=as_of, month_end=period_end)
    actual = month_to_date(
        daily, key=keys, keys=history.select(keys).unique(), as_of=as_of, start=period_start
    )
    half_width = pl.lit(NormalDist().inv_cdf(0.5 + interval / 2)) * pl.col("remaining_sd")
    seasonal = factors.group_by(keys).agg(pl.col("seasonal").first())
    span = history.group_by(keys).agg(pl.len().alias("history_days"))
    method = pl.when(pl.col("seasonal")).then(pl.lit("weekday")).otherwise(pl.lit("flat"))
    return (
        actual.join(span, on=keys, how="left", nulls_equal=True)
        .join(seasonal, on=keys, how="left", nulls_equal=True)
        # a key whose recent weeks hold only factor-0 days has no level: it is expected to spend nothing
        .join(fits, on=keys, how="left", nulls_equal=True)
        .join(ahead, on=keys, how="left", nulls_equal=True)
        .with_columns(
            pl.col("remaining", "remaining_sd", "level", "slope").fill_null(0.0),
            pl.col("daily_expected").fill_null(pl.lit([], dtype=pl.List(pl.Float64))),
        )
        .select(
            *keys,
            pl.lit(period_start).alias("period_start"),
            pl.lit(period_end).alias("period_end"),
            pl.lit(as_of).alias("as_of"),
            pl.lit((as_of - period_start).days + 1, dtype=pl.Int32).alias("days_elapsed"),
            pl.lit((period_end - as_of).days, dtype=pl.Int32).alias("days_remaining"),
            pl.col("history_days").cast(pl.Int32),
            (method + pl.when(pl.lit(trend)).then(pl.lit("+trend")).otherwise(pl.lit(""))).alias("method"),
            pl.col("level").alias("daily_rate"),
            pl.col("slope").alias("daily_slope"),
            pl.col("mtd_actual"),
            (pl.col("mtd_actual") + pl.col("remaining").cast(MONEY)).alias("forecast_total"),
            (
                pl.col("mtd_actual") + pl.max_horizontal(pl.col("remaining") - half_width, 0.0).cast(MONEY)
            ).alias("forecast_low"),
            (pl.col("mtd_actual") + (pl.col("remaining") + half_width).cast(MONEY)).alias("forecast_high"),
            pl.col("daily_actual"),
            pl.col("daily_expected"),
        )
        .sort(keys, nulls_last=True)
    )


def _empty_forecast(daily: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    schema = {c: daily.schema[c] for c in keys} | {
        "period_start": pl.Date,
        "period_end": pl.Date,
        "as_of": pl.Date,
        "days_elapsed": pl.Int32,
        "days_remaining": pl.Int32,
        "history_days": pl.Int32,
        "method": pl.String,
        "daily_rate": pl.Float64,
        "daily_slope": pl.Float64,
        "mtd_actual": MONEY,
        "forecast_total": MONEY,
        "forecast_low": MONEY,
        "forecast_high": MONEY,
        "daily_actual": pl.List(MONEY),
        "daily_expected": pl.List(pl.Float64),
    }
    return pl.DataFrame(schema=schema)


def threshold_reached(spend: pl.Expr, amount: pl.Expr, thresholds: Sequence[float]) -> pl.Expr:
    """The highest threshold (a fraction of `amount`) that `spend` reaches, null if none.

    Compared in Decimal as spend ≥ threshold × amount, so 80.00 of 100 reaches 0.8 exactly; zero
    spend reaches nothing, not even a zero budget.
    """
    ordered = sorted(thresholds, reverse=True)
    chain = None
    for t in ordered:
        condition = (spend >= amount * pl.lit(Decimal(str(t)))) & (spend > 0)
        chain = (pl.when(condition) if chain is None else chain.when(condition)).then(pl.lit(t))
    return chain.otherwise(pl.lit(None, dtype=pl.Float64))


def share_pct(spend: pl.Expr, amount: pl.Expr) -> pl.Expr:
    """`spend` as a percentage of `amount`; infinite for spend against a zero budget."""
    return (
        pl.when(amount > 0)
        .then(spend.cast(pl.Float64) / amount.cast(pl.Float64) * 100)
        .when(spend > 0)
        .then(pl.lit(float("inf")))
        .otherwise(pl.lit(0.0))
    )


def exhaustion_dates(status: pl.DataFrame, *, start: str = "month") -> pl.DataFrame:
    """Per status row (`_row`): the first day of the period on which cumulative spend reaches the budget.

    The path is the actual days followed by the expected ones, so a budget already spent gets the day
    it ran out, and one that will run out gets the projected day. `start` names the column holding
    the period's first day (`month`, or `period_start` for `period_end_forecast`).
    """
    path = status.select(
        "_row",
        pl.col(start).alias("month"),
        "amount",
        pl.concat_list(pl.col("daily_actual"), pl.col("daily_expected").cast(pl.List(MONEY))).alias("spend"),
    ).with_columns(pl.int_ranges(0, pl.col("spend").list.len()).alias("offset"))
    return (
        path.explode(["spend", "offset"])
        .with_columns(pl.col("spend").cum_sum().over("_row"))
        .filter((pl.col("spend") >= pl.col("amount")) & (pl.col("spend") > 0))
        .group_by("_row")
        .agg((pl.col("month").first() + pl.duration(days=pl.col("offset").min())).alias("exhausted_on"))
    )


def budget_status(
    forecast: pl.DataFrame, budgets: pl.DataFrame, thresholds: Sequence[float] = (0.5, 0.8, 1.0)
) -> pl.DataFrame:
    """Per key and budget: shares of budget spent and forecast, thresholds crossed, exhaustion date.

    `forecast` is `month_end_forecast`'s output (or `period_end_forecast`'s); its key is every column
    not in `FORECAST_COLUMNS` (`PERIOD_FORECAST_COLUMNS`). `budgets` holds those key columns and
    `amount` (the period's budget, in the forecast's currency), optionally `budget_id`; a key may
    have several budgets.

    Output: the key, `budget_id` (if given), `amount`, `mtd_actual`, `forecast_total`, `actual_pct`
    and `forecast_pct` (percent of the budget: 80.0 means 80 %), `actual_threshold` and
    `forecast_threshold` (the highest of `thresholds` reached, as a fraction, null if none; compared
    in Decimal so 80.00 of 100 is exactly 0.8), `exhausted_on` (the day cumulative spend reaches the
    budget, actual or projected; null if it does not this month) and `exhausted_projected` (true when
    that day is after `as_of`, false when there is none). A budget of zero is reached by any spend.
    """
    if not thresholds or min(thresholds) <= 0:
        raise ValueError(
            f"thresholds must be positive budget fractions, such as (0.5, 0.8, 1.0); got {tuple(thresholds)}"
        )
    known = set(FORECAST_COLUMNS) | set(PERIOD_FORECAST_COLUMNS)
    keys = [c for c in forecast.columns if c not in known]
    missing = [c for c in [*keys, "amount"] if c not in budgets.columns]
    if missing:
        raise ValueError(
            f"budgets lacks column(s) {missing}: give each budget the forecast's key and `amount`"
        )
    extra = ["budget_id"] if "budget_id" in budgets.columns else []
    status = (
        forecast.join(
            budgets.select(*keys, *extra, pl.col("amount").cast(MONEY)),
            on=keys,
            how="inner",
            nulls_equal=True,
        )
        .sort([*keys, *extra], nulls_last=True)
        .with_row_index("_row")
    )
    exhausted = exhaustion_dates(status, start="month" if "month" in status.columns else "period_start")
    amount = pl.col("amount")
    return status.join(exhausted, on="_row", how="left").select(
        *keys,
        *extra,
        "amount",
        "mtd_actual",
        "forecast_total",
        share_pct(pl.col("mtd_actual"), amount).alias("actual_pct"),
        share_pct(pl.col("forecast_total"), amount).alias("forecast_pct"),
        threshold_reached(pl.col("mtd_actual"), amount, thresholds).alias("actual_threshold"),
        threshold_reached(pl.col("forecast_total"), amount, thresholds).alias("forecast_threshold"),
        pl.col("exhausted_on").cast(pl.Date),
        (pl.col("exhausted_on") > pl.col("as_of")).fill_null(False).alias("exhausted_projected"),
    )
