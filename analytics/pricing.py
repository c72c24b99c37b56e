"""Price model calls: the exact USD cost of every call, from the genai-prices catalogue and prices.yaml.

`price_calls` takes model calls as the spans table holds them and returns them with what was priced
(`priced_provider`, `priced_model`), the cost and its parts as `Decimal(38, 12)` USD, where the price
came from (`price_source`), and the two pricing findings: `unpriced_reason` (a call we cannot price
is never silently $0) and `reported_cost_mismatch` (the span's own cost disagrees with ours).

How a call is priced:

1. Its model is resolved once per distinct (provider, request_model, response_model): aliases from
   the overrides rewrite the name, then a custom model from the overrides, else the catalogue, must
   know it. The response model is preferred (it names the snapshot actually served); the request
   model is the fallback. OTel provider names (`aws.bedrock`, `gcp.vertex_ai`, `azure.ai.openai`…)
   are mapped to catalogue provider ids first.
2. The catalogue is asked once per distinct (provider, model, time bucket of start_time) key —
   `genai_prices.calc_price` runs ~5,500 calls/s, so never per call — for the model's prices on
   that date: per-million-token rates for input, cache read, cache write, output and reasoning
   tokens, and a per-request fee. Models whose catalogue price changes with the time of day
   (DeepSeek's off-peak hours) get one key per bucket and time-of-day segment.
3. Tokens are multiplied by those rates in Polars (vectorised, Decimal), exactly as the catalogue
   prices usage: input includes cache read and cache write tokens and output includes reasoning
   tokens, both in Muster's conventions and in genai-prices' `Usage`; a token kind the model has
   no separate price for is charged at its parent's rate (cached input as input, reasoning as
   output). Tiered prices follow the catalogue's cliff rule: once a call's input tokens exceed a
   tier's start, that tier's rate applies to all of the call's tokens of that kind.

Not priced, because spans do not record them: web searches, audio/image/video modalities, the 1-hour
cache-write rate (cache writes are priced at the catalogue's default cache-write rate) and service
tiers (batch, flex, priority: standard prices are used).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import genai_prices
import pandera.polars as pa
import polars as pl
import yaml
from genai_prices import types as catalogue
from genai_prices.data_snapshot import get_snapshot
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "CALLS_SCHEMA",
    "COST_DTYPE",
    "MISMATCH_ABSOLUTE_TOLERANCE_USD",
    "MISMATCH_RELATIVE_TOLERANCE",
    "PRICED_CALLS_SCHEMA",
    "PRICED_COLUMNS",
    "Alias",
    "CustomModel",
    "OverridesError",
    "PriceOverrides",
    "PriceSource",
    "catalogue_provider_id",
    "load_overrides",
    "price_calls",
]

COST_DTYPE = pl.Decimal(38, 12)
"""USD amounts: 12 decimal places hold a per-token cost exactly for any rate with ≤ 6 decimals/MTok."""

MISMATCH_RELATIVE_TOLERANCE = Decimal("0.01")
MISMATCH_ABSOLUTE_TOLERANCE_USD = Decimal("0.000001")
"""A reported cost is a mismatch when it differs from ours by more than 1 % of ours and by more than
a micro-dollar: instrumentations price from their own (often older or rounded) tables, and a 1 %
band keeps rounding from raising findings while a wrong model or a missing cache discount still
shows; the micro-dollar floor absorbs float noise and 6-decimal rounding on tiny calls."""

PRICED_COLUMNS = (
    "priced_provider",
    "priced_model",
    "cost_usd",
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "request_cost_usd",
    "price_source",
    "unpriced_reason",
    "reported_cost_mismatch",
)
"""The columns `price_calls` adds (replacing them if the frame already has them)."""

_MODEL_COLUMNS = ("provider", "request_model", "response_model")
_TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_RATE_DTYPE = pl.Decimal(38, 18)  # a per-token rate: $/MTok with up to 12 decimals, exactly
_RATE_SCALE = Decimal(1).scaleb(-18)
_PER_MTOK = Decimal(1_000_000)
_PER_KCOUNT = Decimal(1_000)


class PriceSource(StrEnum):
    """Where a call's price came from."""

    CATALOGUE = "catalogue"  # genai-prices, with any provider discount from the overrides applied
    OVERRIDE = "override"  # a custom model in the overrides
    UNPRICED = "unpriced"  # no price: `unpriced_reason` says why
    NO_USAGE = "no_usage"  # a failed call that reported no usage: exactly $0, `unpriced_reason` says why


CALLS_SCHEMA = pa.DataFrameSchema(
    {
        **{name: pa.Column(pl.String, nullable=True, coerce=True) for name in _MODEL_COLUMNS},
        **{name: pa.Column(pl.Int64, nullable=True, coerce=True) for name in _TOKEN_COLUMNS},
        "reported_cost_usd": pa.Column(pl.Float64, nullable=True, coerce=True),
    },
    strict=False,
    name="model calls to price",
)
"""The input contract of `price_calls` (start_time, a Datetime of any unit or zone, is checked apart)."""

PRICED_CALLS_SCHEMA = pa.DataFrameSchema(
    {
        "priced_provider": pa.Column(pl.String, nullable=True),
        "priced_model": pa.Column(pl.String, nullable=True),
        **{
            name: pa.Column(COST_DTYPE, nullable=True)
            for name in PRICED_COLUMNS
            if name.endswith("_usd") and name != "reported_cost_usd"
        },
        "price_source": pa.Column(pl.String, pa.Check.isin([str(source) for source in PriceSource])),
        "unpriced_reason": pa.Column(pl.String, nullable=True),
        "reported_cost_mismatch": pa.Column(pl.Boolean),
    },
    checks=[pa.Check(lambda data: _no_usage_costs_nothing(data.lazyframe), name="no usage costs exactly 0")],
    strict=False,
    name="priced model calls",
)
"""The output contract of `price_calls`, for the jobs that read priced calls."""


def _no_usage_costs_nothing(frame: pl.LazyFrame) -> pl.LazyFrame:
    """A call priced as `no_usage` costs exactly 0, and says why."""
    no_usage = pl.col("price_source") == str(PriceSource.NO_USAGE)
    holds = (pl.col("cost_usd") == 0) & pl.col("unpriced_reason").is_not_null()
    return frame.select(~no_usage | holds.fill_null(False))


# Provider names: Muster's canonical (OTel) names and common spellings → catalogue provider ids.
# Names not listed are passed on as they are (the catalogue matches its own ids and some aliases).
_CATALOGUE_PROVIDERS = {
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "aws_bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure_openai": "azure",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "moonshot_ai": "moonshotai",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}


def catalogue_provider_id(provider: str | None) -> str | None:
    """The catalogue's id for a provider name as spans carry it (`aws.bedrock` → `aws`)."""
    if provider is None or not provider.strip():
        return None
    name = provider.strip().lower()
    return _CATALOGUE_PROVIDERS.get(name, name)


# ---------------------------------------------------------------------------------------------------
# Overrides: data/prices.yaml


class OverridesError(ValueError):
    """The price overrides file cannot be used; the message names the file, line and field."""


_Rate = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
_Percent = Annotated[Decimal, Field(ge=0, le=100, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _checked_pattern(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


class CustomModel(_Strict):
    """A price for a model the catalogue lacks (self-hosted, fine-tuned) or that you pay differently for.

    `model` is a regular expression matched against the whole model name, ignoring case; `provider`
    (optional: any provider when omitted) is compared with the call's provider, both mapped to the
    catalogue's ids (`aws.bedrock` and `aws` are the same). Prices are USD per million tokens; a
    cache price left out charges those tokens at the input price. Provider discounts do not apply.
    """

    provider: str | None = None
    model: str
    input_per_mtok: _Rate
    output_per_mtok: _Rate
    cache_read_per_mtok: _Rate | None = None
    cache_write_per_mtok: _Rate | None = None

    _pattern_valid = field_validator("model")(_checked_pattern)

    def matches(self, provider: str | None, model: str) -> bool:
        """Whether this entry prices `model` of `provider`."""
        same_provider = self.provider is None or (
            catalogue_provider_id(self.provider) == catalogue_provider_id(provider)
        )
        return same_provider and re.fullmatch(self.model, model, re.IGNORECASE) is not None


_GROUP_REFERENCE = re.compile(r"\\(\d+)|\\g<([^>]*)>")


class Alias(_Strict):
    """Rewrites a model name before it is priced: gateway prefixes, snapshots the catalogue lacks.

    `match` is a regular expression matched against the whole name, ignoring case; `model` is the
    name to price instead and may use its groups (`\\1`, `\\g<name>`). `provider`, when given (groups
    allowed too), prices the call under that provider instead of the call's own. The first
    matching alias wins and its result is not aliased again.
    """

    match: str
    model: str
    provider: str | None = None

    _pattern_valid = field_validator("match")(_checked_pattern)

    @model_validator(mode="after")
    def _groups_exist(self) -> Alias:
        pattern = re.compile(self.match)
        for template in (self.model, self.provider or ""):
            for number, name in _GROUP_REFERENCE.findall(template):
                if (number and int(number) > pattern.groups) or (name and name not in pattern.groupindex):
                    raise ValueError(f"{template!r} refers to a group that {self.match!r} does not have")
        return self

    def rewrite(self, provider: str | None, model: str) -> tuple[str | None, str] | None:
        """(provider, model) to price instead, or None when this alias does not match `model`."""
        found = re.fullmatch(self.match, model, re.IGNORECASE)
        if found is None:
            return None
        return (found.expand(self.provider) if self.provider else provider), found.expand(self.model)


class PriceOverrides(_Strict):
    """What the catalogue cannot know: negotiated discounts, custom models, model-name aliases.

    `discount_percent` maps a provider (a span's provider name or a catalogue id) to the percentage
    taken off its catalogue prices: `openai: 15` pays 85 % of list price. A percentage, not a
    multiplier, because that is how contracts state it and `0.85` could be read either way.
    """

    discount_percent: dict[str, _Percent] = Field(default_factory=dict)
    custom_models: list[CustomModel] = Field(default_factory=list)
    aliases: list[Alias] = Field(default_factory=list)

    @field_validator("discount_percent")
    @classmethod
    def _one_discount_per_provider(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        seen: dict[str, str] = {}
        for name in value:
            key = catalogue_provider_id(name) or name
            if key in seen:
                raise ValueError(
                    f"{seen[key]!r} and {name!r} are the same provider ({key!r}); give one discount"
                )
            seen[key] = name
        return value

    def price_multiplier(self, catalogue_provider: str) -> Decimal:
        """What is paid of the catalogue price for this provider: 1 − discount / 100."""
        for name, percent in self.discount_percent.items():
            if catalogue_provider_id(name) == catalogue_provider:
                return 1 - percent / 100
        return Decimal(1)

    def aliased(self, provider: str | None, model: str) -> tuple[str | None, str]:
        """(provider, model) after the first matching alias; unchanged when none matches."""
        for alias in self.aliases:
            rewritten = alias.rewrite(provider, model)
            if rewritten is not None:
                return rewritten
        return provider, model

    def custom_model(self, provider: str | None, model: str) -> CustomModel | None:
        """The first custom model that prices `model` of `provider`, if any."""
        return next((custom for custom in self.custom_models if custom.matches(provider, model)), None)


def load_overrides(path: Path | str) -> PriceOverrides:
    """The price overrides in a YAML file; an empty file means no overrides.

    Raises OverridesError naming the file, line and field of every problem (unknown fields too).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OverridesError(f"{path}: cannot read the price overrides: {exc}") from None
    data, lines = _yaml_data(text, path)
    if data is None:
        return PriceOverrides()
    try:
        return PriceOverrides.model_validate(data)
    except ValidationError as exc:
        problems = [_problem_text(path, lines, error) for error in exc.errors(include_url=False)]
        raise OverridesError("\n".join(problems)) from None


_Path = tuple[str | int, ...]


def _yaml_data(text: str, path: Path) -> tuple[Any, dict[_Path, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise OverridesError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    lines: dict[_Path, int] = {}
    return (None if node is None else _node_data(node, (), lines, path)), lines


def _node_data(node: yaml.Node, path: _Path, lines: dict[_Path, int], file: Path) -> Any:
    """Plain data from a composed YAML node, noting each field's line; decimals stay exact."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in result:
                line = key_node.start_mark.line + 1
                raise OverridesError(f"{file}:{line}: the key {key!r} appears twice in the same mapping")
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _node_data(value_node, (*path, key), lines, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_node_data(item, (*path, index), lines, file) for index, item in enumerate(node.value)]
    if node.tag == "tag:yaml.org,2002:float":
        # a float would turn 0.075 into 0.07499999…; prices must stay the decimals that were written
        try:
            return Decimal(node.value.replace("_", ""))
        except ArithmeticError:
            pass
    return yaml.SafeLoader("").construct_object(node)


def _problem_text(file: Path, lines: Mapping[_Path, int], error: Mapping[str, Any]) -> str:
    location = tuple(error["loc"])
    # a missing field has no line of its own: point at the nearest enclosing one
    line = next(
        (lines[location[:end]] for end in range(len(location), -1, -1) if location[:end] in lines), None
    )
    field_path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = f"unknown field {location[-1]!r}"
    where = f"{file}:{line}" if line else str(file)
    return f"{where}: {field_path.lstrip('.') or 'the file'}: {message}"


# ---------------------------------------------------------------------------------------------------
# Which model each call prices as: one decision per distinct (provider, request_model, response_model)


@dataclass(frozen=True)
class _Resolved:
    source: PriceSource
    provider: str | None
    model: str | None
    reason: str | None = None
    custom: CustomModel | None = None
    # nanoseconds after midnight UTC at which the catalogue's time-of-day prices change
    day_boundaries: tuple[int, ...] = ()


def _resolved(provider: str | None, names: Iterable[str | None], overrides: PriceOverrides) -> _Resolved:
    """The first of `names` (response, then request model) that a custom model or the catalogue knows."""
    candidates = list(dict.fromkeys(name for name in names if name))
    if not candidates:
        return _Resolved(
            PriceSource.UNPRICED, catalogue_provider_id(provider), None, "the call names no model"
        )
    tried: list[tuple[str | None, str]] = []
    for name in candidates:
        priced_provider, model = overrides.aliased(provider, name)
        tried.append((priced_provider, model))
        custom = overrides.custom_model(priced_provider, model)
        if custom is not None:
            named = catalogue_provider_id(priced_provider or custom.provider)
            return _Resolved(PriceSource.OVERRIDE, named, model, custom=custom)
        found = _catalogue_model(priced_provider, model)
        if found is not None:
            catalogue_provider, info = found
            return _Resolved(
                PriceSource.CATALOGUE, catalogue_provider.id, model, day_boundaries=_day_boundaries(info)
            )
    provider, model = tried[0]
    return _Resolved(
        PriceSource.UNPRICED, catalogue_provider_id(provider), model, _unknown_model_reason(tried)
    )


def _catalogue_model(
    provider: str | None, model: str
) -> tuple[catalogue.Provider, catalogue.ModelInfo] | None:
    try:
        return get_snapshot().find_provider_model(model, None, catalogue_provider_id(provider), None)
    except LookupError:
        return None


def _catalogue_has_provider(provider: str) -> bool:
    try:
        get_snapshot().find_provider(None, catalogue_provider_id(provider), None)
    except LookupError:
        return False
    return True


def _unknown_model_reason(tried: list[tuple[str | None, str]]) -> str:
    provider = tried[0][0]
    names = " or ".join(repr(name) for name in dict.fromkeys(name for _, name in tried))
    fix = "add an alias or a custom model to the price overrides"
    if provider is None:
        return f"model {names} is not in the catalogue (the call names no provider); {fix}"
    if not _catalogue_has_provider(provider):
        return f"provider {provider!r} is not in the catalogue and no custom model matches {names}; {fix}"
    return f"model {names} of provider {provider!r} is not in the catalogue; {fix}"


def _day_boundaries(info: catalogue.ModelInfo) -> tuple[int, ...]:
    if not isinstance(info.prices, list):
        return ()
    times = {
        moment
        for conditional in info.prices
        if isinstance(conditional.constraint, catalogue.TimeOfDateConstraint)
        for moment in (conditional.constraint.start_time, conditional.constraint.end_time)
    }
    return tuple(sorted({_nanoseconds_after_midnight_utc(moment) for moment in times} - {0}))


def _nanoseconds_after_midnight_utc(moment: time) -> int:
    if moment.tzinfo is not None:
        moment = datetime.combine(date(2000, 1, 1), moment).astimezone(UTC).time()
    return (
        (moment.hour * 60 + moment.minute) * 60 + moment.second
    ) * 1_000_000_000 + moment.microsecond * 1000


def _model_table(calls: pl.DataFrame, overrides: PriceOverrides) -> tuple[pl.DataFrame, dict[int, _Resolved]]:
    """One row per distinct (provider, request_model, response_model): what it prices as, id `__model`.

    Also returns the decision behind each `__model` id; calls that price as the same (source,
    provider, model) share an id, so they share catalogue look-ups.
    """
    model_ids: dict[tuple[PriceSource, str | None, str | None], int] = {}
    resolved_by_id: dict[int, _Resolved] = {}
    rows: list[dict[str, Any]] = []
    for provider, request_model, response_model in calls.select(_MODEL_COLUMNS).unique().iter_rows():
        resolved = _resolved(provider, (response_model, request_model), overrides)
        model_id = None
        if resolved.source is not PriceSource.UNPRICED:
            identity = (resolved.source, resolved.provider, resolved.model)
            model_id = model_ids.setdefault(identity, len(model_ids))
            resolved_by_id[model_id] = resolved
        rows.append(
            {
                "provider": provider,
                "request_model": request_model,
                "response_model": response_model,
                "priced_provider": resolved.provider,
                "priced_model": resolved.model,
                "__model": model_id,
                "__source": str(resolved.source),
                "__model_reason": resolved.reason,
                "__boundaries": list(resolved.day_boundaries),
            }
        )
    schema = {
        **dict.fromkeys((*_MODEL_COLUMNS, "priced_provider", "priced_model"), pl.String),
        "__model": pl.Int32,
        "__source": pl.String,
        "__model_reason": pl.String,
        "__boundaries": pl.List(pl.Int64),
    }
    table = pl.DataFrame(rows, schema=schema)
    boundary_count = max((len(row["__boundaries"]) for row in rows), default=0)
    spread = [
        pl.col("__boundaries").list.get(index, null_on_oob=True).alias(f"__boundary_{index}")
        for index in range(boundary_count)
    ]
    return table.with_columns(spread).drop("__boundaries"), resolved_by_id


def _nth(values: tuple[int, ...], index: int) -> int | None:
    return values[index] if index < len(values) else None


# ---------------------------------------------------------------------------------------------------
# Prices: one catalogue call per distinct (model, time bucket, time-of-day segment) key


@dataclass(frozen=True)
class _Rates:
    """Per-token (per-request for `request`) USD rates; None = no separate price for that token kind."""

    input: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    output: Decimal | None = None
    reasoning: Decimal | None = None
    request: Decimal | None = None


_RATE_NAMES = ("input", "cache_read", "cache_write", "output", "reasoning", "request")
_CATALOGUE_PRICE_KEYS = {
    "input": ("input_mtok", _PER_MTOK),
    "cache_read": ("cache_read_mtok", _PER_MTOK),
    "cache_write": ("cache_write_mtok", _PER_MTOK),
    "output": ("output_mtok", _PER_MTOK),
    "reasoning": ("output_reasoning_mtok", _PER_MTOK),
    "request": ("requests_kcount", _PER_KCOUNT),
}


@dataclass(frozen=True)
class _KeyPrice:
    """A key's price: tier thresholds on input tokens and the rates of each tier level (level 0 = base)."""

    thresholds: tuple[int, ...] = ()
    levels: tuple[_Rates, ...] = (_Rates(),)
    reason: str | None = None


def _key_price(resolved: _Resolved, at: datetime, overrides: PriceOverrides) -> _KeyPrice:
    if resolved.custom is not None:
        return _KeyPrice(levels=(_custom_rates(resolved.custom),))
    assert resolved.model is not None and resolved.provider is not None
    try:
        calculation = genai_prices.calc_price(
            genai_prices.Usage(), resolved.model, provider_id=resolved.provider, genai_request_timestamp=at
        )
    except (LookupError, ValueError) as exc:
        return _KeyPrice(reason=f"the catalogue cannot price model {resolved.model!r}: {exc}")
    return _catalogue_key_price(
        calculation.model_price, resolved.model, overrides.price_multiplier(resolved.provider)
    )


def _custom_rates(custom: CustomModel) -> _Rates:
    def per_token(per_mtok: Decimal | None) -> Decimal | None:
        return None if per_mtok is None else _rate(per_mtok / _PER_MTOK)

    return _Rates(
        input=per_token(custom.input_per_mtok),
        cache_read=per_token(custom.cache_read_per_mtok),
        cache_write=per_token(custom.cache_write_per_mtok),
        output=per_token(custom.output_per_mtok),
    )


def _catalogue_key_price(price: catalogue.ModelPrice, model: str, multiplier: Decimal) -> _KeyPrice:
    prices = {name: getattr(price, key, None) for name, (key, _) in _CATALOGUE_PRICE_KEYS.items()}
    other_units = [key for key, value in vars(price).items() if value is not None and not key.startswith("_")]
    # A model listed with no prices at all is free by the catalogue's word (":free" models, ones in a
    # subscription); one priced only by units spans lack (audio hours, pages) is not: pricing its
    # tokens at nothing would hide its cost.
    if all(prices[name] is None for name in ("input", "output", "request")) and other_units:
        return _KeyPrice(
            reason=f"the catalogue prices model {model!r} only by units spans do not record "
            f"({', '.join(other_units)})"
        )
    thresholds = tuple(
        sorted(
            {
                tier.start
                for value in prices.values()
                if isinstance(value, catalogue.TieredPrices)
                for tier in value.tiers
            }
        )
    )
    # level 0 is below every threshold; level n applies once input tokens exceed thresholds[n - 1]
    input_tokens_at_level = (0, *(threshold + 1 for threshold in thresholds))
    levels = tuple(
        _Rates(
            **{
                name: _catalogue_rate(prices[name], input_tokens, _CATALOGUE_PRICE_KEYS[name][1], multiplier)
                for name in _RATE_NAMES
            }
        )
        for input_tokens in input_tokens_at_level
    )
    return _KeyPrice(thresholds=thresholds, levels=levels)


def _catalogue_rate(
    price: Decimal | catalogue.TieredPrices | None, input_tokens: int, per: Decimal, multiplier: Decimal
) -> Decimal | None:
    if price is None:
        return None
    if isinstance(price, catalogue.TieredPrices):
        # the catalogue's cliff rule: the highest tier whose start the call's input tokens exceed
        price = next((tier.price for tier in reversed(price.tiers) if input_tokens > tier.start), price.base)
    return _rate(price * multiplier / per)


def _rate(value: Decimal) -> Decimal:
    return value.quantize(_RATE_SCALE, rounding=ROUND_HALF_EVEN)


def _evaluation_time(bucket_start: datetime, segment: int, resolved: _Resolved) -> datetime:
    """When to read a key's price: inside both its bucket and its time-of-day segment."""
    start = bucket_start.replace(tzinfo=UTC)
    if segment == 0:
        return start
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(start, midnight + timedelta(microseconds=resolved.day_boundaries[segment - 1] // 1000))


def _price_table(
    keys: pl.DataFrame, resolved_by_id: Mapping[int, _Resolved], overrides: PriceOverrides
) -> pl.DataFrame:
    """One row per distinct (`__model`, `__bucket`, `__segment`): tier thresholds and each level's rates."""
    prices = [
        _key_price(
            resolved_by_id[model_id], _evaluation_time(bucket, segment, resolved_by_id[model_id]), overrides
        )
        for model_id, bucket, segment in keys.iter_rows()
    ]
    level_count = max((len(price.levels) for price in prices), default=1)
    columns: dict[str, list[Any]] = {"__key_reason": [price.reason for price in prices]}
    schema: dict[str, Any] = {"__key_reason": pl.String}
    for index in range(level_count - 1):
        columns[f"__threshold_{index}"] = [_nth(price.thresholds, index) for price in prices]
        schema[f"__threshold_{index}"] = pl.Int64
    for level in range(level_count):
        for name in _RATE_NAMES:
            columns[f"__{name}_rate_{level}"] = [
                getattr(price.levels[min(level, len(price.levels) - 1)], name) for price in prices
            ]
            schema[f"__{name}_rate_{level}"] = _RATE_DTYPE
    return keys.hstack(pl.DataFrame(columns, schema=schema))


# ---------------------------------------------------------------------------------------------------
# Costs: Polars expressions over the joined rates


def _tokens(name: str) -> pl.Expr:
    return pl.col(name).fill_null(0)


def _level(threshold_count: int) -> pl.Expr:
    """The tier level of each call: how many of its key's thresholds its input tokens exceed."""
    exceeded = [
        (_tokens("input_tokens") > pl.col(f"__threshold_{index}")).fill_null(False)
        for index in range(threshold_count)
    ]
    return pl.sum_horizontal(exceeded) if exceeded else pl.lit(0)


def _selected_rates(level_count: int) -> list[pl.Expr]:
    """`__rate_<kind>`: the rate of each token kind at the call's tier level."""
    expressions = []
    for name in _RATE_NAMES:
        chosen = pl.col(f"__{name}_rate_0")
        for level in range(1, level_count):
            chosen = (
                pl.when(pl.col("__level") == level).then(pl.col(f"__{name}_rate_{level}")).otherwise(chosen)
            )
        expressions.append(chosen.alias(f"__rate_{name}"))
    return expressions


def _cost(tokens: pl.Expr, rate: str) -> pl.Expr:
    """Tokens × rate, 0 where the kind has no separate price; rounded to COST_DTYPE (half-even)."""
    product = tokens.cast(pl.Decimal(38, 0)) * pl.col(rate).fill_null(Decimal(0))
    return product.cast(COST_DTYPE)


def _separately(tokens: str, rate: str) -> pl.Expr:
    """The tokens of a subset kind priced at their own rate (0 when they fall to the parent's rate)."""
    return pl.when(pl.col(rate).is_not_null()).then(_tokens(tokens)).otherwise(0)


def _cost_parts() -> list[pl.Expr]:
    uncached_input = (
        _tokens("input_tokens")
        - _separately("cache_read_tokens", "__rate_cache_read")
        - _separately("cache_write_tokens", "__rate_cache_write")
    )
    plain_output = _tokens("output_tokens") - _separately("reasoning_tokens", "__rate_reasoning")
    return [
        _cost(uncached_input, "__rate_input").alias("input_cost_usd"),
        _cost(_tokens("cache_read_tokens"), "__rate_cache_read").alias("cache_read_cost_usd"),
        _cost(_tokens("cache_write_tokens"), "__rate_cache_write").alias("cache_write_cost_usd"),
        (_cost(plain_output, "__rate_output") + _cost(_tokens("reasoning_tokens"), "__rate_reasoning"))
        .cast(COST_DTYPE)
        .alias("output_cost_usd"),
        pl.col("__rate_request").fill_null(Decimal(0)).cast(COST_DTYPE).alias("request_cost_usd"),
    ]


_COST_PARTS = (
    "input_cost_usd",
    "cache_read_cost_usd",
    "cache_write_cost_usd",
    "output_cost_usd",
    "request_cost_usd",
)


def _usage_reason() -> pl.Expr:
    """Why a call's token counts cannot be priced, or null when they can."""
    tokens = {name: _tokens(name) for name in _TOKEN_COLUMNS}
    return (
        pl.when(pl.col("start_time").is_null())
        .then(pl.lit("the call has no start_time"))
        .when(pl.col("input_tokens").is_null() & pl.col("output_tokens").is_null())
        .then(pl.lit("the call reports no token usage"))
        .when(pl.any_horizontal([value < 0 for value in tokens.values()]))
        .then(pl.lit("the call reports a negative token count"))
        .when(tokens["cache_read_tokens"] + tokens["cache_write_tokens"] > tokens["input_tokens"])
        .then(
            pl.lit("cache read + cache write tokens exceed input tokens (input must include cached tokens)")
        )
        .when(tokens["reasoning_tokens"] > tokens["output_tokens"])
        .then(pl.lit("reasoning tokens exceed output tokens (output must include reasoning tokens)"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _reported_cost_mismatch() -> pl.Expr:
    ours = pl.col("cost_usd").cast(pl.Float64)
    allowed = pl.max_horizontal(
        ours.abs() * float(MISMATCH_RELATIVE_TOLERANCE), pl.lit(float(MISMATCH_ABSOLUTE_TOLERANCE_USD))
    )
    return ((pl.col("reported_cost_usd") - ours).abs() > allowed).fill_null(False)


# ---------------------------------------------------------------------------------------------------
# The job


def price_calls(
    calls: pl.DataFrame, overrides: PriceOverrides | None = None, *, bucket: str = "1d"
) -> pl.DataFrame:
    """`calls` with `PRICED_COLUMNS` added: what each call priced as, its cost in USD and the findings.

    `calls` has the spans table's provider, request_model, response_model, start_time (naive times
    are UTC), the five token columns and reported_cost_usd; other columns pass through, rows keep
    their order. Prices are read once per (provider, model, `bucket` of start_time) — a Polars
    duration string; the catalogue dates its price changes by UTC day, so "1d" is exact.
    Cost parts are rounded half-even to 12 decimals and `cost_usd` is their sum; unpriced calls
    have null costs, price_source "unpriced" and an `unpriced_reason`. When `calls` has the spans'
    `status_code`, a failed call that reported no usage costs exactly 0 with price_source
    "no_usage" and its reason in `unpriced_reason`.

    Raises ValueError for a missing column or a bad `bucket`, and pandera's SchemaError for a
    column that cannot be read as its contract (CALLS_SCHEMA) says.
    """
    overrides = overrides or PriceOverrides()
    calls = _validated(calls.drop(PRICED_COLUMNS, strict=False))
    models, resolved_by_id = _model_table(calls, overrides)
    keyed = _keyed(calls, models, bucket)
    keys = keyed.filter(pl.col("__model").is_not_null()).select("__model", "__bucket", "__segment").unique()
    keys = keys.filter(pl.col("__bucket").is_not_null())
    prices = _price_table(keys, resolved_by_id, overrides)
    level_count = sum(name.startswith("__input_rate_") for name in prices.columns)
    priced = (
        keyed.join(prices, on=["__model", "__bucket", "__segment"], how="left", maintain_order="left")
        .with_columns(__level=_level(level_count - 1))
        .with_columns(_selected_rates(level_count))
        .with_columns(
            unpriced_reason=pl.coalesce(pl.col("__model_reason"), pl.col("__key_reason"), _usage_reason())
        )
        .with_columns(pl.when(pl.col("unpriced_reason").is_null()).then(part) for part in _cost_parts())
        .with_columns(
            # the parts are null together, and sum_horizontal would turn all-null into 0
            cost_usd=pl.when(pl.col("unpriced_reason").is_null()).then(pl.sum_horizontal(_COST_PARTS)),
            price_source=pl.when(pl.col("unpriced_reason").is_null())
            .then(pl.col("__source"))
            .otherwise(pl.lit(str(PriceSource.UNPRICED))),
        )
        .with_columns(pl.col("cost_usd").cast(COST_DTYPE))
        .with_columns(_failed_without_usage(calls))
        .with_columns(reported_cost_mismatch=_reported_cost_mismatch())
    )
    return priced.select(*calls.columns, *PRICED_COLUMNS)


NO_USAGE_REASON = "the call failed and reported no token usage: nothing was billed"


def _failed_without_usage(calls: pl.DataFrame) -> list[pl.Expr]:
    """A failed call (status error) without usage costs exactly $0, whatever its model: providers
    bill no tokens for a request they refused or that broke before usage was counted. Pricing it
    "unpriced" would raise a finding for every rate-limit error. Needs the calls' `status_code`."""
    if "status_code" not in calls.columns:
        return []
    no_usage = (pl.col("status_code") == "error").fill_null(False) & pl.all_horizontal(
        pl.col(name).is_null()
        for name in ("input_tokens", "output_tokens", "total_tokens")
        if name in calls.columns
    )
    zero = pl.lit(Decimal(0)).cast(COST_DTYPE)
    return [
        *[
            pl.when(no_usage).then(zero).otherwise(pl.col(name)).alias(name)
            for name in ("cost_usd", *_COST_PARTS)
        ],
        pl.when(no_usage)
        .then(pl.lit(str(PriceSource.NO_USAGE)))
        .otherwise("price_source")
        .alias("price_source"),
        pl.when(no_usage).then(pl.lit(NO_USAGE_REASON)).otherwise("unpriced_reason").alias("unpriced_reason"),
    ]


def _validated(calls: pl.DataFrame) -> pl.DataFrame:
    """`calls` checked (and coerced) against CALLS_SCHEMA, with start_time as naive UTC."""
    missing = [name for name in (*CALLS_SCHEMA.columns, "start_time") if name not in calls.columns]
    if missing:
        raise ValueError(f"the calls to price lack the column(s) {', '.join(missing)}")
    calls = CALLS_SCHEMA.validate(calls)
    dtype = calls.schema["start_time"]
    if not isinstance(dtype, pl.Datetime):
        raise ValueError(f"start_time must be a Datetime column, not {dtype}")
    if dtype.time_zone is None:
        return calls
    return calls.with_columns(pl.col("start_time").dt.convert_time_zone("UTC").dt.replace_time_zone(None))


def _keyed(calls: pl.DataFrame, models: pl.DataFrame, bucket: str) -> pl.DataFrame:
    """Calls joined with their model decision, plus the price key's `__bucket` and `__segment`."""
    boundaries = [name for name in models.columns if name.startswith("__boundary_")]
    start = pl.col("start_time")
    after_midnight = (start - start.dt.truncate("1d")).dt.total_nanoseconds()
    passed = [(after_midnight >= pl.col(name)).fill_null(False) for name in boundaries]
    segment = pl.sum_horizontal(passed) if passed else pl.lit(0)
    try:
        return (
            calls.join(models, on=list(_MODEL_COLUMNS), how="left", nulls_equal=True, maintain_order="left")
            .with_columns(
                __bucket=start.dt.truncate(bucket),
                __segment=segment.cast(pl.Int32),
            )
            .drop(boundaries)
        )
    except pl.exceptions.InvalidOperationError as exc:
        raise ValueError(f"bucket {bucket!r} is not a Polars duration such as '1d' or '1h': {exc}") from None
