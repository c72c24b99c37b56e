"""The warehouse writer: group commit, ack after commit, dedupe of retries, failure isolation."""

from __future__ import annotations

from concurrent.futures import wait

import duckdb
import pyarrow as pa
import pytest

from warehouse.errors import WarehouseError, WriteFailed
from warehouse.writer import CommitStats, RejectRow, WriteBatch, Writer

NS = 1_000_000_000


def spans(ids: list[int], start: int = 1_700_000_000 * NS) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "trace_id": [f"{i:032x}" for i in ids],
            "span_id": [f"{i:016x}" for i in ids],
            "name": ["chat gpt-4o"] * n,
            "kind": ["client"] * n,
            "start_time": pa.array([start + i for i in ids], pa.int64()).cast(pa.timestamp("ns")),
            "end_time": pa.array([start + i + 5 for i in ids], pa.int64()).cast(pa.timestamp("ns")),
            "duration_ns": pa.array([5] * n, pa.int64()),
            "status_code": ["unset"] * n,
        }
    )


def count(con: duckdb.DuckDBPyConnection, table: str = "spans") -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


@pytest.fixture
def writer(warehouse):
    commits: list[CommitStats] = []
    w = Writer(warehouse.cursor(), on_commit=commits.append)
    w.commits = commits
    w.start()
    yield w
    w.shutdown()


def test_future_resolves_only_after_the_rows_are_committed(writer, warehouse):
    done = writer.submit(WriteBatch("spans", spans([1, 2, 3])))
    done.result(10)
    assert count(warehouse.cursor()) == 3


def test_a_retried_batch_is_stored_once(writer, warehouse):
    writer.submit(WriteBatch("spans", spans([1, 2, 3]))).result(10)
    writer.submit(WriteBatch("spans", spans([2, 3, 4]))).result(10)
    rows = warehouse.execute("SELECT span_id FROM spans ORDER BY span_id").fetchall()
    assert [int(r[0], 16) for r in rows] == [1, 2, 3, 4]


def test_duplicates_inside_one_group_are_stored_once(warehouse):
    writer = Writer(warehouse.cursor())
    # Queue before starting, so both batches (and a duplicate within one) land in one group.
    batches = [WriteBatch("spans", spans([1, 2, 2])), WriteBatch("spans", spans([2, 5]))]
    for batch in batches:
        writer._queue.put(batch)
    writer.start()
    wait([b.done for b in batches], 10)
    writer.shutdown()
    assert count(warehouse) == 3


def test_the_first_copy_of_a_repeated_key_is_the_one_stored(warehouse):
    writer = Writer(warehouse.cursor())
    first = spans([1, 2]).set_column(2, "name", pa.array(["first", "first"]))
    again = spans([2, 3]).set_column(2, "name", pa.array(["again", "again"]))
    for batch in (WriteBatch("spans", first), WriteBatch("spans", again)):
        writer._queue.put(batch)
    writer.start()
    writer.flush(10)
    writer.shutdown()
    rows = warehouse.execute("SELECT span_id, name FROM spans ORDER BY span_id").fetchall()
    assert [(int(span_id, 16), name) for span_id, name in rows] == [(1, "first"), (2, "first"), (3, "again")]


def test_in_batch_dedupe_keeps_each_keys_first_row_in_order():
    import random

    from warehouse.writer import _first_of_each_key

    rng = random.Random(3)
    for _ in range(20):
        keys = [(rng.randrange(4), rng.randrange(6)) for _ in range(rng.randrange(1, 40))]
        rows = pa.table({"a": [k[0] for k in keys], "b": [k[1] for k in keys], "n": list(range(len(keys)))})
        seen: set = set()
        expected = [n for n, k in enumerate(keys) if not (k in seen or seen.add(k))]
        assert _first_of_each_key(rows, ("a", "b")).column("n").to_pylist() == expected


def test_dictionary_encoded_columns_are_stored_as_text(writer, warehouse):
    # The normaliser sends per-resource constants (service, resource JSON) dictionary-encoded.
    rows = spans([1, 2, 3])
    service = pa.DictionaryArray.from_arrays(pa.array([0, 0, 1], pa.int32()), pa.array(["a", "b"]))
    writer.submit(WriteBatch("spans", rows.append_column("service_name", service))).result(10)
    writer.submit(WriteBatch("spans", spans([4]))).result(10)  # the column missing altogether
    names = warehouse.execute("SELECT service_name FROM spans ORDER BY span_id").fetchall()
    assert names == [("a",), ("a",), ("b",), (None,)]


def test_queued_batches_are_committed_together(warehouse):
    commits: list[CommitStats] = []
    writer = Writer(warehouse.cursor(), on_commit=commits.append)
    batches = [WriteBatch("spans", spans([i])) for i in range(1, 51)]
    for batch in batches:
        writer._queue.put(batch)
    writer.start()
    writer.flush(10)
    writer.shutdown()
    assert sum(c.batches for c in commits) == 50
    assert len(commits) == 1
    assert commits[0].rows_stored == 50


def test_max_rows_splits_groups(warehouse):
    commits: list[CommitStats] = []
    writer = Writer(warehouse.cursor(), max_rows=10, on_commit=commits.append)
    for start in range(0, 40, 5):
        writer._queue.put(WriteBatch("spans", spans(list(range(start + 1, start + 6)))))
    writer.start()
    writer.flush(10)
    writer.shutdown()
    assert [c.rows_offered for c in commits] == [10, 10, 10, 10]


def test_a_bad_batch_fails_alone_and_the_others_are_stored(warehouse):
    writer = Writer(warehouse.cursor())
    bad = spans([7]).set_column(3, "kind", pa.array([None], pa.string()))  # kind is NOT NULL
    batches = [WriteBatch("spans", spans([1])), WriteBatch("spans", bad), WriteBatch("spans", spans([2]))]
    for batch in batches:
        writer._queue.put(batch)
    writer.start()
    wait([b.done for b in batches], 10)
    writer.shutdown()
    assert batches[0].done.result() is None and batches[2].done.result() is None
    with pytest.raises(WriteFailed, match="could not store"):
        batches[1].done.result()
    assert count(warehouse) == 2


def test_rejects_are_recorded_with_the_commit(writer, warehouse):
    rejects = [RejectRow("traces", "billing-agent", 2, "trace_id must be 16 bytes, got 0")]
    writer.submit(WriteBatch("spans", spans([1]), rejects)).result(10)
    writer.submit(WriteBatch("spans", None, rejects)).result(10)
    rows = warehouse.execute("SELECT signal, service_name, rejected, reason FROM ingest_rejects").fetchall()
    assert rows == [("traces", "billing-agent", 2, "trace_id must be 16 bytes, got 0")] * 2


def test_ingest_seq_increases_per_commit_and_survives_restart(tmp_path):
    from warehouse.database import open_warehouse

    path = tmp_path / "w.duckdb"
    con = open_warehouse(path)
    writer = Writer(con.cursor())
    writer.start()
    writer.submit(WriteBatch("spans", spans([1]))).result(10)
    writer.submit(WriteBatch("spans", spans([2]))).result(10)
    writer.shutdown()
    con.close()
    con = open_warehouse(path)
    writer = Writer(con.cursor())
    writer.start()
    writer.submit(WriteBatch("spans", spans([3]))).result(10)
    writer.shutdown()
    assert con.execute("SELECT ingest_seq FROM spans ORDER BY span_id").fetchall() == [(1,), (2,), (3,)]
    con.close()


def test_lifecycle_verbs(warehouse):
    writer = Writer(warehouse.cursor())
    writer.shutdown()  # shutdown before start is harmless
    writer.flush()  # so is flush
    with pytest.raises(WarehouseError, match="not running"):
        writer.submit(WriteBatch("spans", spans([1])))
    writer.start()
    with pytest.raises(WarehouseError, match="already running"):
        writer.start()
    writer.shutdown()
    writer.shutdown()


def test_shutdown_commits_what_is_queued(warehouse):
    writer = Writer(warehouse.cursor())
    writer.start()
    futures = [writer.submit(WriteBatch("spans", spans([i]))) for i in range(1, 21)]
    writer.shutdown()
    assert all(f.done() and f.exception() is None for f in futures)
    assert count(warehouse) == 20


def test_a_lull_checkpoints_once_a_row_group_was_committed(tmp_path, monkeypatch):
    # Checkpoints block commits for as long as they run, so they are kept about one row group
    # (CHECKPOINT_ROWS) long rather than left to the 1 GB WAL threshold; neither idleness nor age
    # can trigger one here.
    import time

    from warehouse import writer as writer_module
    from warehouse.database import open_warehouse

    monkeypatch.setattr(writer_module, "IDLE_CHECKPOINT_SECONDS", 3600.0)
    monkeypatch.setattr(writer_module, "MAX_CHECKPOINT_AGE_SECONDS", 3600.0)
    monkeypatch.setattr(writer_module, "CHECKPOINT_ROWS", 100)
    con = open_warehouse(tmp_path / "muster.duckdb", checkpoint_threshold="1GB")
    wal = tmp_path / "muster.duckdb.wal"
    writer = Writer(con.cursor())
    writer.start()
    try:
        writer.submit(WriteBatch("spans", spans(list(range(60))))).result(10)
        time.sleep(0.5)
        assert wal.exists() and wal.stat().st_size > 0  # 60 rows: not yet
        writer.submit(WriteBatch("spans", spans(list(range(60, 120))))).result(10)
        deadline = time.monotonic() + 10
        while wal.exists() and wal.stat().st_size > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not wal.exists() or wal.stat().st_size == 0  # 120 rows: folded into the file
        assert count(con.cursor()) == 120
    finally:
        writer.shutdown()
        con.close()
