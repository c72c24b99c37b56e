"""Resource attributes stored once per resource: lossless, shared, migrated, and never mixed up."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint

from collector.normalise import normalise_logs, normalise_metrics, normalise_traces
from tests.otlp_builders import T0, ids, log_record, logs_request, metrics_request, span, trace_request
from warehouse import resources
from warehouse.database import migrate, migrations, open_warehouse
from warehouse.errors import WriteFailed
from warehouse.resources import resource_key
from warehouse.writer import RejectRow, WriteBatch, Writer

PROD = {"service.name": "support-agent", "host.name": "agents-01", "gen_ai.main_agent.id": "support"}
STAGING = {"service.name": "support-agent", "host.name": "agents-02", "deployment.environment": "staging"}
JOINED = "LEFT JOIN resources USING (resource_id)"


def spans_of(resource: dict, first: int, count: int = 3) -> pa.Table:
    spans = [span(f"s{n}", trace_id=ids(n)[0], span_id=ids(n)[1]) for n in range(first, first + count)]
    return normalise_traces(trace_request(resource, spans)).table


def stored_texts(con: duckdb.DuckDBPyConnection, table: str = "spans") -> list[str | None]:
    order = "span_id" if table == "spans" else "time, record_hash"
    query = f"SELECT resource_attributes FROM {table} {JOINED} ORDER BY {order}"
    return [row[0] for row in con.execute(query).fetchall()]


def sent_texts(*tables: pa.Table) -> list[str]:
    return [text for table in tables for text in table.column("resource_attributes").to_pylist()]


@pytest.fixture
def writer(warehouse):
    w = Writer(warehouse.cursor())
    w.start()
    yield w
    w.shutdown()


def test_each_span_reads_back_the_exact_text_and_each_resource_is_stored_once(writer, warehouse):
    prod, staging, again = spans_of(PROD, 0), spans_of(STAGING, 3), spans_of(PROD, 6)
    for table in (prod, staging, again):
        writer.submit(WriteBatch("spans", table)).result(10)
    assert stored_texts(warehouse) == sent_texts(prod, staging, again)
    assert warehouse.execute("SELECT count(*) FROM resources").fetchall() == [(2,)]
    assert "resource_attributes" not in [c[0] for c in warehouse.execute("DESCRIBE spans").fetchall()]


def test_resources_in_one_group_and_a_retry_add_no_copies(warehouse):
    writer = Writer(warehouse.cursor())
    batches = [WriteBatch("spans", spans_of(PROD, 0)), WriteBatch("spans", spans_of(PROD, 0))]
    batches.append(WriteBatch("spans", spans_of(STAGING, 10)))
    for batch in batches:  # queued before the start: one transaction
        writer._queue.put(batch)
    writer.start()
    writer.flush(10)
    writer.submit(WriteBatch("spans", spans_of(STAGING, 10))).result(10)
    writer.shutdown()
    assert warehouse.execute("SELECT count(*) FROM spans").fetchall() == [(6,)]
    assert warehouse.execute("SELECT count(*) FROM resources").fetchall() == [(2,)]


def test_a_restarted_writer_reuses_stored_resources(tmp_path):
    path = tmp_path / "w.duckdb"
    for first in (0, 3):  # a fresh writer (and its memory) each time
        con = open_warehouse(path)
        writer = Writer(con.cursor())
        writer.start()
        writer.submit(WriteBatch("spans", spans_of(PROD, first))).result(10)
        writer.shutdown()
        con.close()
    con = open_warehouse(path)
    assert con.execute("SELECT count(*) FROM resources").fetchall() == [(1,)]
    assert set(stored_texts(con)) == set(sent_texts(spans_of(PROD, 0)))
    con.close()


def test_a_resource_from_a_failed_commit_is_stored_by_the_next(writer, warehouse):
    # The reject's NULL reason breaks a NOT NULL after the spans and their resource were inserted.
    bad = WriteBatch("spans", spans_of(PROD, 0), [RejectRow("traces", None, 1, None)])  # type: ignore[arg-type]
    with pytest.raises(WriteFailed):
        writer.submit(bad).result(10)
    assert warehouse.execute("SELECT count(*) FROM resources").fetchall() == [(0,)]
    good = spans_of(PROD, 0)
    writer.submit(WriteBatch("spans", good)).result(10)
    assert stored_texts(warehouse) == sent_texts(good)


def test_a_span_without_resource_attributes_keeps_a_null(writer, warehouse):
    writer.submit(WriteBatch("spans", spans_of({}, 0, 1))).result(10)
    sent = sent_texts(spans_of({}, 0, 1))
    assert stored_texts(warehouse) == sent


def test_metric_points_and_log_records_keep_their_resource_text(writer, warehouse):
    gauge = Metric(name="queue.depth", unit="1")
    gauge.gauge.data_points.append(NumberDataPoint(time_unix_nano=T0, as_double=1.5))
    points = normalise_metrics(metrics_request(STAGING, [gauge])).table
    logs = normalise_logs(logs_request(PROD, [log_record("a"), log_record("b", time=T0 + 1)])).table
    writer.submit(WriteBatch("metric_points", points)).result(10)
    writer.submit(WriteBatch("log_records", logs)).result(10)
    assert stored_texts(warehouse, "metric_points") == sent_texts(points)
    assert stored_texts(warehouse, "log_records") == sent_texts(logs)
    assert warehouse.execute("SELECT count(*) FROM resources").fetchall() == [(2,)]


def test_a_key_stored_with_another_text_fails_the_write_instead_of_mixing_them_up(writer, warehouse):
    # What a collision would look like: the key of PROD's text already names a different text.
    table = spans_of(PROD, 0)
    key, _ = resource_key(table.column("resource_attributes")[0].as_py())
    warehouse.execute("INSERT INTO resources VALUES (?, ?)", [key, '{"service.name":"someone-else"}'])
    with pytest.raises(WriteFailed, match="share a key"):
        writer.submit(WriteBatch("spans", table)).result(10)
    assert warehouse.execute("SELECT count(*) FROM spans").fetchall() == [(0,)]


def test_two_texts_with_one_key_in_memory_fail_the_write(writer, warehouse, monkeypatch):
    writer.submit(WriteBatch("spans", spans_of(PROD, 0))).result(10)
    prod_key = resource_key(sent_texts(spans_of(PROD, 0))[0])[0]
    real = resources.resource_key
    monkeypatch.setattr(resources, "resource_key", lambda text: (prod_key, real(text)[1]))
    with pytest.raises(WriteFailed, match="share the key"):
        writer.submit(WriteBatch("spans", spans_of(STAGING, 3))).result(10)
    monkeypatch.undo()
    assert stored_texts(warehouse) == sent_texts(spans_of(PROD, 0))


def test_python_and_sql_compute_the_same_key(warehouse):
    for text in ('{"service.name":"a"}', '{"k":"é ✓ \\u0000"}', "{}"):
        (sql_key,) = warehouse.execute("SELECT ('0x' || md5(?)[1:16])::UBIGINT", [text]).fetchall()[0]
        assert resource_key(text)[0] == sql_key


def test_migration_moves_existing_rows_resource_text_to_resources(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL)"
    )
    for version, name, sql in migrations():
        if version < 9:  # the warehouse as it was before resources had a table
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    texts = [*sent_texts(spans_of(PROD, 0, 1), spans_of(STAGING, 1, 1)), None]
    for n, text in enumerate(texts):
        con.execute(
            "INSERT INTO spans (trace_id, span_id, name, kind, start_time, end_time, duration_ns,"
            " status_code, attributes, resource_attributes, credential_agent_id, received_at, ingest_seq)"
            " VALUES (?, ?, 'n', 'client', make_timestamp_ns(?), make_timestamp_ns(?), 0, 'unset', ?, ?,"
            " 'bot', now(), 1)",
            [f"{n:032x}", f"{n:016x}", T0, T0, f'{{"n":{n}}}', text],
        )
    con.execute(
        "INSERT INTO log_records (record_hash, time, resource_attributes, received_at, ingest_seq)"
        " VALUES ('h', make_timestamp_ns(?), ?, now(), 1)",
        [T0, texts[0]],
    )
    assert migrate(con)[:2] == ["009_resources.sql", "010_content_captured.sql"]
    assert stored_texts(con) == texts
    kept = con.execute("SELECT attributes, credential_agent_id FROM spans ORDER BY span_id").fetchall()
    assert kept == [(f'{{"n":{n}}}', "bot") for n in range(len(texts))]
    assert stored_texts(con, "log_records") == [texts[0]]
    keys = dict(con.execute("SELECT resource_attributes, resource_id FROM resources").fetchall())
    assert keys == {text: resource_key(text)[0] for text in texts[:2]}
    con.close()


def test_span_attributes_stay_zstd_compressed_across_restarts(tmp_path):
    path = tmp_path / "w.duckdb"
    for first in (0, 3):
        con = open_warehouse(path)
        writer = Writer(con.cursor())
        writer.start()
        writer.submit(WriteBatch("spans", spans_of(PROD, first))).result(10)
        writer.shutdown()
        con.execute("CHECKPOINT")
        con.close()
    con = open_warehouse(path)
    compression = con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info('spans')"
        " WHERE column_name = 'attributes' AND segment_type = 'VARCHAR'"
    ).fetchall()
    assert compression == [("ZSTD",)]
    assert con.execute("SELECT count(*) FROM spans").fetchall() == [(6,)]
    con.close()
