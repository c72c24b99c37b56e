"""The findings job end to end: real OTLP into a real server, the real jobs, the API and the CLI.

A registered agent uses a tool its registration does not allow, an unregistered agent spends money;
both become findings with evidence, visible only inside the right scope. Registering the shadow
agent resolves its finding on the next runs, and people's acknowledgements and silences hold.
"""

from __future__ import annotations

import os
import time

import httpx

from tests.otlp_builders import span, trace_request
from tests.test_access import admin_headers, bearer, new_token
from tests.test_costs_job import cli

DEPARTMENTS = """
apiVersion: muster/v1
kind: Department
metadata: {id: research}
spec: {name: Research, monthlyBudget: 1000}
---
apiVersion: muster/v1
kind: Department
metadata: {id: sales}
spec: {name: Sales}
---
apiVersion: muster/v1
kind: Agent
metadata: {id: triage}
spec:
  name: Triage
  owner: ana@example.com
  department: research
  lifecycle: production
  allowedTools: [search]
  match: [{agentName: triage}]
"""
GHOST = """
apiVersion: muster/v1
kind: Agent
metadata: {id: ghost}
spec: {name: Ghost, owner: ben@example.com, department: sales, lifecycle: production,
       match: [{agentName: ghost}]}
"""


def agent_trace(name: str, tools: list[str]) -> str:
    """An agent span with one chat call and one tool call beneath it, sent over OTLP/HTTP; its trace id."""
    trace_id, root = os.urandom(16), os.urandom(8)
    start = time.time_ns() - 60_000_000_000
    spans = [
        span(
            f"invoke_agent {name}",
            trace_id=trace_id,
            span_id=root,
            start=start,
            end=start + 10**9,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name},
        ),
        span(
            "chat gpt-4o-mini",
            trace_id=trace_id,
            span_id=os.urandom(8),
            parent_span_id=root,
            start=start + 1000,
            end=start + 2000,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 200,
            },
        ),
    ]
    spans += [
        span(
            f"execute_tool {tool}",
            trace_id=trace_id,
            span_id=os.urandom(8),
            parent_span_id=root,
            start=start + 3000,
            end=start + 4000,
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool},
        )
        for tool in tools
    ]
    return trace_id.hex(), trace_request({"service.name": f"{name}-svc"}, spans)


def send(server, request) -> None:
    response = httpx.post(
        server.http_url + "/v1/traces",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.text


def run_jobs(server) -> dict:
    for path in ("/api/v1/jobs/run", "/api/v1/findings/run"):
        response = httpx.post(server.api_url + path, headers=admin_headers(server), timeout=60)
        assert response.status_code == 200, response.text
    return response.json()


def findings(server, headers: dict, **params) -> list[dict]:
    response = httpx.get(server.api_url + "/api/v1/findings", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["findings"]


def apply(server, **files: str) -> None:
    response = httpx.post(
        server.api_url + "/api/v1/registry/apply", json=files, headers=admin_headers(server)
    )
    assert response.status_code == 200, response.text


def test_drift_and_a_shadow_agent_become_scoped_findings_that_resolve_and_keep_triage(server):
    apply(server, **{"registry.yaml": DEPARTMENTS})
    triage_trace, request = agent_trace("triage", ["search", "shell"])
    send(server, request)
    _, request = agent_trace("ghost", [])
    send(server, request)
    result = run_jobs(server)
    assert result["opened"] >= 2

    admin = admin_headers(server)
    (tool,) = findings(server, admin, rule="drift.tool_not_allowed")
    assert (tool["agent_id"], tool["department_id"], tool["status"]) == ("triage", "research", "open")
    assert tool["evidence"]["observed"] == "shell" and tool["evidence"]["allowed"] == ["search"]
    assert tool["evidence"]["sample_traces"] == [triage_trace]
    (ghost,) = findings(server, admin, rule="sprawl.unregistered_agent")
    assert "ghost" in ghost["subject_id"] and ghost["evidence"]["calls"] == 1
    assert float(ghost["evidence"]["spend_usd"]) > 0

    research = bearer(new_token(server, "finance", department_id="research"))
    sales = bearer(new_token(server, "finance", department_id="sales"))
    assert {f["rule"] for f in findings(server, research)} == {"drift.tool_not_allowed"}
    assert findings(server, sales) == []
    denied = httpx.post(
        f"{server.api_url}/api/v1/findings/{tool['fingerprint']}/acknowledge", json={}, headers=sales
    )
    assert denied.status_code == 404  # outside its scope: not even told it exists

    acked = cli(
        server.server.settings.data_dir, "findings", "ack", tool["fingerprint"], "-m", "moving to search"
    )
    assert acked.exit_code == 0, acked.output
    listed = cli(server.server.settings.data_dir, "findings", "list", "--json")
    assert listed.exit_code == 0 and '"acknowledged"' in listed.output
    run_jobs(server)
    (tool,) = findings(server, admin, rule="drift.tool_not_allowed")
    assert (tool["status"], tool["comment"]) == ("acknowledged", "moving to search")  # a run keeps it
    assert tool["acknowledged_by"]

    silenced = httpx.post(
        f"{server.api_url}/api/v1/findings/{ghost['fingerprint']}/silence",
        json={"duration_hours": 2, "comment": "being registered"},
        headers=research,
    )
    assert silenced.status_code == 404  # ghost has no department: research cannot see it
    silenced = httpx.post(
        f"{server.api_url}/api/v1/findings/{ghost['fingerprint']}/silence",
        json={"duration_hours": 2, "comment": "being registered"},
        headers=admin,
    )
    assert silenced.status_code == 200 and silenced.json()["status"] == "silenced"

    apply(server, **{"registry.yaml": DEPARTMENTS + "---" + GHOST})  # registering it re-attributes history
    run_jobs(server)
    assert findings(server, admin, rule="sprawl.unregistered_agent") == []
    (resolved,) = findings(server, admin, rule="sprawl.unregistered_agent", status="resolved")
    assert resolved["fingerprint"] == ghost["fingerprint"] and resolved["resolved_at"] is not None


def test_budgets_status_and_rules_reference_over_the_api(server):
    apply(server, **{"registry.yaml": DEPARTMENTS})
    _, request = agent_trace("triage", ["search"])
    send(server, request)
    run_jobs(server)
    budgets = httpx.get(server.api_url + "/api/v1/budgets/status", headers=admin_headers(server)).json()[
        "budgets"
    ]
    (research,) = [b for b in budgets if b["budget_id"] == "department:research"]
    spend = httpx.get(
        server.api_url + "/api/v1/spend", params={"by": "department"}, headers=admin_headers(server)
    )
    (spent,) = [row for row in spend.json() if row["department"] == "research"]
    assert research["actual"] == f"{float(spent['cost_usd']):.2f}" and research["amount"] == "1000.00"
    rules = httpx.get(server.api_url + "/api/v1/findings/rules", headers=admin_headers(server)).json()
    assert {"sprawl.unregistered_agent", "drift.model_not_allowed", "spend.budget_forecast"} <= {
        r["id"] for r in rules
    }


def test_a_contract_violation_fails_the_run_loudly_and_keeps_the_previous_findings(warehouse):
    from datetime import UTC, datetime

    import pytest

    from analytics.findings_job import run_findings_job
    from analytics.jobs import ContractViolation
    from registry import load_texts
    from warehouse import findings_store

    registry = load_texts(
        {
            "r.yaml": DEPARTMENTS.replace(
                "lifecycle: production", "lifecycle: production\n  reviewDue: 2026-01-01"
            )
        }
    )
    first = run_findings_job(warehouse, registry)
    assert first.opened == 1  # the overdue review
    # a negative daily sum, where daily_spend reads whole days (the cost job keeps daily_costs)
    warehouse.execute(
        "INSERT INTO daily_costs (day, match_status, cost_usd, calls, unpriced_calls, input_tokens,"
        " output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens)"
        " VALUES (current_date - 1, 'registered', -1, 1, 0, 0, 0, 0, 0, 0)"
    )
    with pytest.raises(ContractViolation, match="daily spend read by the findings job"):
        run_findings_job(warehouse, registry.__class__())  # an empty registry would resolve the finding
    assert findings_store.list_findings(warehouse, datetime.now(UTC))[1] == 1
    (error,) = warehouse.execute("SELECT last_error FROM job_state WHERE job = 'findings'").fetchall()[0]
    assert "ContractViolation" in error


def test_a_cap_per_call_in_another_currency_reads_the_calls_above_it_in_usd(warehouse):
    """The job loads only calls above the lowest cap; a 1.20 EUR cap at 0.50 USD per EUR is $0.60,
    so a $0.90 call is loaded and found, where reading the cap as USD would have skipped it."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from analytics.findings_job import run_findings_job
    from analytics.rules import DetectionConfig
    from registry import load_texts
    from warehouse import findings_store

    capped = DEPARTMENTS + "---\napiVersion: muster/v1\nkind: Policy\nmetadata: {id: eur-cap}\n"
    capped += "spec: {maxCostPerCall: 1.2, currency: EUR}\n"
    warehouse.execute(
        "INSERT INTO priced_calls (trace_id, span_id, start_time, day, match_status, agent_id,"
        " department_id, model, cost_usd, price_source, reported_cost_mismatch, computed_at)"
        " VALUES ('t1', 's1', now()::TIMESTAMP - INTERVAL 1 HOUR, current_date, 'registered', 'triage',"
        " 'research', 'gpt-4o', 0.90, 'catalogue', false, now())"
    )
    rates = DetectionConfig(exchange_rates={"EUR": Decimal("0.5")})
    run_findings_job(warehouse, load_texts({"r.yaml": capped}), config=rates)
    found = findings_store.list_findings(warehouse, datetime.now(UTC), rule="drift.cost_per_call_exceeded")[0]
    assert [(f["subject_id"], f["evidence"]["cap_usd"]) for f in found] == [("triage", "0.6000")]
