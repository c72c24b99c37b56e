"""All SQL of the cost job and of spend reports: read new traces, replace their priced calls, sum spend.

The cost job reads incrementally: the traces that received spans after its watermark (the writer's
`ingest_seq`), then every span of those traces, with only the columns attribution and pricing read,
so a run costs in proportion to new data, not to history. Each batch's read is bounded — by a range
of `ingest_seq` in a full run, by start time for the older spans of touched traces — so that zone
maps skip the row groups of other batches instead of decompressing the whole table each time. It
writes a trace's priced calls, its trace_agents rows, the daily_costs sums they change and its new
watermark in one transaction: a run that fails leaves the previous results and watermark, and a
re-run replaces rather than adds. Spend reports read the daily sums. Values travel as parameters
only; the few SQL fragments chosen by name come from constant tables in this module, never from input."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

Cursor = duckdb.DuckDBPyConnection

COST_JOB = "costs"

# What attribution (owners, identity keys, model-call detection) and pricing read of a span.
SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_time",
    "operation",
    "provider",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "reported_cost_usd",
    "agent_id",
    "agent_name",
    "credential_agent_id",
    "service_namespace",
    "service_name",
    "environment",
    "resource_attributes",
    # read for trace_agents, the per-trace agent activity
    "status_code",
    "host_name",
    "sdk_language",
    "scope_name",
    "tool_name",
    "conversation_id",
    "data_source_id",
    "server_address",
    "content_captured",
)

# The columns of priced_calls, in table order: the frame given to replace_priced_calls has them all.
PRICED_CALL_COLUMNS = (
    "trace_id",
    "span_id",
    "start_time",
    "day",
    "agent_id",
    "match_status",
    "observed_identity",
    "department_id",
    "cost_centre",
    "provider",
    "model",
    "priced_provider",
    "priced_model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "price_source",
    "unpriced_reason",
    "reported_cost_mismatch",
    "environment",  # 011: the call span's deployment environment
)

# The columns of trace_agents, in table order but for computed_at: the frame given to
# replace_priced_calls as `agents` has them all.
TRACE_AGENT_COLUMNS = (
    "trace_id",
    "day",
    "first_seen",
    "last_seen",
    "agent_id",
    "match_status",
    "observed_identity",
    "department_id",
    "cost_centre",
    "credential_agent_id",
    "gen_ai_agent_id",
    "main_agent_id",
    "agent_name",
    "service_namespace",
    "service_name",
    "environment",
    "spans",
    "agent_spans",
    "model_calls",
    "error_spans",
    "cost_usd",
    "unpriced_calls",
    "input_tokens",
    "output_tokens",
    "conversations",
    "hosts",
    "services",
    "sdk_languages",
    "scopes",
    "providers",
    "models",
    "tools",
    "data_sources",
    "endpoints",
    "resource_keys",
    "content_captured",
    "sample_span_id",
)


# Reading new spans


_WATERMARK = "SELECT watermark FROM job_state WHERE job = $job"


def job_watermark(cur: Cursor, job: str = COST_JOB) -> int:
    """The last `ingest_seq` the job has fully processed; 0 before its first run."""
    rows = cur.execute(_WATERMARK, {"job": job}).fetchall()
    return rows[0][0] if rows else 0


_COLUMN_LIST = ", ".join(SPAN_COLUMNS)

# Reading in batches of whole traces


@dataclass(frozen=True)
class ReadPlan:
    """What one run reads: traces touched in (`watermark`, `high`], split into `batches` batches.

    `high` is the highest `ingest_seq` when the run began: spans committed meanwhile are left to the
    next run, whose watermark starts at `high`. `spans` estimates how many spans the run reads (the
    spans after the watermark; a full run's every span). `traces` has one row per trace the run
    reads: its `batch`, and the bounds that let each batch's read skip the row groups of others —
    `first_seq`/`last_seq`, the range of `ingest_seq` its spans lie in, and `since`, a start time no
    span of it precedes (see `plan_read`).
    """

    watermark: int
    high: int
    spans: int
    batches: int
    traces: pl.DataFrame = field(compare=False, repr=False)

    @property
    def full(self) -> bool:
        return self.watermark == 0


_PLAN = """
SELECT coalesce(max(ingest_seq), 0) AS high, count(*) FILTER (WHERE ingest_seq > $watermark) AS new_spans
FROM spans
"""
# A full run knows each trace's range of ingest_seq: one pass over two narrow columns.
_FULL_TRACES = """
SELECT trace_id, min(ingest_seq) AS first_seq, max(ingest_seq) AS last_seq, count(*) AS spans,
       NULL::TIMESTAMP_NS AS since
FROM spans WHERE ingest_seq <= $high GROUP BY trace_id
"""
# An incremental run reads the traces touched since the watermark, whose older spans may lie anywhere
# in history (a late span). Bounding them by time lets zone maps skip the rest: every span of a
# trace derived before starts no earlier than the first_seen the trace's trace_agents rows recorded,
# and every new one no earlier than the new spans' own minimum.
_TOUCHED_TRACES = """
WITH touched AS (
    SELECT trace_id, min(ingest_seq) AS first_seq, count(*) AS spans, min(start_time) AS since
    FROM spans WHERE ingest_seq > $watermark AND ingest_seq <= $high GROUP BY trace_id
), derived AS (
    SELECT trace_id, min(first_seen) AS first_seen FROM trace_agents
    WHERE trace_id IN (SELECT trace_id FROM touched) GROUP BY trace_id
)
SELECT t.trace_id, t.first_seq, $high::BIGINT AS last_seq, t.spans,
       CASE WHEN d.first_seen < t.since THEN d.first_seen ELSE t.since END AS since
FROM touched t LEFT JOIN derived d USING (trace_id)
"""


def plan_read(cur: Cursor, watermark: int, *, batch_spans: int) -> ReadPlan:
    """The plan of a run from `watermark` (0: every trace), in batches of about `batch_spans` spans.

    Traces are taken in the order of their first span's `ingest_seq` and cut into batches of about
    `batch_spans` spans (a trace is never split), so a full run's batch reads a narrow range of
    `ingest_seq`: the row groups of other batches are skipped, not decompressed. A trace whose spans
    stretch over more than a batch's width of ingest_seq (a span that arrived much later) would widen
    its batch's range: such traces go together in a last batch of their own.
    """
    high, new_spans = cur.execute(_PLAN, {"watermark": watermark}).fetchall()[0]
    high = max(high, watermark)
    query = _FULL_TRACES if watermark == 0 else _TOUCHED_TRACES
    params = {"high": high} if watermark == 0 else {"high": high, "watermark": watermark}
    traces = _batched(cur.sql(query, params=params).pl(), max(1, batch_spans), full=watermark == 0)
    batches = int(traces["batch"].max()) + 1 if len(traces) else 1  # type: ignore[operator]
    return ReadPlan(watermark=watermark, high=high, spans=new_spans, batches=batches, traces=traces)


def _batched(traces: pl.DataFrame, batch_spans: int, *, full: bool) -> pl.DataFrame:
    """`traces` with a `batch` column: consecutive by first span, about `batch_spans` spans each."""
    traces = traces.sort("first_seq", "trace_id")
    batch = (pl.col("spans").cum_sum() - pl.col("spans")) // batch_spans
    traces = traces.with_columns(batch=batch)
    if full and len(traces):
        count = int(traces["batch"].max()) + 1  # type: ignore[operator]
        width = -(-(int(traces["last_seq"].max()) - int(traces["first_seq"].min()) + 1) // count)  # type: ignore[operator]
        stretched = (pl.col("last_seq") - pl.col("first_seq")) > width
        traces = traces.with_columns(batch=pl.when(stretched).then(count).otherwise("batch"))
    # numbered densely: a batch is never empty
    return traces.with_columns(pl.col("batch").rank("dense").cast(pl.Int64) - 1)


# A span's resource is read as its key; the batch's few distinct texts follow (`_with_resource_texts`).
_READ_COLUMNS = _COLUMN_LIST.replace("resource_attributes", "resource_id")
_SPANS_OF_BATCH = f"""
SELECT {_READ_COLUMNS}, ingest_seq FROM spans
WHERE ingest_seq BETWEEN $low AND $high AND trace_id IN (SELECT trace_id FROM _batch_read)
"""  # noqa: S608 - composed of constant SQL only
_RESOURCE_TEXTS = """
SELECT resource_id, resource_attributes FROM resources
WHERE resource_id IN (SELECT resource_id FROM _batch_resources)
"""
# an incremental batch: its traces' older spans are bounded by time, not by ingest_seq
_SPANS_SINCE = f"{_SPANS_OF_BATCH} AND start_time >= $since"
# Python datetimes hold microseconds: a bound taken from nanosecond times is widened by one
_MICROSECOND = timedelta(microseconds=1)


def spans_of_batch(cur: Cursor, plan: ReadPlan, batch: int) -> pl.DataFrame:
    """Every span (`SPAN_COLUMNS`) of the traces of batch `batch` of `plan`.

    A span stored twice (a retry the writer did not catch) is read once: its first copy.
    """
    traces = plan.traces.filter(pl.col("batch") == batch)
    if plan.full:
        query = _SPANS_OF_BATCH
        params = {"low": traces["first_seq"].min(), "high": traces["last_seq"].max()}
    else:
        query = _SPANS_SINCE
        since = traces["since"].min()  # None when no trace was touched: then nothing is read
        params = {"low": 0, "high": plan.high, "since": None if since is None else since - _MICROSECOND}  # type: ignore[operator]
    with _registered(cur, "_batch_read", traces.select("trace_id")):
        frame = cur.sql(query, params=params).pl()
    return _with_resource_texts(cur, _first_copies(frame))


def _with_resource_texts(cur: Cursor, frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with `resource_attributes`, an Enum of its resources' texts, in place of `resource_id`.

    The ~450-byte text of a span's resource repeats on every span of it: reading it per span made a
    400k-span batch carry 180 MB of copies, hashed again wherever the job groups by resource. As an
    Enum each distinct text is held once and rows hold a small integer. Keys and texts are one to
    one (the key is a digest of the text), so the texts are distinct categories.
    """
    with _registered(cur, "_batch_resources", frame.select(pl.col("resource_id").unique().drop_nulls())):
        texts = cur.sql(_RESOURCE_TEXTS).pl()
    texts = texts.with_columns(pl.col("resource_attributes").cast(pl.Enum(texts["resource_attributes"])))
    return frame.join(texts, on="resource_id", how="left", maintain_order="left").drop("resource_id")


def _first_copies(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` without its `ingest_seq`, each (trace_id, span_id) once: the copy stored first.

    Checked before it is done: the writer removes retries, so there is usually nothing to remove.
    """
    if frame.select(pl.struct("trace_id", "span_id").is_duplicated().any()).item():
        frame = frame.sort("ingest_seq", maintain_order=True).unique(
            subset=["trace_id", "span_id"], keep="first", maintain_order=True
        )
    return frame.drop("ingest_seq")


@contextlib.contextmanager
def _registered(cur: Cursor, name: str, frame: pl.DataFrame) -> Iterator[None]:
    """`frame` visible to SQL as the view `name` for the block: Arrow, not a list parameter, which
    DuckDB would convert value by value. Strings go as plain Arrow strings, not Polars' string views:
    DuckDB reads those ~40 % faster (an INSERT of 200k priced calls: 0.68 → 0.41 s)."""
    cur.register(name, frame.to_arrow(compat_level=pl.CompatLevel.oldest()))
    try:
        yield
    finally:
        cur.unregister(name)


# Writing derived rows


# The tables a trace's derivation fills, each rewritten a whole trace at a time: table → columns.
_DERIVED = {"priced_calls": PRICED_CALL_COLUMNS, "trace_agents": TRACE_AGENT_COLUMNS}
# A batch's spans lose their priced call rows, and its traces their trace_agents rows, before the
# new are inserted. Every such row starts between the first and the last start time of the spans
# read (`since`, `until`), so zone maps bound the scan to a few row groups. A call is deleted only
# when its own span was read again: the calls of spans that retention has deleted stay, even when
# the rest of their trace is derived again (cost facts outlive raw telemetry; a trace exported in
# parts can lose its first parts to retention before its last part arrives). A trace_agents row is
# replaced when any of its trace's spans remains.
_DAILY_KEYS = (
    "day",
    "agent_id",
    "match_status",
    "observed_identity",
    "department_id",
    "cost_centre",
    "provider",
    "model",
    "environment",
)
_DAILY_TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_DELETE = {
    "priced_calls": f"""
DELETE FROM priced_calls USING _batch_spans AS read
WHERE priced_calls.start_time BETWEEN $since AND $until
  AND priced_calls.trace_id = read.trace_id AND priced_calls.span_id = read.span_id
RETURNING {", ".join(_DAILY_KEYS)}, cost_usd, {", ".join(_DAILY_TOKENS)}
""",  # noqa: S608 - composed of constant SQL only
    "trace_agents": """
DELETE FROM trace_agents
WHERE last_seen >= $since AND first_seen <= $until AND trace_id IN (SELECT trace_id FROM _batch_traces)
""",
}
_INSERT = {
    table: f"""
INSERT INTO {table} ({", ".join(columns)}, computed_at)
SELECT {", ".join(columns)}, now() FROM _incoming_{table}
"""  # noqa: S608 - composed of constant SQL only
    for table, columns in _DERIVED.items()
}
_ADVANCE = """
INSERT INTO job_state (job, watermark, last_run_at, last_duration_s, last_error, inputs_digest)
VALUES ($job, $watermark, now(), $duration, NULL, $digest)
ON CONFLICT (job) DO UPDATE SET watermark = excluded.watermark, last_run_at = excluded.last_run_at,
    last_duration_s = excluded.last_duration_s, last_error = NULL, inputs_digest = excluded.inputs_digest
"""

# daily_costs follows priced_calls: the calls deleted count negatively, those inserted positively, and
# the days touched are summed again with their stored rows; a key left with no call goes.
_KEYS = ", ".join(_DAILY_KEYS)
_CALL_DELTA = (
    f"{_KEYS}, {{sign}} * coalesce(cost_usd, 0) AS cost, {{sign}} AS calls,"
    f" {{sign}} * (cost_usd IS NULL)::BIGINT AS unpriced_calls, "
    + ", ".join(f"{{sign}} * coalesce({name}, 0) AS {name}" for name in _DAILY_TOKENS)
)
_MERGE_DAILY = f"""
CREATE OR REPLACE TEMP TABLE _daily_merged AS
WITH delta AS (
    SELECT {_CALL_DELTA.format(sign="-1")} FROM _deleted_calls
    UNION ALL
    SELECT {_CALL_DELTA.format(sign="1")} FROM _incoming_priced_calls
), days AS (SELECT DISTINCT day FROM delta)
SELECT {_KEYS}, sum(cost) AS cost, sum(calls)::BIGINT AS calls, sum(unpriced_calls)::BIGINT AS unpriced_calls,
       {", ".join(f"sum({name})::BIGINT AS {name}" for name in _DAILY_TOKENS)}
FROM (
    SELECT * FROM delta
    UNION ALL
    SELECT {_KEYS}, coalesce(cost_usd, 0), calls, unpriced_calls, {", ".join(_DAILY_TOKENS)}
    FROM daily_costs WHERE day IN (SELECT day FROM days)
)
GROUP BY ALL
"""  # noqa: S608 - composed of constant SQL only
_REPLACE_DAILY = (
    "DELETE FROM daily_costs WHERE day IN (SELECT DISTINCT day FROM _daily_merged)",
    f"""
INSERT INTO daily_costs ({_KEYS}, cost_usd, calls, unpriced_calls, {", ".join(_DAILY_TOKENS)})
SELECT {_KEYS}, CASE WHEN calls > unpriced_calls THEN cost END, calls, unpriced_calls,
       {", ".join(_DAILY_TOKENS)}
FROM _daily_merged WHERE calls > 0
""",  # noqa: S608 - composed of constant SQL only
    "DROP TABLE _daily_merged",
)


def _replace_rows(cur: Cursor, spans: pl.DataFrame, rows: pl.DataFrame, agents: pl.DataFrame) -> None:
    """Inside the caller's transaction: the spans' derived rows replaced, daily_costs kept equal."""
    deleted = rows.select(*_DAILY_KEYS, "cost_usd", *_DAILY_TOKENS).clear()
    times = spans["start_time"]
    if len(spans) and times.null_count() < len(times):
        params = {"since": times.min() - _MICROSECOND, "until": times.max() + _MICROSECOND}  # type: ignore[operator]
        read = spans.select(pl.col("trace_id", "span_id").cast(pl.String))
        with (
            _registered(cur, "_batch_spans", read),
            _registered(cur, "_batch_traces", read.select(pl.col("trace_id").unique())),
        ):
            # a DML statement through sql() runs at once; its relation holds what RETURNING gave
            deleted = cur.sql(_DELETE["priced_calls"], params=params).pl()
            cur.execute(_DELETE["trace_agents"], params)
    with (
        _registered(cur, "_deleted_calls", deleted),  # type: ignore[arg-type]
        _registered(cur, "_incoming_priced_calls", rows.select(PRICED_CALL_COLUMNS)),
        _registered(cur, "_incoming_trace_agents", agents.select(TRACE_AGENT_COLUMNS)),
    ):
        for table, frame in (("priced_calls", rows), ("trace_agents", agents)):
            if len(frame):
                cur.execute(_INSERT[table])
        if len(rows) or len(deleted):
            cur.execute(_MERGE_DAILY)
            for statement in _REPLACE_DAILY:
                cur.execute(statement)


_MARK_FULL_RUN = """
INSERT INTO job_state (job, watermark, last_run_at, last_duration_s, last_error, inputs_digest)
VALUES ($job, 0, NULL, NULL, NULL, NULL)
ON CONFLICT (job) DO UPDATE SET inputs_digest = NULL
"""


def replace_batch(
    cur: Cursor,
    plan: ReadPlan,
    spans: pl.DataFrame,
    frame: pl.DataFrame,
    agents: pl.DataFrame,
    *,
    finish: bool,
    duration_s: float = 0.0,
    inputs_digest: str | None = None,
    job: str = COST_JOB,
) -> None:
    """In one transaction: replace one batch's derived rows; when `finish`, advance the watermark.

    The spans read (`trace_id`, `span_id`, `start_time`) lose their rows in priced_calls and their
    traces theirs in trace_agents (see `_DELETE`), and `frame` (`PRICED_CALL_COLUMNS`)
    and `agents` (`TRACE_AGENT_COLUMNS`) are inserted; daily_costs moves with priced_calls. Until a
    full run finishes its inputs digest is cleared: a full run that fails part-way is redone in full
    by the next run. The watermark moves only with the last batch, so a failure makes the next run
    read all again.
    """
    cur.execute("BEGIN")
    try:
        _replace_rows(cur, spans, frame, agents)
        if finish:
            advance = {"job": job, "watermark": plan.high, "duration": duration_s, "digest": inputs_digest}
            cur.execute(_ADVANCE, advance)
        elif plan.full:
            cur.execute(_MARK_FULL_RUN, {"job": job})
        cur.execute("COMMIT")
    except BaseException:
        _roll_back(cur)
        raise


_RECORD_FAILURE = """
INSERT INTO job_state (job, watermark, last_run_at, last_duration_s, last_error)
VALUES ($job, 0, now(), $duration, $error)
ON CONFLICT (job) DO UPDATE SET last_run_at = excluded.last_run_at,
    last_duration_s = excluded.last_duration_s, last_error = excluded.last_error
"""


def record_job_failure(cur: Cursor, error: str, *, duration_s: float, job: str = COST_JOB) -> None:
    """Note a failed run in job_state, keeping the watermark of the last successful one."""
    cur.execute(_RECORD_FAILURE, {"job": job, "duration": duration_s, "error": error})


_JOB_STATE = """
SELECT job, watermark, last_run_at, last_duration_s, last_error, inputs_digest FROM job_state WHERE job = $job
"""


def job_state(cur: Cursor, job: str = COST_JOB) -> dict[str, Any] | None:
    """The job's watermark, its last run (when, how long, the error if it failed) and the digest of
    the inputs of its last successful run; None if never run."""
    rows = cur.execute(_JOB_STATE, {"job": job}).fetchall()
    if not rows:
        return None
    keys = ("job", "watermark", "last_run_at", "last_duration_s", "last_error", "inputs_digest")
    return dict(zip(keys, rows[0], strict=True))


def _roll_back(cur: Cursor) -> None:
    with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already ended the transaction
        cur.execute("ROLLBACK")


# Spend


SPEND_DIMENSIONS = {
    "department": "department_id",
    "agent": "coalesce(agent_id, observed_identity)",
    "model": "model",
    "provider": "provider",
    "cost_centre": "cost_centre",
    "day": "day",
    "environment": "environment",
}
"""What spend can be grouped by → the constant SQL expression of its key."""

_SPEND_TEMPLATE = """
SELECT {key} AS key,
       sum(cost_usd) AS cost_usd,
       sum(calls)::BIGINT AS calls,
       sum(unpriced_calls)::BIGINT AS unpriced_calls,
       coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
       coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
       coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
       coalesce(sum(cache_write_tokens), 0)::BIGINT AS cache_write_tokens,
       coalesce(sum(reasoning_tokens), 0)::BIGINT AS reasoning_tokens
FROM daily_costs
WHERE ($start::DATE IS NULL OR day >= $start::DATE)
  AND ($end::DATE IS NULL OR day <= $end::DATE)
  AND ($departments::VARCHAR[] IS NULL OR list_contains($departments::VARCHAR[], department_id))
  AND ($agents::VARCHAR[] IS NULL OR list_contains($agents::VARCHAR[], agent_id))
  AND ($environments::VARCHAR[] IS NULL OR list_contains($environments::VARCHAR[], environment))
GROUP BY ALL
ORDER BY cost_usd DESC NULLS LAST, key NULLS LAST
"""
_SPEND = {by: _SPEND_TEMPLATE.format(key=key) for by, key in SPEND_DIMENSIONS.items()}
_SPEND_MEASURES = (
    "cost_usd",
    "calls",
    "unpriced_calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def spend_by(
    cur: Cursor,
    *,
    by: str,
    start: date | None = None,
    end: date | None = None,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
    environments: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """Spend per `by` (a key of SPEND_DIMENSIONS) over the UTC days `start`..`end`, both included.

    Confined to these departments, agents and deployment environments (None: all; empty: none;
    calls whose span named no environment are in no environment's). Each row: `by`'s value
    (None for calls with no department, cost centre…), `cost_usd` as an exact Decimal string
    ("0" when only unpriced calls), `calls`, `unpriced_calls` and the token sums. Highest spend first.
    """
    if by not in _SPEND:
        raise ValueError(f"cannot group spend by {by!r}: choose one of {', '.join(SPEND_DIMENSIONS)}")
    params = {
        "start": start,
        "end": end,
        "departments": None if department_ids is None else sorted(department_ids),
        "agents": None if agent_ids is None else sorted(agent_ids),
        "environments": None if environments is None else sorted(environments),
    }
    rows = cur.execute(_SPEND[by], params).fetchall()
    return [_spend_row(by, row) for row in rows]


def _spend_row(by: str, row: tuple[Any, ...]) -> dict[str, Any]:
    key, cost, *counts = row
    measures = dict(zip(_SPEND_MEASURES, (_decimal_text(cost), *counts), strict=True))
    return {by: key.isoformat() if isinstance(key, date) else key} | measures


def _decimal_text(value: Decimal | None) -> str:
    """An exact decimal as text without trailing zeros: JSON numbers would round through floats."""
    if value is None:
        return "0"
    return format(value.normalize(), "f")
