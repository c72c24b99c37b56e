"""The reference pages cannot drift from the code: every registry field, every API route.

docs/registry.md must name every field of every registry model by its camelCase YAML name;
docs/api.md must list every route of the app, and its generated tables (roles, routes) must be
what `docs/api_routes.py` writes from the app today.
"""

from __future__ import annotations

import importlib.util
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
