"""FOCUS export: priced model calls → one FOCUS cost-and-usage row per day × agent × provider × model.

FOCUS (the FinOps Foundation's Open Cost and Usage Specification) is what FinOps tools ingest.
`focus_rows` is a pure function over the priced calls of one billing month (as `warehouse.
export_store.priced_calls_of_month` reads them) and the registry; docs/focus.md says what each
column holds and why.

The target is FOCUS 1.0: the newest version the FinOps Foundation's `focus-validator` (1.0.0, the
newest release) can check. Column names follow the FOCUS 1.0 specification (`ProviderName`,
`PublisherName`, `InvoiceIssuerName`, `ResourceId`), not the pre-1.0 names that validator release
still carries for those four columns.

Unpriced calls have no cost, and FOCUS requires every cost column to be non-null, so they cannot
be rows without posing as $0: they are left out and counted in `FocusExport.unpriced_calls`,
which the CLI prints and the API returns in headers.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

import polars as pl
import polars.selectors as cs

from analytics.pricing import COST_DTYPE
from registry import Registry
from warehouse.export_store import EXPORT_COLUMNS

__all__ = [
    "CUSTOM_COLUMNS",
    "FOCUS_COLUMNS",
    "FOCUS_VERSION",
    "PRICED_CALL_INPUT_COLUMNS",
    "ExportFormat",
    "FocusExport",
    "billing_month",
    "encoded",
    "focus_rows",
]

FOCUS_VERSION = "1.0"

# Every column of the FOCUS 1.0 specification, in its order (all are mandatory or conditional
# columns that a provider of this kind of charge fills or leaves null).
FOCUS_COLUMNS = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)

# Muster's own columns: FOCUS reserves the `x_` prefix for them.
CUSTOM_COLUMNS = (
    "x_InputTokens",
    "x_OutputTokens",
    "x_CacheReadTokens",
    "x_CacheWriteTokens",
    "x_ReasoningTokens",
    "x_Calls",
    "x_PriceSource",
)

# What the export reads of priced_calls: the columns the month's query returns.
PRICED_CALL_INPUT_COLUMNS = EXPORT_COLUMNS

# Muster prices everything in USD (genai-prices' catalogue and the overrides).
CURRENCY = "USD"
# The one billing scope Muster reports: every department is a sub-account of it.
BILLING_ACCOUNT_ID = "muster"
BILLING_ACCOUNT_NAME = "Muster AI agent spend"
UNKNOWN_PROVIDER = "unknown"

# OTel GenAI provider names → the service a finance team recognises on the provider's invoice.
_SERVICE_NAMES = {
    "openai": "OpenAI API",
    "anthropic": "Anthropic API",
    "aws.bedrock": "Amazon Bedrock",
    "azure.ai.inference": "Azure AI Foundry Models",
    "azure.ai.openai": "Azure OpenAI Service",
    "cohere": "Cohere API",
    "deepseek": "DeepSeek API",
    "gcp.gemini": "Gemini API",
    "gcp.gen_ai": "Google Gen AI",
    "gcp.vertex_ai": "Vertex AI",
    "groq": "GroqCloud",
    "ibm.watsonx.ai": "IBM watsonx.ai",
    "mistral_ai": "Mistral AI API",
    "perplexity": "Perplexity API",
    "x_ai": "xAI API",
    "moonshot_ai": "Moonshot AI API",
}

_GROUP_KEYS = (
    "day",
    "resource_id",
    "agent_id",
    "department_id",
    "cost_centre",
    "environment",
    "provider",
    "model",
)
_TOKEN_SUMS = {
    "x_InputTokens": "input_tokens",
    "x_OutputTokens": "output_tokens",
    "x_CacheReadTokens": "cache_read_tokens",
    "x_CacheWriteTokens": "cache_write_tokens",
    "x_ReasoningTokens": "reasoning_tokens",
}


@dataclass(frozen=True)
class FocusExport:
    """The FOCUS rows of one billing month, and what could not be a row (unpriced calls)."""

    rows: pl.DataFrame
    month: date
    unpriced_calls: int
    unpriced_tokens: int

    def summary(self) -> dict[str, Any]:
        """Rows, calls, exact total cost (text) and the unpriced calls left out."""
        total = self.rows["BilledCost"].sum() if len(self.rows) else Decimal(0)
        return {
            "focus_version": FOCUS_VERSION,
            "month": self.month.strftime("%Y-%m"),
            "rows": len(self.rows),
            "priced_calls": int(self.rows["x_Calls"].sum()) if len(self.rows) else 0,
            "billed_cost_usd": format(total.normalize(), "f"),  # exact: JSON numbers are floats
            "unpriced_calls": self.unpriced_calls,
            "unpriced_tokens": self.unpriced_tokens,
        }


class ExportFormat(StrEnum):
    """The file formats of an export, with their media types."""

    CSV = "csv"
    PARQUET = "parquet"

    @property
    def media_type(self) -> str:
        return "text/csv" if self is ExportFormat.CSV else "application/vnd.apache.parquet"


def encoded(rows: pl.DataFrame, file_format: ExportFormat) -> bytes:
    """The rows as a CSV or Parquet file.

    CSV writes costs as exact decimal text and date-times as FOCUS's `YYYY-MM-DDTHH:mm:ssZ`.
    Parquet writes costs as doubles: that is how the FinOps Foundation's validator and the
    pandas-based FinOps tools read a FOCUS Decimal (a Parquet DECIMAL arrives as Python objects
    they reject); a double keeps 15 significant digits of each row's cost.
    """
    buffer = io.BytesIO()
    if file_format is ExportFormat.CSV:
        rows.write_csv(buffer, datetime_format="%Y-%m-%dT%H:%M:%SZ")
    else:
        rows.with_columns(cs.decimal().cast(pl.Float64)).write_parquet(buffer)
    return buffer.getvalue()


_MONTH = re.compile(r"\d{4}-\d{2}")


def billing_month(text: str) -> date:
    """The first day of the month written as YYYY-MM; ValueError saying how to write it otherwise."""
    problem = ValueError(f"month {text!r} is not a month: write it as YYYY-MM, e.g. 2026-11")
    if not _MONTH.fullmatch(text):  # strptime alone would take "2026-1"
        raise problem
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise problem from None


def month_days(month: date) -> tuple[date, date]:
    """The first day of `month` and the first day of the month after it."""
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return month, following


def focus_rows(calls: pl.DataFrame, registry: Registry, *, month: date) -> FocusExport:
    """FOCUS rows for the priced calls of `month`: one per UTC day × agent × environment × provider × model.

    `calls` has `PRICED_CALL_INPUT_COLUMNS`. Rows come sorted by charge period, resource,
    provider, model and tags, so two exports of the same data are identical files.
    """
    priced, unpriced = _split_unpriced(calls)
    grouped = _grouped(priced)
    rows = (
        grouped.join(_agent_table(registry), on="agent_id", how="left")
        .join(_department_table(registry), on="department_id", how="left")
        .select(_columns(month))
        .sort("ChargePeriodStart", "ResourceId", "ProviderName", "SkuId", "Tags", nulls_last=True)
    )
    return FocusExport(
        rows=rows,
        month=month,
        unpriced_calls=len(unpriced),
        unpriced_tokens=int(_tokens(unpriced).sum() or 0),
    )


def _split_unpriced(calls: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    unpriced = pl.col("cost_usd").is_null()
    return calls.filter(~unpriced), calls.filter(unpriced)


def _tokens(calls: pl.DataFrame) -> pl.Series:
    """Total tokens of each call; input + output where the total was not reported."""
    both = pl.col("input_tokens").fill_null(0) + pl.col("output_tokens").fill_null(0)
    return calls.select(pl.coalesce("total_tokens", both))["total_tokens"]


def _grouped(priced: pl.DataFrame) -> pl.DataFrame:
    both = pl.col("input_tokens").fill_null(0) + pl.col("output_tokens").fill_null(0)
    return (
        priced.with_columns(
            resource_id=pl.coalesce("agent_id", "observed_identity"),
            provider=pl.col("provider").fill_null(UNKNOWN_PROVIDER),
            tokens=pl.coalesce("total_tokens", both),
        )
        .group_by(_GROUP_KEYS)
        .agg(
            pl.col("cost_usd").cast(COST_DTYPE).sum().alias("cost"),
            pl.col("tokens").sum(),
            pl.len().alias("x_Calls"),
            *(pl.col(source).fill_null(0).sum().alias(name) for name, source in _TOKEN_SUMS.items()),
            pl.col("price_source").unique().sort().str.join(",").alias("x_PriceSource"),
        )
    )


def _agent_table(registry: Registry) -> pl.DataFrame:
    rows = [
        {
            "agent_id": agent.id,
            "agent_name": agent.spec.name,
            "team": agent.spec.team,
            "owner": agent.spec.owner,
            # for calls that named no environment: an agent declared in exactly one is known to be there
            "declared_environment": agent.spec.environments[0]
            if len(agent.spec.environments or ()) == 1
            else None,
        }
        for agent in registry.agents.values()
    ]
    schema = dict.fromkeys(("agent_id", "agent_name", "team", "owner", "declared_environment"), pl.String)
    return pl.DataFrame(rows, schema=schema)


def _department_table(registry: Registry) -> pl.DataFrame:
    rows = [{"department_id": d.id, "department_name": d.spec.name} for d in registry.departments.values()]
    return pl.DataFrame(rows, schema={"department_id": pl.String, "department_name": pl.String})


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _columns(month: date) -> list[pl.Expr]:
    """Every FOCUS column, then Muster's `x_` columns, from one grouped row with its registry data."""
    period_start, period_end = (_utc(day) for day in month_days(month))
    cost = pl.col("cost")
    quantity = pl.col("tokens").cast(pl.Float64)  # FOCUS quantities are decimals
    null_text, null_decimal = pl.lit(None, pl.String), pl.lit(None, pl.Float64)
    charge_start = pl.col("day").cast(pl.Datetime("us", "UTC"))
    model = pl.col("model").fill_null("unknown model")
    return [
        null_text.alias("AvailabilityZone"),
        cost.alias("BilledCost"),
        pl.lit(BILLING_ACCOUNT_ID).alias("BillingAccountId"),
        pl.lit(BILLING_ACCOUNT_NAME).alias("BillingAccountName"),
        pl.lit(CURRENCY).alias("BillingCurrency"),
        pl.lit(period_end, pl.Datetime("us", "UTC")).alias("BillingPeriodEnd"),
        pl.lit(period_start, pl.Datetime("us", "UTC")).alias("BillingPeriodStart"),
        pl.lit("Usage").alias("ChargeCategory"),
        null_text.alias("ChargeClass"),  # only corrections of earlier periods carry a class
        pl.format("{} model tokens via {}", model, "provider").alias("ChargeDescription"),
        pl.lit("Usage-Based").alias("ChargeFrequency"),
        charge_start.dt.offset_by("1d").alias("ChargePeriodEnd"),
        charge_start.alias("ChargePeriodStart"),
        *(
            null_text.alias(f"CommitmentDiscount{part}")
            for part in ("Category", "Id", "Name", "Status", "Type")
        ),
        quantity.alias("ConsumedQuantity"),
        pl.lit("Tokens").alias("ConsumedUnit"),
        cost.alias("ContractedCost"),
        # a call mixes input, output and cache rates: no single per-token price is true, so none
        null_decimal.alias("ContractedUnitPrice"),
        cost.alias("EffectiveCost"),
        pl.col("provider").alias("InvoiceIssuerName"),
        cost.alias("ListCost"),
        null_decimal.alias("ListUnitPrice"),
        pl.lit("Standard").alias("PricingCategory"),
        quantity.alias("PricingQuantity"),
        pl.lit("Tokens").alias("PricingUnit"),
        pl.col("provider").alias("ProviderName"),
        pl.col("provider").alias("PublisherName"),
        null_text.alias("RegionId"),
        null_text.alias("RegionName"),
        pl.col("resource_id").alias("ResourceId"),
        pl.coalesce("agent_name", "resource_id").alias("ResourceName"),
        pl.when(pl.col("agent_id").is_not_null())
        .then(pl.lit("AI Agent"))
        .when(pl.col("resource_id").is_not_null())
        .then(pl.lit("Unregistered AI Agent"))
        .alias("ResourceType"),
        pl.lit("AI and Machine Learning").alias("ServiceCategory"),
        _service_name().alias("ServiceName"),
        pl.format("{}/{}", "provider", model).alias("SkuId"),
        # a price is the model's rate from one source (the catalogue or an override)
        pl.format("{}/{}:{}", "provider", model, "x_PriceSource").alias("SkuPriceId"),
        pl.col("department_id").alias("SubAccountId"),
        pl.col("department_name").alias("SubAccountName"),
        _tags().alias("Tags"),
        *(pl.col(name).cast(pl.Int64) for name in _TOKEN_SUMS),
        pl.col("x_Calls").cast(pl.Int64),
        pl.col("x_PriceSource"),
    ]


def _service_name() -> pl.Expr:
    known = pl.col("provider").replace_strict(_SERVICE_NAMES, default=None, return_dtype=pl.String)
    return pl.coalesce(known, pl.format("{} models", "provider"))


_TAG_SOURCES = {
    "team": pl.col("team"),
    "agent": pl.col("resource_id"),
    "department": pl.col("department_id"),
    "cost_centre": pl.col("cost_centre"),
    "environment": pl.coalesce("environment", "declared_environment"),  # the call's own, else the registry's
}


def _tags() -> pl.Expr:
    """A JSON object of the known tags: FOCUS Tags leave unknown keys out rather than null."""
    fields = pl.struct(**_TAG_SOURCES)
    return fields.map_elements(_tag_json, return_dtype=pl.String)


def _tag_json(values: dict[str, str | None]) -> str:
    return json.dumps({key: value for key, value in values.items() if value is not None}, sort_keys=True)
