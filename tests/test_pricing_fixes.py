"""Pricing edge cases the cost job meets in real fleets: failed calls without usage, and models the
catalogue lacks but the shipped data/prices.yaml prices (Google's text-embedding-004)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from analytics.jobs import PRICED_CALL_ROWS_SCHEMA, ContractViolation, checked, priced_call_rows
from analytics.pricing import PRICED_CALLS_SCHEMA, PriceSource, load_overrides, price_calls
from registry import Registry

TOKENS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
SHIPPED_PRICES = Path(__file__).resolve().parents[1] / "data" / "prices.yaml"


def spans(*rows: dict) -> pl.DataFrame:
    """Model-call spans of one trace, each a chat unless it says otherwise."""
    base = {
        "trace_id": "t" * 32,
        "parent_span_id": None,
        "start_time": datetime(2026, 1, 5, 12),
        "operation": "chat",
        "provider": "openai",
        "request_model": "gpt-4o",
        "response_model": None,
        "input_tokens": None,
        "output_tokens": None,
        "total_tokens": None,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
        "reported_cost_usd": None,
        "status_code": "unset",
        "service_name": "svc",
    }
    frame = pl.DataFrame([base | {"span_id": f"{index:016x}"} | row for index, row in enumerate(rows)])
    return frame.with_columns(
        pl.col("start_time").cast(pl.Datetime("ns")),
        pl.col("parent_span_id").cast(pl.String),
        pl.col("reported_cost_usd").cast(pl.Float64),
        *[pl.col(name).cast(pl.Int64) for name in TOKENS],
    )


def test_a_failed_call_without_usage_costs_exactly_nothing_and_says_why():
    rows = priced_call_rows(
        spans(
            {"status_code": "error"},  # a rate-limit error: no usage
            {"status_code": "error", "request_model": "no-such-model"},  # $0 whatever the model
            {"status_code": "error", "input_tokens": 1000, "output_tokens": 0},  # failed late: billed
            {"status_code": "ok"},  # succeeded without usage: we cannot know, so unpriced
        ),
        Registry(),
    )
    assert rows["price_source"].to_list() == ["no_usage", "no_usage", "catalogue", "unpriced"]
    assert rows["cost_usd"].to_list()[:2] == [Decimal(0), Decimal(0)]
    assert rows["cost_usd"][2] > 0 and rows["cost_usd"][3] is None
    assert "failed" in rows["unpriced_reason"][0] and rows["unpriced_reason"][2] is None
    assert "no token usage" in rows["unpriced_reason"][3]


def test_the_contracts_refuse_a_no_usage_call_that_costs_something():
    priced = price_calls(spans({"status_code": "error"}))
    bad = priced.with_columns(pl.lit(Decimal("0.5")).cast(priced.schema["cost_usd"]).alias("cost_usd"))
    with pytest.raises(Exception, match="no usage costs exactly 0"):
        PRICED_CALLS_SCHEMA.validate(bad, lazy=True)
    rows = priced_call_rows(spans({"status_code": "error"}), Registry())
    with pytest.raises(ContractViolation, match="without usage costs exactly 0"):
        checked(
            PRICED_CALL_ROWS_SCHEMA,
            rows.with_columns(pl.lit(Decimal(1)).cast(rows.schema["cost_usd"]).alias("cost_usd")),
        )


@pytest.mark.parametrize("provider", ["gcp.vertex_ai", "gcp.gemini", "google"])
def test_the_shipped_prices_file_prices_text_embedding_004(provider):
    overrides = load_overrides(SHIPPED_PRICES)
    call = {"operation": "embeddings", "provider": provider, "request_model": "text-embedding-004"}
    unpriced = price_calls(spans(call | {"input_tokens": 2_000_000}))
    assert unpriced["price_source"][0] == PriceSource.UNPRICED  # the catalogue alone lacks it
    priced = price_calls(spans(call | {"input_tokens": 2_000_000}), overrides)
    assert (priced["price_source"][0], priced["cost_usd"][0]) == (PriceSource.OVERRIDE, Decimal("0.2"))
