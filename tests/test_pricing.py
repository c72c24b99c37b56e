"""analytics.pricing: costs equal the catalogue's, overrides and aliases apply, unknowns stay unpriced.

Expected costs are computed here independently of the implementation: from the per-million rates
the genai-prices catalogue publishes (hard-coded below, with the model they belong to) and, for
every call, by asking `genai_prices.calc_price` to price that call on its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import polars as pl
import pytest
from genai_prices.data import providers as catalogue_providers

from analytics.pricing import (
    COST_DTYPE,
    PRICED_CALLS_SCHEMA,
    PRICED_COLUMNS,
    Alias,
    CustomModel,
    OverridesError,
    PriceOverrides,
    PriceSource,
    catalogue_provider_id,
    load_overrides,
    price_calls,
)

REPO = Path(__file__).resolve().parents[1]
WHEN = datetime(2025, 9, 1, 12, 0)
_SCHEMA = {
    "provider": pl.String,
    "request_model": pl.String,
    "response_model": pl.String,
    "start_time": pl.Datetime("ns"),
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "cache_read_tokens": pl.Int64,
    "cache_write_tokens": pl.Int64,
    "reasoning_tokens": pl.Int64,
    "reported_cost_usd": pl.Float64,
}


def call(
    provider: str | None,
    model: str | None,
    *,
    response_model: str | None = None,
    at: datetime = WHEN,
    input: int | None = 1_000,
    output: int | None = 100,
    cache_read: int | None = None,
    cache_write: int | None = None,
    reasoning: int | None = None,
    reported: float | None = None,
) -> dict[str, Any]:
    """One model call as a spans-table row."""
    return {
        "provider": provider,
        "request_model": model,
        "response_model": response_model,
        "start_time": at,
        "input_tokens": input,
        "output_tokens": output,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        "reasoning_tokens": reasoning,
        "reported_cost_usd": reported,
    }


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=_SCHEMA)


def priced_one(row: dict[str, Any], overrides: PriceOverrides | None = None) -> dict[str, Any]:
    return price_calls(frame(row), overrides).row(0, named=True)


def per_million(tokens: int, usd_per_mtok: str) -> Decimal:
    return Decimal(tokens) * Decimal(usd_per_mtok) / 1_000_000


def catalogue_cost(row: dict[str, Any], model: str | None = None) -> Decimal:
    """The catalogue's own price of one call: genai-prices' `calc_price`, asked for this call alone."""
    usage = genai_prices.Usage(
        input_tokens=row["input_tokens"] or 0,
        cache_read_tokens=row["cache_read_tokens"] or 0,
        cache_write_tokens=row["cache_write_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        output_reasoning_tokens=row["reasoning_tokens"] or 0,
    )
    return genai_prices.calc_price(
        usage,
        model or row["response_model"] or row["request_model"],
        provider_id=catalogue_provider_id(row["provider"]),
        genai_request_timestamp=row["start_time"].replace(tzinfo=UTC),
    ).total_price


# ---------------------------------------------------------------------------------------------------
# Known calls cost what the catalogue says, exactly

# (id, call, expected cost from the catalogue's published per-million rates)
KNOWN_CALLS = [
    (
        # gpt-4o: $2.50 input, $1.25 cached input, $10 output per MTok
        "openai gpt-4o with cached input",
        call(
            "openai", "gpt-4o", response_model="gpt-4o-2024-08-06", input=12_000, cache_read=4_000, output=850
        ),
        per_million(8_000, "2.5") + per_million(4_000, "1.25") + per_million(850, "10"),
    ),
    (
        # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per MTok
        "openai gpt-4o-mini",
        call("openai", "gpt-4o-mini", input=3_000, cache_read=1_024, output=400),
        per_million(1_976, "0.15") + per_million(1_024, "0.075") + per_million(400, "0.6"),
    ),
    (
        # o4-mini: $1.10 input, $4.40 output; reasoning tokens are output tokens
        "openai o4-mini with reasoning",
        call("openai", "o4-mini", input=5_000, output=3_000, reasoning=2_000),
        per_million(5_000, "1.1") + per_million(3_000, "4.4"),
    ),
    (
        # claude-sonnet-4: $3 input, $0.30 cache read, $3.75 cache write (5 min), $15 output per MTok
        "anthropic claude-sonnet-4 with cache read and write",
        call(
            "anthropic",
            "claude-sonnet-4-20250514",
            input=30_000,
            cache_read=20_000,
            cache_write=6_000,
            output=1_200,
        ),
        per_million(4_000, "3")
        + per_million(20_000, "0.3")
        + per_million(6_000, "3.75")
        + per_million(1_200, "15"),
    ),
    (
        # gemini-2.0-flash: $0.10 input, $0.025 cached input, $0.40 output per MTok
        "google gemini-2.0-flash with cached input",
        call(
            "gcp.gemini",
            "gemini-2.0-flash",
            response_model="gemini-2.0-flash-001",
            input=20_000,
            cache_read=8_000,
            output=900,
        ),
        per_million(12_000, "0.1") + per_million(8_000, "0.025") + per_million(900, "0.4"),
    ),
    (
        # gemini-1.5-flash above its 128k tier: $0.15 input, $0.0375 cached, $0.60 output per MTok
        "google gemini-1.5-flash long context tier",
        call("gcp.vertex_ai", "gemini-1.5-flash", input=150_000, cache_read=50_000, output=2_000),
        per_million(100_000, "0.15") + per_million(50_000, "0.0375") + per_million(2_000, "0.6"),
    ),
    (
        # Llama 3.1 70B on Bedrock: $0.72 input and output per MTok
        "bedrock llama 3.1 70b",
        call("aws.bedrock", "meta.llama3-1-70b-instruct-v1:0", input=2_500, output=600),
        per_million(2_500, "0.72") + per_million(600, "0.72"),
    ),
    (
        # Claude 3.5 Sonnet on Bedrock: $3 input, $0.30 cache read, $3.75 cache write, $15 output per MTok
        "bedrock claude 3.5 sonnet with cache",
        call(
            "aws.bedrock",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            input=9_000,
            cache_read=5_000,
            cache_write=1_000,
            output=700,
        ),
        per_million(3_000, "3")
        + per_million(5_000, "0.3")
        + per_million(1_000, "3.75")
        + per_million(700, "15"),
    ),
    (
        # gpt-4o on Azure OpenAI: the same list prices as OpenAI's
        "azure openai gpt-4o",
        call("azure.ai.openai", "gpt-4o", input=4_000, output=300),
        per_million(4_000, "2.5") + per_million(300, "10"),
    ),
]


@pytest.mark.parametrize(
    ("row", "expected"), [case[1:] for case in KNOWN_CALLS], ids=[c[0] for c in KNOWN_CALLS]
)
def test_known_calls_cost_the_catalogue_price_exactly(row: dict[str, Any], expected: Decimal) -> None:
    priced = priced_one(row)
    assert priced["price_source"] == PriceSource.CATALOGUE
    assert priced["unpriced_reason"] is None
    assert priced["cost_usd"] == expected
    assert priced["cost_usd"] == catalogue_cost(row)
    parts = (
        "input_cost_usd",
        "cache_read_cost_usd",
        "cache_write_cost_usd",
        "output_cost_usd",
        "request_cost_usd",
    )
    assert sum(priced[part] for part in parts) == priced["cost_usd"]


def test_cost_parts_split_input_cache_and_output() -> None:
    row = call(
        "anthropic",
        "claude-sonnet-4-20250514",
        input=30_000,
        cache_read=20_000,
        cache_write=6_000,
        output=1_200,
    )
    priced = priced_one(row)
    assert priced["input_cost_usd"] == per_million(4_000, "3")
    assert priced["cache_read_cost_usd"] == per_million(20_000, "0.3")
    assert priced["cache_write_cost_usd"] == per_million(6_000, "3.75")
    assert priced["output_cost_usd"] == per_million(1_200, "15")
    assert priced["request_cost_usd"] == 0


def test_cached_tokens_without_their_own_price_are_charged_as_input() -> None:
    # Llama on Bedrock has no cache-read price in the catalogue: cached input is plain input
    row = call("aws.bedrock", "meta.llama3-1-70b-instruct-v1:0", input=2_000, cache_read=1_500, output=0)
    priced = priced_one(row)
    assert priced["cost_usd"] == per_million(2_000, "0.72") == catalogue_cost(row)
    assert priced["cache_read_cost_usd"] == 0


def test_a_per_request_fee_is_charged_once_per_call() -> None:
    # Perplexity sonar: $1 input, $1 output per MTok and $12 per thousand requests
    row = call("perplexity", "sonar", input=1_000, output=500)
    priced = priced_one(row)
    assert priced["request_cost_usd"] == Decimal("0.012")
    assert priced["cost_usd"] == per_million(1_500, "1") + Decimal("0.012") == catalogue_cost(row)


def test_prices_follow_the_call_date() -> None:
    # OpenAI cut o3 from $10/$40 to $2/$8 per MTok on 2025-06-10
    before = call("openai", "o3", at=datetime(2025, 6, 9, 23, 59), input=10_000, output=2_000)
    after = call("openai", "o3", at=datetime(2025, 6, 10, 0, 1), input=10_000, output=2_000)
    priced = price_calls(frame(before, after))
    assert priced["cost_usd"].to_list() == [
        per_million(10_000, "10") + per_million(2_000, "40"),
        per_million(10_000, "2") + per_million(2_000, "8"),
    ]
    assert priced["cost_usd"].to_list() == [catalogue_cost(before), catalogue_cost(after)]


def test_time_of_day_prices_within_one_day() -> None:
    # deepseek-chat: $0.27/$1.10 per MTok from 00:30 to 16:30 UTC, half that off-peak
    peak = call("deepseek", "deepseek-chat", at=datetime(2025, 9, 1, 10, 0), input=100_000, output=10_000)
    off_peak = call("deepseek", "deepseek-chat", at=datetime(2025, 9, 1, 20, 0), input=100_000, output=10_000)
    early = call("deepseek", "deepseek-chat", at=datetime(2025, 9, 1, 0, 10), input=100_000, output=10_000)
    priced = price_calls(frame(peak, off_peak, early))
    standard = per_million(100_000, "0.27") + per_million(10_000, "1.1")
    discounted = per_million(100_000, "0.135") + per_million(10_000, "0.55")
    assert priced["cost_usd"].to_list() == [standard, discounted, discounted]
    assert priced["cost_usd"].to_list() == [catalogue_cost(row) for row in (peak, off_peak, early)]


def test_tiered_prices_switch_on_the_calls_input_tokens() -> None:
    # gemini-1.5-flash: $0.075/$0.30 per MTok up to 128k input tokens, $0.15/$0.60 above
    short = call("gcp.gemini", "gemini-1.5-flash", input=128_000, output=1_000)
    long = call("gcp.gemini", "gemini-1.5-flash", input=128_001, output=1_000)
    priced = price_calls(frame(short, long))
    assert priced["cost_usd"].to_list() == [
        per_million(128_000, "0.075") + per_million(1_000, "0.3"),
        per_million(128_001, "0.15") + per_million(1_000, "0.6"),
    ]


def _catalogue_rows() -> Iterator[tuple[dict[str, Any], Decimal | None]]:
    """Two calls for every model in the catalogue (one past any tier), with the catalogue's own price."""
    usages = (
        {"input": 12_345, "cache_read": 2_000, "cache_write": 345, "output": 789, "reasoning": 89},
        {"input": 412_345, "cache_read": 100_000, "cache_write": 10_000, "output": 5_000, "reasoning": 1_000},
    )
    for provider in catalogue_providers:
        for model in provider.models:
            for usage in usages:
                row = call(provider.id, model.id, at=datetime(2025, 9, 1, 14), **usage)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        expected: Decimal | None = catalogue_cost(row)
                except (LookupError, ValueError):
                    expected = None
                yield row, expected


def test_every_catalogue_model_costs_what_the_catalogue_computes() -> None:
    rows, expected = zip(*_catalogue_rows(), strict=True)
    priced = price_calls(frame(*rows))
    differences = []
    for result, wanted in zip(priced.iter_rows(named=True), expected, strict=True):
        if result["cost_usd"] is None:
            # unpriced only when the catalogue itself cannot price it, or prices it by units spans lack
            assert wanted is None or "units spans do not record" in result["unpriced_reason"], result
            continue
        assert wanted is not None, result
        differences.append(abs(result["cost_usd"] - wanted))
    assert len(differences) > 4_000
    # each of the five cost parts is rounded half-even to 12 decimals
    assert max(differences) <= Decimal("5e-12")
    assert sum(difference == 0 for difference in differences) / len(differences) > 0.95


# ---------------------------------------------------------------------------------------------------
# Which model is priced


def test_the_response_model_is_priced_when_the_catalogue_knows_it() -> None:
    priced = priced_one(call("openai", "gpt-4o", response_model="gpt-4o-2024-05-13", input=1_000, output=100))
    # gpt-4o-2024-05-13 kept its launch price: $5 input, $15 output per MTok
    assert priced["priced_model"] == "gpt-4o-2024-05-13"
    assert priced["cost_usd"] == per_million(1_000, "5") + per_million(100, "15")


def test_the_request_model_is_priced_when_the_response_model_is_unknown() -> None:
    priced = priced_one(
        call("openai", "gpt-4o-mini", response_model="gpt-4o-experimental", input=1_000, output=0)
    )
    assert priced["priced_model"] == "gpt-4o-mini"
    assert priced["cost_usd"] == per_million(1_000, "0.15")


def test_otel_provider_names_map_to_catalogue_providers() -> None:
    priced = price_calls(
        frame(
            call("aws.bedrock", "meta.llama3-1-70b-instruct-v1:0"),
            call("gcp.vertex_ai", "gemini-2.0-flash"),
            call("azure.ai.openai", "gpt-4o"),
            call("x_ai", "grok-3"),
            call("mistral_ai", "mistral-large-latest"),
            call(None, "claude-3-haiku-20240307"),
        )
    )
    assert priced["priced_provider"].to_list() == ["aws", "google", "azure", "x-ai", "mistral", "anthropic"]
    assert priced["price_source"].to_list() == ["catalogue"] * 6


# ---------------------------------------------------------------------------------------------------
# Overrides


def test_a_provider_discount_takes_its_percentage_off_catalogue_prices() -> None:
    overrides = PriceOverrides(discount_percent={"openai": Decimal(15), "aws.bedrock": Decimal("7.5")})
    openai = call("openai", "gpt-4o", input=12_000, cache_read=4_000, output=850)
    bedrock = call("aws.bedrock", "meta.llama3-1-70b-instruct-v1:0", input=2_500, output=600)
    anthropic = call("anthropic", "claude-sonnet-4-20250514", input=1_000, output=100)
    priced = price_calls(frame(openai, bedrock, anthropic), overrides)
    assert priced["cost_usd"].to_list() == [
        catalogue_cost(openai) * Decimal("0.85"),
        catalogue_cost(bedrock) * Decimal("0.925"),
        catalogue_cost(anthropic),
    ]
    assert priced["price_source"].to_list() == ["catalogue"] * 3


def test_a_custom_model_is_priced_at_its_own_rates() -> None:
    overrides = PriceOverrides(
        discount_percent={"openai": Decimal(50)},  # does not apply: a custom price is what is paid
        custom_models=[
            CustomModel(
                provider="openai",
                model="ft:gpt-4o-mini:acme:.*",
                input_per_mtok=Decimal("0.3"),
                cache_read_per_mtok=Decimal("0.15"),
                output_per_mtok=Decimal("1.2"),
            )
        ],
    )
    priced = priced_one(
        call("openai", "ft:gpt-4o-mini:acme:support-v2", input=10_000, cache_read=4_000, output=500),
        overrides,
    )
    assert priced["price_source"] == PriceSource.OVERRIDE
    assert priced["priced_model"] == "ft:gpt-4o-mini:acme:support-v2"
    assert priced["cost_usd"] == per_million(6_000, "0.3") + per_million(4_000, "0.15") + per_million(
        500, "1.2"
    )


def test_a_self_hosted_model_priced_at_zero_costs_zero_and_is_not_unpriced() -> None:
    overrides = load_overrides(REPO / "data" / "prices.yaml")
    priced = priced_one(call("openai", "Qwen/Qwen2.5-72B-Instruct", input=5_000, output=700), overrides)
    assert priced["price_source"] == PriceSource.OVERRIDE
    assert priced["unpriced_reason"] is None
    assert priced["cost_usd"] == Decimal(0)


def test_a_custom_model_wins_over_the_catalogue() -> None:
    overrides = PriceOverrides(
        custom_models=[CustomModel(model="gpt-4o", input_per_mtok=Decimal(1), output_per_mtok=Decimal(2))]
    )
    priced = priced_one(call("openai", "gpt-4o", input=1_000_000, output=1_000_000), overrides)
    assert (priced["price_source"], priced["cost_usd"]) == (PriceSource.OVERRIDE, Decimal(3))


def test_a_gateway_prefix_alias_prices_the_upstream_model() -> None:
    overrides = load_overrides(REPO / "data" / "prices.yaml")
    row = call("openrouter", "openrouter/openai/gpt-4o", input=12_000, cache_read=4_000, output=850)
    priced = priced_one(row, overrides)
    assert (priced["priced_provider"], priced["priced_model"]) == ("openai", "gpt-4o")
    assert priced["cost_usd"] == catalogue_cost({**row, "provider": "openai"}, "gpt-4o")


def test_an_alias_maps_a_dated_snapshot_the_catalogue_lacks() -> None:
    row = call("openai", "gpt-4o-mini-2099-01-01", input=1_000, output=100)
    with pytest.raises(LookupError):
        catalogue_cost(row)
    assert priced_one(row)["price_source"] == PriceSource.UNPRICED
    overrides = PriceOverrides(aliases=[Alias(match=r"gpt-4o-mini-\d{4}-\d\d-\d\d", model="gpt-4o-mini")])
    priced = priced_one(row, overrides)
    assert priced["priced_model"] == "gpt-4o-mini"
    assert priced["cost_usd"] == catalogue_cost(row, "gpt-4o-mini")


# ---------------------------------------------------------------------------------------------------
# Unpriced calls are findings, never $0


def test_an_unknown_model_is_unpriced_with_a_reason_and_no_cost() -> None:
    priced = price_calls(
        frame(
            call("openai", "gpt-4o"),
            call("openai", "foo-9000"),
            call("ibm.watsonx.ai", "granite-3-8b-instruct"),
            call(None, "mystery-model"),
            call("openai", None),
        )
    )
    assert priced["price_source"].to_list() == ["catalogue"] + ["unpriced"] * 4
    assert priced["cost_usd"][0] > 0
    assert priced["cost_usd"][1:].is_null().all()
    assert priced["input_cost_usd"][1:].is_null().all()
    reasons = priced["unpriced_reason"].to_list()
    assert reasons[0] is None
    assert reasons[1].startswith("model 'foo-9000' of provider 'openai' is not in the catalogue")
    assert reasons[2].startswith("provider 'ibm.watsonx.ai' is not in the catalogue")
    assert "the call names no provider" in reasons[3]
    assert reasons[4] == "the call names no model"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            call("openai", "gpt-4o", input=100, cache_read=150),
            "cache read + cache write tokens exceed input tokens",
        ),
        (call("openai", "o4-mini", output=10, reasoning=50), "reasoning tokens exceed output tokens"),
        (call("openai", "gpt-4o", input=None, output=None), "the call reports no token usage"),
        (call("openai", "gpt-4o", input=-5), "the call reports a negative token count"),
    ],
)
def test_usage_that_cannot_be_priced_is_unpriced(row: dict[str, Any], reason: str) -> None:
    priced = priced_one(row)
    assert priced["price_source"] == PriceSource.UNPRICED
    assert priced["cost_usd"] is None
    assert priced["unpriced_reason"].startswith(reason)


def test_a_model_priced_only_by_units_spans_lack_is_unpriced() -> None:
    priced = priced_one(call("openai", "whisper-1", input=0, output=0))
    assert priced["price_source"] == PriceSource.UNPRICED
    assert "only by units spans do not record" in priced["unpriced_reason"]


# ---------------------------------------------------------------------------------------------------
# Reported costs


def test_a_reported_cost_that_disagrees_is_flagged() -> None:
    row = call("openai", "gpt-4o", input=12_000, cache_read=4_000, output=850)
    ours = float(catalogue_cost(row))  # $0.0335
    priced = price_calls(
        frame(
            {**row, "reported_cost_usd": ours},
            {**row, "reported_cost_usd": ours * 1.005},  # within 1 %: rounding in the instrumentation
            {**row, "reported_cost_usd": ours * 1.5},
            {**row, "reported_cost_usd": (12_000 * 2.5 + 850 * 10) / 1e6},  # ignored the cache discount
            {**row, "reported_cost_usd": None},
            call("openai", "foo-9000", reported=0.5),  # unpriced: nothing to compare with
        )
    )
    assert priced["reported_cost_mismatch"].to_list() == [False, False, True, True, False, False]


def test_tiny_calls_are_not_flagged_for_float_noise() -> None:
    row = call("openai", "gpt-4o-mini", input=10, output=1)
    ours = float(catalogue_cost(row))
    priced = price_calls(
        frame({**row, "reported_cost_usd": round(ours, 6)}, {**row, "reported_cost_usd": ours * 3})
    )
    assert priced["reported_cost_mismatch"].to_list() == [False, True]


# ---------------------------------------------------------------------------------------------------
# Vectorised: the catalogue is asked once per distinct (provider, model, day)


@pytest.fixture
def catalogue_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, datetime]]:
    """Every `genai_prices.calc_price` call made, as (model, timestamp)."""
    made: list[tuple[str, datetime]] = []
    original = genai_prices.calc_price

    def counted(usage: Any, model_ref: str, **options: Any) -> Any:
        made.append((model_ref, options["genai_request_timestamp"]))
        return original(usage, model_ref, **options)

    monkeypatch.setattr(genai_prices, "calc_price", counted)
    return made


def test_the_catalogue_is_asked_once_per_distinct_key(catalogue_calls: list[tuple[str, datetime]]) -> None:
    models = [
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-20250514"),
        ("aws.bedrock", "meta.llama3-1-70b-instruct-v1:0"),
    ]
    rows = [
        call(
            provider,
            model,
            at=datetime(2025, 9, 1) + timedelta(hours=index % 96),
            input=1_000 + index,
            output=index % 500,
        )
        for index in range(12_000)
        for provider, model in [models[index % 3]]
    ]
    rows.append(call("openai", "Qwen/Qwen2.5-72B-Instruct"))  # a custom model: no catalogue look-up
    priced = price_calls(frame(*rows), load_overrides(REPO / "data" / "prices.yaml"))
    assert len(catalogue_calls) == 3 * 4  # 3 models × 4 days
    assert len(set(catalogue_calls)) == len(catalogue_calls)
    assert priced["price_source"].value_counts().sort("price_source").rows() == [
        ("catalogue", 12_000),
        ("override", 1),
    ]
    for index in (0, 4_001, 11_999):
        assert priced["cost_usd"][index] == catalogue_cost(rows[index])


def test_keys_shared_by_spellings_of_one_model_are_priced_once(
    catalogue_calls: list[tuple[str, datetime]],
) -> None:
    price_calls(
        frame(
            call("aws.bedrock", "meta.llama3-1-70b-instruct-v1:0"),
            call("aws", "meta.llama3-1-70b-instruct-v1:0"),
        )
    )
    assert len(catalogue_calls) == 1


def test_a_coarser_bucket_asks_the_catalogue_less(catalogue_calls: list[tuple[str, datetime]]) -> None:
    rows = [call("openai", "gpt-4o", at=datetime(2025, 9, 1) + timedelta(days=day)) for day in range(10)]
    price_calls(frame(*rows), bucket="1mo")
    assert len(catalogue_calls) == 1


# ---------------------------------------------------------------------------------------------------
# The frame


def test_rows_keep_their_order_and_other_columns() -> None:
    rows = [
        call("openai", model, input=index) for index, model in enumerate(["gpt-4o", "foo", "gpt-4o-mini"] * 3)
    ]
    calls = frame(*rows).with_columns(span_id=pl.Series([f"s{index}" for index in range(9)]))
    priced = price_calls(calls)
    assert priced.columns == [*calls.columns, *PRICED_COLUMNS]
    assert priced["span_id"].to_list() == [f"s{index}" for index in range(9)]
    assert priced["input_tokens"].to_list() == list(range(9))
    PRICED_CALLS_SCHEMA.validate(priced)
    assert priced.schema["cost_usd"] == COST_DTYPE


def test_pricing_a_priced_frame_again_replaces_its_prices() -> None:
    once = price_calls(frame(call("openai", "gpt-4o")))
    again = price_calls(once, PriceOverrides(discount_percent={"openai": Decimal(50)}))
    assert again.columns == once.columns
    assert again["cost_usd"][0] == once["cost_usd"][0] / 2


def test_zoned_start_times_are_priced_by_their_utc_date() -> None:
    # 01:00 in Berlin on 2025-06-10 is still 2025-06-09 in UTC: o3's old price
    calls = frame(call("openai", "o3", at=datetime(2025, 6, 9, 23, 0), input=1_000_000, output=0))
    zoned = calls.with_columns(
        pl.col("start_time").dt.replace_time_zone("UTC").dt.convert_time_zone("Europe/Berlin")
    )
    assert price_calls(zoned)["cost_usd"][0] == Decimal(10)


def test_an_empty_frame_prices_to_an_empty_frame() -> None:
    priced = price_calls(frame())
    assert priced.height == 0
    PRICED_CALLS_SCHEMA.validate(priced)


def test_narrow_integer_and_null_columns_are_accepted() -> None:
    calls = frame(call("openai", "gpt-4o", input=1_000, output=0)).with_columns(
        pl.col("input_tokens").cast(pl.Int32), response_model=pl.lit(None), reported_cost_usd=pl.lit(None)
    )
    assert price_calls(calls)["cost_usd"][0] == per_million(1_000, "2.5")


def test_a_bad_bucket_or_missing_column_is_refused() -> None:
    with pytest.raises(ValueError, match="bucket 'fortnight'"):
        price_calls(frame(call("openai", "gpt-4o")), bucket="fortnight")
    with pytest.raises(ValueError, match="start_time"):
        price_calls(frame(call("openai", "gpt-4o")).drop("start_time"))
    with pytest.raises(ValueError, match="input_tokens"):
        price_calls(frame(call("openai", "gpt-4o")).drop("input_tokens"))


# ---------------------------------------------------------------------------------------------------
# The overrides file


def test_the_shipped_overrides_file_loads() -> None:
    overrides = load_overrides(REPO / "data" / "prices.yaml")
    assert overrides.custom_models and overrides.aliases
    assert overrides.discount_percent == {}


def test_an_empty_overrides_file_means_no_overrides(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text("# nothing negotiated yet\n")
    assert load_overrides(tmp_path / "prices.yaml") == PriceOverrides()


def test_decimal_prices_are_read_exactly(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text(
        "discount_percent:\n  openai: 7.3\ncustom_models:\n"
        "  - model: acme\n    input_per_mtok: 0.075\n    output_per_mtok: 0.3\n"
    )
    overrides = load_overrides(tmp_path / "prices.yaml")
    assert overrides.discount_percent["openai"] == Decimal("7.3")
    assert overrides.custom_models[0].input_per_mtok == Decimal("0.075")
    assert overrides.price_multiplier("openai") == Decimal("0.927")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("discounts:\n  openai: 15\n", ":1: discounts: unknown field 'discounts'"),
        (
            "custom_models:\n  - model: x\n    input_per_mtok: 1\n    output: 2\n",
            ":4: custom_models[0].output: unknown field",
        ),
        (
            "custom_models:\n  - model: x\n    input_per_mtok: 1\n",
            ":2: custom_models[0].output_per_mtok: Field required",
        ),
        (
            "custom_models:\n  - model: 'qwen/(('\n    input_per_mtok: 0\n    output_per_mtok: 0\n",
            ":2: custom_models[0].model: not a valid regular expression",
        ),
        (
            "discount_percent:\n  openai: 150\n",
            ":2: discount_percent.openai: Input should be less than or equal to 100",
        ),
        (
            "discount_percent:\n  aws: 5\n  aws.bedrock: 6\n",
            "discount_percent: 'aws' and 'aws.bedrock' are the same provider",
        ),
        ("aliases:\n  - match: 'gw/(.+)'\n    model: '\\2'\n", ":2: aliases[0]: '\\\\2' refers to a group"),
        (
            "custom_models:\n  - model: x\n    input_per_mtok: -1\n    output_per_mtok: 0\n",
            ":3: custom_models[0].input_per_mtok: Input should be greater than or equal to 0",
        ),
        ("discount_percent:\n  openai: 10\n  openai: 20\n", ":3: the key 'openai' appears twice"),
        ("aliases: [\n", ":2: not valid YAML"),
        ("- just\n- a list\n", "the file: Input should be a valid dictionary"),
    ],
)
def test_overrides_errors_name_the_file_line_and_field(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(OverridesError) as raised:
        load_overrides(path)
    assert str(raised.value).startswith(str(path))
    assert problem in str(raised.value)


def test_a_missing_overrides_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(OverridesError, match=r"nowhere\.yaml: cannot read the price overrides"):
        load_overrides(tmp_path / "nowhere.yaml")
