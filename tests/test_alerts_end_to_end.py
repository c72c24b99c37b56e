"""From telemetry to the platform team's Slack channel: real OTLP into a real server, the real cost and
findings jobs, the server's dispatcher, and a real HTTP server on loopback standing in for Slack.

Three agents nobody registered appear in Marketing: one message says so with what they spent and a
link to the dashboard; once they are registered, the same channel hears that they resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tests.alerts_support import Sink
from tests.conftest import start_server
from tests.test_access import admin_headers
from tests.test_costs_job import Call, Sent, agent_trace, send

SHADOWS = ("ad-writer", "seo-bot", "lead-scorer")

CONFIG = {
    "route": {
        "receiver": "log",  # fleet-wide findings (the new-unregistered rate) stay in the log
        "group_by": ["rule", "department"],
        "group_wait": "0s",
        "group_interval": "1m",
        "repeat_interval": "4h",
        "routes": [{"matchers": ["category=~sprawl|drift", "department!="], "receiver": "platform"}],
    },
    "receivers": [{"name": "platform", "type": "slack", "url": "env:TEST_SLACK_URL"}],
}
MARKETING = """
apiVersion: muster/v1
kind: Department
metadata: {id: marketing}
spec: {name: Marketing Europe, financeContact: fin@example.com}
"""
REGISTERED = "".join(
    f"""---
apiVersion: muster/v1
kind: Agent
metadata: {{id: {name}}}
spec: {{name: {name}, owner: ops@example.com, department: marketing, lifecycle: production,
       match: [{{agentName: {name}}}]}}
"""
    for name in SHADOWS
)


@pytest.fixture
def slack(monkeypatch):
    found = Sink().start()
    monkeypatch.setenv("TEST_SLACK_URL", found.url)
    yield found
    found.stop()


@pytest.fixture
def served(tmp_path, slack):
    running = start_server(
        tmp_path / "data",
        decode_workers=0,
        alerts=CONFIG,
        alerts_interval_seconds=0,
        dashboard_url="http://dash.example:8501",
    )
    yield running
    running.stop()


def api(served, path: str, **body: str) -> dict:
    response = httpx.post(served.api_url + path, json=body or None, headers=admin_headers(served), timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def shadow_trace(name: str) -> Sent:
    """An agent span in Marketing's service namespace with one priced chat call beneath it."""
    resource = {"service.name": f"{name}-svc", "service.namespace": "marketing"}
    return agent_trace((resource, name), [Call("gpt-4o", 100_000, 20_000)])


def run_jobs(served) -> None:
    api(served, "/api/v1/jobs/run")
    api(served, "/api/v1/findings/run")


def test_three_shadow_agents_in_marketing_are_one_slack_message_then_resolved(served, slack):
    api(served, "/api/v1/registry/apply", **{"registry.yaml": MARKETING})
    for name in SHADOWS:
        send(served, shadow_trace(name))
    run_jobs(served)
    now = datetime.now(UTC)
    served.server.alerts.tick(now)

    [message] = slack.received
    header = message["blocks"][0]["text"]["text"]
    assert header.startswith("[FIRING:3] 3 unregistered agents appeared in Marketing Europe, $")
    amount, window = header.rsplit("$", 1)[1].split(" spent in the last ")
    assert window == "30 days"  # the findings' identity window, which the amount is summed over
    spent = Decimal(amount)
    findings = httpx.get(
        served.api_url + "/api/v1/findings",
        params={"rule": "sprawl.unregistered_agent"},
        headers=admin_headers(served),
    ).json()["findings"]
    assert spent == sum(Decimal(f["evidence"]["spend_usd"]) for f in findings) > 0
    assert message["text"].startswith(":rotating_light: " + header)
    assert all(name in message["blocks"][1]["text"]["text"] for name in SHADOWS)
    assert "department: *Marketing Europe*" in message["blocks"][2]["elements"][0]["text"]
    assert message["blocks"][3]["elements"][0]["url"].startswith("http://dash.example:8501/")

    api(served, "/api/v1/registry/apply", **{"registry.yaml": MARKETING + REGISTERED})
    run_jobs(served)
    served.server.alerts.tick(now + timedelta(minutes=2))
    resolved = slack.received[-1]
    assert len(slack.received) == 2
    assert resolved["blocks"][0]["text"]["text"] == (
        "[RESOLVED:3] Marketing Europe sprawl.unregistered_agent"
    )
    assert resolved["text"].startswith(":white_check_mark:")
