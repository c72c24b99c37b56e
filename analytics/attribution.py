"""Attribution: which agent made each model call, its department and cost centre, and what each agent cost.

Pure functions over Polars frames of spans (the warehouse's `spans` columns, ids as hex strings); the
jobs read and write the warehouse, this module only decides. The rules, after DESIGN "Agent identity":

* **Model calls** (`model_calls`). A span is a model call when its `operation` is one of
  `MODEL_CALL_OPERATIONS`, or when it carries usage (any of `USAGE_COLUMNS`) and its operation is
  unknown: null (legacy instrumentations name no operation but set a model and tokens) or outside the
  vocabulary. Agent, workflow, tool, retrieval and the other `NOT_MODEL_CALL_OPERATIONS` never count,
  even when they carry usage: that is their children's usage rolled up. When two instrumentations see
  one call (a framework's LLM span around the SDK's chat span), the spans nest: a model call with a
  usage-carrying model call beneath it is a wrapper and does not count, and a model call without
  usage inside another is a fragment of it and does not count either. Tokens are so counted once.
* **Owner** (`owning_agents`). A span belongs to the nearest enclosing `invoke_agent` span, itself
  when it is one, across service boundaries (a remote sub-agent's spans are its own). A parent that
  is not in the frame ends the walk (partial traces), and so does a loop of parents (malformed).
  One exception: a span exported with an ingest credential is never billed to an agent span exported
  under another credential, because the credential says for certain whose process made the call.
* **Identity**. A span owned by an agent span is identified by that agent span's keys (its
  `gen_ai.agent.id`, name, credential, resource `gen_ai.main_agent.id` and service); a span owned by
  none by its own. A sub-agent span nested in its supervisor's process that names an agent of its
  own does not inherit the process's credential and main agent id: those name the supervisor, and
  would otherwise claim every sub-agent's calls (the credential is matched first). The keys are then
  matched against the registry by `registry.match_identities`.
* **Costs** (`agent_span_costs`, `agent_costs`). Exclusive: the calls billed to the agent (span) itself.
  Inclusive: every call made beneath the agent span, its sub-agents' included; per agent, each call
  is counted once even when the agent appears twice in its chain (recursion). Summing exclusive
  cost over agents gives every call's cost exactly once.

The parent chain is walked without Python per span: ids become row numbers with one join, after
which each step is a gather (a positional self-join) and pointer jumping doubles the distance covered
per step, so a trace of depth d takes about log2(d) steps.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from registry import IDENTITY_COLUMNS, Registry, match_identities

COST_COLUMN = "cost_usd"  # what the pricing stage adds (Decimal(38, 12)); any numeric column will do
AGENT_OPERATION = "invoke_agent"
MODEL_CALL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "rerank"})
NOT_MODEL_CALL_OPERATIONS = frozenset(
    {
        AGENT_OPERATION,
        "create_agent",
        "invoke_workflow",
        "task",
        "execute_tool",
        "retrieval",
        "guardrail",
        "evaluate",
        "prompt",
    }
)
USAGE_COLUMNS = ("input_tokens", "output_tokens", "total_tokens")

# What `owning_agents` returns, per span.
OWNER_COLUMNS = (
    "trace_id",
    "span_id",
    "is_agent_span",
    "agent_span_id",  # the agent span billed (exclusive): itself, or the nearest enclosing one
    "enclosing_agent_span_id",  # the nearest invoke_agent span strictly above (inclusive roll-up)
    *IDENTITY_COLUMNS,  # the identity keys to match, named as registry.match_identities reads them
)
# What `attribute` adds to each call (the call's own `agent_id` column is renamed `span_agent_id`).
ATTRIBUTION_COLUMNS = (
    "agent_span_id",
    "enclosing_agent_span_id",
    "agent_id",
    "match_status",
    "matched_by",
    "candidates",
    "observed_identity",
    "department_id",
    "cost_centre",
)
# The per-agent key of `agent_costs`: a registered agent by id, anything else by what was observed.
AGENT_KEY_COLUMNS = ("agent_id", "match_status", "observed_identity")
MEASURES = ("calls", "unpriced_calls", *USAGE_COLUMNS)  # plus the cost column, named as given

_ROW = "_row"
_MAX_JUMPS = 64  # pointer jumping covers chains of 2**64 spans; only loops can get this far


# Model calls


def model_calls(spans: pl.DataFrame, *, parents: pl.Series | None = None) -> pl.DataFrame:
    """The rows of `spans` that are model calls, by the rule in the module docstring, in order.

    Reads `trace_id`, `span_id`, `parent_span_id`, `operation` and the `USAGE_COLUMNS` present.
    `parents` is `parent_rows(spans)` when the caller has it already.
    """
    flags = spans.select(candidate=_model_call_candidate(spans), usage=_carries_usage(spans))
    candidate, usage = flags["candidate"], flags["usage"]
    enclosing = _nearest_marked_ancestor(parent_rows(spans) if parents is None else parents, candidate)
    fragment = candidate & enclosing.is_not_null() & ~usage
    wrapper = _rows_marked(len(spans), _wrapper_rows(enclosing, candidate, usage))
    return spans.filter(candidate & ~fragment & ~wrapper)


def _model_call_candidate(spans: pl.DataFrame) -> pl.Expr:
    operation = pl.col("operation")
    named = operation.is_in(list(MODEL_CALL_OPERATIONS)).fill_null(False)
    excluded = operation.is_in(list(NOT_MODEL_CALL_OPERATIONS)).fill_null(False)
    return named | (~excluded & _carries_usage(spans))


def _carries_usage(spans: pl.DataFrame) -> pl.Expr:
    present = [pl.col(name).is_not_null() for name in USAGE_COLUMNS if name in spans.columns]
    return pl.any_horizontal(present) if present else pl.repeat(False, pl.len())


def _wrapper_rows(enclosing: pl.Series, candidate: pl.Series, usage: pl.Series) -> pl.Series:
    """Rows of model calls with a usage-carrying model call somewhere beneath them."""
    rows = pl.int_range(len(enclosing), dtype=pl.UInt32, eager=True)
    nested = pl.DataFrame({_ROW: rows, "up": enclosing, "usage": usage}).filter(
        candidate & enclosing.is_not_null()
    )
    links = nested.select(_ROW, "up")
    found = nested.filter("usage").select(pl.col("up").alias(_ROW)).unique()
    wrappers = found
    while not found.is_empty():  # up the nest; the anti-join ends a malformed loop
        found = (
            found.join(links, on=_ROW)
            .select(pl.col("up").alias(_ROW))
            .unique()
            .join(wrappers, on=_ROW, how="anti")
        )
        wrappers = pl.concat([wrappers, found])
    return wrappers[_ROW]


def _rows_marked(count: int, rows: pl.Series) -> pl.Series:
    return pl.repeat(False, count, eager=True).scatter(rows, True)


# The parent chain


def parent_rows(spans: pl.DataFrame) -> pl.Series:
    """Each span's parent as a row number of `spans`; null for a root, a parent not in the frame, a loop.

    `model_calls` and `owning_agents` both walk these links: a caller that runs both computes them
    once (the join of every span to its parent on the two ids is the dearer half of either walk).
    """
    rows = spans.select("trace_id", "span_id").with_row_index("_parent")
    # a span stored twice must not give its children two parents: the first copy stands for both
    # (checked first: ingest removes retries, and the check costs half of the dedupe)
    if rows.select(pl.struct("trace_id", "span_id").is_duplicated().any()).item():
        rows = rows.unique(subset=["trace_id", "span_id"], keep="first")
    children = spans.select("trace_id", pl.col("parent_span_id").alias("span_id"))
    parent = children.join(rows, on=["trace_id", "span_id"], how="left", maintain_order="left")["_parent"]
    return _loops_cut(parent)


def _loops_cut(parent: pl.Series) -> pl.Series:
    """`parent` with the links of spans on a loop of parents removed (malformed): each becomes a root.

    Spans whose chain reaches no root are on a loop or lead into one; peeling off, step by step, those
    that no such span names as its parent leaves the loops. Cutting them leaves a forest, so every walk
    ends and no span is its own ancestor.
    """
    ends = _nearest_marked_ancestor(parent, parent.is_null())
    looping = parent.is_not_null() & ends.is_null()
    rows = pl.int_range(len(parent), dtype=pl.UInt32, eager=True)
    while looping.any():
        on_loop = looping & rows.is_in(parent.filter(looping).implode())
        if (on_loop == looping).all():
            break
        looping = on_loop
    return pl.select(pl.when(looping).then(None).otherwise(parent)).to_series().alias(parent.name)


def _nearest_marked_ancestor(parent: pl.Series, marked: pl.Series) -> pl.Series:
    """Per row, the row of its nearest marked ancestor (not itself); null when the chain ends first.

    Pointer jumping: `hop` is an ancestor with no marked row between the row and it (inclusive).
    Each step a row either takes its hop's answer, when the hop has one, or jumps to the hop's hop.
    A row whose chain runs into a loop never gets an answer: the walk stops when a step settles no
    row, which in a loop-free chain cannot happen before every row is settled.
    """
    hop, is_marked = pl.col("hop"), pl.col("marked")
    state = pl.DataFrame({"hop": parent, "marked": marked}).select(
        "hop",
        found=pl.when(is_marked.gather(hop)).then(hop),
        done=hop.is_null() | is_marked.gather(hop).fill_null(False),
    )
    found, done = pl.col("found"), pl.col("done")
    for _ in range(_MAX_JUMPS):
        step = state.with_columns(
            settles=~done & done.gather(hop), hop_found=found.gather(hop), hop_hop=hop.gather(hop)
        )
        if not step["settles"].any():
            break
        state = step.select(
            hop=pl.when(~done & ~pl.col("settles")).then(pl.col("hop_hop")).otherwise(hop),
            found=pl.when(pl.col("settles")).then(pl.col("hop_found")).otherwise(found),
            done=done | pl.col("settles"),
        )
    return state["found"]


# Owners


# Keys that name the process a span came from: an agent span nested in another with the same ones
# runs in its supervisor's process.
_PROCESS_KEYS = ("credential_agent_id", "main_agent_id", "service_namespace", "service_name")


def owning_agents(spans: pl.DataFrame, *, parents: pl.Series | None = None) -> pl.DataFrame:
    """Per span of `spans`, in order: the agent span that owns it and the identity keys to match.

    Columns are `OWNER_COLUMNS`: `agent_span_id` is the agent span billed for the span (itself when
    it is an `invoke_agent` span; null when none encloses it, or when the span's ingest credential
    differs from that agent span's), `enclosing_agent_span_id` the nearest agent span strictly above
    it (null when none), and the `registry.IDENTITY_COLUMNS` are the keys of the billed agent span,
    or the span's own when it has none. Reads `trace_id`, `span_id`, `parent_span_id`, `operation`,
    `agent_id`, `agent_name`, `credential_agent_id`, `service_namespace`, `service_name`,
    `environment` and `resource_attributes` (for `gen_ai.main_agent.id`); missing ones count as null.
    `parents` is `parent_rows(spans)` when the caller has it already.
    """
    keys = _own_keys(spans)
    is_agent = spans.select((pl.col("operation") == AGENT_OPERATION).fill_null(False))["operation"]
    enclosing = _nearest_marked_ancestor(parent_rows(spans) if parents is None else parents, is_agent)
    frame = keys.with_columns(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW),
        is_agent_span=is_agent,
        _enclosing=enclosing,
    ).with_columns(_owner=pl.when("is_agent_span").then(pl.col(_ROW)).otherwise("_enclosing"))
    frame = frame.with_columns(_billed=_billed_owner(), **_as_owner_keys())
    identity_row = pl.coalesce("_billed", _ROW)
    return frame.select(
        "trace_id",
        "span_id",
        "is_agent_span",
        pl.col("span_id").gather(pl.col("_billed")).alias("agent_span_id"),
        pl.col("span_id").gather(pl.col("_enclosing")).alias("enclosing_agent_span_id"),
        *[pl.col(f"_owner_{name}").gather(identity_row).alias(name) for name in IDENTITY_COLUMNS],
    )


def _own_keys(spans: pl.DataFrame) -> pl.DataFrame:
    """Each span's own identity keys, with its own agent id and name told apart from the resource's."""
    resource = _resource_agent_keys(spans)
    frame = spans.select(
        "trace_id",
        "span_id",
        *[_text_column(spans, name) for name in _SPAN_KEYS],
    ).hstack(resource)
    agent_id, agent_name = pl.col("agent_id"), pl.col("agent_name")
    # The normaliser falls back to the resource's main agent for agent_id and agent_name; what
    # differs from the resource is what the span says about itself.
    return frame.with_columns(
        own_agent_id=pl.when(agent_id.ne_missing(pl.col("main_agent_id"))).then(agent_id),
        own_agent_name=pl.when(
            agent_name.ne_missing(pl.col("main_agent_name"))
            & agent_name.ne_missing(pl.col("application_name"))
        ).then(agent_name),
    )


_SPAN_KEYS = (
    "agent_id",
    "agent_name",
    "credential_agent_id",
    "service_namespace",
    "service_name",
    "environment",
)
_RESOURCE_KEYS = {
    "main_agent_id": "gen_ai.main_agent.id",
    "main_agent_name": "gen_ai.main_agent.name",
    "application_name": "gen_ai.application_name",
}


def _text_column(frame: pl.DataFrame, name: str) -> pl.Expr:
    """The column as text, null when the frame lacks it (older tables and test frames lack some)."""
    if name in frame.columns:
        return pl.col(name).cast(pl.String)
    return pl.lit(None, dtype=pl.String).alias(name)


def _resource_agent_keys(spans: pl.DataFrame) -> pl.DataFrame:
    """Per span, the resource's agent keys, parsed once per distinct resource (a fleet has few)."""
    if "resource_attributes" not in spans.columns:
        return pl.DataFrame(
            {name: pl.repeat(None, len(spans), dtype=pl.String, eager=True) for name in _RESOURCE_KEYS}
        )
    distinct = spans.select(pl.col("resource_attributes").unique().drop_nulls())
    text = pl.col("resource_attributes").cast(pl.String)  # the cost job reads it as an Enum
    parsed = distinct.with_columns(
        text.str.json_path_match(f'$["{attribute}"]').alias(name)
        for name, attribute in _RESOURCE_KEYS.items()
    )
    joined = spans.select("resource_attributes").join(
        parsed, on="resource_attributes", how="left", maintain_order="left"
    )
    return joined.select(list(_RESOURCE_KEYS))


def _billed_owner() -> pl.Expr:
    """The owner, unless the span came with an ingest credential other than the owner's."""
    credential = pl.col("credential_agent_id")
    same = credential.is_null() | credential.eq_missing(credential.gather(pl.col("_owner")))
    return pl.when(same).then(pl.col("_owner"))


def _as_owner_keys() -> dict[str, pl.Expr]:
    """The keys that identify each span when it is an owner, named `_owner_<identity column>`."""
    enclosing = pl.col("_enclosing")
    same_process = enclosing.is_not_null() & pl.all_horizontal(
        pl.col(name).eq_missing(pl.col(name).gather(enclosing)) for name in _PROCESS_KEYS
    )
    names_itself = pl.col("own_agent_id").is_not_null() | pl.col("own_agent_name").is_not_null()
    sub_agent = pl.col("is_agent_span") & same_process & names_itself
    return {
        "_owner_credential_agent_id": pl.when(~sub_agent).then(pl.col("credential_agent_id")),
        "_owner_gen_ai_agent_id": pl.col("own_agent_id"),
        "_owner_main_agent_id": pl.when(~sub_agent).then(pl.col("main_agent_id")),
        "_owner_agent_name": pl.when(sub_agent)
        .then(pl.col("own_agent_name"))
        .otherwise(pl.col("agent_name")),
        "_owner_service_namespace": pl.col("service_namespace"),
        "_owner_service_name": pl.col("service_name"),
        "_owner_environment": pl.col("environment"),
    }


# Attribution


def attribute(calls: pl.DataFrame, owners: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """`calls` with `ATTRIBUTION_COLUMNS` added, rows in order; any other column (the cost) passes through.

    `owners` is `owning_agents` over the spans the calls came from (every call must have its row).
    `agent_id` is the registered agent (null when unregistered or ambiguous), `candidates` and
    `matched_by` say how the registry decided, `observed_identity` shows the keys that were matched,
    and `cost_centre` is the agent's own, else its department's. The call's own `agent_id` column
    (the span attribute) is kept as `span_agent_id`.
    """
    taken = [name for name in ATTRIBUTION_COLUMNS if name in calls.columns and name != "agent_id"]
    if taken:
        raise ValueError(f"the calls already have {', '.join(taken)}: attribute unattributed calls")
    if "agent_id" in calls.columns:
        calls = calls.rename({"agent_id": "span_agent_id"})
    keyed = calls.join(_owner_lookup(owners), on=["trace_id", "span_id"], how="left", maintain_order="left")
    missing = keyed["_owned"].null_count()
    if missing:
        raise ValueError(
            f"{missing} calls have no row in owners: pass owning_agents() of the spans the calls came from"
        )
    return _with_verdicts(keyed, registry).select(*calls.columns, *ATTRIBUTION_COLUMNS)


_WHO = [f"_who_{name}" for name in IDENTITY_COLUMNS]


def _owner_lookup(owners: pl.DataFrame) -> pl.DataFrame:
    return owners.select(
        "trace_id",
        "span_id",
        "agent_span_id",
        "enclosing_agent_span_id",
        *[pl.col(name).alias(who) for name, who in zip(IDENTITY_COLUMNS, _WHO, strict=True)],
        _owned=pl.lit(True),
    )


def _with_verdicts(keyed: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """`keyed` (identities in the `_WHO` columns) with the registry's verdict for each, rows in order."""
    verdicts = _identity_verdicts(keyed, registry)
    return keyed.join(verdicts, on=_WHO, how="left", nulls_equal=True, maintain_order="left")


def identity_verdicts(identities: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """`identities` (with `registry.IDENTITY_COLUMNS`) plus the registry's verdict, rows in order.

    Adds `agent_id`, `match_status`, `matched_by`, `candidates`, `observed_identity`, `department_id`
    and `cost_centre`, decided exactly as `attribute` decides them for calls of the same identity.
    """
    who = identities.with_columns(
        pl.col(name).alias(who) for name, who in zip(IDENTITY_COLUMNS, _WHO, strict=True)
    )
    return _with_verdicts(who, registry).drop(_WHO)


def _identity_verdicts(keyed: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """Per distinct identity (the `_WHO` columns): the registry's verdict, department and cost centre."""
    identities = keyed.select(_WHO).unique()
    observed = identities.select(
        pl.col(who).alias(name) for name, who in zip(IDENTITY_COLUMNS, _WHO, strict=True)
    )
    verdicts = match_identities(observed, registry).select(
        "agent_id", "match_status", "matched_by", "candidates", observed_identity=_observed_identity()
    )
    return (
        identities.hstack(verdicts)
        .join(agent_departments(registry), on="agent_id", how="left")
        .select(*_WHO, *ATTRIBUTION_COLUMNS[2:])
    )


def _observed_identity() -> pl.Expr:
    """The identity keys as readable text, e.g. `agent.name=triage, service=shop/checkout, env=prod`."""

    def part(label: str, value: pl.Expr) -> pl.Expr:
        return pl.when(value != "").then(pl.lit(f"{label}=") + value)

    service = pl.concat_str(
        [pl.when(pl.col(name) != "").then(pl.col(name)) for name in ("service_namespace", "service_name")],
        separator="/",
        ignore_nulls=True,
    )
    text = pl.concat_str(
        [
            part("credential", pl.col("credential_agent_id")),
            part("agent.id", pl.col("gen_ai_agent_id")),
            part("main_agent.id", pl.col("main_agent_id")),
            part("agent.name", pl.col("agent_name")),
            part("service", service),
            part("env", pl.col("environment")),
        ],
        separator=", ",
        ignore_nulls=True,
    )
    return pl.when(text != "").then(text).otherwise(pl.lit("(no identity)"))


def agent_departments(registry: Registry) -> pl.DataFrame:
    """Per registered agent: `agent_id`, `department_id`, `cost_centre` (its own, else its department's)."""
    rows = []
    for agent in registry.agents.values():
        department = registry.departments.get(agent.spec.department)
        inherited = department.spec.cost_centre if department else None
        rows.append((agent.id, agent.spec.department, agent.spec.cost_centre or inherited))
    schema = {"agent_id": pl.String, "department_id": pl.String, "cost_centre": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


# Costs


def agent_span_costs(
    attributed: pl.DataFrame, owners: pl.DataFrame, registry: Registry, *, cost: str = COST_COLUMN
) -> pl.DataFrame:
    """Per agent span: who it is, its exclusive and its inclusive calls, tokens and cost.

    Columns: `trace_id`, `agent_span_id`, `parent_agent_span_id`, `agent_id`, `match_status`,
    `observed_identity`, `department_id`, `cost_centre`, then `exclusive_<m>` and `inclusive_<m>`
    for each of `MEASURES` and the cost column (`exclusive_cost_usd`, ...). Every agent span in
    `owners` has a row, with zeros when it made no calls. `attributed` is `attribute`'s output.
    """
    groups = _call_groups(attributed, cost)
    exclusive = _summed(
        groups.filter(pl.col("agent_span_id").is_not_null()),
        ["trace_id", "agent_span_id"],
        cost,
        "exclusive_",
    )
    beneath = groups.join(
        _agent_ancestry(owners),
        left_on=["trace_id", "enclosing_agent_span_id"],
        right_on=["trace_id", "agent_span_id"],
    )
    inclusive = _summed(beneath, ["trace_id", "ancestor_span_id"], cost, "inclusive_").rename(
        {"ancestor_span_id": "agent_span_id"}
    )
    spans = _agent_spans(owners, registry).select(
        "trace_id",
        pl.col("span_id").alias("agent_span_id"),
        pl.col("enclosing_agent_span_id").alias("parent_agent_span_id"),
        "agent_id",
        "match_status",
        "observed_identity",
        "department_id",
        "cost_centre",
    )
    joined = spans.join(exclusive, on=["trace_id", "agent_span_id"], how="left", maintain_order="left").join(
        inclusive, on=["trace_id", "agent_span_id"], how="left", maintain_order="left"
    )
    return _zero_filled(joined, [*exclusive.columns[2:], *inclusive.columns[2:]])


def agent_costs(
    attributed: pl.DataFrame, owners: pl.DataFrame, registry: Registry, *, cost: str = COST_COLUMN
) -> pl.DataFrame:
    """Per agent: exclusive and inclusive calls, tokens and cost, each call counted once per agent.

    An agent is a registered agent (`agent_id`) or, for unregistered and ambiguous identities, the
    `observed_identity` (null for registered agents). Columns: `AGENT_KEY_COLUMNS`, `department_id`,
    `cost_centre`, then `exclusive_<m>` and `inclusive_<m>` as in `agent_span_costs`. Calls that no
    agent span encloses count for the agent their own identity names; an agent with agent spans but
    no calls has a row of zeros.
    """
    groups = _call_groups(attributed, cost).with_row_index("_group")
    key = list(AGENT_KEY_COLUMNS)
    exclusive = _summed(groups, key, cost, "exclusive_")
    spans = _agent_spans(owners, registry).select("trace_id", "span_id", *_agent_key())
    enclosing_agents = (
        groups.join(
            _agent_ancestry(owners),
            left_on=["trace_id", "enclosing_agent_span_id"],
            right_on=["trace_id", "agent_span_id"],
        )
        .join(
            spans,
            left_on=["trace_id", "ancestor_span_id"],
            right_on=["trace_id", "span_id"],
            suffix="_ancestor",
        )
        .select("_group", *[pl.col(f"{name}_ancestor").alias(name) for name in key])
    )
    # a call's agent and every agent above it, each once: recursion must not count a call twice
    memberships = pl.concat([groups.select("_group", *key), enclosing_agents]).unique()
    measures = groups.select("_group", *_measure_names(cost))
    inclusive = _summed(memberships.join(measures, on="_group"), key, cost, "inclusive_")
    # every agent seen: by its calls, or by its agent spans alone (it ran but spent nothing)
    agents = pl.concat([groups.select(key), spans.select(key)]).unique()
    joined = (
        agents.join(exclusive, on=key, how="left", nulls_equal=True)
        .join(inclusive, on=key, how="left", nulls_equal=True)
        .join(agent_departments(registry), on="agent_id", how="left")
        .select(*key, "department_id", "cost_centre", *exclusive.columns[3:], *inclusive.columns[3:])
        .sort(key, nulls_last=True)
    )
    return _zero_filled(joined, [*exclusive.columns[3:], *inclusive.columns[3:]])


def _agent_key() -> list[pl.Expr]:
    return [
        pl.col("agent_id"),
        pl.col("match_status"),
        pl.when(pl.col("agent_id").is_null()).then(pl.col("observed_identity")).alias("observed_identity"),
    ]


def _measure_names(cost: str) -> list[str]:
    return [*MEASURES, cost]


def _call_groups(attributed: pl.DataFrame, cost: str) -> pl.DataFrame:
    """Calls summed by the agent span enclosing them, the agent span billed and the agent."""
    if cost not in attributed.columns:
        raise ValueError(
            f"the calls have no {cost!r} column: price them first, or name the cost column with cost=..."
        )
    usage = [
        (pl.col(name) if name in attributed.columns else pl.lit(None, dtype=pl.Int64)).sum().alias(name)
        for name in USAGE_COLUMNS
    ]
    return (
        attributed.with_columns(_agent_key())
        .group_by("trace_id", "enclosing_agent_span_id", "agent_span_id", *AGENT_KEY_COLUMNS)
        .agg(
            pl.len().cast(pl.Int64).alias("calls"),
            pl.col(cost).is_null().sum().cast(pl.Int64).alias("unpriced_calls"),
            *usage,
            pl.col(cost).sum(),
        )
    )


def _summed(groups: pl.DataFrame, by: list[str], cost: str, prefix: str) -> pl.DataFrame:
    return groups.group_by(by).agg(pl.col(name).sum().alias(prefix + name) for name in _measure_names(cost))


def _zero_filled(frame: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """Measures of agents or spans without calls are zero, not null: nothing was spent."""
    return frame.with_columns(pl.col(name).fill_null(pl.lit(0).cast(frame.schema[name])) for name in columns)


def _agent_spans(owners: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """Every agent span of `owners`, attributed like a call (an agent span is its own owner)."""
    return _with_verdicts(_owner_lookup(owners.filter("is_agent_span")), registry)


def _agent_ancestry(owners: pl.DataFrame) -> pl.DataFrame:
    """(trace_id, agent_span_id, ancestor_span_id): each agent span with itself and every agent span above."""
    pairs = owners.filter("is_agent_span").select(
        "trace_id", pl.col("span_id").alias("agent_span_id"), pl.col("span_id").alias("ancestor_span_id")
    )
    edges = owners.filter(pl.col("is_agent_span") & pl.col("enclosing_agent_span_id").is_not_null()).select(
        "trace_id", pl.col("span_id").alias("_below"), pl.col("enclosing_agent_span_id").alias("_above")
    )
    frontier = pairs
    while not frontier.is_empty():  # the parent links form a forest (loops are cut), so this ends
        frontier = frontier.join(
            edges, left_on=["trace_id", "ancestor_span_id"], right_on=["trace_id", "_below"]
        ).select("trace_id", "agent_span_id", pl.col("_above").alias("ancestor_span_id"))
        pairs = pl.concat([pairs, frontier])
    return pairs
