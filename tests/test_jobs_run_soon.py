"""`POST /api/v1/jobs/run?wait=false`: the cost job started without the caller waiting for it.

Against real servers: on a schedule the schedule's own thread runs it at once (an hour-long interval
could not explain the run); without a schedule a thread of its own does, and stopping the server
lets that run end before the warehouse closes. An empty warehouse has an empty inventory.
"""

from __future__ import annotations

import threading
import time

import httpx

from tests.conftest import RunningServer, start_server
from tests.test_access import admin_headers

ON_DEMAND_THREAD = "muster-jobs-now"


def post_run(server: RunningServer, **params: str) -> httpx.Response:
    return httpx.post(
        server.api_url + "/api/v1/jobs/run", params=params, headers=admin_headers(server), timeout=60
    )


def job_states(server: RunningServer) -> list[dict]:
    answer = httpx.get(server.api_url + "/api/v1/jobs", headers=admin_headers(server), timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_a_run(server: RunningServer, deadline_s: float = 120) -> dict:
    deadline = time.monotonic() + deadline_s
    while not (states := job_states(server)):
        assert time.monotonic() < deadline, "no cost job run ended"
        time.sleep(0.05)
    return states[0]


def on_demand_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == ON_DEMAND_THREAD]


def test_on_a_schedule_the_schedules_thread_runs_it_at_once(tmp_path):
    server = start_server(tmp_path / "data", decode_workers=1, jobs_interval_seconds=3600)
    try:
        inventory = httpx.get(server.api_url + "/api/v1/inventory", headers=admin_headers(server), timeout=60)
        assert (inventory.status_code, inventory.json()) == (200, [])
        assert job_states(server) == []
        started = post_run(server, wait="false")
        assert started.status_code == 202, started.text
        assert started.json() == {"started": True, "full": False, "status": "/api/v1/jobs"}
        assert not on_demand_threads()  # the schedule's thread took it
        assert wait_for_a_run(server)["last_error"] is None
    finally:
        server.stop()


def test_without_a_schedule_the_run_goes_on_after_the_answer_and_ends_before_the_server(tmp_path):
    server = start_server(tmp_path / "data", decode_workers=1, jobs_interval_seconds=0)
    stopped = False
    try:
        with server.server.jobs._lock:  # held: the run cannot start, yet the request is answered
            answers = [post_run(server, wait="false", full="true") for _ in range(3)]
            assert [a.status_code for a in answers] == [202, 202, 202]
            assert len(on_demand_threads()) == 1  # requests while one waits fold into it
            assert job_states(server) == []
        server.stop()
        stopped = True
        assert not on_demand_threads()  # stopping waited for the run, which then ended
    finally:
        if not stopped:
            server.stop()
    restarted = start_server(tmp_path / "data", decode_workers=1, jobs_interval_seconds=0)
    try:
        state = job_states(restarted)
        assert state and state[0]["last_error"] is None  # the run asked for before the stop committed
        assert post_run(restarted).status_code == 200  # waiting for the run is still the default
    finally:
        restarted.stop()
