"""The registry in the warehouse: apply all or nothing, audit every change, scope every read."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import (
    Action,
    Agent,
    ApplyFailed,
    Change,
    Lifecycle,
    NotFound,
    Plan,
    PlanOutdated,
    Registry,
    RegistryError,
    ValidationFailed,
    export_yaml,
    load_paths,
    parse_entity,
    plan_changes,
)
from warehouse import registry_store as store

FIXTURE = Path(__file__).parent / "fixtures" / "registry"
HOSTILE = "'; DROP TABLE agents; --"


@pytest.fixture
def cur(warehouse):
    cursor = warehouse.cursor()
    yield cursor
    cursor.close()


@pytest.fixture
def applied(cur) -> Registry:
    """The realistic registry, applied to an empty warehouse by `ci`."""
    desired = load_paths([FIXTURE])
    store.apply_plan(cur, plan_changes(store.load_registry(cur), desired), "ci")
    return desired


def edited(agent: Agent, **spec: object) -> Agent:
    return Agent.model_validate(
        agent.model_dump(by_alias=False) | {"spec": agent.spec.model_dump(by_alias=False) | spec}
    )


def snapshot(cur) -> tuple:
    """Everything the registry stores, to show that a failed change left it as it was."""
    tables = [
        "departments",
        "agents",
        "agent_selectors",
        "agent_aliases",
        "policies",
        "budgets",
        "registry_audit",
    ]
    return tuple(sorted(map(str, cur.execute(f"SELECT * FROM {table}").fetchall())) for table in tables)


def audit_count(cur) -> int:
    return cur.execute("SELECT count(*) FROM registry_audit").fetchall()[0][0]


# Plan, apply, export


def test_plan_apply_export_round_trip_on_the_realistic_registry(cur, applied):
    stored = store.load_registry(cur)
    assert stored == applied
    assert plan_changes(stored, load_paths([FIXTURE])).is_empty
    assert export_yaml(stored) == export_yaml(applied)

    rows = cur.execute(
        "SELECT actor, action, count(*), count(DISTINCT change_id) FROM registry_audit GROUP BY ALL"
    )
    assert rows.fetchall() == [("ci", "add", 72, 1)]


def test_the_filter_columns_selectors_and_aliases_follow_the_documents(cur, applied):
    row = cur.execute(
        "SELECT name, department_id, owner, lifecycle, risk_tier, monthly_budget, review_due::VARCHAR"
        " FROM agents WHERE id = 'claims-triage'"
    ).fetchall()
    assert row == [
        ("Claims Triage", "claims", "jane.doe@example.com", "production", "high", 6000.0, "2026-03-31")
    ]
    selectors = cur.execute(
        "SELECT position, key_kind, service_namespace, key, environment, implicit FROM agent_selectors"
        " WHERE agent_id = 'claims-letter-writer' ORDER BY position NULLS FIRST, key"
    ).fetchall()
    assert selectors == [
        (None, "agent_id", None, "claims-letter-writer", None, True),
        (None, "agent_id", None, "correspondence-drafter", None, True),
        (None, "agent_id", None, "letter-bot", None, True),
        (0, "service", None, "letters", None, False),
    ]
    assert cur.execute("SELECT count(*) FROM agent_aliases").fetchall() == [(8,)]
    costing = cur.execute(
        "SELECT agent_id, cost_centre, currency FROM agent_costing WHERE agent_id IN ('it-helpdesk', 'copy')"
        " OR agent_id = 'campaign-copywriter' ORDER BY agent_id"
    ).fetchall()
    assert costing == [("campaign-copywriter", "CC-2100", "EUR"), ("it-helpdesk", "CC-5000", "USD")]


def test_a_second_apply_changes_only_what_changed_and_audits_it_field_by_field(cur, applied):
    desired = Registry.of(
        [
            *(e for e in applied.entities() if e.id not in ("kb-article-drafter",)),
            edited(applied.agents["sql-copilot"], lifecycle=Lifecycle.DEPRECATED),
        ]
    )
    store.apply_plan(cur, plan_changes(store.load_registry(cur), desired), "alice")

    assert store.load_registry(cur) == desired
    latest = store.audit_log(cur, limit=2)
    assert [(e.actor, e.action, e.kind, e.id) for e in latest] == [
        ("alice", "change", "Agent", "sql-copilot"),
        ("alice", "remove", "Agent", "kb-article-drafter"),
    ]
    assert latest[0].change_id == latest[1].change_id
    assert [(f.path, f.before, f.after) for f in latest[0].fields] == [
        ("spec.lifecycle", "production", "deprecated")
    ]
    assert latest[1].after is None and latest[1].before["metadata"]["id"] == "kb-article-drafter"


# All or nothing


def test_a_failure_in_the_middle_of_an_apply_changes_nothing(cur, applied):
    before = snapshot(cur)
    agent = applied.agents["support-copilot"]
    budget = applied.budgets["openai-enterprise"]
    broken = budget.model_copy(update={"spec": budget.spec.model_copy(update={"amount": None})})  # NOT NULL
    plan = Plan(
        (
            Change(Action.CHANGE, "Agent", agent.id, agent, edited(agent, owner="someone.else@example.com")),
            Change(Action.REMOVE, "Agent", "meeting-notes", applied.agents["meeting-notes"], None),
            Change(Action.CHANGE, "Budget", budget.id, budget, broken),
        )
    )
    with pytest.raises(ApplyFailed, match="nothing was stored"):
        store.apply_plan(cur, plan, "alice")
    assert snapshot(cur) == before


def test_an_apply_whose_result_would_be_invalid_changes_nothing(cur, applied):
    before = snapshot(cur)
    without_claims = Registry.of(e for e in applied.entities() if e.id != "claims")  # its agents stay
    with pytest.raises(ValidationFailed) as failed:
        store.apply_plan(cur, plan_changes(applied, without_claims), "alice")
    assert {p.path for p in failed.value.problems} == {"spec.department", "spec.scope.department"}
    assert any("department 'claims' is not defined" in p.message for p in failed.value.problems)
    assert any("(Agent claims-triage)" in p.message for p in failed.value.problems)
    assert snapshot(cur) == before


def test_a_plan_made_before_someone_else_changed_the_registry_is_refused(cur, applied):
    desired = Registry.of([*applied.entities(), edited(applied.agents["it-helpdesk"], monthly_budget=2500.0)])
    plan = plan_changes(store.load_registry(cur), desired)
    store.upsert_entity(cur, edited(applied.agents["it-helpdesk"], team="workplace-tech"), "bob")
    before = snapshot(cur)

    with pytest.raises(PlanOutdated, match="Agent it-helpdesk"):
        store.apply_plan(cur, plan, "alice")
    assert snapshot(cur) == before


# Edits from the API


def test_upsert_registers_updates_and_does_nothing_when_nothing_differs(cur, applied):
    new = parse_entity(
        {
            "apiVersion": "muster/v1",
            "kind": "Agent",
            "metadata": {"id": "claims-chat"},
            "spec": {
                "name": "Claims chat",
                "owner": "jane.doe@example.com",
                "department": "claims",
                "lifecycle": "prototype",
                "match": [{"agentName": "ClaimsChat"}],
            },
        }
    )
    added = store.upsert_entity(cur, new, "api:jane")
    assert added.action is Action.ADD
    assert store.get_agent(cur, "claims-chat") == new

    count = audit_count(cur)
    assert store.upsert_entity(cur, new, "api:jane") is None
    assert audit_count(cur) == count

    changed = store.upsert_entity(cur, edited(new, lifecycle=Lifecycle.PILOT), "api:jane")
    assert [(f.path, f.before, f.after) for f in changed.fields] == [("spec.lifecycle", "prototype", "pilot")]
    assert [(e.action, e.actor) for e in store.history(cur, "claims-chat")] == [
        ("add", "api:jane"),
        ("change", "api:jane"),
    ]


def test_an_upsert_that_breaks_the_rules_is_refused_and_stores_nothing(cur, applied):
    before = snapshot(cur)
    lost = edited(applied.agents["expense-auditor"], department="finances")
    with pytest.raises(ValidationFailed) as failed:
        store.upsert_entity(cur, lost, "api:bob")
    (problem,) = failed.value.problems
    assert (problem.file, problem.line, problem.path) == (None, None, "spec.department")
    assert "did you mean 'finance'?" in problem.message and "(Agent expense-auditor)" in problem.message

    thief = edited(applied.agents["expense-auditor"], match=[{"agentName": "ClaimsTriage"}])
    with pytest.raises(ValidationFailed, match="already claimed by agent 'claims-triage'"):
        store.upsert_entity(cur, thief, "api:bob")
    assert snapshot(cur) == before


def test_every_change_needs_an_actor(cur, applied):
    with pytest.raises(RegistryError, match="actor"):
        store.retire_agent(cur, "meeting-notes", " ")


def test_retiring_keeps_the_agent_registered_and_is_audited(cur, applied):
    change = store.retire_agent(cur, "pricing-explainer", "bob")
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("spec.lifecycle", "deprecated", "retired")
    ]
    agent = store.get_agent(cur, "pricing-explainer")
    assert (
        agent.spec.lifecycle is Lifecycle.RETIRED and agent.spec.match == applied.agents[agent.id].spec.match
    )
    assert store.history(cur, "pricing-explainer")[-1].action == "retire"

    count = audit_count(cur)
    assert store.retire_agent(cur, "pricing-explainer", "bob") is None
    assert audit_count(cur) == count
    with pytest.raises(NotFound):
        store.retire_agent(cur, "no-such-agent", "bob")


def test_removing_is_refused_while_something_refers_to_it(cur, applied):
    with pytest.raises(ValidationFailed, match="department 'security' is not defined"):
        store.remove_entity(cur, "Department", "security", "bob")
    assert store.get_department(cur, "security") is not None

    store.remove_entity(cur, "Budget", "shared-services-cc", "bob")
    assert "shared-services-cc" not in store.load_registry(cur).budgets
    assert store.audit_log(cur, kind="Budget", entity_id="shared-services-cc")[0].action == "remove"
    with pytest.raises(NotFound):
        store.remove_entity(cur, "Budget", "shared-services-cc", "bob")


# History follows renames


def test_history_follows_an_agent_through_renames(cur, applied):
    def rename(registry: Registry, old: str, new: str) -> Registry:
        agent = registry.agents[old]
        moved = Agent.model_validate(
            agent.model_copy(
                update={
                    "metadata": agent.metadata.model_copy(update={"id": new}),
                    "spec": agent.spec.model_copy(update={"aliases": [old]}),  # the older alias is dropped
                }
            ).model_dump()
        )
        return Registry.of([*(e for e in registry.entities() if e.id != old), moved])

    first = rename(applied, "meeting-notes", "call-notes")
    store.apply_plan(cur, plan_changes(store.load_registry(cur), first), "alice")
    second = rename(first, "call-notes", "conversation-notes")
    store.apply_plan(cur, plan_changes(store.load_registry(cur), second), "bob")

    expected = [
        ("add", "meeting-notes", "ci"),
        ("add", "call-notes", "alice"),
        ("remove", "meeting-notes", "alice"),
        ("remove", "call-notes", "bob"),  # one apply's rows are in plan order: kind, then id
        ("add", "conversation-notes", "bob"),
    ]
    for asked in ("conversation-notes", "call-notes"):
        assert [(e.action, e.id, e.actor) for e in store.history(cur, asked)] == expected
    assert store.history(cur, "email-responder")[0].id == "email-responder"
    assert store.history(cur, "never-registered") == []


# Reads, scoped the way the API enforces roles


def test_listing_agents_is_confined_to_the_departments_and_agents_given(cur, applied):
    claims = store.list_agents(cur, department_ids={"claims"})
    assert [a.id for a in claims] == sorted(
        a.id for a in applied.agents.values() if a.spec.department == "claims"
    )
    assert len(store.list_agents(cur)) == 50
    assert store.list_agents(cur, department_ids=set()) == []
    assert [a.id for a in store.list_agents(cur, agent_ids={"letter-bot", "sql-copilot"})] == [
        "claims-letter-writer",  # by its former id
        "sql-copilot",
    ]
    assert store.list_agents(cur, department_ids={"finance"}, agent_ids={"sql-copilot"}) == []
    retired = store.list_agents(cur, lifecycles={Lifecycle.RETIRED})
    assert [a.id for a in retired] == ["recruiting-screener"]


def test_getting_an_agent_outside_the_scope_finds_nothing(cur, applied):
    assert store.get_agent(cur, "claims-triage", department_ids={"claims"}).id == "claims-triage"
    assert store.get_agent(cur, "claims-triage", department_ids={"finance"}) is None
    assert store.get_agent(cur, "claims-triage", agent_ids={"fnol-router"}).id == "claims-triage"
    assert store.get_agent(cur, "fnol-router").id == "claims-triage"  # a former id leads to the agent


def test_departments_policies_and_budgets_are_scoped_too(cur, applied):
    assert [d.id for d in store.list_departments(cur, department_ids={"claims", "legal"})] == [
        "claims",
        "legal",
    ]
    assert store.get_department(cur, "legal", department_ids={"claims"}) is None
    assert len(store.list_departments(cur)) == 12
    assert [p.id for p in store.list_policies(cur, department_ids={"claims"})] == [
        "claims-policy",
        "organisation",
    ]
    assert len(store.list_policies(cur)) == 4
    assert [b.id for b in store.list_budgets(cur, department_ids={"customer-service"})] == [
        "support-copilot-gpu"
    ]
    assert [b.id for b in store.list_budgets(cur, department_ids={"claims"})] == ["claims-anthropic"]
    assert [b.id for b in store.list_budgets(cur, agent_ids={"support-copilot"})] == ["support-copilot-gpu"]
    assert len(store.list_budgets(cur)) == 6


def test_a_hostile_id_is_just_a_string_that_matches_nothing(cur, applied):
    assert store.get_agent(cur, HOSTILE) is None
    assert store.list_agents(cur, agent_ids={HOSTILE}) == []
    assert store.list_agents(cur, department_ids={HOSTILE}) == []
    assert store.history(cur, HOSTILE) == []
    assert store.audit_log(cur, entity_id=HOSTILE) == []
    with pytest.raises(NotFound):
        store.retire_agent(cur, HOSTILE, HOSTILE)
    with pytest.raises(ValidationFailed, match="not a valid id"):
        parse_entity({"apiVersion": "muster/v1", "kind": "Agent", "metadata": {"id": HOSTILE}, "spec": {}})

    # as a value it is stored and read back verbatim
    named = edited(applied.agents["meeting-notes"], name=HOSTILE, match=[{"agentName": HOSTILE}])
    store.upsert_entity(cur, named, HOSTILE)
    assert store.get_agent(cur, "meeting-notes").spec.name == HOSTILE
    assert store.audit_log(cur, limit=1)[0].actor == HOSTILE
    assert len(store.list_agents(cur)) == 50
