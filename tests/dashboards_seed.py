"""A running server seeded for the dashboard tests: real OTLP from the fleet simulator, a registry.

The fleet's twelve applications send traces spread over the past weeks; the registry in
`fixtures/dashboards/registry.yaml` registers four of them in three departments, so the pages see
registered and unregistered agents, several departments, and spend over time.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from streamlit.testing.v1 import AppTest

from dashboards import APP
from muster.simulate import build_fleet, run
from tests.conftest import RunningServer, start_server
from tests.test_access import admin_headers, new_token

REGISTRY = Path(__file__).parent / "fixtures" / "dashboards" / "registry.yaml"


def seeded_server(data_dir: Path, *, traces: int = 160, backfill_days: int = 20) -> RunningServer:
    """A server on ephemeral ports whose warehouse holds the fleet's traces, priced and attributed."""
    server = start_server(data_dir, decode_workers=1, jobs_interval_seconds=0)
    try:
        ledger = run(
            build_fleet(seed=7, agents=12),
            grpc_endpoint=server.grpc_endpoint,
            http_endpoint=server.http_url,
            traces=traces,
            backfill_days=backfill_days,
            seed=7,
        )
        assert ledger.failed_exports == 0
        apply_registry(server)
        run_jobs(server)
    except BaseException:
        server.stop()
        raise
    return server


def apply_registry(server: RunningServer) -> None:
    files = {REGISTRY.name: REGISTRY.read_text()}
    response = api(server, "POST", "/api/v1/registry/apply", json=files)
    assert response.status_code == 200, response.text


def run_jobs(server: RunningServer) -> dict:
    response = api(server, "POST", "/api/v1/jobs/run", params={"full": "true"})
    assert response.status_code == 200, response.text
    return response.json()


def job_run_after(server: RunningServer, before: list[dict], *, deadline_s: float = 180) -> dict:
    """The cost job's state once a run has ended since `before` (GET /api/v1/jobs), polling for it."""
    deadline = time.monotonic() + deadline_s
    while True:
        state = api(server, "GET", "/api/v1/jobs").json()
        if state and state != before:
            return state[0]
        assert time.monotonic() < deadline, "no cost job run ended"
        time.sleep(0.1)


def api(server: RunningServer, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else admin_headers(server)
    return httpx.request(method, server.api_url + path, headers=headers, timeout=60, **kwargs)


def admin_token(server: RunningServer) -> str:
    return admin_headers(server)["Authorization"].removeprefix("Bearer ")


__all__ = ["REGISTRY", "admin_token", "api", "job_run_after", "new_token", "seeded_server"]


def open_page(server: RunningServer, page: str, token: str) -> AppTest:
    """The dashboard signed in with `token`, switched to `pages/<page>.py`, run without an exception.

    The caller points it at `server` with MUSTER_API_URL (monkeypatch.setenv), as a user's app would be.
    """
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["muster_token"] = token
    at.session_state["muster_who"] = api(server, "GET", "/api/v1/whoami", token).json()
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at
