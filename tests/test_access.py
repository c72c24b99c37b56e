"""API tokens and roles: who may call what; missing, wrong and revoked tokens are refused."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from muster.cli import app

runner = CliRunner()


def admin_headers(server) -> dict:
    token = (server.server.settings.data_dir / "admin.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def new_token(server, role: str, **scope) -> str:
    body = {"role": role} | scope
    response = httpx.post(server.api_url + "/api/v1/tokens", json=body, headers=admin_headers(server))
    assert response.status_code == 201, response.text
    return response.json()["secret"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "role, scope, status_code, tokens_code",
    [
        ("admin", {}, 200, 200),
        ("platform", {}, 200, 403),
        ("finance", {"department_id": "marketing"}, 403, 403),
        ("owner", {"agent_id": "support-triage"}, 403, 403),
        ("viewer", {}, 403, 403),
    ],
)
def test_each_role_reaches_what_it_may(server, role, scope, status_code, tokens_code):
    headers = bearer(new_token(server, role, **scope))
    assert httpx.get(server.api_url + "/api/v1/status", headers=headers).status_code == status_code
    assert httpx.get(server.api_url + "/metrics", headers=headers).status_code == status_code
    assert httpx.get(server.api_url + "/api/v1/tokens", headers=headers).status_code == tokens_code
    created = httpx.post(server.api_url + "/api/v1/tokens", json={"role": "viewer"}, headers=headers)
    assert created.status_code == (201 if role == "admin" else 403)


def test_missing_wrong_and_revoked_tokens_are_refused(server):
    status = server.api_url + "/api/v1/status"
    assert httpx.get(status).status_code == 401
    assert httpx.get(status, headers=bearer("mst_guess")).status_code == 401
    assert httpx.get(status, headers={"Authorization": "Basic YWRtaW46YWRtaW4="}).status_code == 401
    token = new_token(server, "platform")
    assert httpx.get(status, headers=bearer(token)).status_code == 200
    listed = httpx.get(server.api_url + "/api/v1/tokens", headers=admin_headers(server)).json()
    token_id = next(t["id"] for t in listed if t["role"] == "platform")
    revoked = httpx.delete(f"{server.api_url}/api/v1/tokens/{token_id}", headers=admin_headers(server))
    assert revoked.status_code == 204
    assert httpx.get(status, headers=bearer(token)).status_code == 401


def test_secrets_are_stored_only_as_digests(server):
    token = new_token(server, "viewer")
    stored = server.query("SELECT secret_sha256 FROM api_tokens")
    assert all(token not in row[0] for row in stored)
    assert all(len(row[0]) == 64 for row in stored)


def test_bad_token_requests_say_what_is_wrong(server):
    url, headers = server.api_url + "/api/v1/tokens", admin_headers(server)
    owner = httpx.post(url, json={"role": "owner"}, headers=headers)
    assert owner.status_code == 422 and "--agent" in owner.json()["detail"]
    unknown = httpx.post(url, json={"role": "superuser"}, headers=headers)
    assert (
        unknown.status_code == 422 and "admin, platform, finance, owner, viewer" in unknown.json()["detail"]
    )
    hostile = httpx.delete(url + "/'; DROP TABLE api_tokens; --", headers=headers)
    assert hostile.status_code == 404
    assert server.query("SELECT count(*) FROM api_tokens")[0][0] >= 1


def test_metrics_in_prometheus_format(server):
    from tests.payloads import trace_request

    body = trace_request(3, bad=1).SerializeToString()
    httpx.post(
        server.http_url + "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
    )
    text = httpx.get(server.api_url + "/metrics", headers=admin_headers(server)).text
    assert 'muster_ingest_received_total{signal="traces"} 3.0' in text
    assert 'muster_ingest_rejected_total{signal="traces"} 1.0' in text
    assert "muster_commit_seconds_count" in text and "muster_ingest_queue_bytes" in text


def test_cli_manages_tokens_on_the_file_without_a_server(tmp_path):
    env = {"MUSTER_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    from tests.conftest import start_server

    start_server(tmp_path / "data", decode_workers=0).stop()  # create the warehouse
    created = runner.invoke(
        app, ["tokens", "create", "--role", "finance", "--department", "mkt", "--json"], env=env
    )
    assert created.exit_code == 0, created.output
    secret = json.loads(created.output)["secret"]
    assert secret.startswith("mst_")
    listed = runner.invoke(app, ["tokens", "list", "--json"], env=env)
    rows = json.loads(listed.output)
    finance = next(r for r in rows if r["role"] == "finance")
    assert finance["department_id"] == "mkt" and "secret" not in finance
    assert runner.invoke(app, ["tokens", "revoke", finance["id"]], env=env).exit_code == 0
    again = runner.invoke(app, ["tokens", "revoke", finance["id"]], env=env)
    assert again.exit_code == 1 and "not found" in again.output
    bad = runner.invoke(app, ["tokens", "create", "--role", "owner"], env=env)
    assert bad.exit_code == 1 and "--agent" in bad.output
