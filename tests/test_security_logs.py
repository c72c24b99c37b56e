"""No secret ever reaches a log: a full scenario against `muster serve`, then every log it wrote is
searched for every secret that was created, presented or configured.

The scenario: the registry applied; API tokens created and used (and wrong ones presented);
ingest credentials required, created and sent over gRPC and HTTP (and a wrong one presented); alert
receivers whose webhook URL and SMTP password are secrets, the webhook failing and the SMTP server
unreachable, so their errors are logged; a test notification; the cost and findings jobs; a backup.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx

from tests.alerts_support import Sink, insert_finding
from tests.faults_support import TRACES, Serve
from tests.payloads import trace_request
from tests.ports import free_port
from warehouse.database import open_warehouse

REGISTRY = Path(__file__).parent / "fixtures" / "registry"
WEBHOOK_SECRET = "whsec-7f3a9c1e5b"
SMTP_PASSWORD = "smtp-pw-4d2e8a6c"
WRONG_TOKEN = "mst_not-a-real-token-0a1b2c3d4e5f"
WRONG_CREDENTIAL = "mic_not-a-real-credential-9z8y7x"

ALERTS = """
route:
  receiver: oncall
  group_by: [department]
  group_wait: 0s
  routes:
    - matchers: ["severity=critical"]
      receiver: finance-email
      continue: true
receivers:
  - name: oncall
    type: webhook
    url: env:TEST_WEBHOOK_URL
  - name: finance-email
    type: email
    to: [finops@example.com]
smtp:
  host: 127.0.0.1
  port: {smtp_port}
  from: muster@example.com
  username: muster
  password: env:TEST_SMTP_PASSWORD
delivery:
  initial_backoff: 1s
  max_backoff: 1s
"""


def registry_files() -> dict[str, str]:
    return {str(p.relative_to(REGISTRY)): p.read_text() for p in REGISTRY.rglob("*.y*ml")}


def test_no_token_credential_or_receiver_secret_is_ever_logged(tmp_path):
    data = tmp_path / "data"
    with open_warehouse(data / "muster.duckdb") as con:
        insert_finding(con, "leak-check", department="claims", severity="critical", category="spend")
    (tmp_path / "alerts.yaml").write_text(ALERTS.replace("{smtp_port}", str(free_port())))
    sink = Sink().start()
    sink.status = 500  # failing: its errors, with the URL, get logged
    webhook_url = f"http://127.0.0.1:{sink.port}/hooks/{WEBHOOK_SECRET}"
    serve = Serve(
        data,
        tmp_path / "serve.log",
        MUSTER_ALERTS_FILE=str(tmp_path / "alerts.yaml"),
        MUSTER_ALERTS_INTERVAL_SECONDS="0.3",
        MUSTER_REQUIRE_CREDENTIALS="true",
        TEST_WEBHOOK_URL=webhook_url,
        TEST_SMTP_PASSWORD=SMTP_PASSWORD,
    )
    secrets = [WEBHOOK_SECRET, SMTP_PASSWORD, WRONG_TOKEN, WRONG_CREDENTIAL]
    try:
        serve.start()
        secrets.append(serve.token())
        assert serve.api("POST", "/api/v1/registry/apply", json=registry_files()).status_code == 200
        agent = "claims-triage"
        for role in ("viewer", "finance", "platform"):
            created = serve.api("POST", "/api/v1/tokens", json={"role": role})
            assert created.status_code == 201, created.text
            secrets.append(created.json()["secret"])
            assert serve.api("GET", "/api/v1/whoami", token=secrets[-1]).status_code == 200
        assert serve.api("GET", "/api/v1/whoami", token=WRONG_TOKEN).status_code == 401
        credential = serve.api("POST", f"/api/v1/agents/{agent}/credentials", json={}).json()["secret"]
        secrets.append(credential)

        with grpc.insecure_channel(f"127.0.0.1:{serve.grpc_port}") as channel:
            export = channel.unary_unary(TRACES)
            export(trace_request(3).SerializeToString(), metadata=[("authorization", f"Bearer {credential}")])
            try:
                export(trace_request(3).SerializeToString(), metadata=[("authorization", WRONG_CREDENTIAL)])
                raise AssertionError("a wrong credential was accepted")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
        http_traces = f"http://127.0.0.1:{serve.http_port}/v1/traces"
        for presented, expected in ((credential, 200), (WRONG_CREDENTIAL, 401)):
            answer = httpx.post(
                http_traces,
                content=trace_request(3).SerializeToString(),
                headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {presented}"},
            )
            assert answer.status_code == expected, answer.text

        assert serve.api("POST", "/api/v1/jobs/run").status_code == 200
        assert serve.api("POST", "/api/v1/findings/run").status_code == 200
        tested = serve.api("POST", "/api/v1/receivers/oncall/test").json()
        assert tested["ok"] is False and WEBHOOK_SECRET not in tested["error"]
        tested = serve.api("POST", "/api/v1/receivers/finance-email/test").json()
        assert tested["ok"] is False and SMTP_PASSWORD not in tested["error"]
        assert serve.api("POST", "/api/v1/admin/backup", json={"name": "b.duckdb"}).status_code == 201
        wait_until_failed_attempts(serve)
        serve.stop()
    finally:
        serve.ensure_stopped()
        sink.stop()

    logs = {"serve.log": serve.log_text()}
    logs |= {p.name: p.read_text(errors="replace") for p in data.glob("*.log")}
    logs |= {p.name: p.read_text() for p in data.glob("*.json")}
    assert "HTTP Request: POST" in logs["serve.log"]  # the scenario did log its deliveries
    assert "notification" in logs["serve.log"]
    leaks = [(name, secret[:8]) for name, text in logs.items() for secret in secrets if secret in text]
    assert leaks == []


def wait_until_failed_attempts(serve: Serve) -> None:
    """Until both receivers have failed at least once on their own (their errors logged)."""
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pending = serve.api("GET", "/api/v1/alerts/deliveries", params={"status": "pending"}).json()
        if {p["receiver"] for p in pending if p["attempts"] >= 1} >= {"oncall", "finance-email"}:
            return
        time.sleep(0.2)
    raise AssertionError("the receivers were never attempted")
