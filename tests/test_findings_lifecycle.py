"""Findings keep their identity across runs: open, refresh, resolve, reopen; acknowledgements and silences.

Runs `warehouse.findings_store.reconcile` on a real warehouse file with verdicts written by hand,
at times chosen by the test, as the findings job does on every run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from analytics.findings import Finding, Rule, Severity
from warehouse import findings_store
from warehouse.database import open_warehouse

T0 = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
RULE = Rule("drift.tool_not_allowed", Severity.WARNING, "d", "r")
OTHER = Rule("sprawl.unregistered_agent", Severity.WARNING, "d", "r")
RULES = {RULE.id, OTHER.id}


def verdict(tool: str = "shell", traces: int = 1, department: str = "research") -> Finding:
    return Finding(
        RULE,
        "agent",
        "triage",
        f"Triage uses tool {tool}",
        dimension=f"tool={tool}",
        agent_id="triage",
        department_id=department,
        evidence={"traces": traces},
    )


def test_a_finding_opens_refreshes_resolves_and_reopens_as_a_new_occurrence(tmp_path):
    with open_warehouse(tmp_path / "w.duckdb") as cur:
        assert findings_store.reconcile(cur, [verdict()], T0, rules=RULES).opened == 1
        result = findings_store.reconcile(cur, [verdict(traces=5)], T0 + timedelta(minutes=1), rules=RULES)
        assert (result.opened, result.refreshed) == (0, 1)
        (found,) = findings_store.list_findings(cur, T0)[0]
        assert found["status"] == "open" and found["evidence"] == {"traces": 5} and found["occurrences"] == 1
        assert (
            found["labels"] | {"rule": RULE.id, "agent": "triage", "department": "research"}
            == found["labels"]
        )

        assert findings_store.reconcile(cur, [], T0 + timedelta(minutes=2), rules=RULES).resolved == 1
        assert findings_store.list_findings(cur, T0)[1] == 0  # nothing active
        resolved = findings_store.get_finding(cur, verdict().fingerprint, T0)
        assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None

        assert (
            findings_store.reconcile(cur, [verdict()], T0 + timedelta(minutes=3), rules=RULES).reopened == 1
        )
        again = findings_store.get_finding(cur, verdict().fingerprint, T0)
        assert again["status"] == "open" and again["occurrences"] == 2 and again["resolved_at"] is None
        assert again["first_seen"] == resolved["first_seen"]


def test_rules_that_did_not_run_keep_their_findings(tmp_path):
    with open_warehouse(tmp_path / "w.duckdb") as cur:
        findings_store.reconcile(cur, [verdict()], T0, rules=RULES)
        findings_store.reconcile(cur, [], T0, rules={OTHER.id})
        assert findings_store.list_findings(cur, T0)[1] == 1


def test_an_acknowledgement_lasts_while_the_finding_fires_and_ends_when_it_resolves(tmp_path):
    with open_warehouse(tmp_path / "w.duckdb") as cur:
        findings_store.reconcile(cur, [verdict()], T0, rules=RULES)
        key = verdict().fingerprint
        assert findings_store.acknowledge(cur, key, by="ana", comment="known, fixing", now=T0)
        findings_store.reconcile(cur, [verdict(traces=9)], T0 + timedelta(minutes=1), rules=RULES)
        acked = findings_store.get_finding(cur, key, T0)
        assert (acked["status"], acked["acknowledged_by"], acked["comment"]) == (
            "acknowledged",
            "ana",
            "known, fixing",
        )
        findings_store.reconcile(cur, [], T0 + timedelta(minutes=2), rules=RULES)
        assert not findings_store.acknowledge(cur, key, by="ana", comment=None, now=T0)  # resolved
        findings_store.reconcile(cur, [verdict()], T0 + timedelta(minutes=3), rules=RULES)
        assert findings_store.get_finding(cur, key, T0)["status"] == "open"
        assert not findings_store.acknowledge(cur, "no-such-finding", by="ana", comment=None, now=T0)


def test_a_silence_holds_across_runs_and_ends_at_its_expiry(tmp_path):
    with open_warehouse(tmp_path / "w.duckdb") as cur:
        findings_store.reconcile(cur, [verdict()], T0, rules=RULES)
        key = verdict().fingerprint
        until = T0 + timedelta(hours=2)
        assert findings_store.silence(cur, key, by="ana", until=until, comment="migration window", now=T0)
        findings_store.reconcile(cur, [verdict()], T0 + timedelta(hours=1), rules=RULES)
        silenced = findings_store.get_finding(cur, key, T0 + timedelta(hours=1))
        assert (silenced["status"], silenced["comment"]) == ("silenced", "migration window")
        assert findings_store.list_findings(cur, T0 + timedelta(hours=3))[0][0]["status"] == "open"  # expired
        findings_store.reconcile(cur, [verdict()], T0 + timedelta(hours=3), rules=RULES)
        assert findings_store.get_finding(cur, key, T0 + timedelta(hours=3))["status"] == "open"
        findings_store.silence(cur, key, by="ana", until=until + timedelta(days=1), comment="again", now=T0)
        assert findings_store.unsilence(cur, key, now=T0 + timedelta(hours=3))
        assert findings_store.get_finding(cur, key, T0 + timedelta(hours=3))["status"] == "open"


def test_listing_filters_and_confines_to_a_scope(tmp_path):
    with open_warehouse(tmp_path / "w.duckdb") as cur:
        ghost = Finding(OTHER, "identity", "agent.name=ghost", "Unregistered agent ghost")
        findings_store.reconcile(
            cur, [verdict(), verdict("curl", department="sales"), ghost], T0, rules=RULES
        )
        everything, total = findings_store.list_findings(cur, T0)
        assert total == 3 and len(everything) == 3
        assert findings_store.list_findings(cur, T0, department_ids={"sales"})[1] == 1
        assert (
            findings_store.list_findings(cur, T0, category="sprawl")[0][0]["subject_id"] == "agent.name=ghost"
        )
        page, total = findings_store.list_findings(cur, T0, limit=1, offset=1)
        assert len(page) == 1 and total == 3
        counts = findings_store.summary(cur, T0, department_ids={"research"})
        assert counts == [{"category": "drift", "severity": "warning", "status": "open", "count": 1}]
