"""Registry YAML: the models, the loader, and validation errors that name file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import registry
from registry import (
    Agent,
    Lifecycle,
    Problem,
    RiskTier,
    ValidationFailed,
    load_paths,
    load_texts,
    parse_entity,
    read_sources,
)

FIXTURE = Path(__file__).parent / "fixtures" / "registry"

DEPARTMENT = """\
apiVersion: muster/v1
kind: Department
metadata:
  id: claims
spec:
  name: Claims
  costCentre: CC-4100
"""


def agent_yaml(agent_id: str = "triage", *, spec: str = "", department: str = "claims") -> str:
    """An Agent document; `spec` adds lines (indented two spaces) at the end of its spec."""
    body = textwrap.indent(textwrap.dedent(spec), "  ")
    return (
        "apiVersion: muster/v1\nkind: Agent\nmetadata:\n"
        f"  id: {agent_id}\nspec:\n  name: Triage\n  owner: jane@example.com\n"
        f"  department: {department}\n  lifecycle: production\n{body}"
    )


def problems_of(files: dict[str, str]) -> list[Problem]:
    with pytest.raises(ValidationFailed) as failed:
        load_texts(files)
    return failed.value.problems


def only_problem(files: dict[str, str]) -> Problem:
    problems = problems_of(files)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


# The realistic registry


def test_the_fixture_directory_loads_every_file_recursively_and_skips_what_is_not_yaml():
    found = read_sources([FIXTURE])
    assert any(name.endswith(".yml") for name in found)
    assert any("/lab/" in name for name in found)
    assert not any(name.endswith(".md") for name in found)

    loaded = load_paths([FIXTURE])

    assert (len(loaded.departments), len(loaded.agents), len(loaded.policies), len(loaded.budgets)) == (
        12,
        50,
        4,
        6,
    )
    triage = loaded.agents["claims-triage"]
    assert triage.spec.lifecycle is Lifecycle.PRODUCTION
    assert triage.spec.risk_tier is RiskTier.HIGH
    assert triage.spec.aliases == ["fnol-router"]
    assert triage.spec.match[2].service.namespace == "claims"
    assert triage.spec.description.startswith("Reads first notice of loss")
    assert loaded.departments["marketing"].spec.currency == "EUR"
    assert loaded.budgets["openai-enterprise"].spec.thresholds.forecast == [90, 100]
    assert loaded.budgets["bedrock-quarterly"].spec.thresholds.actual == [50, 80, 100]  # the default
    assert loaded.resolve_agent_id("correspondence-drafter") == "claims-letter-writer"


def test_absent_lists_mean_unrestricted_and_empty_lists_mean_none_allowed():
    loaded = load_paths([FIXTURE])
    assert loaded.agents["total-loss-estimator"].spec.allowed_tools is None
    assert loaded.agents["claims-letter-writer"].spec.allowed_tools == []


# One document at a time: every problem has file, line and field


BROKEN_DOCUMENTS = [
    pytest.param(agent_yaml(spec="ownr: x\n"), 10, "spec.ownr", "unknown field 'ownr'", id="unknown field"),
    pytest.param(
        agent_yaml(spec="match:\n  - agentNmae: Triage\n"),
        11,
        "spec.match[0].agentNmae",
        "did you mean 'agentName'",
        id="unknown field in a selector",
    ),
    pytest.param(
        agent_yaml().replace("  owner: jane@example.com\n", ""),
        5,
        "spec.owner",
        "required field 'owner' is missing",
        id="missing field",
    ),
    pytest.param(
        agent_yaml().replace("lifecycle: production", "lifecycle: live"),
        9,
        "spec.lifecycle",
        "'prototype', 'pilot', 'production', 'deprecated' or 'retired' (found 'live')",
        id="unknown lifecycle",
    ),
    pytest.param(agent_yaml("Triage Bot"), 4, "metadata.id", "'Triage Bot' is not a valid id", id="bad id"),
    pytest.param(  # `$` in a regex also matches before a final newline: ids are matched whole
        agent_yaml('"triage\\n"'),
        4,
        "metadata.id",
        "'triage\\n' is not a valid id",
        id="id ending in a newline",
    ),
    pytest.param(
        DEPARTMENT.replace("costCentre: CC-4100", 'currency: "EUR\\n"'),
        7,
        "spec.currency",
        "three-letter ISO 4217 code",
        id="currency ending in a newline",
    ),
    pytest.param(
        agent_yaml(spec="match:\n  - agentName: Triage\n    agentId: triage-1\n"),
        11,
        "spec.match[0]",
        "exactly one of agentId, agentName or service",
        id="selector with two keys",
    ),
    pytest.param(
        agent_yaml(spec="team: no\n"),
        10,
        "spec.team",
        "put the value in quotes",
        id="YAML boolean where text is wanted",
    ),
    pytest.param(
        agent_yaml(spec="monthlyBudget: -5\n"),
        10,
        "spec.monthlyBudget",
        "greater than or equal to 0",
        id="negative budget",
    ),
    pytest.param(
        agent_yaml(spec="reviewDue: next spring\n"),
        10,
        "spec.reviewDue",
        "valid date",
        id="not a date",
    ),
    pytest.param(
        DEPARTMENT.replace("costCentre: CC-4100", "currency: dollars"),
        7,
        "spec.currency",
        "three-letter ISO 4217 code",
        id="bad currency",
    ),
    pytest.param(
        "apiVersion: muster/v1\nkind: Budget\nmetadata: {id: b}\nspec:\n  scope: {}\n  amount: 10\n",
        5,
        "spec.scope",
        "at least one of department",
        id="budget scope covering everything",
    ),
    pytest.param(
        "apiVersion: muster/v1\nkind: Budget\nmetadata: {id: b}\nspec:\n  scope: {provider: openai}\n"
        "  amount: 10\n  thresholds:\n    actual: [100, 80]\n",
        8,
        "spec.thresholds.actual",
        "in increasing order",
        id="unordered thresholds",
    ),
    pytest.param(
        DEPARTMENT.replace("muster/v1", "muster/v2"),
        1,
        "apiVersion",
        "found 'muster/v2'",
        id="wrong apiVersion",
    ),
    pytest.param(
        DEPARTMENT.replace("kind: Department", "kind: Team"), 2, "kind", "found 'Team'", id="unknown kind"
    ),
    pytest.param(DEPARTMENT + "  name: Claims again\n", 8, "spec.name", "appears twice", id="duplicate key"),
    pytest.param("- just\n- a list\n", 1, "", "a document is a mapping", id="not a mapping"),
    pytest.param(DEPARTMENT + "  labels: [\n", 9, "", "not valid YAML", id="YAML syntax error"),
    pytest.param(
        "kind: Agent\nname: &loop [1, *loop]\n",
        2,
        "name[1]",
        "refers to a node that contains it",
        id="recursive alias",
    ),
]


@pytest.mark.parametrize(("text", "line", "path", "message"), BROKEN_DOCUMENTS)
def test_each_problem_names_the_file_the_line_and_the_field(text, line, path, message):
    files = (
        {"registry/claims.yaml": text}
        if "Department" in text
        else {
            "registry/departments.yaml": DEPARTMENT,
            "registry/claims.yaml": text,
        }
    )
    problems = [p for p in problems_of(files) if p.path == path]
    assert problems, f"nothing reported at {path!r}: {problems_of(files)}"
    problem = problems[0]
    assert (problem.file, problem.line) == ("registry/claims.yaml", line)
    assert message in problem.message
    assert str(problem).startswith(f"registry/claims.yaml:{line}: ")


def test_every_problem_in_every_file_is_reported_at_once():
    one = agent_yaml("a", spec="ownr: x\n") + "---\n" + agent_yaml("b").replace("production", "live")
    two = DEPARTMENT.replace("name: Claims", "nmae: Claims") + "---\n" + agent_yaml("c", department="claimz")
    problems = problems_of({"one.yaml": one, "two.yaml": two})
    assert [(p.file, p.line, p.path) for p in problems] == [
        ("one.yaml", 10, "spec.ownr"),
        ("one.yaml", 20, "spec.lifecycle"),
        ("two.yaml", 5, "spec.name"),  # missing: reported at its parent, spec
        ("two.yaml", 6, "spec.nmae"),
        ("two.yaml", 16, "spec.department"),
    ]


def test_validation_failed_reads_as_a_list_of_located_problems():
    failed = ValidationFailed(
        [Problem("b.yaml", 3, "spec.owner", "missing"), Problem("a.yaml", 9, "kind", "bad")]
    )
    assert str(failed).splitlines() == [
        "2 problems in the registry; nothing was changed:",
        "  a.yaml:9: kind: bad",
        "  b.yaml:3: spec.owner: missing",
    ]


# Across documents


def test_a_duplicate_id_points_at_both_definitions():
    problem = only_problem(
        {"a.yaml": DEPARTMENT, "b.yaml": DEPARTMENT.replace("name: Claims", "name: Claims 2")}
    )
    assert (problem.file, problem.line, problem.path) == ("b.yaml", 4, "metadata.id")
    assert "duplicate Department id 'claims'" in problem.message
    assert "a.yaml:4" in problem.message


def test_a_reference_to_a_missing_department_suggests_the_close_one():
    problem = only_problem({"d.yaml": DEPARTMENT, "a.yaml": agent_yaml(department="claim")})
    assert (problem.file, problem.line, problem.path) == ("a.yaml", 8, "spec.department")
    assert "department 'claim' is not defined; did you mean 'claims'?" in problem.message


def test_an_invalid_department_is_reported_once_not_again_by_every_reference_to_it():
    broken = DEPARTMENT.replace("costCentre", "costCenter")
    problem = only_problem({"d.yaml": broken, "a.yaml": agent_yaml()})
    assert problem.path == "spec.costCenter"


def test_a_budget_for_a_renamed_agent_names_its_current_id():
    budget = (
        "apiVersion: muster/v1\nkind: Budget\nmetadata: {id: b}\nspec:\n  scope:\n    agent: old-triage\n"
    )
    budget += "  amount: 100\n"
    files = {"d.yaml": DEPARTMENT, "a.yaml": agent_yaml(spec="aliases: [old-triage]\n"), "b.yaml": budget}
    problem = only_problem(files)
    assert (problem.file, problem.line, problem.path) == ("b.yaml", 6, "spec.scope.agent")
    assert "refer to it by its current id 'triage'" in problem.message


def test_two_agents_claiming_one_identity_are_refused_with_both_locations():
    first = agent_yaml("a", spec="match:\n  - agentName: Helper\n")
    second = agent_yaml("b", spec="match:\n  - service: {name: svc}\n  - agentName: Helper\n")
    problem = only_problem({"d.yaml": DEPARTMENT, "a.yaml": first, "b.yaml": second})
    assert (problem.file, problem.line, problem.path) == ("b.yaml", 12, "spec.match[1]")
    assert "already claimed by agent 'a'" in problem.message and "a.yaml:11" in problem.message


def test_claims_in_different_environments_do_not_conflict_but_an_unnarrowed_one_does():
    prod = agent_yaml("a", spec="match:\n  - agentName: Helper\n    environment: production\n")
    staging = agent_yaml("b", spec="match:\n  - agentName: Helper\n    environment: staging\n")
    everywhere = agent_yaml("c", spec="match:\n  - agentName: Helper\n")

    load_texts({"d.yaml": DEPARTMENT, "a.yaml": prod, "b.yaml": staging})
    problem = only_problem({"d.yaml": DEPARTMENT, "a.yaml": prod, "c.yaml": everywhere})
    assert problem.file == "c.yaml" and "in environment 'production'" in problem.message


def test_an_alias_may_not_be_another_agents_id_nor_belong_to_two_agents_nor_be_its_own_id():
    taken = agent_yaml("a") + "---\n" + agent_yaml("b", spec="aliases: [a]\n")
    problem = only_problem({"d.yaml": DEPARTMENT, "x.yaml": taken})
    assert problem.path == "spec.aliases[0]" and "'a' is the id of agent 'a'" in problem.message

    shared = agent_yaml("a", spec="aliases: [old]\n") + "---\n" + agent_yaml("b", spec="aliases: [old]\n")
    problem = only_problem({"d.yaml": DEPARTMENT, "x.yaml": shared})
    assert problem.path == "spec.aliases[0]" and "already claimed by agent 'a'" in problem.message

    own = agent_yaml("a", spec="aliases: [a]\n")
    problem = only_problem({"d.yaml": DEPARTMENT, "x.yaml": own})
    assert problem.path == "spec.aliases[0]" and "not its own id" in problem.message


def test_an_explicit_agent_id_selector_may_not_claim_another_agents_id():
    files = {
        "d.yaml": DEPARTMENT,
        "x.yaml": agent_yaml("a") + "---\n" + agent_yaml("b", spec="match: [{agentId: a}]\n"),
    }
    problem = only_problem(files)
    assert (
        problem.path == "spec.match[0]"
        and "already claimed by agent 'a' through its id 'a'" in problem.message
    )


def test_one_policy_per_scope():
    policy = "apiVersion: muster/v1\nkind: Policy\nmetadata: {id: %s}\nspec:\n  maxCostPerCall: 1\n"
    problem = only_problem({"p.yaml": policy % "org" + "---\n" + policy % "org-2"})
    assert (problem.line, problem.path) == (9, "metadata.id")
    assert "the whole organisation already has a policy ('org'" in problem.message


def test_a_selector_environment_must_be_one_the_agent_runs_in():
    spec = "environments: [production]\nmatch:\n  - agentName: T\n    environment: prod\n"
    problem = only_problem({"d.yaml": DEPARTMENT, "a.yaml": agent_yaml(spec=spec)})
    assert (problem.line, problem.path) == (13, "spec.match[0].environment")


# Reading files


def test_reading_names_missing_paths_and_directories_without_yaml(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "registry" / ".github").mkdir(parents=True)
    (tmp_path / "registry" / ".github" / "ci.yml").write_text("on: push\n")
    (tmp_path / "registry" / "d.yaml").write_text(DEPARTMENT)
    with pytest.raises(ValidationFailed) as failed:
        read_sources([tmp_path / "missing", tmp_path / "empty"])
    assert [p.message for p in failed.value.problems] == [
        "no *.yaml or *.yml files in this directory",
        "no such file or directory",
    ]
    assert list(read_sources([tmp_path / "registry"])) == [str(tmp_path / "registry" / "d.yaml")]


# Entities from the API


def test_an_entity_from_json_is_checked_the_same_way_with_paths_and_no_lines():
    data = {"apiVersion": "muster/v1", "kind": "Agent", "metadata": {"id": "a"}, "spec": {"name": "A"}}
    with pytest.raises(ValidationFailed) as failed:
        parse_entity(data | {"spec": {"name": "A", "cost_centre": "x"}})
    assert {(p.file, p.line, p.path) for p in failed.value.problems} == {
        (None, None, "spec.owner"),
        (None, None, "spec.department"),
        (None, None, "spec.lifecycle"),
        (None, None, "spec.cost_centre"),  # snake_case is Python's spelling, not the documents'
    }
    spec = {"name": "A", "owner": "o", "department": "d", "lifecycle": "pilot"}
    assert isinstance(parse_entity(data | {"spec": spec}), Agent)


def test_the_public_surface_is_importable():
    for name in registry.__all__:
        assert getattr(registry, name) is not None, name
