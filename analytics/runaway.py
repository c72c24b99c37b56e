"""Runaway agents: conversations and minutes in which an agent makes far more model calls, or burns far
more tokens, than its own norm — the signature of a loop.

Input is one row per model call with the agent key, `conversation_id`, `start_time` and
`total_tokens` (column names are parameters; null tokens count as zero).

Method, the same for both detectors, per agent and metric over the agent's units (conversations,
or minutes with at least one call) in the frame. Counts and tokens are skewed and multiplicative (a
long task is 5× a short one, not +20 calls), so the spread is taken on u = log(1 + observed):
centre = median(u), σ = 1.4826 × MAD(u). A unit is runaway when it exceeds

    threshold = max(exp(centre + k·σ) − 1, min_ratio × median, floor)

- exp(centre + k·σ) − 1: far outside the agent's own spread. In simulation (200 agents × 500
  conversations with log-normal lengths), a linear median + 6 × 1.4826 × MAD flagged 1.7 % of
  conversations at σ = 0.8 and 5 % at σ = 1.2; on the log scale k = 5 flagged at most 1 in 100,000
  for σ from 0.3 to 1.2. The median and MAD also ignore a few loops in the history.
- min_ratio × median: a loop multiplies, so a busy agent with a tight spread does not alert on +40 %.
- floor: absolute minimums below which nothing is a runaway, so an agent that makes one call per
  conversation does not alert on five.

`norm` in the output is the agent's median on the original scale. Tails heavier than log-normal
(a Pareto-like agent whose conversations are routinely 20× its median) still raise some flags:
raise `k` or the floors for such agents.

An agent with fewer than `min_history` units has no norm yet; it is held to `min_ratio × floor`, so a
brand-new agent stuck in a loop is still caught. An agent that loops in every conversation has a
looping norm and is not caught here — the spend anomaly and budget rules see it.
"""

from __future__ import annotations

import polars as pl

from analytics.forecast import key_columns

_MAD_TO_SIGMA = 1.4826


def call_frame(
    calls: pl.DataFrame, *, key: list[str], conversation: str, time: str, tokens: str | None
) -> pl.DataFrame:
    """The calls with the columns the detectors need, tokens as Int64 (null → 0), checked."""
    needed = [*key, conversation, time, *([tokens] if tokens else [])]
    missing = [c for c in needed if c not in calls.columns]
    if missing:
        raise ValueError(
            f"calls lack column(s) {missing}: pass one row per model call with the agent key, the "
            f"conversation id, the call's start time and its tokens (or tokens=None)"
        )
    token_count = pl.col(tokens).cast(pl.Int64).fill_null(0) if tokens else pl.lit(0, dtype=pl.Int64)
    return calls.with_columns(token_count.alias("_tokens"))


def robust_thresholds(
    units: pl.DataFrame,
    *,
    key: list[str],
    floors: dict[str, float],
    k: float,
    min_ratio: float,
    min_history: int,
) -> pl.DataFrame:
    """`units` (key, `metric`, `observed`, …) with the agent's `norm`, `history` and `threshold`."""
    group = [*key, "metric"]
    floor = pl.col("metric").replace_strict(floors, return_dtype=pl.Float64)
    log_units = pl.col("observed").log1p()
    centre = log_units.median().over(group)
    spread = (log_units - centre).abs().median().over(group) * _MAD_TO_SIGMA
    norm = pl.col("norm")
    return units.with_columns(
        pl.col("observed").median().over(group).alias("norm"),
        pl.len().over(group).alias("history"),
        ((centre + k * spread).exp() - 1).alias("_far"),
    ).with_columns(
        pl.when(pl.col("history") >= min_history)
        .then(pl.max_horizontal("_far", min_ratio * norm, floor))
        .otherwise(min_ratio * floor)
        .alias("threshold")
    )


def over_threshold(
    units: pl.DataFrame,
    *,
    key: list[str],
    floors: dict[str, float],
    counts_only: bool,
    k: float,
    min_ratio: float,
    min_history: int,
) -> pl.DataFrame:
    """The units above their agent's threshold; only the call counts (the first metric) when `counts_only`."""
    if counts_only:
        units = units.filter(pl.col("metric") == next(iter(floors)))
    return robust_thresholds(
        units, key=key, floors=floors, k=k, min_ratio=min_ratio, min_history=min_history
    ).filter(pl.col("observed") > pl.col("threshold"))


def conversation_units(frame: pl.DataFrame, *, key: list[str], conversation: str, time: str) -> pl.DataFrame:
    """Per agent, conversation and metric: calls or tokens in that conversation, and its time span."""
    totals = (
        frame.filter(pl.col(conversation).is_not_null())
        .group_by([*key, conversation])
        .agg(
            pl.len().cast(pl.Float64).alias("calls_per_conversation"),
            pl.col("_tokens").sum().cast(pl.Float64).alias("tokens_per_conversation"),
            pl.col(time).min().alias("first_call"),
            pl.col(time).max().alias("last_call"),
        )
    )
    return totals.unpivot(
        index=[*key, conversation, "first_call", "last_call"],
        on=["calls_per_conversation", "tokens_per_conversation"],
        variable_name="metric",
        value_name="observed",
    )


def sample_traces(
    frame: pl.DataFrame, *, key: list[str], conversation: str, time: str, size: int
) -> pl.DataFrame:
    """Per agent and conversation, the first `size` distinct trace ids in time order."""
    return (
        frame.filter(pl.col(conversation).is_not_null())
        .sort(time)
        .group_by([*key, conversation])
        .agg(pl.col("trace_id").unique(maintain_order=True).head(size).alias("sample_trace_ids"))
    )


def runaway_conversations(
    calls: pl.DataFrame,
    *,
    key: str | list[str] = "agent_id",
    conversation: str = "conversation_id",
    time: str = "start_time",
    tokens: str | None = "total_tokens",
    k: float = 5.0,
    min_ratio: float = 3.0,
    min_calls: int = 30,
    min_tokens: int = 300_000,
    min_history: int = 10,
    sample_size: int = 3,
) -> pl.DataFrame:
    """Conversations whose calls or tokens are far above their agent's norm: a row per conversation, metric.

    Parameters, and why the defaults:
    - `k=5.0` (log scale): a unit beyond five robust σ is about 3 in 10,000,000 for log-normal
      noise, so an agent with thousands of conversations a day stays quiet; a loop is far beyond.
    - `min_ratio=3.0`: a loop multiplies the calls of a conversation; +50 % is a hard question.
    - `min_calls=30`, `min_tokens=300_000`: below these a conversation costs too little to matter.
    - `min_history=10`: fewer conversations do not make a norm; newer agents face `min_ratio × floor`.
    - `sample_size=3`: trace ids to open first when the calls frame has `trace_id`.

    Conversations without an id are not grouped (they cannot be told apart); `runaway_rates` still
    sees their calls. Columns: the key, the conversation column, `metric` (`calls_per_conversation` or
    `tokens_per_conversation`), `observed`, `norm` (the agent's median), `threshold`, `ratio`
    (observed / norm, null when the norm is 0), `history` (conversations behind the norm),
    `first_call`, `last_call` and, when the calls carry `trace_id`, `sample_trace_ids`.
    """
    keys = key_columns(key)
    frame = call_frame(calls, key=keys, conversation=conversation, time=time, tokens=tokens)
    units = conversation_units(frame, key=keys, conversation=conversation, time=time)
    floors = {"calls_per_conversation": float(min_calls), "tokens_per_conversation": float(min_tokens)}
    flagged = over_threshold(
        units,
        key=keys,
        floors=floors,
        counts_only=tokens is None,
        k=k,
        min_ratio=min_ratio,
        min_history=min_history,
    )
    result = flagged.select(
        *keys,
        conversation,
        "metric",
        "observed",
        "norm",
        "threshold",
        ratio(pl.col("observed"), pl.col("norm")).alias("ratio"),
        "history",
        "first_call",
        "last_call",
    )
    if "trace_id" in calls.columns:
        samples = sample_traces(frame, key=keys, conversation=conversation, time=time, size=sample_size)
        result = result.join(samples, on=[*keys, conversation], how="left", nulls_equal=True)
    return result.sort([*keys, conversation, "metric"], nulls_last=True)


def ratio(observed: pl.Expr, norm: pl.Expr) -> pl.Expr:
    """observed / norm, null when the norm is zero (an agent whose typical unit is empty)."""
    return pl.when(norm > 0).then(observed / norm)


def minute_units(frame: pl.DataFrame, *, key: list[str], time: str) -> pl.DataFrame:
    """Per agent, active minute and metric: calls or tokens in that minute."""
    per_minute = (
        frame.with_columns(pl.col(time).dt.truncate("1m").alias("minute"))
        .group_by([*key, "minute"])
        .agg(
            pl.len().cast(pl.Float64).alias("calls_per_minute"),
            pl.col("_tokens").sum().cast(pl.Float64).alias("tokens_per_minute"),
        )
    )
    return per_minute.unpivot(
        index=[*key, "minute"],
        on=["calls_per_minute", "tokens_per_minute"],
        variable_name="metric",
        value_name="observed",
    )


def episodes(flagged: pl.DataFrame, *, key: list[str]) -> pl.DataFrame:
    """Flagged minutes numbered into episodes: runs of consecutive minutes per agent and metric."""
    group = [*key, "metric"]
    starts_run = (pl.col("minute").diff() > pl.duration(minutes=1)).fill_null(True)
    return flagged.sort([*group, "minute"], nulls_last=True).with_columns(
        starts_run.cum_sum().over(group).alias("episode")
    )


def sample_conversations(
    frame: pl.DataFrame, minutes: pl.DataFrame, *, key: list[str], conversation: str, time: str, size: int
) -> pl.DataFrame:
    """Per episode, the `size` conversations with the most calls during its minutes."""
    per_conversation = (
        frame.with_columns(pl.col(time).dt.truncate("1m").alias("minute"))
        .group_by([*key, "minute", conversation])
        .agg(pl.len().alias("n"))
    )
    return (
        minutes.select(*key, "metric", "episode", "minute")
        .join(per_conversation, on=[*key, "minute"], how="inner", nulls_equal=True)
        .group_by([*key, "metric", "episode", conversation])
        .agg(pl.col("n").sum())
        .sort(["n", conversation], descending=[True, False], nulls_last=True)
        .group_by([*key, "metric", "episode"])
        .agg(pl.col(conversation).drop_nulls().head(size).alias("sample_conversation_ids"))
    )


def runaway_rates(
    calls: pl.DataFrame,
    *,
    key: str | list[str] = "agent_id",
    conversation: str = "conversation_id",
    time: str = "start_time",
    tokens: str | None = "total_tokens",
    k: float = 5.0,
    min_ratio: float = 3.0,
    min_calls: int = 30,
    min_tokens: int = 300_000,
    min_history: int = 30,
    min_minutes: int = 3,
    sample_size: int = 3,
) -> pl.DataFrame:
    """Episodes of minutes in which an agent's calls or tokens per minute are far above its norm.

    The norm is over the agent's active minutes (minutes with a call): an agent idle at night is not
    judged by its zeros. Consecutive runaway minutes form one episode, and only episodes of at least
    `min_minutes` are reported: a loop persists, a burst of traffic passes.

    Parameters, and why the defaults (the rest as in `runaway_conversations`):
    - `min_calls=30`, `min_tokens=300_000` per minute: a call every two seconds, or tokens at that
      pace, is where a minute starts to cost real money.
    - `min_history=30`: half an hour of activity before an agent's own norm is trusted.
    - `min_minutes=3`: a loop burns minutes; one busy minute is traffic.

    Columns: the key, `metric` (`calls_per_minute` or `tokens_per_minute`), `first_minute`,
    `last_minute`, `minutes` (runaway minutes in the episode), `peak`, `peak_minute`, `total` (sum over
    the episode), `norm`, `threshold`, `ratio` (peak / norm), `history` (active minutes behind the
    norm) and `sample_conversation_ids` (the conversations with the most calls in the episode).
    """
    keys = key_columns(key)
    frame = call_frame(calls, key=keys, conversation=conversation, time=time, tokens=tokens)
    units = minute_units(frame, key=keys, time=time)
    floors = {"calls_per_minute": float(min_calls), "tokens_per_minute": float(min_tokens)}
    flagged = episodes(
        over_threshold(
            units,
            key=keys,
            floors=floors,
            counts_only=tokens is None,
            k=k,
            min_ratio=min_ratio,
            min_history=min_history,
        ),
        key=keys,
    )
    summary = (
        flagged.group_by([*keys, "metric", "episode"])
        .agg(
            pl.col("minute").min().alias("first_minute"),
            pl.col("minute").max().alias("last_minute"),
            pl.len().alias("minutes"),
            pl.col("observed").max().alias("peak"),
            pl.col("minute")
            .sort_by(["observed", "minute"], descending=[True, False])
            .first()
            .alias("peak_minute"),
            pl.col("observed").sum().alias("total"),
            pl.col("norm", "threshold", "history").first(),
        )
        .filter(pl.col("minutes") >= min_minutes)
    )
    samples = sample_conversations(
        frame, flagged, key=keys, conversation=conversation, time=time, size=sample_size
    )
    return (
        summary.join(samples, on=[*keys, "metric", "episode"], how="left", nulls_equal=True)
        .select(
            *keys,
            "metric",
            "first_minute",
            "last_minute",
            "minutes",
            "peak",
            "peak_minute",
            "total",
            "norm",
            "threshold",
            ratio(pl.col("peak"), pl.col("norm")).alias("ratio"),
            "history",
            "sample_conversation_ids",
        )
        .sort([*keys, "metric", "first_minute"], nulls_last=True)
    )
