"""`muster status` and the API behind it: through a running server, from the file, and errors."""

from __future__ import annotations

import json

import httpx
from typer.testing import CliRunner

from muster.cli import app
from tests.conftest import start_server
from tests.payloads import logs_request, trace_request

runner = CliRunner()


def status(data_dir, *args):
    return runner.invoke(app, ["status", *args], env={"MUSTER_DATA_DIR": str(data_dir), "COLUMNS": "200"})


def send(server) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    httpx.post(
        server.http_url + "/v1/traces", content=trace_request(3, bad=1).SerializeToString(), headers=headers
    )
    body = trace_request(2, service="billing-agent").SerializeToString()
    httpx.post(server.http_url + "/v1/traces", content=body, headers=headers)
    httpx.post(server.http_url + "/v1/logs", content=logs_request(4).SerializeToString(), headers=headers)


def test_status_through_the_server_then_from_the_file(tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(data_dir, decode_workers=1)
    try:
        send(server)
        live = status(data_dir, "--json")
        human = status(data_dir)
    finally:
        server.stop()
    assert live.exit_code == 0, live.output
    answer = json.loads(live.output)
    assert answer["source"].startswith("server at http://127.0.0.1:")
    assert answer["totals"] == {"spans": 5, "metric_points": 0, "log_records": 4, "rejected": 1}
    services = {s["service_name"]: s for s in answer["services"]}
    assert services["support-agent"]["spans"] == 3 and services["support-agent"]["log_records"] == 4
    assert services["support-agent"]["rejected"] == 1
    assert services["billing-agent"]["spans"] == 2
    assert answer["rejects"][0]["reason"].startswith("trace_id")
    assert answer["since_start"]["throttled"] == {}
    assert human.exit_code == 0 and "billing-agent" in human.output and "recent rejects" in human.output

    offline = status(data_dir, "--json")  # no server now: read the file directly
    assert offline.exit_code == 0, offline.output
    answer = json.loads(offline.output)
    assert answer["source"].startswith("file ")
    assert answer["totals"]["spans"] == 5


def test_status_without_a_warehouse_is_a_clear_error(tmp_path):
    result = status(tmp_path / "nothing-here")
    assert result.exit_code == 1
    assert "no warehouse" in result.output and "muster serve" in result.output


def test_api_requires_the_token_but_health_does_not(server):
    assert httpx.get(server.api_url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.api_url + "/readyz").status_code == 200
    assert httpx.get(server.api_url + "/api/v1/status").status_code == 401
    wrong = {"Authorization": "Bearer mst_not-the-token"}
    assert httpx.get(server.api_url + "/api/v1/status", headers=wrong).status_code == 401
    token = (server.server.settings.data_dir / "admin.token").read_text().strip()
    good = {"Authorization": f"Bearer {token}"}
    assert httpx.get(server.api_url + "/api/v1/status", headers=good).status_code == 200
    assert oct((server.server.settings.data_dir / "admin.token").stat().st_mode & 0o777) == "0o600"


def test_every_command_has_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "status", "version"):
        assert command in result.output
        help_text = runner.invoke(app, [command, "--help"])
        assert help_text.exit_code == 0 and len(help_text.output) > 50
