"""Benchmark of `analytics.pricing.price_calls`: calls per second on a large frame of model calls.

Builds a frame shaped like the spans table — by default 1,000,000 calls over 10 models (OpenAI,
Anthropic with cache tokens, Gemini, Bedrock, Azure, DeepSeek with its time-of-day prices, a
tiered Gemini, a self-hosted model priced by an override and an unknown model) and 5 days, so
~50 distinct (provider, model, day) keys — prices it repeatedly and prints the best and median
time, calls/s, and how many times the catalogue was asked for a price.

    python bench/pricing.py [--calls 1000000] [--days 5] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import genai_prices

from analytics.pricing import CustomModel, PriceOverrides, price_calls

_MODELS = (  # provider, request model, response model
    ("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4-20250514"),
    ("gcp.gemini", "gemini-2.0-flash", "gemini-2.0-flash-001"),
    ("gcp.vertex_ai", "gemini-1.5-flash", None),
    ("aws.bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0", None),
    ("azure.ai.openai", "gpt-4o", None),
    ("deepseek", "deepseek-chat", None),
    ("openai", "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-72B-Instruct"),
    ("ibm.watsonx.ai", "granite-3-8b-instruct", None),
)


def _uniform(low: int, high: int, count: int, seed: int) -> pl.Series:
    """`count` integers drawn uniformly from [low, high)."""
    step = max(1, (high - low) // 100_000)  # a coarse grid keeps the population small
    return pl.int_range(low, high, step, eager=True).sample(count, with_replacement=True, seed=seed)


def calls_frame(count: int, days: int, seed: int = 7) -> pl.DataFrame:
    """`count` model calls spread over `days` days, with realistic token counts."""
    models = pl.DataFrame(_MODELS, schema=["provider", "request_model", "response_model"], orient="row")
    input_tokens = _uniform(100, 250_000, count, seed)
    output_tokens = _uniform(10, 4_000, count, seed + 1)
    return (
        models.with_row_index("model")
        .join(pl.DataFrame({"model": _uniform(0, len(_MODELS), count, seed + 2).cast(pl.UInt32)}), on="model")
        .drop("model")
        .with_columns(
            start_time=pl.lit(datetime(2025, 9, 1), dtype=pl.Datetime("ns"))
            + (_uniform(0, days * 86_400, count, seed + 3) * 1_000_000_000).cast(pl.Duration("ns")),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=input_tokens * _uniform(0, 50, count, seed + 4) // 100,
            cache_write_tokens=input_tokens * _uniform(0, 10, count, seed + 5) // 100,
            reasoning_tokens=output_tokens * _uniform(0, 30, count, seed + 6) // 100,
            reported_cost_usd=_uniform(0, 10_000, count, seed + 7) / 1_000_000,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    overrides = PriceOverrides(
        custom_models=[CustomModel(model="qwen/.*", input_per_mtok=0, output_per_mtok=0)],
        discount_percent={"openai": 10},
    )
    calls = calls_frame(args.calls, args.days)
    asked = 0
    catalogue_price = genai_prices.calc_price

    def counted(*positional: object, **named: object) -> object:
        nonlocal asked
        asked += 1
        return catalogue_price(*positional, **named)  # type: ignore[arg-type]

    genai_prices.calc_price = counted  # type: ignore[assignment]
    timings = []
    for _ in range(args.repeat):
        asked = 0
        began = time.perf_counter()
        priced = price_calls(calls, overrides)
        timings.append(time.perf_counter() - began)
    genai_prices.calc_price = catalogue_price

    best, median = min(timings), statistics.median(timings)
    unpriced = priced.filter(pl.col("price_source") == "unpriced").height
    print(f"python {platform.python_version()}, polars {pl.__version__}, {os.cpu_count()} cpus")
    print(f"{args.calls:,} calls, {len(_MODELS)} models, {args.days} days: {asked} catalogue prices per run")
    print(f"best {best * 1000:.0f} ms, median {median * 1000:.0f} ms")
    print(f"{args.calls / best:,.0f} calls/s (best), {args.calls / median:,.0f} calls/s (median)")
    print(f"total {priced['cost_usd'].sum()} USD, {unpriced:,} unpriced calls")


if __name__ == "__main__":
    main()
