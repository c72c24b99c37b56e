"""The registry over HTTP: read what your scope allows; plan, apply and export YAML; edit agents.

Reads are scoped: a finance or viewer token of one department sees that department's entities,
an owner token its agent; anything else is "not found". Whole-registry plan/apply/export needs an
unscoped token with the `write_registry` permission (admin, platform); editing one agent needs
that permission and the agent inside the token's scope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
from fastapi import APIRouter, Body, Depends, HTTPException, status
from fastapi.responses import JSONResponse, PlainTextResponse

from muster.api.deps import cursor, not_found, reader, registry_writer
from muster.api.scope import agent_filter, department_filter, visible_departments
from muster.auth import Principal
from registry import (
    Entity,
    NotFound,
    PlanOutdated,
    RegistryError,
    ValidationFailed,
    document_data,
    export_yaml,
    load_texts,
    parse_entity,
    plan_changes,
)
from warehouse import registry_store

router = APIRouter(prefix="/api/v1", tags=["registry"])

Files = dict[str, str]  # file name → YAML text, as the CLI read them


def problem_response(error: RegistryError) -> JSONResponse:
    """A registry error as JSON: validation problems one by one with file, line and field."""
    if isinstance(error, NotFound):
        code = status.HTTP_404_NOT_FOUND
    elif isinstance(error, PlanOutdated):
        code = status.HTTP_409_CONFLICT
    else:
        code = status.HTTP_422_UNPROCESSABLE_CONTENT
    problems = [p.to_dict() for p in error.problems] if isinstance(error, ValidationFailed) else []
    return JSONResponse({"detail": str(error), "problems": problems}, status_code=code)


def whole_registry_writer(who: Principal = Depends(registry_writer)) -> Principal:
    if not who.unscoped:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a scoped token cannot change the whole registry")
    return who


@router.get("/agents")
def agents(
    lifecycle: str | None = None,
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> list[dict[str, Any]]:
    """Registered agents inside your scope, optionally of one lifecycle."""
    found = registry_store.list_agents(
        cur,
        department_ids=department_filter(who),
        agent_ids=agent_filter(who),
        lifecycles=[lifecycle] if lifecycle else None,
    )
    return [document_data(agent) for agent in found]


@router.get("/agents/{agent_id}")
def agent(
    agent_id: str, who: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> dict[str, Any]:
    """One agent (by its id or a former id), if it is inside your scope."""
    found = registry_store.get_agent(
        cur, agent_id, department_ids=department_filter(who), agent_ids=agent_filter(who)
    )
    if found is None:
        raise not_found(f"agent {agent_id!r}")
    return document_data(found)


@router.get("/agents/{agent_id}/history")
def agent_history(
    agent_id: str, who: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> list[dict[str, Any]]:
    """Every change to the agent, under its current and former ids: who, when, what."""
    agent(agent_id, who, cur)  # the same scope check as reading it
    return [entry.to_dict() for entry in registry_store.history(cur, agent_id)]


@router.put("/agents/{agent_id}")
def put_agent(
    agent_id: str,
    document: dict[str, Any] = Body(..., description="An Agent document: apiVersion, kind, metadata, spec"),
    who: Principal = Depends(registry_writer),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
):
    """Register an agent or update it. The id is immutable: the document's id must match the path."""
    return _put_document(
        "Agent",
        agent_id,
        document,
        who,
        cur,
        check=lambda agent: _check_agent_scope(who, cur, agent_id, agent.spec.department),
    )


@router.post("/agents/{agent_id}/retire")
def retire(
    agent_id: str, who: Principal = Depends(registry_writer), cur: duckdb.DuckDBPyConnection = Depends(cursor)
):
    """Set the agent's lifecycle to retired; it stays registered so its telemetry still matches it."""
    found = registry_store.get_agent(cur, agent_id, department_ids=department_filter(who), agent_ids=None)
    if found is None:
        raise not_found(f"agent {agent_id!r}")
    try:
        change = registry_store.retire_agent(cur, found.id, who.name)
    except RegistryError as error:
        return problem_response(error)
    return {"changed": change.to_dict() if change else None}


@router.get("/departments")
def departments(
    who: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> list[dict]:
    """Departments inside your scope."""
    scope = visible_departments(cur, who)
    return [document_data(d) for d in registry_store.list_departments(cur, department_ids=scope)]


@router.get("/policies")
def policies(
    who: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)
) -> list[dict]:
    """Organisation-wide policies and those of departments inside your scope."""
    scope = visible_departments(cur, who)
    return [document_data(p) for p in registry_store.list_policies(cur, department_ids=scope)]


@router.get("/budgets")
def budgets(who: Principal = Depends(reader), cur: duckdb.DuckDBPyConnection = Depends(cursor)) -> list[dict]:
    """Budgets inside your scope."""
    found = registry_store.list_budgets(
        cur, department_ids=department_filter(who), agent_ids=agent_filter(who)
    )
    return [document_data(b) for b in found]


_DOCUMENT = Body(..., description="A registry document of the route's kind: apiVersion, kind, metadata, spec")


@router.put("/departments/{department_id}")
def put_department(
    department_id: str,
    document: dict[str, Any] = _DOCUMENT,
    who: Principal = Depends(whole_registry_writer),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
):
    """Add a department or update it, validated against the whole registry. Needs an unscoped token."""
    return _put_document("Department", department_id, document, who, cur)


@router.put("/budgets/{budget_id}")
def put_budget(
    budget_id: str,
    document: dict[str, Any] = _DOCUMENT,
    who: Principal = Depends(whole_registry_writer),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
):
    """Add a budget or update it, validated against the whole registry. Needs an unscoped token."""
    return _put_document("Budget", budget_id, document, who, cur)


@router.put("/policies/{policy_id}")
def put_policy(
    policy_id: str,
    document: dict[str, Any] = _DOCUMENT,
    who: Principal = Depends(whole_registry_writer),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
):
    """Add a policy or update it, validated against the whole registry. Needs an unscoped token."""
    return _put_document("Policy", policy_id, document, who, cur)


def _put_document(
    kind: str,
    entity_id: str,
    document: dict[str, Any],
    who: Principal,
    cur: duckdb.DuckDBPyConnection,
    check: Callable[[Entity], None] | None = None,
):
    """Add or replace one document of `kind` whose id is `entity_id`; `check` may refuse it first."""
    try:
        entity = parse_entity({**document, "kind": document.get("kind", kind)})
        if entity.kind != kind or entity.id != entity_id:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"the body must be the {kind} {entity_id!r} (ids never change)",
            )
        if check is not None:
            check(entity)
        change = registry_store.upsert_entity(cur, entity, who.name)
    except RegistryError as error:
        return problem_response(error)
    return {"changed": change.to_dict() if change else None, kind.lower(): document_data(entity)}


@router.post("/registry/plan", dependencies=[Depends(whole_registry_writer)])
def plan(
    files: Files = Body(..., description="YAML files by name"),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
):
    """What applying these files would change: added, changed (field by field), removed."""
    try:
        desired = load_texts(files)
    except RegistryError as error:
        return problem_response(error)
    return plan_changes(registry_store.load_registry(cur), desired).to_dict()


@router.post("/registry/apply")
def apply(
    files: Files = Body(..., description="YAML files by name"),
    who: Principal = Depends(whole_registry_writer),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
):
    """Make the registry exactly what these files say, all or nothing, with an audit trail."""
    try:
        changes = plan_changes(registry_store.load_registry(cur), load_texts(files))
        registry_store.apply_plan(cur, changes, who.name)
    except RegistryError as error:
        return problem_response(error)
    return changes.to_dict()


@router.get(
    "/registry/export",
    dependencies=[Depends(whole_registry_writer)],
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/yaml": {}}}},
)
def export(cur: duckdb.DuckDBPyConnection = Depends(cursor)) -> PlainTextResponse:
    """The whole registry as YAML documents; applying it back changes nothing."""
    return PlainTextResponse(export_yaml(registry_store.load_registry(cur)), media_type="application/yaml")


def _check_agent_scope(
    who: Principal, cur: duckdb.DuckDBPyConnection, agent_id: str, department: str
) -> None:
    """A scoped writer may only touch agents of its department, existing or new."""
    if who.department_id is None:
        return
    existing = registry_store.get_agent(cur, agent_id)
    if department != who.department_id or (existing and existing.spec.department != who.department_id):
        raise NotFound(f"agent {agent_id!r} not found")
