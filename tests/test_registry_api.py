"""The registry through the CLI and the HTTP API: plan/apply/export, scoping by role, credentials."""

from __future__ import annotations

import json
import re
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from typer.testing import CliRunner

from muster.cli import app
from tests.conftest import start_server
from tests.payloads import trace_request
from tests.test_access import admin_headers, bearer, new_token

FIXTURE = Path(__file__).parent / "fixtures" / "registry"
runner = CliRunner()


def cli(data_dir: Path, *args: str):
    return runner.invoke(app, list(args), env={"MUSTER_DATA_DIR": str(data_dir), "COLUMNS": "200"})


@pytest.fixture
def registered(tmp_path):
    """A running server whose registry was applied from the fixture through the CLI."""
    server = start_server(tmp_path / "data", decode_workers=1)
    applied = cli(tmp_path / "data", "registry", "apply", "-f", str(FIXTURE), "--json")
    assert applied.exit_code == 0, applied.output
    server.applied = json.loads(applied.output)
    yield server
    server.stop()


def get(server, path: str, token: str | None = None) -> httpx.Response:
    headers = bearer(token) if token else admin_headers(server)
    return httpx.get(server.api_url + path, headers=headers)


def test_apply_export_round_trip_through_the_server(registered, tmp_path):
    data_dir = registered.server.settings.data_dir
    counts = registered.applied["counts"]
    assert counts["add"] >= 50 and counts["change"] == 0 and counts["remove"] == 0
    exported = cli(data_dir, "registry", "export", "-o", str(tmp_path / "export.yaml"))
    assert exported.exit_code == 0, exported.output
    again = cli(data_dir, "registry", "plan", "-f", str(tmp_path / "export.yaml"))
    assert again.exit_code == 0 and "No changes" in again.output
    second = cli(data_dir, "registry", "export")
    assert second.output == (tmp_path / "export.yaml").read_text()


def test_plan_shows_a_field_change_and_apply_records_history(registered, tmp_path):
    data_dir = registered.server.settings.data_dir
    changed = tmp_path / "registry"
    changed.mkdir()
    for source in FIXTURE.rglob("*.y*ml"):
        target = changed / source.relative_to(FIXTURE)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text()
        if source.name == "claims.yaml":
            text = text.replace("  monthlyBudget: 6000\n", "  monthlyBudget: 7500\n", 1)
        target.write_text(text)
    plan = cli(data_dir, "registry", "plan", "-f", str(changed))
    assert plan.exit_code == 0, plan.output
    assert "~ Agent claims-triage" in plan.output
    assert re.search(r"spec.monthlyBudget: 6000(\.0)? → 7500(\.0)?\n", plan.output)
    assert cli(data_dir, "registry", "apply", "-f", str(changed)).exit_code == 0
    history = json.loads(cli(data_dir, "registry", "history", "claims-triage", "--json").output)
    assert [e["action"] for e in history][-1] == "change"
    assert {"path": "spec.monthlyBudget", "before": 6000, "after": 7500} in history[-1]["fields"]
    assert history[-1]["actor"].startswith("tok_")


def test_a_failed_apply_changes_nothing_and_names_file_line_and_field(registered, tmp_path):
    data_dir = registered.server.settings.data_dir
    before = cli(data_dir, "registry", "export").output
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (FIXTURE / "departments.yaml").read_text()
        + "\n---\napiVersion: muster/v1\nkind: Agent\nmetadata:\n  id: stray\nspec:\n  name: Stray\n"
        "  owner: x@example.com\n  department: claims\n  lifecycle: pilot\n  colour: blue\n"
        "---\napiVersion: muster/v1\nkind: Agent\nmetadata:\n  id: lost\nspec:\n  name: Lost\n"
        "  owner: x@example.com\n  department: no-such-department\n  lifecycle: pilot\n"
    )
    result = cli(data_dir, "registry", "apply", "-f", str(broken))
    assert result.exit_code == 1
    assert "2 problems" in result.output
    assert re.search(rf"{broken}:\d+: spec.colour: ", result.output)
    assert re.search(rf"{broken}:\d+: spec.department: .*no-such-department", result.output)
    assert cli(data_dir, "registry", "export").output == before


def test_finance_token_of_one_department_sees_only_it(registered):
    token = new_token(registered, "finance", department_id="claims")
    agents = get(registered, "/api/v1/agents", token).json()
    assert agents and {a["spec"]["department"] for a in agents} == {"claims"}
    assert get(registered, "/api/v1/agents/claims-triage", token).status_code == 200
    other = next(a for a in get(registered, "/api/v1/agents").json() if a["spec"]["department"] != "claims")
    other_id = other["metadata"]["id"]
    assert get(registered, f"/api/v1/agents/{other_id}", token).status_code == 404
    assert get(registered, f"/api/v1/agents/{other_id}/history", token).status_code == 404
    assert [d["metadata"]["id"] for d in get(registered, "/api/v1/departments", token).json()] == ["claims"]
    put = httpx.put(
        f"{registered.api_url}/api/v1/agents/claims-triage", json=agents[0], headers=bearer(token)
    )
    assert put.status_code == 403
    export = get(registered, "/api/v1/registry/export", token)
    assert export.status_code == 403


def test_owner_token_sees_only_its_agent(registered):
    token = new_token(registered, "owner", agent_id="claims-triage")
    assert [a["metadata"]["id"] for a in get(registered, "/api/v1/agents", token).json()] == ["claims-triage"]
    assert get(registered, "/api/v1/agents/fnol-router", token).status_code == 200  # a former id
    assert [d["metadata"]["id"] for d in get(registered, "/api/v1/departments", token).json()] == ["claims"]


def test_hostile_ids_are_just_strings(registered):
    hostile = "'; DROP TABLE agents; --"
    assert get(registered, f"/api/v1/agents/{hostile}").status_code == 404
    assert len(get(registered, "/api/v1/agents").json()) >= 50


def test_platform_registers_updates_and_retires_an_agent(registered):
    token = new_token(registered, "platform")
    document = get(registered, "/api/v1/agents/claims-triage").json()
    document["metadata"]["id"] = "claims-summariser"
    document["spec"]["name"] = "Claims Summariser"
    document["spec"]["aliases"] = []
    document["spec"]["match"] = [{"agentId": "claims-summariser"}]
    url = f"{registered.api_url}/api/v1/agents/claims-summariser"
    created = httpx.put(url, json=document, headers=bearer(token))
    assert created.status_code == 200, created.text
    assert created.json()["changed"]["action"] == "add"
    mismatch = httpx.put(f"{registered.api_url}/api/v1/agents/other-id", json=document, headers=bearer(token))
    assert mismatch.status_code == 422
    retired = httpx.post(url + "/retire", headers=bearer(token))
    assert retired.status_code == 200
    assert get(registered, "/api/v1/agents/claims-summariser").json()["spec"]["lifecycle"] == "retired"


def send_span(server, transport: str, credential: str | None, service: str = "claims-bot") -> None:
    headers = {"authorization": f"Bearer {credential}"} if credential else None
    if transport == "grpc":
        exporter = GrpcSpanExporter(endpoint=server.grpc_endpoint, insecure=True, headers=headers)
    else:
        exporter = HttpSpanExporter(endpoint=server.http_url + "/v1/traces", headers=headers)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("chat", attributes={"gen_ai.agent.id": "someone-else"}).end()
    provider.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_exports_with_a_credential_belong_to_its_agent(registered, transport):
    data_dir = registered.server.settings.data_dir
    created = cli(data_dir, "credentials", "create", "claims-triage", "--name", "prod", "--json")
    assert created.exit_code == 0, created.output
    credential = json.loads(created.output)
    send_span(registered, transport, credential["secret"])
    send_span(registered, transport, None, service="anonymous-bot")
    rows = registered.query("SELECT service_name, credential_agent_id FROM spans ORDER BY service_name")
    assert rows == [("anonymous-bot", None), ("claims-bot", "claims-triage")]
    assert cli(data_dir, "credentials", "revoke", credential["id"]).exit_code == 0
    send_span(registered, transport, credential["secret"])  # refused now
    assert registered.query("SELECT count(*) FROM spans")[0][0] == 2
    assert registered.server.ingest.stats.unauthenticated["traces"] >= 1


def test_owner_manages_credentials_only_for_its_agent(registered):
    token = new_token(registered, "owner", agent_id="claims-triage")
    own = httpx.post(f"{registered.api_url}/api/v1/agents/claims-triage/credentials", headers=bearer(token))
    assert own.status_code == 201
    other = httpx.post(
        f"{registered.api_url}/api/v1/agents/invoice-matcher/credentials", headers=bearer(token)
    )
    assert other.status_code == 404
    unknown = httpx.post(
        f"{registered.api_url}/api/v1/agents/nobody/credentials", headers=admin_headers(registered)
    )
    assert unknown.status_code == 404


def test_required_credentials_refuse_anonymous_exports_and_store_nothing(tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(data_dir, decode_workers=1, require_credentials=True)
    try:
        assert cli(data_dir, "registry", "apply", "-f", str(FIXTURE)).exit_code == 0
        credential = json.loads(cli(data_dir, "credentials", "create", "claims-triage", "--json").output)
        body = trace_request(2).SerializeToString()
        response = httpx.post(
            server.http_url + "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
        )
        assert response.status_code == 401
        with grpc.insecure_channel(server.grpc_endpoint) as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            with pytest.raises(grpc.RpcError) as caught:
                export(body, timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError):
                export(body, timeout=10, metadata=[("authorization", "Bearer mic_wrong")])
            export(body, timeout=10, metadata=[("authorization", f"Bearer {credential['secret']}")])
        assert server.query("SELECT count(*), any_value(credential_agent_id) FROM spans") == [
            (2, "claims-triage")
        ]
    finally:
        server.stop()
