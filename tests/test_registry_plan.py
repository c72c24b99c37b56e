"""Plans (what would change, field by field) and exports (YAML that loads back to the same registry)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from registry import (
    Action,
    Agent,
    Lifecycle,
    Registry,
    export_yaml,
    load_paths,
    load_texts,
    plan_changes,
    render_plan,
)

FIXTURE = Path(__file__).parent / "fixtures" / "registry"


def fixture() -> Registry:
    return load_paths([FIXTURE])


def with_agent(base: Registry, agent: Agent) -> Registry:
    return Registry.of([*base.entities(), agent])


def edited(agent: Agent, **spec: object) -> Agent:
    return agent.model_copy(update={"spec": agent.spec.model_copy(update=spec)})


# Plans


def test_a_plan_from_nothing_adds_everything_departments_first_agents_last():
    plan = plan_changes(Registry(), fixture())
    assert plan.counts() == {"add": 72, "change": 0, "remove": 0}
    kinds = [change.kind for change in plan.changes]
    assert kinds == sorted(kinds, key=["Department", "Policy", "Budget", "Agent"].index)
    assert all(change.action is Action.ADD and change.before is None for change in plan.changes)


def test_a_registry_planned_against_itself_has_no_changes():
    plan = plan_changes(fixture(), fixture())
    assert plan.is_empty
    assert render_plan(plan.to_dict()) == "No changes: the registry already matches."


def test_a_change_lists_each_field_with_its_value_before_and_after():
    current = fixture()
    triage = current.agents["claims-triage"]
    changed = triage.model_copy(
        update={
            "metadata": triage.metadata.model_copy(
                update={"labels": {**triage.metadata.labels, "tier": "platinum"}}
            ),
            "spec": triage.spec.model_copy(
                update={"lifecycle": Lifecycle.DEPRECATED, "allowed_tools": ["route_claim"], "team": None}
            ),
        }
    )
    plan = plan_changes(current, with_agent(current, Agent.model_validate(changed.model_dump())))

    (change,) = plan.changes
    assert (change.action, change.kind, change.id) == (Action.CHANGE, "Agent", "claims-triage")
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("metadata.labels.tier", "gold", "platinum"),
        ("spec.team", "claims-automation", None),
        ("spec.lifecycle", "production", "deprecated"),
        ("spec.allowedTools", ["policy_lookup", "fraud_score", "route_claim"], ["route_claim"]),
    ]
    text = str(plan)
    assert '~ Agent claims-triage\n    metadata.labels.tier: "gold" → "platinum"' in text
    assert 'spec.team: "claims-automation" → (none)' in text
    assert text.endswith("Plan: 0 to add, 1 to change, 0 to remove.")


def test_what_the_yaml_no_longer_has_is_removed_unless_pruning_is_off():
    current = fixture()
    desired = Registry.of(
        e for e in current.entities() if e.id not in ("kb-article-drafter", "research-annual")
    )

    plan = plan_changes(current, desired)
    assert [(c.action, c.kind, c.id) for c in plan.changes] == [
        (Action.REMOVE, "Budget", "research-annual"),
        (Action.REMOVE, "Agent", "kb-article-drafter"),
    ]
    assert plan.changes[1].before == current.agents["kb-article-drafter"] and plan.changes[1].after is None
    assert plan_changes(current, desired, prune=False).is_empty


def test_a_rename_is_the_old_id_removed_and_the_new_one_added_with_it_as_alias():
    current = fixture()
    old = current.agents["meeting-notes"]
    renamed = old.model_copy(
        update={
            "metadata": old.metadata.model_copy(update={"id": "call-notes"}),
            "spec": old.spec.model_copy(update={"aliases": ["meeting-notes"]}),
        }
    )
    desired = Registry.of([*(e for e in current.entities() if e.id != "meeting-notes"), renamed])
    assert [(c.action, c.id) for c in plan_changes(current, desired).changes] == [
        (Action.ADD, "call-notes"),
        (Action.REMOVE, "meeting-notes"),
    ]


def test_a_plan_is_plain_json_and_renders_the_same_from_it():
    current = fixture()
    desired = with_agent(current, edited(current.agents["sql-copilot"], review_due=date(2027, 1, 31)))
    plan = plan_changes(current, desired)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["changes"][0]["fields"] == [
        {"path": "spec.reviewDue", "before": "2026-06-30", "after": "2027-01-31"}
    ]
    assert data["changes"][0]["after"]["spec"]["reviewDue"] == "2027-01-31"
    assert render_plan(data) == str(plan)


# Export


def test_export_loads_back_to_an_equal_registry_and_a_second_export_is_byte_identical():
    original = fixture()
    text = export_yaml(original)
    reloaded = load_texts({"export.yaml": text})

    assert reloaded == original
    assert plan_changes(original, reloaded).is_empty
    assert export_yaml(reloaded) == text


def test_export_does_not_depend_on_the_order_entities_were_read_in():
    original = fixture()
    shuffled = Registry.of(reversed(list(original.entities())))
    assert export_yaml(shuffled) == export_yaml(original)


def test_export_is_readable_yaml_in_a_stable_layout():
    text = export_yaml(fixture())
    first = text.split("---\n")[1]
    assert first.startswith("apiVersion: muster/v1\nkind: Department\nmetadata:\n  id: claims\nspec:\n")
    agent = text[text.index("  id: claims-triage\n") :]
    assert "  labels:\n    data-class: personal\n    tier: gold\n" in text  # labels sorted
    assert "  description: |\n    Reads first notice of loss" in agent  # multi-line text as a block
    assert "  environments: [production, staging]\n" in agent
    assert "  monthlyBudget: 6000\n" in agent  # not 6000.0
    assert "  reviewDue: 2026-03-31\n" in agent  # a date, not a quoted string
    assert "riskTier: unassessed" not in text  # defaults are left out


def test_values_yaml_would_misread_survive_the_round_trip():
    base = load_texts(
        {"d.yaml": "apiVersion: muster/v1\nkind: Department\nmetadata: {id: d}\nspec: {name: D}\n"}
    )
    tricky = Agent.model_validate(
        {
            "apiVersion": "muster/v1",
            "kind": "Agent",
            "metadata": {"id": "t", "labels": {"on": "yes", "version": "1.10"}},
            "spec": {
                "name": "no",
                "owner": "0123",
                "team": "null",
                "department": "d",
                "lifecycle": "pilot",
                "description": "Uses: colons # hashes, 'quotes', \"doubles\", ünïcödé,\n  an indented line\n",
                "platform": "2025-01-01",
                "allowedModels": ["*", "gpt-4o*", "[a-z]*"],
                "monthlyBudget": 0.1,
                "match": [{"agentName": "'; DROP TABLE agents; --"}, {"agentName": " padded "}],
            },
        }
    )
    original = with_agent(base, tricky)
    text = export_yaml(original)
    assert load_texts({"x.yaml": text}) == original
    assert export_yaml(load_texts({"x.yaml": text})) == text


def test_an_empty_registry_exports_as_empty_text():
    assert export_yaml(Registry()) == ""
