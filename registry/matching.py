"""Identity matching: which registered agent an observed identity belongs to, for whole frames at once.

DESIGN "Agent identity" sets the order: the agent bound to the ingest credential, then
`gen_ai.agent.id` (the span's, then resource `gen_ai.main_agent.id`), then the agent name, then
resource `service.namespace` + `service.name`. The strongest key that matches a registration
decides; a key that matches nothing lets the next one try, so a framework's default agent name
does not hide the service that is registered. A selector with an environment matches only
telemetry from that environment. Every agent also matches its own id and its former ids (aliases),
so renamed agents keep their telemetry.

The work is a handful of joins over the *distinct* identities (a fleet has thousands, a day of
spans millions), then one join back to the rows; no Python runs per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from registry.errors import RegistryError
from registry.model import Registry, SelectorKey

# The observed columns read (missing ones count as absent; "" counts as absent too).
IDENTITY_COLUMNS = (
    "credential_agent_id",  # the agent the ingest credential is bound to (spans.credential_agent_id)
    "gen_ai_agent_id",  # span attribute gen_ai.agent.id
    "main_agent_id",  # resource attribute gen_ai.main_agent.id
    "agent_name",
    "service_namespace",
    "service_name",
    "environment",
)
RESULT_COLUMNS = ("agent_id", "match_status", "candidates", "matched_by")


class MatchStatus(StrEnum):
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"
    AMBIGUOUS = "ambiguous"


class MatchedBy(StrEnum):
    CREDENTIAL = "credential"
    AGENT_ID = "agent_id"
    AGENT_NAME = "agent_name"
    SERVICE = "service"


_CREDENTIAL = "credential"  # selector-table rows that resolve a bound agent id (or former id)


@dataclass(frozen=True)
class _Tier:
    rank: int
    matched_by: MatchedBy
    selector: str  # the selector table's `key_kind`
    key: str  # the observed column compared with the selector's `key`
    namespace: str | None = None  # the observed column compared with the selector's `namespace`
    narrowed_by_environment: bool = True


_TIERS = (
    _Tier(0, MatchedBy.CREDENTIAL, _CREDENTIAL, "credential_agent_id", narrowed_by_environment=False),
    _Tier(1, MatchedBy.AGENT_ID, SelectorKey.AGENT_ID, "gen_ai_agent_id"),
    _Tier(2, MatchedBy.AGENT_ID, SelectorKey.AGENT_ID, "main_agent_id"),
    _Tier(3, MatchedBy.AGENT_NAME, SelectorKey.AGENT_NAME, "agent_name"),
    _Tier(4, MatchedBy.SERVICE, SelectorKey.SERVICE, "service_name", namespace="service_namespace"),
)

_SELECTOR_SCHEMA = {
    "key_kind": pl.String,
    "namespace": pl.String,
    "key": pl.String,
    "environment": pl.String,
    "agent_id": pl.String,
}


def selector_table(registry: Registry) -> pl.DataFrame:
    """One row per identity the registry claims: key_kind, namespace, key, environment, agent_id.

    Besides each selector, every agent claims its id and former ids as `agent_id` keys and as the
    agents an ingest credential may be bound to (`credential` rows).
    """
    rows = []
    for agent in registry.agents.values():
        for own in (agent.id, *agent.spec.aliases):
            rows += [
                (_CREDENTIAL, None, own, None, agent.id),
                (SelectorKey.AGENT_ID.value, None, own, None, agent.id),
            ]
        rows += [
            (selector.key.value, selector.namespace, selector.value, selector.environment, agent.id)
            for selector in agent.spec.match
        ]
    return pl.DataFrame(rows, schema=_SELECTOR_SCHEMA, orient="row").unique()


def match_identities(observed: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """`observed` with `agent_id`, `match_status`, `candidates` and `matched_by` added, rows in order.

    Reads the `IDENTITY_COLUMNS` present. `agent_id` is set only when exactly one agent matched;
    `candidates` lists the agents matched by the deciding key (two or more: ambiguous); `matched_by`
    names that key, and is null for an unregistered identity.
    """
    taken = [name for name in RESULT_COLUMNS if name in observed.columns]
    if taken:
        raise RegistryError(f"the observed frame already has {', '.join(taken)}: rename before matching")
    keyed = observed.with_columns(_identity_keys(observed))
    identities = keyed.select(_KEY_COLUMNS).unique().with_row_index("_identity")
    decided = _decisions(identities, selector_table(registry)).drop("_identity")
    joined = keyed.join(decided, on=_KEY_COLUMNS, how="left", nulls_equal=True, maintain_order="left")
    return joined.drop(_KEY_COLUMNS)


_KEY_COLUMNS = [f"_key_{name}" for name in IDENTITY_COLUMNS]


def _identity_keys(observed: pl.DataFrame) -> list[pl.Expr]:
    """Each identity column as text, absent or empty values as null, under a private name."""
    keys = []
    for name in IDENTITY_COLUMNS:
        value = pl.col(name).cast(pl.String) if name in observed.columns else pl.lit(None, dtype=pl.String)
        keys.append(pl.when(value != "").then(value).alias(f"_key_{name}"))
    return keys


def _decisions(identities: pl.DataFrame, selectors: pl.DataFrame) -> pl.DataFrame:
    """Per distinct identity: the agents of the strongest key that matched anything, and the verdict."""
    found = pl.concat([_tier_matches(identities, selectors, tier) for tier in _TIERS])
    strongest = found.filter(pl.col("_rank") == pl.col("_rank").min().over("_identity"))
    verdicts = strongest.group_by("_identity").agg(
        pl.col("agent_id").unique().sort().alias("candidates"), pl.col("_rank").first()
    )
    count = pl.col("candidates").list.len()
    return identities.join(verdicts, on="_identity", how="left").select(
        "_identity",
        *_KEY_COLUMNS,
        pl.when(count == 1).then(pl.col("candidates").list.first()).alias("agent_id"),
        pl.when(count == 1)
        .then(pl.lit(MatchStatus.REGISTERED.value))
        .when(count > 1)
        .then(pl.lit(MatchStatus.AMBIGUOUS.value))
        .otherwise(pl.lit(MatchStatus.UNREGISTERED.value))
        .alias("match_status"),
        pl.col("candidates").fill_null(pl.lit([], dtype=pl.List(pl.String))),
        pl.col("_rank")
        .replace_strict(
            {tier.rank: tier.matched_by.value for tier in _TIERS}, default=None, return_dtype=pl.String
        )
        .alias("matched_by"),
    )


def _tier_matches(identities: pl.DataFrame, selectors: pl.DataFrame, tier: _Tier) -> pl.DataFrame:
    """(_identity, _rank, agent_id) for every selector of this tier that an identity matches."""
    claimed = selectors.filter(pl.col("key_kind") == tier.selector).select(
        pl.col("key").alias("_sel_key"),
        pl.col("namespace").alias("_sel_namespace"),
        pl.col("environment").alias("_sel_environment"),
        "agent_id",
    )
    left_on, right_on = [f"_key_{tier.key}"], ["_sel_key"]
    if tier.namespace:  # a missing namespace must meet a selector without one: join nulls as equal
        left_on.append(f"_key_{tier.namespace}")
        right_on.append("_sel_namespace")
    present = identities.filter(pl.col(f"_key_{tier.key}").is_not_null())
    joined = present.join(claimed, left_on=left_on, right_on=right_on, how="inner", nulls_equal=True)
    if tier.narrowed_by_environment:
        environment = pl.col("_sel_environment")
        joined = joined.filter(environment.is_null() | (environment == pl.col("_key_environment")))
    return joined.select("_identity", pl.lit(tier.rank, dtype=pl.Int8).alias("_rank"), "agent_id")
