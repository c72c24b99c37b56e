"""The cost job: price and attribute every model call of the traces that received spans since last run.

One run reads the traces touched since the job's watermark (all traces with `full=True`) through
`warehouse.cost_store`, which pushes that scan down to the engine, then decides in Polars:
`model_calls` → `price_calls` → `owning_agents` + `attribute` against the registry → one row per
call, and `trace_agents` → one row per (trace, owning identity) with what that agent did in the
trace. Both replace the traces' previous rows and the watermark advances in one transaction, so a
re-run, a retried export or a late span never counts a call twice.

Pandera contracts guard both edges: the spans read (`SPANS_SCHEMA`), the priced calls
(`analytics.pricing.PRICED_CALLS_SCHEMA`) and the rows written (`PRICED_CALL_ROWS_SCHEMA`,
`TRACE_AGENT_ROWS_SCHEMA`). A
violation fails the run with `ContractViolation`, naming the offending rows; like any other
failure it rolls back, is recorded in `job_state.last_error`, and leaves the previous results.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import genai_prices
import pandera.polars as pa
import polars as pl

from analytics.activity import trace_agents
from analytics.attribution import attribute, model_calls, owning_agents, parent_rows
from analytics.pricing import (
    COST_DTYPE,
    PRICED_CALLS_SCHEMA,
    PriceOverrides,
    PriceSource,
    load_overrides,
    price_calls,
)
from registry import Registry, document_data
from registry.matching import MatchStatus
from warehouse import cost_store
from warehouse.registry_store import load_registry

log = logging.getLogger(__name__)

__all__ = [
    "BATCH_SPANS",
    "PRICED_CALL_ROWS_SCHEMA",
    "SPANS_SCHEMA",
    "TRACE_AGENT_ROWS_SCHEMA",
    "ContractViolation",
    "JobProgress",
    "JobResult",
    "ProgressCallback",
    "checked",
    "derived_rows",
    "inputs_digest",
    "overrides_from",
    "priced_call_rows",
    "run_cost_job",
]

_SHOWN_FAILURES = 20  # offending rows quoted in an error: enough to see the pattern, not a flood


class ContractViolation(ValueError):
    """A frame broke a job's contract; the message names the contract, the checks and the rows."""

    def __init__(self, contract: str, failures: pl.DataFrame) -> None:
        self.contract = contract
        self.failures = failures
        shown = failures.head(_SHOWN_FAILURES)
        with pl.Config(tbl_rows=_SHOWN_FAILURES, tbl_cols=-1, fmt_str_lengths=80, tbl_width_chars=200):
            table = str(shown)
        more = f" (first {_SHOWN_FAILURES} shown)" if len(failures) > _SHOWN_FAILURES else ""
        super().__init__(f"contract {contract!r} violated by {len(failures)} case(s){more}:\n{table}")


SPANS_SCHEMA = pa.DataFrameSchema(
    {
        "trace_id": pa.Column(pl.String, nullable=False),
        "span_id": pa.Column(pl.String, nullable=False),
        "parent_span_id": pa.Column(pl.String, nullable=True),
        "start_time": pa.Column(pl.Datetime("ns"), nullable=False),
    },
    unique=["trace_id", "span_id"],
    strict=False,
    name="spans read by the cost job",
)
"""The cost job's input contract: ids present, one row per span (the scan removes retried copies)."""


def _cost_matches_source(data: Any) -> pl.LazyFrame:
    """A call has a cost exactly when it was priced: an unpriced call is never a silent $0."""
    unpriced = pl.col("price_source") == str(PriceSource.UNPRICED)
    return data.lazyframe.select(pl.col("cost_usd").is_null() == unpriced)


PRICED_CALL_ROWS_SCHEMA = pa.DataFrameSchema(
    {
        "trace_id": pa.Column(pl.String, nullable=False),
        "span_id": pa.Column(pl.String, nullable=False),
        "start_time": pa.Column(pl.Datetime("ns"), nullable=False),
        "day": pa.Column(pl.Date, nullable=False),
        "match_status": pa.Column(pl.String, pa.Check.isin([str(status) for status in MatchStatus])),
        "cost_usd": pa.Column(COST_DTYPE, pa.Check.ge(0), nullable=True),
        "price_source": pa.Column(pl.String, pa.Check.isin([str(source) for source in PriceSource])),
        "reported_cost_mismatch": pa.Column(pl.Boolean, nullable=False),
        "environment": pa.Column(pl.String, nullable=True),  # null when the span named none
    },
    checks=[
        pa.Check(_cost_matches_source, name="cost present exactly when priced"),
        pa.Check(
            lambda data: data.lazyframe.select(
                (pl.col("price_source") != str(PriceSource.NO_USAGE))
                | (pl.col("cost_usd") == 0).fill_null(False)
            ),
            name="a failed call without usage costs exactly 0",
        ),
    ],
    unique=["trace_id", "span_id"],
    strict=False,
    name="priced calls written",
)
"""The cost job's output contract: one row per call, known statuses, costs never negative."""


TRACE_AGENT_ROWS_SCHEMA = pa.DataFrameSchema(
    {
        "trace_id": pa.Column(pl.String, nullable=False),
        "day": pa.Column(pl.Date, nullable=False),
        "first_seen": pa.Column(pl.Datetime("ns"), nullable=False),
        "last_seen": pa.Column(pl.Datetime("ns"), nullable=False),
        "match_status": pa.Column(pl.String, pa.Check.isin([str(status) for status in MatchStatus])),
        **{
            name: pa.Column(pl.Int64, pa.Check.ge(0), nullable=False)
            for name in ("spans", "agent_spans", "model_calls", "error_spans", "unpriced_calls")
        },
        "cost_usd": pa.Column(COST_DTYPE, pa.Check.ge(0), nullable=True),
        "content_captured": pa.Column(pl.Boolean, nullable=False),
    },
    checks=[
        pa.Check(
            lambda data: data.lazyframe.select(pl.col("first_seen") <= pl.col("last_seen")),
            name="seen in order",
        ),
        pa.Check(
            lambda data: data.lazyframe.select(pl.col("unpriced_calls") <= pl.col("model_calls")),
            name="unpriced calls are calls",
        ),
    ],
    strict=False,
    name="trace agents written",
)
"""The trace_agents contract: known statuses, counts never negative, costs never negative."""


def checked(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` validated against `schema`, every failure collected; ContractViolation if any."""
    try:
        return schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise ContractViolation(schema.name or "contract", _failure_cases(exc)) from None


def _failure_cases(exc: Any) -> pl.DataFrame:
    cases = exc.failure_cases
    return cases if isinstance(cases, pl.DataFrame) else pl.DataFrame({"failure": [str(exc)]})


@dataclass(frozen=True)
class JobResult:
    """What one run of the cost job did."""

    job: str
    full: bool
    watermark_from: int
    watermark_to: int
    traces: int
    spans: int
    calls: int
    priced_calls: int
    unpriced_calls: int
    duration_s: float
    full_reason: str | None = None  # why the run was full: requested, first run, inputs changed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def overrides_from(path: Path) -> PriceOverrides:
    """The price overrides in `path`; none when the file does not exist (the catalogue alone prices)."""
    return load_overrides(path) if path.exists() else PriceOverrides()


DERIVATION_VERSION = "3"  # 3: priced calls carry their environment
"""Part of the inputs digest: bump it when what the job derives changes (a new column, a new rule),
so that the next run re-derives history instead of leaving old traces as they were computed."""


def inputs_digest(registry: Registry, overrides: PriceOverrides | Path | None) -> str:
    """A digest of everything the job's results depend on besides the spans.

    The registry's Agent and Department documents (what attribution reads: selectors, aliases,
    departments, cost centres; budgets and policies change no priced call), the price overrides (the
    file's bytes when given as a path), the genai-prices catalogue version and `DERIVATION_VERSION`.
    """
    documents = [
        (entity.kind, entity.id, document_data(entity))
        for entity in (*registry.departments.values(), *registry.agents.values())
    ]
    if isinstance(overrides, Path):
        prices = overrides.read_bytes().decode("utf-8", "replace") if overrides.exists() else None
    else:
        prices = (overrides or PriceOverrides()).model_dump_json()
    material = [DERIVATION_VERSION, genai_prices.__version__, prices, sorted(documents)]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


BATCH_SPANS = 500_000
"""Spans read into one frame at most (about: a trace is never split): bounds the job's memory
whatever the backlog. At 500k a batch's trace_agents rows (~125k for 8-span traces) exceed one
DuckDB row group, so the commit writes them straight to the file instead of through the WAL: the
full run at 10M spans took 65 s against 70 s at 400k, with ~230 MiB more peak RSS (600k: no faster)."""


@dataclass(frozen=True)
class JobProgress:
    """Where a running cost job is: after `batch` of `batches` batches, `spans` spans of about `planned`."""

    batch: int
    batches: int
    spans: int
    planned: int
    calls: int


ProgressCallback = Callable[[JobProgress], None]


def run_cost_job(
    cur: duckdb.DuckDBPyConnection,
    registry: Registry | None = None,
    overrides: PriceOverrides | Path | None = None,
    *,
    full: bool = False,
    progress: ProgressCallback | None = None,
    batch_spans: int = BATCH_SPANS,
) -> JobResult:
    """Price and attribute the model calls of every trace touched since the watermark (all: `full`).

    `registry` defaults to the one stored. `overrides` may be the path of a prices file, read as
    part of the run so that a broken file fails the run like any other error. The run is full
    anyway when the registry, the prices or the job changed since the last successful run.

    Traces are processed in batches of about `batch_spans` spans, each committed on its own, and
    `progress` is called after each. On a failure the batch in progress is rolled back, the error
    recorded in job_state and raised again: batches already committed hold complete, correct rows
    for their traces, every other trace keeps its previous rows, and the watermark (which moves
    only with the last batch) makes the next run read all the traces again.
    """
    started = time.monotonic()
    try:
        return _run(
            cur, registry, overrides, full=full, started=started, progress=progress, batch_spans=batch_spans
        )
    except Exception as exc:
        duration = time.monotonic() - started
        log.error("the cost job failed after %.2f s: %s", duration, exc)
        cost_store.record_job_failure(cur, f"{type(exc).__name__}: {exc}", duration_s=duration)
        raise


def _run(
    cur: duckdb.DuckDBPyConnection,
    registry: Registry | None,
    overrides: PriceOverrides | Path | None,
    *,
    full: bool,
    started: float,
    progress: ProgressCallback | None,
    batch_spans: int,
) -> JobResult:
    registry = registry or load_registry(cur)
    digest = inputs_digest(registry, overrides)
    if isinstance(overrides, Path):
        overrides = overrides_from(overrides)
    full_reason = _full_reason(cost_store.job_state(cur), digest, requested=full)
    plan = cost_store.plan_read(
        cur, 0 if full_reason else cost_store.job_watermark(cur), batch_spans=batch_spans
    )
    totals = _Totals()
    # closed explicitly: a failed write stops the read ahead at once, not when the traceback goes
    with contextlib.closing(_derived_batches(cur, plan, registry, overrides)) as batches:
        for batch, (spans, rows, agents) in enumerate(batches):
            cost_store.replace_batch(
                cur,
                plan,
                spans.select("trace_id", "span_id", "start_time"),
                rows,
                agents,
                finish=batch == plan.batches - 1,
                duration_s=time.monotonic() - started,
                inputs_digest=digest,
            )
            totals.add(spans["trace_id"].n_unique(), len(spans), rows)
            if plan.batches > 1:  # a long run says how far it got, in the server's log
                log.info("cost job: batch %d/%d committed, %d spans", batch + 1, plan.batches, totals.spans)
            if progress is not None:
                planned = max(plan.spans, totals.spans)
                progress(JobProgress(batch + 1, plan.batches, totals.spans, planned, totals.calls))
    return JobResult(
        job=cost_store.COST_JOB,
        full=plan.full,
        watermark_from=plan.watermark,
        watermark_to=plan.high,
        traces=totals.traces,
        spans=totals.spans,
        calls=totals.calls,
        priced_calls=totals.calls - totals.unpriced,
        unpriced_calls=totals.unpriced,
        duration_s=round(time.monotonic() - started, 3),
        full_reason=full_reason,
    )


_LOOKAHEAD = 2
"""Batches read or derived ahead of the one being written, each held in memory meanwhile."""


def _derived_batches(
    cur: duckdb.DuckDBPyConnection,
    plan: cost_store.ReadPlan,
    registry: Registry,
    overrides: PriceOverrides | None,
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]:
    """Each batch of `plan` in order: its spans, priced call rows and trace_agents rows.

    Three stages overlap: one thread reads batch k+2 (DuckDB, on a second connection), another
    derives batch k+1 (Polars), and the caller writes batch k (DuckDB). Both engines release the
    GIL, so a full run keeps both cores busy (a full re-run of 10M spans: 78 s with read and
    derivation in one thread, 71 s in two). Batches hold disjoint traces and reads touch only spans
    and resources, which the writes do not change.
    """

    def read(batch: int) -> pl.DataFrame:
        return checked(SPANS_SCHEMA, cost_store.spans_of_batch(reader, plan, batch))

    def derive(spans: Future[pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        frame = spans.result()
        return frame, *derived_rows(frame, registry, overrides)

    def submit(batch: int) -> None:
        pending.append(deriving.submit(derive, reading.submit(read, batch)))

    pending: deque[Future[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]]] = deque()
    with contextlib.closing(cur.cursor()) as reader:
        reading = ThreadPoolExecutor(1, "muster-cost-read")
        deriving = ThreadPoolExecutor(1, "muster-cost-derive")
        try:
            for batch in range(min(_LOOKAHEAD, plan.batches)):
                submit(batch)
            for batch in range(plan.batches):
                ready = pending.popleft().result()
                if batch + _LOOKAHEAD < plan.batches:
                    submit(batch + _LOOKAHEAD)
                yield ready
        finally:  # a failed write stops the work ahead: queued batches are dropped, not run
            for pool in (reading, deriving):
                pool.shutdown(cancel_futures=True)


@dataclass
class _Totals:
    traces: int = 0
    spans: int = 0
    calls: int = 0
    unpriced: int = 0

    def add(self, traces: int, spans: int, rows: pl.DataFrame) -> None:
        self.traces += traces
        self.spans += spans
        self.calls += len(rows)
        self.unpriced += rows["cost_usd"].null_count()


def _full_reason(state: dict[str, Any] | None, digest: str, *, requested: bool) -> str | None:
    """Why this run must read every trace, or None when reading the new ones is enough."""
    if requested:
        return "requested"
    if state is None or state["watermark"] == 0:
        return "first run"
    if state["inputs_digest"] != digest:
        # a newly registered agent, a changed selector or price: history is attributed anew
        return "the registry, the prices or the job changed since the last successful run"
    return None


def derived_rows(
    spans: pl.DataFrame, registry: Registry, overrides: PriceOverrides | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What the job writes for whole traces `spans`: their priced calls and their trace_agents rows."""
    parents = parent_rows(spans)
    owners = owning_agents(spans, parents=parents)
    rows = _priced_call_rows(spans, owners, registry, overrides, parents=parents)
    return rows, checked(TRACE_AGENT_ROWS_SCHEMA, trace_agents(spans, owners, rows, registry))


def priced_call_rows(
    spans: pl.DataFrame, registry: Registry, overrides: PriceOverrides | None = None
) -> pl.DataFrame:
    """One row per model call of `spans`, priced and attributed, as `cost_store.PRICED_CALL_COLUMNS`."""
    return _priced_call_rows(spans, owning_agents(spans), registry, overrides)


def _priced_call_rows(
    spans: pl.DataFrame,
    owners: pl.DataFrame,
    registry: Registry,
    overrides: PriceOverrides | None,
    *,
    parents: pl.Series | None = None,
) -> pl.DataFrame:
    calls = model_calls(spans, parents=parents)
    priced = checked(PRICED_CALLS_SCHEMA, price_calls(calls, overrides))
    attributed = attribute(priced, owners, registry)
    rows = attributed.select(
        "trace_id",
        "span_id",
        pl.col("start_time").cast(pl.Datetime("ns")),
        pl.col("start_time").dt.date().alias("day"),
        "agent_id",
        "match_status",
        "observed_identity",
        "department_id",
        "cost_centre",
        "provider",
        pl.coalesce("response_model", "request_model").alias("model"),
        "priced_provider",
        "priced_model",
        *[pl.col(name).cast(pl.Int64) for name in _TOKEN_COLUMNS],
        "cost_usd",
        "price_source",
        "unpriced_reason",
        "reported_cost_mismatch",
        _environment(attributed),
    )
    return checked(PRICED_CALL_ROWS_SCHEMA, rows)


def _environment(calls: pl.DataFrame) -> pl.Expr:
    """The call span's own deployment environment: a column read, null when the frame has none."""
    if "environment" in calls.columns:
        return pl.col("environment").cast(pl.String)
    return pl.lit(None, dtype=pl.String).alias("environment")


_TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
