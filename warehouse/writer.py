"""The one thread that writes telemetry to DuckDB, with group commit and acknowledgement after commit.

Receivers `submit()` decoded batches and get a future; the writer thread takes whatever is queued,
inserts it all in one transaction and commits, then resolves every future in the group. An export
is therefore answered only once its rows are durable. Committing in large groups is what makes
DuckDB fast (one commit per request would cap ingest far below what a fleet sends); taking
whatever is queued, rather than waiting a fixed time, keeps latency low when traffic is light.

Rows are deduplicated on insert so an exporter's retry is stored once: spans on
(trace_id, span_id), metric points and log records on their content hash. Within a group the
first row of each key is kept (checked in Arrow before the INSERT); against stored rows an
anti-join in the INSERT, bounded by the batch's time range, which lets DuckDB skip row groups by
their min/max, so the cost of a commit grows with the batch, not with the history (a retried
item has the same timestamp).

A row's resource attributes are stored once per resource (`warehouse.resources`): each row gets
the content key of its resource's text, and resources the writer has not stored before are
inserted in the same transaction as the rows that use them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.errors import WarehouseError, WriteFailed
from warehouse.resources import KnownResources, Unseen

log = logging.getLogger(__name__)

# Per table: the dedupe key and the time column that bounds the anti-join. Constants, never input.
_DEDUPE = {
    "spans": (("trace_id", "span_id"), "start_time"),
    "metric_points": (("record_hash",), "time"),
    "log_records": (("record_hash",), "time"),
}


@dataclass(frozen=True)
class RejectRow:
    """Items refused at ingest, recorded with the commit so `muster status` can report them."""

    signal: str
    service_name: str | None
    rejected: int
    reason: str


@dataclass
class WriteBatch:
    """One export's worth of rows for one table, plus what was rejected from it.

    `done` resolves to None once the rows are committed, or to a `WriteFailed` error.
    """

    table: str
    rows: pa.Table | None
    rejects: Sequence[RejectRow] = ()
    done: Future = field(default_factory=Future)

    @property
    def row_count(self) -> int:
        return 0 if self.rows is None else self.rows.num_rows


@dataclass(frozen=True)
class CommitStats:
    """What one group commit did, for self-metrics."""

    batches: int
    rows_offered: int
    rows_stored: int
    seconds: float


class _Flush:
    def __init__(self) -> None:
        self.done: Future = Future()


_STOP = object()
IDLE_CHECKPOINT_SECONDS = 2.0
# Under steady traffic the writer is never idle for 2 s, and the WAL grew until checkpoint_threshold
# (1 GB): 580 MB after a 32-minute soak at 160 spans/s, all of it held in memory beside the 256 MB
# buffer limit. So a lull (an empty queue) also checkpoints when the last checkpoint is this old.
MAX_CHECKPOINT_AGE_SECONDS = 60.0
# A checkpoint blocks every commit while it runs, for ~4.5 µs a row it folds in. Left to the WAL
# threshold (1 GB, ~830k spans) that is a stall of ~4-6 s: at 20,000 spans/s one every ~40 s, and
# p99 over a minute of 2.2 s. A lull also checkpoints once this many rows were committed since the
# last checkpoint: one DuckDB row group, the smallest checkpoint that does not cost more a row
# (checkpoints of 25k-50k rows cost 3-7x as much a row, as they rewrite the same row group again).
# Under saturation the queue is never empty and the WAL threshold still decides.
CHECKPOINT_ROWS = 122_880


class Writer:
    """Owns the write connection; `start`, `submit`, `flush`, `shutdown`."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        max_rows: int = 500_000,
        on_commit: Callable[[CommitStats], None] | None = None,
    ) -> None:
        self._con = con
        self._max_rows = max_rows
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._dirty = False  # committed since the last checkpoint
        self._rows_since_checkpoint = 0
        self._checkpointed_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._seq = self._last_seq()
        self._resources = KnownResources()
        self._unseen: Unseen = {}  # resources the open transaction uses and may have to store

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            raise WarehouseError("the writer is already running")
        self._thread = threading.Thread(target=self._run, name="muster-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: WriteBatch) -> Future:
        """Queue a batch; its future resolves once the batch is committed."""
        if not self.running:
            raise WarehouseError("the writer is not running")
        self._queue.put(batch)
        return batch.done

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything submitted before this call has been committed."""
        if not self.running:
            return
        marker = _Flush()
        self._queue.put(marker)
        marker.done.result(timeout)

    def shutdown(self, timeout: float | None = 30) -> None:
        """Commit what is queued, then stop the thread. Safe to call when not started."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _last_seq(self) -> int:
        rows = self._con.execute(
            "SELECT max(s) FROM (SELECT max(ingest_seq) AS s FROM spans"
            " UNION ALL SELECT max(ingest_seq) FROM metric_points"
            " UNION ALL SELECT max(ingest_seq) FROM log_records"
            " UNION ALL SELECT max(ingest_seq) FROM ingest_rejects)"
        ).fetchall()
        return rows[0][0] or 0

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group, markers, stopping = self._take_group()
            if group:
                self._commit_group(group)
            for marker in markers:
                marker.done.set_result(None)

    def _next_item(self) -> object:
        """The next queued item; when none comes for a while, checkpoint the WAL meanwhile."""
        if self._dirty and self._queue.empty() and self._checkpoint_due():
            self._checkpoint()
        try:
            return self._queue.get(timeout=IDLE_CHECKPOINT_SECONDS if self._dirty else None)
        except queue.Empty:
            self._checkpoint()
            return self._queue.get()

    def _checkpoint_due(self) -> bool:
        old = time.monotonic() - self._checkpointed_at >= MAX_CHECKPOINT_AGE_SECONDS
        return old or self._rows_since_checkpoint >= CHECKPOINT_ROWS

    def _checkpoint(self) -> None:
        # Fold the write-ahead log into the file while nobody waits, rather than in a commit.
        self._checkpointed_at = time.monotonic()  # a failure too: retry a minute later, not at once
        try:
            self._con.execute("CHECKPOINT")
            self._dirty = False
            self._rows_since_checkpoint = 0
        except Exception as exc:  # a failed checkpoint loses nothing: the WAL still holds the data
            log.warning("idle checkpoint failed: %s", exc)

    def _take_group(self) -> tuple[list[WriteBatch], list[_Flush], bool]:
        """Block for one item, then take whatever else is queued, up to `max_rows`."""
        group: list[WriteBatch] = []
        markers: list[_Flush] = []
        item = self._next_item()
        rows = 0
        while True:
            if item is _STOP:
                return group, markers, True
            if isinstance(item, _Flush):
                markers.append(item)
            else:
                group.append(item)
                rows += item.row_count
            if rows >= self._max_rows:
                return group, markers, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return group, markers, False

    def _commit_group(self, group: list[WriteBatch]) -> None:
        started = time.perf_counter()
        try:
            stored = self._commit(group)
        except Exception as exc:  # the writer thread must outlive any one bad batch
            if len(group) > 1:
                # One bad batch must not take the others down: commit each on its own.
                log.warning("group commit of %d batches failed (%s); committing one by one", len(group), exc)
                for batch in group:
                    self._commit_group([batch])
                return
            log.error("commit failed: %s", exc)
            group[0].done.set_exception(WriteFailed(f"the warehouse could not store the data: {exc}"))
            return
        self._rows_since_checkpoint += stored
        for batch in group:
            batch.done.set_result(None)
        if self._on_commit:
            offered = sum(batch.row_count for batch in group)
            self._on_commit(CommitStats(len(group), offered, stored, time.perf_counter() - started))

    def _commit(self, group: list[WriteBatch]) -> int:
        """Insert the group in one transaction; return how many rows were new (retries add none)."""
        con = self._con
        self._seq += 1
        self._unseen = {}
        con.execute("BEGIN")
        try:
            stored = sum(self._insert(table, rows) for table, rows in _tables_of(group))
            self._resources.store(con, self._unseen)
            self._insert_rejects(group)
            con.execute("COMMIT")
            self._dirty = True
        except BaseException:
            self._seq -= 1
            _roll_back(con)
            raise
        self._resources.remember(self._unseen)
        return stored

    def _insert(self, table: str, rows: pa.Table) -> int:
        keys, time_column = _DEDUPE[table]
        rows = self._resources.keyed(_first_of_each_key(rows, keys), self._unseen)
        bounds = pc.min_max(rows[time_column].cast(pa.int64()))
        same_key = " AND ".join(f"s.{key} = b.{key}" for key in keys)
        self._con.register("incoming", rows)
        try:
            result = self._con.execute(
                f"INSERT INTO {table} BY NAME "  # noqa: S608 - table and columns are constants above
                f"SELECT b.*, now() AS received_at, $seq AS ingest_seq FROM incoming b "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} s "
                f"WHERE s.{time_column} BETWEEN make_timestamp_ns($lo) AND make_timestamp_ns($hi) "
                f"AND {same_key})",
                {"seq": self._seq, "lo": bounds["min"].as_py(), "hi": bounds["max"].as_py()},
            ).fetchall()
        finally:
            self._con.unregister("incoming")
        return result[0][0]

    def _insert_rejects(self, group: list[WriteBatch]) -> None:
        rows = [
            (r.signal, r.service_name, r.rejected, r.reason, self._seq)
            for batch in group
            for r in batch.rejects
        ]
        if rows:
            self._con.executemany(
                "INSERT INTO ingest_rejects (received_at, signal, service_name, rejected, reason, ingest_seq)"
                " VALUES (now(), ?, ?, ?, ?, ?)",
                rows,
            )


def _roll_back(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the failed transaction, if DuckDB has not already done so.

    When COMMIT itself fails (the disk is full: "No space left on device") DuckDB has already
    aborted the transaction, and a ROLLBACK would raise "no transaction is active", hiding the
    cause the exporter and the operator need to see.
    """
    try:
        con.execute("ROLLBACK")
    except duckdb.Error as exc:
        log.debug("nothing to roll back: %s", exc)


def _first_of_each_key(rows: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """The rows minus any repeat of an earlier row's key (a retry queued beside its original).

    Checked in Arrow (~0.1 µs a row) rather than with a window function in the INSERT, which
    materialises every column of the batch and cost ~6 µs a span; repeats are rare, so the
    usual answer is "none" and the rows pass through untouched.
    """
    names = list(keys)
    distinct = rows.select(names).group_by(names, use_threads=False).aggregate([])
    if distinct.num_rows == rows.num_rows:
        return rows
    numbered = rows.select(names).append_column("_row", pa.array(range(rows.num_rows), pa.int64()))
    first = numbered.group_by(names, use_threads=False).aggregate([("_row", "min")])["_row_min"]
    return rows.take(pc.take(first, pc.sort_indices(first)))  # the first rows, in arrival order


def _tables_of(group: list[WriteBatch]) -> list[tuple[str, pa.Table]]:
    """The group's rows, one Arrow table per warehouse table (columns some lack, e.g. the
    credential's agent on anonymous exports, are filled with nulls)."""
    by_table: dict[str, list[pa.Table]] = {}
    for batch in group:
        if batch.row_count:
            by_table.setdefault(batch.table, []).append(batch.rows)
    return [(table, pa.concat_tables(parts, promote_options="default")) for table, parts in by_table.items()]
