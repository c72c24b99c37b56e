"""All SQL of the cost job and of spend reports: read new traces, replace their priced calls, sum spend.

The cost job reads incrementally: the traces that received spans after its watermark (the writer's
`ingest_seq`), then every span of those traces, with only the columns attribution and pricing read,
so a run costs in proportion to new data, not to history. It writes a trace's priced calls and its
new watermark in one transaction: a run that fails leaves the previous results and watermark, and
a re-run replaces rather than adds. Values travel as parameters only; the few SQL fragments chosen
by name come from constant tables in this module, never from input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
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

# Whether a span carries prompt or response content, decided here so that the JSON text never
# travels to Python. Attribute keys are matched where a key starts (after `{` or `,`, which an
# escaped quote inside a string value cannot give), in orjson's compact form as the collector writes
# it: current (gen_ai.input.messages, gen_ai.output.messages, gen_ai.system_instructions), older
# (gen_ai.prompt, gen_ai.completion and their indexed forms; not gen_ai.prompt.name or .version,
# which name a template), OpenInference (llm.input_messages.*, llm.output_messages.*, input.value,
# output.value) and Traceloop (traceloop.entity.input, .output). Events count by their name:
# gen_ai.content.prompt, gen_ai.content.completion, gen_ai.<role>.message, gen_ai.choice; and the
# keys above inside an event's attributes count too.
_CONTENT_KEYS = (
    r'[{,]"(gen_ai\.(input|output)\.messages"|gen_ai\.system_instructions"'
    r'|gen_ai\.(prompt|completion)(\.[0-9][^"]*)?"|llm\.(input|output)_messages[."]'
    r'|(input|output)\.value"|traceloop\.entity\.(input|output)")'
)
_CONTENT_EVENTS = r'"name":"(gen_ai\.content\.(prompt|completion)|gen_ai\.[a-z_]+\.message|gen_ai\.choice)"'
_CONTENT_CAPTURED = (
    f"coalesce(regexp_matches(attributes, '{_CONTENT_KEYS}'), false)"
    f" OR coalesce(regexp_matches(events, '{_CONTENT_EVENTS}') OR regexp_matches(events, '{_CONTENT_KEYS}'),"
    " false) AS content_captured"
)

# A span exported twice (a retry the writer did not catch) is read once: its first copy.
_SPANS_OF_TOUCHED_TRACES = f"""
WITH touched AS (SELECT DISTINCT trace_id FROM spans WHERE ingest_seq > $watermark)
SELECT {_COLUMN_LIST}, {_CONTENT_CAPTURED}, ingest_seq FROM spans
WHERE trace_id IN (SELECT trace_id FROM touched)
QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY ingest_seq) = 1
"""  # noqa: S608 - composed of constant SQL only


def spans_of_traces_touched_since(cur: Cursor, watermark: int) -> tuple[pl.DataFrame, int]:
    """Every span of the traces that received spans after `watermark`, and the new watermark.

    One statement reads both, so the watermark returned is exactly as far as the frame goes:
    spans committed meanwhile have a higher `ingest_seq` and are read by the next run.
    """
    frame = cur.sql(_SPANS_OF_TOUCHED_TRACES, params={"watermark": watermark}).pl()
    new_watermark = frame["ingest_seq"].max() if len(frame) else watermark
    return frame.drop("ingest_seq"), int(new_watermark)  # type: ignore[arg-type]


# Reading in batches: a run's traces split by a hash of trace_id, so a trace is never split


@dataclass(frozen=True)
class ReadPlan:
    """What one run reads: traces touched in (`watermark`, `high`], split into `batches` batches.

    `high` is the highest `ingest_seq` when the run began: spans committed meanwhile are left to the
    next run, whose watermark starts at `high`. `spans` estimates how many spans the run reads (the
    spans after the watermark; a full run's every span).
    """

    watermark: int
    high: int
    spans: int
    batches: int

    @property
    def full(self) -> bool:
        return self.watermark == 0


_PLAN = """
SELECT coalesce(max(ingest_seq), 0) AS high, count(*) FILTER (WHERE ingest_seq > $watermark) AS new_spans
FROM spans
"""


def plan_read(cur: Cursor, watermark: int, *, batch_spans: int) -> ReadPlan:
    """The plan of a run from `watermark` (0: every trace), in batches of about `batch_spans` spans."""
    high, new_spans = cur.execute(_PLAN, {"watermark": watermark}).fetchall()[0]
    batches = max(1, -(-new_spans // max(1, batch_spans)))
    return ReadPlan(watermark=watermark, high=max(high, watermark), spans=new_spans, batches=batches)


_BATCH = "hash(trace_id) % $batches = $batch"
# A full run takes every trace of its batch; an incremental one the batch's traces touched since the
# watermark. Either reads every span of those traces up to `high`, a retried span once (first copy).
_SPANS_OF_BATCH = {
    True: f"""
SELECT {_COLUMN_LIST}, {_CONTENT_CAPTURED} FROM spans
WHERE ingest_seq <= $high AND {_BATCH}
QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY ingest_seq) = 1
""",  # noqa: S608 - composed of constant SQL only
    False: f"""
WITH touched AS (
    SELECT DISTINCT trace_id FROM spans WHERE ingest_seq > $watermark AND ingest_seq <= $high AND {_BATCH}
)
SELECT {_COLUMN_LIST}, {_CONTENT_CAPTURED} FROM spans
WHERE ingest_seq <= $high AND trace_id IN (SELECT trace_id FROM touched)
QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY ingest_seq) = 1
""",  # noqa: S608 - composed of constant SQL only
}


def spans_of_batch(cur: Cursor, plan: ReadPlan, batch: int) -> pl.DataFrame:
    """Every span (`SPAN_COLUMNS` and `content_captured`) of the traces of batch `batch` of `plan`."""
    params = {"high": plan.high, "batches": plan.batches, "batch": batch}
    if not plan.full:
        params["watermark"] = plan.watermark
    return cur.sql(_SPANS_OF_BATCH[plan.full], params=params).pl()


# Writing priced calls


# The tables a trace's derivation fills, each rewritten a whole trace at a time: table → columns.
_DERIVED = {"priced_calls": PRICED_CALL_COLUMNS, "trace_agents": TRACE_AGENT_COLUMNS}
_DELETE_TRACES = {
    table: f"DELETE FROM {table} WHERE trace_id IN (SELECT unnest($traces::VARCHAR[]))"  # noqa: S608
    for table in _DERIVED
}
_DELETE_ALL = {table: f"DELETE FROM {table}" for table in _DERIVED}  # noqa: S608
# A full run's batch replaces the rows of every trace in its hash bucket that still has spans.
# Traces whose spans retention has deleted keep their cost facts: those outlive raw telemetry.
_DELETE_BATCH = {
    table: f"DELETE FROM {table} WHERE {_BATCH} AND trace_id IN (SELECT trace_id FROM spans WHERE {_BATCH})"  # noqa: S608
    for table in _DERIVED
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


def replace_priced_calls(
    cur: Cursor,
    trace_ids: Sequence[str] | None,
    frame: pl.DataFrame,
    watermark: int,
    *,
    agents: pl.DataFrame | None = None,
    duration_s: float = 0.0,
    inputs_digest: str | None = None,
    job: str = COST_JOB,
) -> None:
    """In one transaction: drop these traces' derived rows (all, when None), insert the new, advance.

    `frame` has `PRICED_CALL_COLUMNS` and `agents` (the traces' trace_agents rows; none when
    omitted) `TRACE_AGENT_COLUMNS`. Both tables lose the traces' rows. Anything failing rolls
    everything back, so the previous rows and watermark stand and the next run retries the same
    traces.
    """
    incoming = {"priced_calls": frame, "trace_agents": agents}
    cur.execute("BEGIN")
    try:
        for table in _DERIVED:
            if trace_ids is None:
                cur.execute(_DELETE_ALL[table])
            else:
                cur.execute(_DELETE_TRACES[table], {"traces": list(trace_ids)})
            rows = incoming[table]
            if rows is not None and len(rows):
                _insert(cur, table, rows)
        advance = {"job": job, "watermark": watermark, "duration": duration_s, "digest": inputs_digest}
        cur.execute(_ADVANCE, advance)
        cur.execute("COMMIT")
    except BaseException:
        _roll_back(cur)
        raise


# The trace ids travel as a registered Arrow column: a list parameter of 100k strings is converted
# value by value and costs more than the delete itself.
_DELETE_REGISTERED = {
    table: f"DELETE FROM {table} WHERE trace_id IN (SELECT trace_id FROM _batch_traces)"  # noqa: S608
    for table in _DERIVED
}


def _delete_traces(cur: Cursor, table: str, trace_ids: Sequence[str]) -> None:
    cur.register(
        "_batch_traces",
        pl.DataFrame({"trace_id": list(trace_ids)}, schema={"trace_id": pl.String}).to_arrow(),
    )
    try:
        cur.execute(_DELETE_REGISTERED[table])
    finally:
        cur.unregister("_batch_traces")


def _insert(cur: Cursor, table: str, rows: pl.DataFrame) -> None:
    name = f"_incoming_{table}"
    cur.register(name, rows.select(_DERIVED[table]).to_arrow())
    try:
        cur.execute(_INSERT[table])
    finally:
        cur.unregister(name)


_MARK_FULL_RUN = """
INSERT INTO job_state (job, watermark, last_run_at, last_duration_s, last_error, inputs_digest)
VALUES ($job, 0, NULL, NULL, NULL, NULL)
ON CONFLICT (job) DO UPDATE SET inputs_digest = NULL
"""


def replace_batch(
    cur: Cursor,
    plan: ReadPlan,
    batch: int,
    trace_ids: Sequence[str],
    frame: pl.DataFrame,
    agents: pl.DataFrame,
    *,
    finish: bool,
    duration_s: float = 0.0,
    inputs_digest: str | None = None,
    job: str = COST_JOB,
) -> None:
    """In one transaction: replace one batch's derived rows; when `finish`, advance the watermark.

    A full run's batch replaces the rows of every trace in its hash bucket (rows of vanished traces
    go) and, until the run finishes, clears the inputs digest: a full run that fails part-way is
    redone in full by the next run. An incremental batch replaces the rows of `trace_ids`; the
    watermark moves only with the last batch, so a failure makes the next run read all again.
    """
    cur.execute("BEGIN")
    try:
        for table, rows in (("priced_calls", frame), ("trace_agents", agents)):
            if plan.full:
                cur.execute(_DELETE_BATCH[table], {"batches": plan.batches, "batch": batch})
            elif trace_ids:
                _delete_traces(cur, table, trace_ids)
            if len(rows):
                _insert(cur, table, rows)
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
}
"""What spend can be grouped by → the constant SQL expression of its key."""

_SPEND_TEMPLATE = """
SELECT {key} AS key,
       sum(cost_usd) AS cost_usd,
       count(*) AS calls,
       count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced_calls,
       coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
       coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
       coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
       coalesce(sum(cache_write_tokens), 0)::BIGINT AS cache_write_tokens,
       coalesce(sum(reasoning_tokens), 0)::BIGINT AS reasoning_tokens
FROM priced_calls
WHERE ($start::DATE IS NULL OR day >= $start::DATE)
  AND ($end::DATE IS NULL OR day <= $end::DATE)
  AND ($departments::VARCHAR[] IS NULL OR list_contains($departments::VARCHAR[], department_id))
  AND ($agents::VARCHAR[] IS NULL OR list_contains($agents::VARCHAR[], agent_id))
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
) -> list[dict[str, Any]]:
    """Spend per `by` (a key of SPEND_DIMENSIONS) over the UTC days `start`..`end`, both included.

    Confined to these departments and agents (None: all; empty: none). Each row: `by`'s value
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
