"""The reference pages cannot drift from the code: every registry field, every API route.

docs/registry.md must name every field of every registry model by its camelCase YAML name;
docs/api.md must list every route of the app, and its generated tables (roles, routes) must be
what `docs/api_routes.py` writes from the app today.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

import registry
from registry.model import KINDS

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_api_routes", DOCS / "api_routes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def _registry_models() -> dict[str, type[BaseModel]]:
    """Every pydantic model the registry package exports (documents, specs, selectors, scopes)."""
    return {
        name: value
        for name in registry.__all__
        if isinstance(value := getattr(registry, name), type) and issubclass(value, BaseModel)
    }


def _yaml_name(name: str, model: type[BaseModel]) -> str:
    return model.model_fields[name].alias or name


def test_every_kind_and_every_field_of_the_registry_is_documented():
    page = (DOCS / "registry.md").read_text()
    documented = set(re.findall(r"`([A-Za-z][A-Za-z0-9]*)`", page))
    missing = [f"kind {kind}" for kind in KINDS if f"## {kind}" not in page]
    for model_name, model in _registry_models().items():
        for name in model.model_fields:
            if _yaml_name(name, model) not in documented:
                missing.append(f"{model_name}.{_yaml_name(name, model)}")
    assert not missing, f"missing from docs/registry.md: {missing}"


def test_the_registry_models_are_the_ones_the_page_is_about():
    # A new model (say, a new kind) must be added to the page's tables, not just pass the check
    # above by reusing a common field name: the models are listed by name in the page's source note.
    page = (DOCS / "registry.md").read_text()
    assert {"Department", "Agent", "Policy", "Budget"} == set(KINDS)
    for model_name in _registry_models():
        assert f"`{model_name}`" in page, f"docs/registry.md does not name the model {model_name}"


def test_every_route_of_the_app_is_in_the_api_reference():
    generator = _generator()
    app = generator.documentation_app()
    page = (DOCS / "api.md").read_text()
    operations = [
        f"`{method.upper()} {path}`" for path, methods in app.openapi()["paths"].items() for method in methods
    ]
    assert operations, "the app has no routes?"
    missing = [operation for operation in operations if operation not in page]
    assert not missing, f"missing from docs/api.md (run docs/api_routes.py): {missing}"
    for builtin in ("/docs", "/openapi.json"):
        assert f"`{builtin}`" in page


def test_the_generated_tables_of_the_api_reference_are_up_to_date():
    generator = _generator()
    page = (DOCS / "api.md").read_text()
    assert generator.page_blocks(page) == generator.generated_blocks(), (
        "docs/api.md is out of date: run `.venv/bin/python docs/api_routes.py` and commit the result"
    )


@pytest.mark.parametrize("page", ["registry.md", "api.md", "operations.md", "architecture.md"])
def test_relative_links_of_the_reference_pages_resolve(page):
    text = (DOCS / page).read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (DOCS / target).exists(), f"{page} links to {target}, which does not exist"


def test_the_retention_table_of_operations_names_every_table_retention_deletes():
    from warehouse.maintenance import COST_TABLES, RAW_TABLES

    page = (DOCS / "operations.md").read_text()
    for kind, tables in (("raw telemetry", RAW_TABLES), ("cost facts", COST_TABLES)):
        (row,) = [line for line in page.splitlines() if line.startswith(f"| {kind} |")]
        documented = set(re.findall(r"`([a-z_]+)`", row.split("|")[2]))
        assert documented == set(tables), (
            f"docs/operations.md retention, {kind}: {documented} vs {set(tables)}"
        )


# ---------------------------------------------------------------------------------------------
# The README's first screen: the two commands a newcomer needs, and what they really run
# ---------------------------------------------------------------------------------------------


def test_the_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert first_block and readme[: first_block.start()].count("\n") < 12, "not on the first screen"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["./dev up", "./dev test"]

    dev = (ROOT / "dev").read_text()
    assert re.search(r"^\s*up\)\n\s*venv\n(\s*#.*\n)*\s*exec \.venv/bin/muster up --demo$", dev, re.MULTILINE)
    # the whole suite: pytest with no path of its own (pyproject's testpaths), after the lint
    assert re.search(r'^\s*\.venv/bin/python -m pytest "\$@"$', dev, re.MULTILINE)
    assert 'testpaths = ["tests"]' in (ROOT / "pyproject.toml").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert [line for line in ci.splitlines() if line and not line.startswith(("#", "set ", "cd "))] == [
        "./dev test"
    ]
    for script in (ROOT / "dev", ROOT / ".ci" / "run"):
        assert os.access(script, os.X_OK), f"{script} is not executable"


def test_the_readme_counts_the_rules_the_code_has():
    from analytics.rules import RULES

    counts = re.findall(r"(\d+) rules", (ROOT / "README.md").read_text())
    assert counts and {int(count) for count in counts} == {len(RULES)}, (counts, len(RULES))
