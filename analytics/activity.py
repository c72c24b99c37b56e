"""Agent activity per trace: one row per (trace, owning identity) saying what that agent did in it.

`trace_agents` sums a trace's spans by the identity that owns them — the one `owning_agents` bills
each span to: its agent span's identity keys, else the span's own — and gives each identity the
registry's verdict exactly as `attribute` gives it to calls, so a call's row in priced_calls and
its owner's row here always agree. The inventory and the findings rules read these rows instead
of scanning spans: what each agent ran on (hosts, services, SDKs, instrumentation scopes), what it
used (providers, models, endpoints, tools, data sources), what it cost, and whether it captured
prompt or response content.
"""

from __future__ import annotations

import json

import polars as pl

from analytics.attribution import identity_verdicts
from analytics.pricing import COST_DTYPE
from registry import IDENTITY_COLUMNS, Registry

__all__ = ["LIST_COLUMNS", "trace_agents"]

# list column → the span expression whose distinct values it holds, over which spans
_CALL = pl.col("_call")
LIST_COLUMNS = {
    "conversations": (pl.col("conversation_id"), None),
    "hosts": (pl.col("host_name"), None),
    "services": (
        pl.when(pl.col("_span_namespace").is_not_null() & (pl.col("_span_namespace") != ""))
        .then(pl.concat_str("_span_namespace", pl.lit("/"), "_span_service"))
        .otherwise(pl.col("_span_service")),
        None,
    ),
    "sdk_languages": (pl.col("sdk_language"), None),
    "scopes": (pl.col("scope_name"), None),
    "providers": (pl.col("provider"), _CALL),
    "models": (pl.coalesce("response_model", "request_model"), _CALL),
    "tools": (pl.col("tool_name"), None),
    "data_sources": (pl.col("data_source_id"), None),
    "endpoints": (pl.col("server_address"), _CALL),
}
"""Each list column of trace_agents: the span value it collects, and the spans it reads (None: all)."""

_SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "start_time",
    "status_code",
    "host_name",
    "service_namespace",
    "service_name",
    "sdk_language",
    "scope_name",
    "provider",
    "request_model",
    "response_model",
    "tool_name",
    "conversation_id",
    "data_source_id",
    "server_address",
    "resource_attributes",
    "content_captured",
)
_GROUP = ["trace_id", *IDENTITY_COLUMNS]
_VERDICT_COLUMNS = ("agent_id", "match_status", "observed_identity", "department_id", "cost_centre")


def trace_agents(
    spans: pl.DataFrame, owners: pl.DataFrame, calls: pl.DataFrame, registry: Registry
) -> pl.DataFrame:
    """One row per (trace, owning identity) of `spans`, with the columns of `trace_agents` (bar computed_at).

    `owners` is `owning_agents(spans)` (same rows, same order); `calls` are the priced call rows of
    the same spans (`trace_id`, `span_id`, `cost_usd`, `input_tokens`, `output_tokens`). Columns of
    `spans` the frame lacks count as null; `content_captured`, when missing, as false.
    """
    frame = _owned_spans(spans, owners, calls)
    resources, keys = _resources(frame)
    # one id per (trace, identity): the aggregations below group by one integer
    ids = frame.select(_GROUP).unique().with_row_index("_gid")
    frame = frame.with_columns(_resource=_resource_ids(frame, resources)).join(
        ids, on=_GROUP, how="left", nulls_equal=True, maintain_order="left"
    )
    groups = frame.group_by("_gid").agg(*_measures()).join(_samples(frame), on="_gid")
    for name, values in _lists(frame, keys).items():
        groups = groups.join(values, on="_gid", how="left").with_columns(
            pl.col(name).fill_null(pl.lit([], dtype=pl.List(pl.String)))
        )
    groups = groups.join(ids, on="_gid")
    identities = groups.select(IDENTITY_COLUMNS).unique()
    verdicts = identity_verdicts(identities, registry).select(*IDENTITY_COLUMNS, *_VERDICT_COLUMNS)
    rows = groups.join(verdicts, on=list(IDENTITY_COLUMNS), how="left", nulls_equal=True)
    return rows.select(
        "trace_id",
        pl.col("first_seen").dt.date().alias("day"),
        "first_seen",
        "last_seen",
        *_VERDICT_COLUMNS,
        *IDENTITY_COLUMNS,
        "spans",
        "agent_spans",
        "model_calls",
        "error_spans",
        "cost_usd",
        "unpriced_calls",
        "input_tokens",
        "output_tokens",
        *LIST_COLUMNS,
        "resource_keys",
        "content_captured",
        "sample_span_id",
    )


def _owned_spans(spans: pl.DataFrame, owners: pl.DataFrame, calls: pl.DataFrame) -> pl.DataFrame:
    """The spans' columns read here, with their owner's identity keys and, for calls, the call.

    The span's own service is kept as `_span_namespace` / `_span_service`: the identity keys (the
    owner's) take the plain names.
    """
    renamed = {"service_namespace": "_span_namespace", "service_name": "_span_service"}
    own = spans.select(
        (pl.col(name) if name in spans.columns else pl.lit(None, dtype=pl.String)).alias(
            renamed.get(name, name)
        )
        for name in _SPAN_COLUMNS
        if name != "content_captured"
    )
    captured = (
        spans["content_captured"].fill_null(False)
        if "content_captured" in spans.columns
        else pl.repeat(False, len(spans), eager=True)
    )
    own = own.with_columns(content_captured=captured)
    identity = owners.select("is_agent_span", *IDENTITY_COLUMNS)
    called = calls.select(
        "trace_id",
        "span_id",
        pl.col("cost_usd").cast(COST_DTYPE),
        pl.col("input_tokens").cast(pl.Int64).alias("_input_tokens"),
        pl.col("output_tokens").cast(pl.Int64).alias("_output_tokens"),
        _call=pl.lit(True),
    )
    joined = own.hstack(identity).join(called, on=["trace_id", "span_id"], how="left", maintain_order="left")
    return joined.with_columns(_call=pl.col("_call").fill_null(False))


def _measures() -> list[pl.Expr]:
    call = _CALL
    priced = pl.col("cost_usd").is_not_null()
    return [
        pl.col("start_time").min().alias("first_seen"),
        pl.col("start_time").max().alias("last_seen"),
        pl.len().cast(pl.Int64).alias("spans"),
        pl.col("is_agent_span").sum().cast(pl.Int64).alias("agent_spans"),
        call.sum().cast(pl.Int64).alias("model_calls"),
        (pl.col("status_code") == "error").sum().cast(pl.Int64).alias("error_spans"),
        # a sum over no priced call is unknown, not $0
        pl.when(priced.any()).then(pl.col("cost_usd").sum()).alias("cost_usd"),
        (call & ~priced).sum().cast(pl.Int64).alias("unpriced_calls"),
        pl.col("_input_tokens").sum().cast(pl.Int64).alias("input_tokens"),
        pl.col("_output_tokens").sum().cast(pl.Int64).alias("output_tokens"),
        pl.col("content_captured").any().alias("content_captured"),
    ]


def _samples(frame: pl.DataFrame) -> pl.DataFrame:
    """Per group, its sample span: its first agent span, else its first span (by start, then id).

    Only the four columns it needs are sorted: sorting the whole frame cost twice as much.
    """
    ordered = frame.select("_gid", "span_id", "is_agent_span", "start_time").sort(
        ~pl.col("is_agent_span"), "start_time", "span_id"
    )
    return ordered.group_by("_gid").agg(pl.col("span_id").first().alias("sample_span_id"))


def _lists(frame: pl.DataFrame, keys: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Per list column: (`_gid`, the group's distinct values sorted), for groups that have any.

    Each is a narrow frame of (group, value) pairs made distinct and sorted, then gathered per group:
    much cheaper than unique-and-sort inside one aggregation per group.
    """
    lists = {}
    for name, (value, among) in LIST_COLUMNS.items():
        pairs = frame.select("_gid", value.alias(name))
        if among is not None:
            pairs = pairs.filter(frame.select(among.alias("_among"))["_among"])
        lists[name] = _gathered(pairs.filter(pl.col(name).is_not_null() & (pl.col(name) != "")), name)
    lists["resource_keys"] = _resource_keys(frame.select("_gid", "_resource").unique(), keys)
    return lists


def _resource_keys(pairs: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """Per group with any: the sorted distinct attribute keys of its resources.

    Nearly every group runs on one resource, whose sorted keys are taken whole; only groups spanning
    several resources merge theirs. Gathering (group, key) pairs for every group instead sorted
    ~13 keys a group: most of a batch's list work.
    """
    several = pl.len().over("_gid") > 1
    sorted_keys = keys.sort("key").group_by("_resource").agg(pl.col("key").alias("resource_keys"))
    single = pairs.filter(~several).join(sorted_keys, on="_resource").select("_gid", "resource_keys")
    merged = pairs.filter(several).join(keys, on="_resource").select("_gid", resource_keys="key")
    return pl.concat([single, _gathered(merged, "resource_keys")])


def _gathered(pairs: pl.DataFrame, name: str) -> pl.DataFrame:
    """Per group of (`_gid`, value) pairs: its distinct values, sorted.

    Most list columns hold few distinct values a batch (hosts, models, tools): those are coded
    as an Enum whose categories are in sorted order, so that making pairs distinct and sorting
    them compares integers, not text (-25 % of the list work). Many distinct values (e.g.
    conversations) are sorted as text: the Enum would not pay for itself.
    """
    distinct = pairs[name].unique().drop_nulls()
    if len(distinct) * 4 > len(pairs):
        return pairs.unique().sort(name).group_by("_gid").agg(pl.col(name))
    coded = pairs.with_columns(pl.col(name).cast(pl.Enum(distinct.sort())))
    gathered = coded.unique().sort(name).group_by("_gid").agg(pl.col(name))
    return gathered.with_columns(pl.col(name).cast(pl.List(pl.String)))


def _resources(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The distinct resources (id, text) and their attribute keys (id, key): each parsed once."""
    resources = (
        frame.select(pl.col("resource_attributes").unique().drop_nulls())
        .with_row_index("_resource")
        .with_columns(pl.col("_resource").cast(pl.UInt32))
    )
    rows = [(resource, key) for resource, text in resources.iter_rows() for key in _object_keys(text)]
    keys = pl.DataFrame(rows, schema={"_resource": pl.UInt32, "key": pl.String}, orient="row")
    return resources, keys


def _object_keys(text: str) -> list[str]:
    try:
        parsed = json.loads(text)
    except ValueError:
        return []
    return list(parsed) if isinstance(parsed, dict) else []


def _resource_ids(frame: pl.DataFrame, resources: pl.DataFrame) -> pl.Series:
    joined = frame.select("resource_attributes").join(
        resources, on="resource_attributes", how="left", maintain_order="left"
    )
    return joined["_resource"]
