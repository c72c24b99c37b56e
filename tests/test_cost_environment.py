"""Migration 011 on a warehouse at version 10: priced calls derived before it have no environment,
and the next cost job run is a full one that gives every call whose span remains its span's
environment, with daily_costs still equal, to the cent, to the priced calls it sums."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from analytics.jobs import derived_rows, inputs_digest, run_cost_job
from collector.normalise import normalise_traces
from tests.test_costs_job import (
    CLAIMS_TRIAGE,
    CLAIMS_TRIAGE_STAGING,
    SUBMISSION_INTAKE,
    UNREGISTERED,
    Call,
    agent_trace,
)
from tests.test_daily_costs import SUMMED_CALLS
from warehouse import cost_store
from warehouse.database import migrate, migrations
from warehouse.registry_store import load_registry

FLEET = [
    (CLAIMS_TRIAGE, [Call("gpt-4o", 1200, 300), Call("gpt-4o-mini", 5000, 800)]),
    (CLAIMS_TRIAGE_STAGING, [Call("gpt-4o", 90, 20)]),
    (SUBMISSION_INTAKE, [Call("gpt-4o", 700, 70)]),
    (UNREGISTERED, [Call("gpt-4o-mini", 333, 33)]),
    (CLAIMS_TRIAGE_STAGING, [Call("gpt-4o-mini", 10, 1)]),  # its spans go to retention below
]


def at_version_10(con: duckdb.DuckDBPyConnection) -> None:
    """The schema as it was before 011, migrations recorded as applied."""
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL)"
    )
    for version, name, sql in migrations():
        if version <= 10:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])


def store_spans(con: duckdb.DuckDBPyConnection) -> None:
    tables = [normalise_traces(agent_trace(agent, calls).request).table for agent, calls in FLEET]
    sent = pa.concat_tables(tables).drop_columns(["resource_attributes"])  # noqa: F841 - read by DuckDB
    con.execute(
        "INSERT INTO spans BY NAME"
        " SELECT *, now() AS received_at, row_number() OVER () AS ingest_seq FROM sent"
    )


def derive_as_version_10(con: duckdb.DuckDBPyConnection, digest: str) -> None:
    """What the cost job of version 10 stored: the same rows without environment, and its digest."""
    plan = cost_store.plan_read(con, 0, batch_spans=1_000)
    rows, _ = derived_rows(cost_store.spans_of_batch(con, plan, 0), load_registry(con))
    old_calls = rows.drop("environment")  # noqa: F841 - read by DuckDB
    con.execute("INSERT INTO priced_calls BY NAME SELECT *, now() AS computed_at FROM old_calls")
    daily = next(sql for version, _, sql in migrations() if version == 8)
    con.execute("INSERT INTO daily_costs" + daily.split("INSERT INTO daily_costs", 1)[1])
    con.execute(
        "INSERT INTO job_state (job, watermark, last_run_at, inputs_digest) VALUES ('costs', ?, now(), ?)",
        [plan.high, digest],
    )


def test_the_run_after_migration_011_is_full_and_fills_every_environment(tmp_path):
    con = duckdb.connect(str(tmp_path / "v10.duckdb"))
    at_version_10(con)
    store_spans(con)
    registry = load_registry(con)
    digest = inputs_digest(registry, None)
    derive_as_version_10(con, digest)
    assert con.execute("SELECT count(*) FROM priced_calls").fetchall() == [(6,)]
    gone = con.execute("SELECT trace_id FROM spans ORDER BY ingest_seq DESC LIMIT 1").fetchall()[0][0]
    con.execute("DELETE FROM spans WHERE trace_id = ?", [gone])  # retention took the last trace

    assert migrate(con) == ["011_cost_environment.sql"]
    assert con.execute("SELECT count(*) FROM priced_calls WHERE environment IS NOT NULL").fetchall() == [(0,)]
    assert cost_store.job_state(con)["inputs_digest"] is None  # what the job itself left is not enough

    result = run_cost_job(con, registry)
    assert result.full and result.full_reason and result.calls == 5
    carried = con.execute(
        "SELECT c.environment IS NOT DISTINCT FROM s.environment FROM priced_calls c"
        " JOIN spans s USING (trace_id, span_id)"
    ).fetchall()
    assert carried == [(True,)] * 5
    kept = con.execute("SELECT environment, count(*) FROM priced_calls GROUP BY ALL ORDER BY ALL").fetchall()
    # the retained trace's call stays priced, with no environment: its span is gone
    assert kept == [("production", 3), ("staging", 1), (None, 2)]
    assert (
        con.execute("SELECT * FROM daily_costs ORDER BY ALL").fetchall()
        == con.execute(SUMMED_CALLS).fetchall()
    )
    assert cost_store.job_state(con)["inputs_digest"] == digest
    assert run_cost_job(con, registry).full_reason is None  # and the next run is incremental again
    con.close()
