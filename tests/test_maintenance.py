"""Backups under load restore to the same totals; retention drops old raw rows and keeps recent ones.

A real server receives traces on a thread while `muster backup` runs through the CLI; the backup is
restored with `muster restore` into another data directory and priced there by the real cost job.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint

from tests.conftest import start_server
from tests.otlp_builders import log_record, logs_request, metrics_request, span, trace_request
from tests.test_access import admin_headers
from tests.test_costs_job import CLAIMS_TRIAGE, Call, Sent, agent_trace, cli, expected_cost, send
from warehouse.database import open_warehouse

DAY_NS = 86_400 * 10**9
SERVICE = {"service.name": "svc"}


def test_a_backup_taken_under_load_is_a_consistent_snapshot_that_restores_to_the_same_totals(
    server, tmp_path
):
    sent, done = [], threading.Event()

    def load() -> None:
        while not done.is_set():
            trace = agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o-mini", 1200, 300), Call("gpt-4o", 800, 100)])
            send(server, trace)  # returns once committed
            sent.append(trace)

    loader = threading.Thread(target=load)
    loader.start()
    while len(sent) < 20:
        time.sleep(0.05)
    before = len(sent)
    made = cli(server.server.settings.data_dir, "backup", "snapshot.duckdb", "--json")
    after = len(sent)
    time.sleep(0.5)
    done.set()
    loader.join()
    assert made.exit_code == 0, made.output
    backup_file = server.server.settings.data_dir / "backups" / "snapshot.duckdb"

    restored_dir = tmp_path / "restored"
    restored = cli(restored_dir, "restore", str(backup_file))
    assert restored.exit_code == 0, restored.output
    assert cli(restored_dir, "jobs", "run").exit_code == 0
    spend = cli(restored_dir, "spend", "--by", "department", "--json")
    assert spend.exit_code == 0, spend.output

    with open_warehouse(restored_dir / "muster.duckdb") as con:
        traces = {
            row[0]: row[1]
            for row in con.execute("SELECT trace_id, count(*) FROM spans GROUP BY 1").fetchall()
        }
    assert before <= len(traces) <= after + 1  # everything acknowledged before the backup, nothing torn
    assert set(traces.values()) == {3}  # every trace whole: one agent span and two calls
    by_id = {s.request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex(): s for s in sent}
    expected = sum((expected_cost(by_id[trace]) for trace in traces), Decimal(0))
    assert sum(Decimal(row["cost_usd"]) for row in json.loads(spend.output)) == expected


@pytest.fixture
def ungraced(tmp_path):
    """A server whose retention deletes old priced spans at once, however recently received."""
    running = start_server(tmp_path / "data", decode_workers=1, raw_retention_grace_seconds=0)
    yield running
    running.stop()


def test_backup_names_cannot_escape_the_backup_directory_or_overwrite(server):
    url = server.api_url + "/api/v1/admin/backup"
    for name in ("../escape.duckdb", "/tmp/x.duckdb", "a/b.duckdb", "noext"):
        response = httpx.post(url, json={"name": name}, headers=admin_headers(server))
        assert response.status_code == 422, (name, response.text)
    assert httpx.post(url, json={"name": "one.duckdb"}, headers=admin_headers(server)).status_code == 201
    again = httpx.post(url, json={"name": "one.duckdb"}, headers=admin_headers(server))
    assert again.status_code == 422 and "already exists" in again.text


def test_restore_refuses_while_a_server_runs_and_refuses_what_is_not_a_warehouse(server, tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    running = cli(server.server.settings.data_dir, "restore", str(junk))
    assert running.exit_code != 0 and "running" in running.output
    refused = cli(tmp_path / "elsewhere", "restore", str(junk))
    assert refused.exit_code != 0 and "not a Muster warehouse" in refused.output


def test_retention_deletes_raw_rows_past_their_days_and_keeps_the_rest(ungraced):
    old = time.time_ns() - 40 * 86_400 * 10**9
    new = time.time_ns() - 60 * 10**9
    for start in (old, new):
        request = trace_request(
            {"service.name": "svc"}, [span("s", trace_id=os.urandom(16), start=start, end=start + 1000)]
        )
        response = httpx.post(
            ungraced.http_url + "/v1/traces",
            content=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert response.status_code == 200
    headers = admin_headers(ungraced)
    assert httpx.post(ungraced.api_url + "/api/v1/jobs/run", headers=headers, timeout=60).is_success
    deleted = httpx.post(ungraced.api_url + "/api/v1/admin/retention", headers=headers).json()["deleted"]
    assert deleted["spans"] == 1
    (kept,) = ungraced.query("SELECT min(start_time) FROM spans")[0]
    assert kept > datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)


def test_cost_facts_outlive_the_raw_spans_retention_deleted_even_through_a_full_run(ungraced):
    old = agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o", 1000, 100)])
    for item in old.request.resource_spans[0].scope_spans[0].spans:  # 40 days ago
        item.start_time_unix_nano -= 40 * 86_400 * 10**9
        item.end_time_unix_nano -= 40 * 86_400 * 10**9
    send(ungraced, old)
    send(ungraced, agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o-mini", 1000, 100)]))
    headers = admin_headers(ungraced)
    assert httpx.post(ungraced.api_url + "/api/v1/jobs/run", headers=headers, timeout=60).status_code == 200
    before = ungraced.query("SELECT count(*), sum(cost_usd) FROM priced_calls")[0]
    assert before[0] == 2
    httpx.post(ungraced.api_url + "/api/v1/admin/retention", headers=headers).raise_for_status()
    assert ungraced.query("SELECT count(*) FROM spans")[0][0] == 2  # the new trace's spans only
    full = httpx.post(
        ungraced.api_url + "/api/v1/jobs/run", params={"full": True}, headers=headers, timeout=60
    )
    assert full.status_code == 200, full.text
    assert ungraced.query("SELECT count(*), sum(cost_usd) FROM priced_calls")[0] == before
    assert ungraced.query("SELECT count(*) FROM trace_agents")[0][0] == 2


def test_retention_keeps_old_spans_the_cost_job_has_not_priced_yet(ungraced):
    old = agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o", 1000, 100)])
    for item in old.request.resource_spans[0].scope_spans[0].spans:
        item.start_time_unix_nano -= 40 * 86_400 * 10**9
        item.end_time_unix_nano -= 40 * 86_400 * 10**9
    send(ungraced, old)
    headers = admin_headers(ungraced)
    kept = httpx.post(ungraced.api_url + "/api/v1/admin/retention", headers=headers).json()["deleted"]
    assert kept["spans"] == 0  # not priced yet: it stays until the cost job has read it
    assert httpx.post(ungraced.api_url + "/api/v1/jobs/run", headers=headers, timeout=60).status_code == 200
    gone = httpx.post(ungraced.api_url + "/api/v1/admin/retention", headers=headers).json()["deleted"]
    assert gone["spans"] == 2 and ungraced.query("SELECT count(*) FROM priced_calls")[0][0] == 1


def post_otlp(ungraced, signal: str, request) -> None:
    response = httpx.post(
        f"{ungraced.http_url}/v1/{signal}",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.text  # acknowledged once committed


def test_metrics_logs_and_cost_facts_past_their_days_are_deleted_and_the_rest_kept(tmp_path):
    # raw rows kept 30 days, cost facts 35: a 40-day-old trace loses both, a 32-day-old one its spans only
    running = start_server(
        tmp_path / "data",
        decode_workers=1,
        raw_retention_days=30,
        cost_retention_days=35,
        raw_retention_grace_seconds=0,
    )
    try:
        ages = {"old": 40, "middle": 32, "new": 0}
        for days in ages.values():
            sent = agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o", 1000, 100)])
            for item in sent.request.resource_spans[0].scope_spans[0].spans:
                item.start_time_unix_nano -= days * DAY_NS
                item.end_time_unix_nano -= days * DAY_NS
            send(running, sent)
            at = time.time_ns() - days * DAY_NS - 60 * 10**9
            point = NumberDataPoint(time_unix_nano=at, as_int=days)
            post_otlp(
                running,
                "metrics",
                metrics_request(SERVICE, [Metric(name="m", gauge=Gauge(data_points=[point]))]),
            )
            post_otlp(running, "logs", logs_request(SERVICE, [log_record(f"{days} days ago", time=at)]))
        headers = admin_headers(running)
        assert (
            httpx.post(running.api_url + "/api/v1/jobs/run", headers=headers, timeout=60).status_code == 200
        )
        assert running.query("SELECT count(*) FROM priced_calls")[0][0] == 3

        answer = httpx.post(running.api_url + "/api/v1/admin/retention", headers=headers, timeout=60)
        deleted = answer.json()["deleted"]

        assert deleted["metric_points"] == deleted["log_records"] == 2  # the 40- and 32-day-old ones
        assert running.query("SELECT list(value_int) FROM metric_points")[0][0] == [0]
        assert deleted["spans"] == 4  # two traces, an agent span and a call each
        assert deleted["priced_calls"] == 1 and deleted["trace_agents"] == 1 and deleted["daily_costs"] >= 1
        oldest = datetime.now(UTC).date() - timedelta(days=35)
        (kept,) = running.query("SELECT min(day) FROM daily_costs")[0]
        assert oldest <= kept <= datetime.now(UTC).date() - timedelta(days=32)
        assert running.query("SELECT count(*) FROM priced_calls")[0][0] == 2
    finally:
        running.stop()


def part_of(sent: Sent, keep: Callable[[int], bool]) -> Sent:
    """The trace with only the spans whose index `keep` accepts (0 is the root), as one export."""
    request = ExportTraceServiceRequest()
    request.CopyFrom(sent.request)
    spans = request.resource_spans[0].scope_spans[0].spans
    chosen = [item for index, item in enumerate(spans) if keep(index)]
    del spans[:]
    spans.extend(chosen)
    return Sent(request, sent.agent, sent.calls, sent.started)


def test_an_old_trace_exported_in_parts_keeps_its_cost_when_retention_runs_in_between(server):
    # A backfill or replay: the calls end, and are exported and priced, before their root span;
    # retention runs meanwhile. The root's arrival re-prices the trace, which must still be whole.
    old = agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o", 1000, 100), Call("gpt-4o", 2000, 100)])
    for item in old.request.resource_spans[0].scope_spans[0].spans:
        item.start_time_unix_nano -= 40 * DAY_NS
        item.end_time_unix_nano -= 40 * DAY_NS
    headers = admin_headers(server)
    send(server, part_of(old, lambda index: index > 0))
    assert httpx.post(server.api_url + "/api/v1/jobs/run", headers=headers, timeout=60).status_code == 200
    deleted = httpx.post(server.api_url + "/api/v1/admin/retention", headers=headers).json()["deleted"]
    assert deleted["spans"] == 0  # received seconds ago: within the grace, however old
    send(server, part_of(old, lambda index: index == 0))
    send(server, agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o-mini", 1000, 100)]))  # a recent trace besides
    assert httpx.post(server.api_url + "/api/v1/jobs/run", headers=headers, timeout=60).status_code == 200

    month_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=30)
    old_calls = "SELECT count(*), sum(cost_usd) FROM priced_calls WHERE start_time < $cutoff"
    assert server.query(old_calls, {"cutoff": month_ago})[0] == (2, expected_cost(old))
    old_days = "SELECT sum(cost_usd) FROM daily_costs WHERE day < $cutoff"
    assert server.query(old_days, {"cutoff": month_ago.date()})[0][0] == expected_cost(old)
