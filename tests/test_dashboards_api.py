"""The endpoints the dashboards added (traces, inventory, whoami) and the identity → Agent prefill."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dashboards import prefill
from registry import parse_entity
from tests.dashboards_seed import api, apply_registry, job_run_after, new_token, run_jobs, seeded_server


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    server = seeded_server(tmp_path_factory.mktemp("api") / "data", traces=60, backfill_days=7)
    yield server
    server.stop()


def test_trace_summaries_add_up_to_the_priced_calls(seeded):
    answer = api(seeded, "GET", "/api/v1/traces", params={"limit": 1000}).json()
    assert answer["total"] == len(answer["traces"]) == 60
    calls = seeded.query("SELECT count(*), sum(cost_usd) FROM priced_calls")[0]
    assert sum(t["model_calls"] for t in answer["traces"]) == calls[0]
    assert sum(Decimal(t["cost_usd"]) for t in answer["traces"]) == calls[1]
    page = api(seeded, "GET", "/api/v1/traces", params={"limit": 7, "offset": 7}).json()
    assert [t["trace_id"] for t in page["traces"]] == [t["trace_id"] for t in answer["traces"][7:14]]
    beyond = api(seeded, "GET", "/api/v1/traces", params={"offset": 1000}).json()
    assert (beyond["traces"], beyond["total"]) == ([], 60)
    assert api(seeded, "GET", "/api/v1/traces", params={"offset": 2**70}).status_code == 422


def test_a_trace_has_every_span_once_with_its_priced_cost(seeded):
    summary = api(seeded, "GET", "/api/v1/traces", params={"limit": 1}).json()["traces"][0]
    spans = api(seeded, "GET", f"/api/v1/traces/{summary['trace_id']}").json()["spans"]
    assert len(spans) == summary["spans"] == len({s["span_id"] for s in spans})
    priced = [s for s in spans if s["cost_usd"] is not None]
    assert len(priced) == summary["model_calls"] - summary["unpriced_calls"]
    assert sum(Decimal(s["cost_usd"]) for s in priced) == Decimal(summary["cost_usd"])
    assert all(isinstance(s["attributes"], dict) for s in spans)
    assert api(seeded, "GET", "/api/v1/traces/" + "0" * 32).status_code == 404


def test_filters_narrow_traces(seeded):
    errors = api(seeded, "GET", "/api/v1/traces", params={"status": "error", "limit": 1000}).json()
    assert all(t["error"] for t in errors["traces"])
    model = "gpt-4o-mini-2024-07-18"
    found = api(seeded, "GET", "/api/v1/traces", params={"model": model, "limit": 1000}).json()["traces"]
    assert found and all(model in t["models"] for t in found)
    bad = api(seeded, "GET", "/api/v1/traces", params={"from": "2026-02-02", "to": "2026-02-01"})
    assert bad.status_code == 422


def test_an_owner_token_sees_only_its_agents_traces(seeded):
    token = new_token(seeded, "owner", agent_id="support-copilot")
    mine = api(seeded, "GET", "/api/v1/traces", token, params={"limit": 1000}).json()["traces"]
    assert mine and all(t["agents"] == ["support-copilot"] for t in mine)
    others = api(seeded, "GET", "/api/v1/traces", params={"agent": "contract-review", "limit": 1}).json()
    other_id = others["traces"][0]["trace_id"]
    assert api(seeded, "GET", f"/api/v1/traces/{other_id}", token).status_code == 404
    inventory = api(seeded, "GET", "/api/v1/inventory", token).json()
    assert inventory and {r["agent_id"] for r in inventory} == {"support-copilot"}


def test_inventory_matches_spend_and_puts_unregistered_first(seeded):
    inventory = api(seeded, "GET", "/api/v1/inventory").json()
    statuses = [r["match_status"] for r in inventory]
    assert statuses == sorted(statuses, key=lambda s: s == "registered")
    spend = api(seeded, "GET", "/api/v1/spend", params={"by": "department"}).json()
    assert sum(Decimal(r["cost_usd"]) for r in inventory) == sum(Decimal(r["cost_usd"]) for r in spend)
    registered = [r for r in inventory if r["match_status"] == "registered"]
    assert all(r["owner"] and r["lifecycle"] for r in registered)
    sprawl = api(seeded, "GET", "/api/v1/inventory/sprawl").json()
    assert sprawl and max(w["unregistered"] for w in sprawl) > 0


def test_whoami_tells_the_role_scope_and_permissions(seeded):
    token = new_token(seeded, "finance", department_id="legal")
    who = api(seeded, "GET", "/api/v1/whoami", token).json()
    assert (who["role"], who["department_id"], who["permissions"]) == ("finance", "legal", ["read", "triage"])
    assert api(seeded, "GET", "/api/v1/whoami", "mst_wrong").status_code == 401


IDENTITY = "main_agent.id=asst_1, agent.name=Triage, Bot, service=shop/checkout, env=production"


def test_prefill_parses_identities_and_makes_a_valid_agent():
    assert prefill.parse_identity(IDENTITY) == {
        "main_agent.id": "asst_1",
        "agent.name": "Triage, Bot",
        "service": "shop/checkout",
        "env": "production",
    }
    assert prefill.selector_kinds(IDENTITY) == ["service", "agent_id", "agent_name"]
    assert prefill.suggested_id(IDENTITY) == "checkout"
    document = prefill.agent_document(
        IDENTITY, agent_id="checkout", name="Checkout", owner="a@b.c", department="shop", lifecycle="pilot"
    )
    agent = parse_entity(document)
    assert agent.spec.match[0].service.namespace == "shop" and agent.spec.match[0].service.name == "checkout"
    linked = prefill.linked(document, IDENTITY, by="agent_name")
    assert linked["spec"]["match"][-1] == {"agentName": "Triage, Bot"}
    assert prefill.linked(linked, IDENTITY, by="agent_name") == linked
    assert prefill.parse_identity("(no identity)") == {} and prefill.selector_kinds("(no identity)") == []


def test_an_agent_registered_through_the_api_is_registered_in_the_inventory_before_any_job_run(seeded):
    inventory = api(seeded, "GET", "/api/v1/inventory").json()
    assert not any(r["spend_pending"] for r in inventory)  # the job's verdicts and the registry agree
    target = next(
        r for r in inventory if r["match_status"] == "unregistered" and "service=" in r["observed_identity"]
    )
    identity = target["observed_identity"]
    jobs_before = api(seeded, "GET", "/api/v1/jobs").json()
    document = prefill.agent_document(
        identity,
        agent_id="live-shadow",
        name="Live Shadow",
        owner="o@example.com",
        department="legal",
        lifecycle="pilot",
    )
    assert api(seeded, "PUT", "/api/v1/agents/live-shadow", json=document).status_code == 200
    try:
        row = {r["observed_identity"]: r for r in api(seeded, "GET", "/api/v1/inventory").json()}[identity]
        assert (row["match_status"], row["agent_id"], row["department_id"]) == (
            "registered",
            "live-shadow",
            "legal",
        )
        assert (row["agent_name"], row["owner"], row["lifecycle"]) == (
            "Live Shadow",
            "o@example.com",
            "pilot",
        )
        # spend stays where the job put it, and the row says so, until the next run
        assert (row["calls"], row["cost_usd"]) == (target["calls"], target["cost_usd"])
        assert (row["spend_pending"], row["attributed_status"], row["attributed_agent_id"]) == (
            True,
            "unregistered",
            None,
        )
        assert api(seeded, "GET", "/api/v1/jobs").json() == jobs_before  # no job ran
        # the live verdict scopes too: the department's token sees it, another department's does not
        legal = api(
            seeded, "GET", "/api/v1/inventory", new_token(seeded, "finance", department_id="legal")
        ).json()
        assert identity in {r["observed_identity"] for r in legal}
        assert {r["department_id"] for r in legal} == {"legal"}
        owner = api(
            seeded, "GET", "/api/v1/inventory", new_token(seeded, "owner", agent_id="live-shadow")
        ).json()
        assert identity in {r["observed_identity"] for r in owner}
        assert {r["agent_id"] for r in owner} == {"live-shadow"}
        care = new_token(seeded, "finance", department_id="customer-care")
        assert identity not in {
            r["observed_identity"] for r in api(seeded, "GET", "/api/v1/inventory", care).json()
        }

        started = api(seeded, "POST", "/api/v1/jobs/run", params={"wait": "false"})
        assert started.status_code == 202, started.text
        assert started.json()["started"] is True
        state = job_run_after(seeded, jobs_before)
        assert state["last_error"] is None
        moved = {r["observed_identity"]: r for r in api(seeded, "GET", "/api/v1/inventory").json()}[identity]
        assert (moved["spend_pending"], moved["attributed_agent_id"]) == (False, "live-shadow")
        by_agent = api(seeded, "GET", "/api/v1/spend", params={"by": "agent"}).json()
        assert Decimal(next(r["cost_usd"] for r in by_agent if r["agent"] == "live-shadow")) >= Decimal(
            target["cost_usd"]
        )
    finally:  # the registry and spend as they were, for other tests
        apply_registry(seeded)
        run_jobs(seeded)
