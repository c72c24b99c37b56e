"""SIGKILL during a cost-job run: after a restart the next run gives exactly the totals of a run that
was never interrupted — no call lost, none counted twice.

A real `muster serve` with a backlog of 16,000 model calls and `jobs_batch_spans` of 800, so a run
commits some 20 batches one after another; the server logs each, and the test kills it without
warning once a few are committed. The reference is the same warehouse, copied before the run, priced
by an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
from pathlib import Path

import httpx

from tests.faults_support import Serve, query, wait_for
from tests.payloads import trace_request

BATCH_SPANS = "800"
EXPORTS, SPANS_PER_EXPORT = 80, 200
BATCH_LINE = re.compile(r"cost job: batch (\d+)/(\d+) committed")


def backlog(serve: Serve) -> None:
    for index in range(EXPORTS):  # a few services, so attribution has something to tell apart
        serve.export(trace_request(SPANS_PER_EXPORT, service=f"agent-{index % 7}").SerializeToString())


def totals(path: Path) -> dict[str, object]:
    """Everything the cost job derives, summed per observed identity and day, plus its watermark."""
    per_identity = query(
        path,
        "SELECT observed_identity, day, count(*), sum(input_tokens), sum(output_tokens), sum(cost_usd)"
        " FROM priced_calls GROUP BY ALL ORDER BY ALL",
    )
    doubled = query(path, "SELECT count(*) - count(DISTINCT (trace_id, span_id)) FROM priced_calls")[0][0]
    activity = query(path, "SELECT count(*), count(DISTINCT trace_id) FROM trace_agents")[0]
    state = query(path, "SELECT watermark, last_error FROM job_state WHERE job = 'costs'")
    return {"per_identity": per_identity, "doubled": doubled, "trace_agents": activity, "state": state}


def run_job(serve: Serve) -> dict:
    response = serve.api("POST", "/api/v1/jobs/run")
    assert response.status_code == 200, response.text
    return response.json()


def test_sigkill_during_a_cost_job_run_then_the_next_run_equals_an_uninterrupted_one(tmp_path):
    data, reference = tmp_path / "data", tmp_path / "reference"
    env = {"MUSTER_JOBS_BATCH_SPANS": BATCH_SPANS}
    serve = Serve(data, tmp_path / "serve.log", **env)
    serve.start()
    backlog(serve)
    serve.stop()
    shutil.copytree(data, reference)

    uninterrupted = Serve(reference, tmp_path / "reference.log", **env).start()
    result = run_job(uninterrupted)
    uninterrupted.stop()
    assert result["calls"] == EXPORTS * SPANS_PER_EXPORT
    expected = totals(reference / "muster.duckdb")
    assert expected["doubled"] == 0

    serve.start()
    try:
        # the request dies with the server; its answer is not awaited
        threading.Thread(target=_run_ignoring_the_kill, args=(serve,), daemon=True).start()
        batch, batches = wait_for(lambda: _committed_batches(serve), "no batch was committed", timeout=120)
        serve.kill()  # mid-run, without warning
        assert 3 <= batch < batches, "the run was not caught midway"
    finally:
        serve.ensure_stopped()
    assert batches >= 10

    serve.start()
    state = serve.api("GET", "/api/v1/jobs").json()
    assert state == [] or state[0]["watermark"] == 0  # the watermark moves only with the last batch
    after = run_job(serve)
    assert after["calls"] == EXPORTS * SPANS_PER_EXPORT  # the next run redid every trace
    again = run_job(serve)  # and a run after that finds nothing new
    assert again["calls"] == 0
    serve.stop()
    assert totals(data / "muster.duckdb") == expected


def _run_ignoring_the_kill(serve: Serve) -> None:
    with contextlib.suppress(httpx.HTTPError):
        serve.api("POST", "/api/v1/jobs/run")


def _committed_batches(serve: Serve) -> tuple[int, int] | None:
    found = BATCH_LINE.findall(serve.log_text())
    if not found:
        return None
    batch, batches = map(int, found[-1])
    return (batch, batches) if batch >= 3 else None
