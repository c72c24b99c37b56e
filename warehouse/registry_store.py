"""All SQL of the agent registry: reading it, changing it in one checked transaction, its audit trail.

Every change — a whole plan from YAML, or one edit from the API — runs in a single transaction
that writes the entity rows, their selector and alias rows, and an audit row per entity, then
validates the whole registry as it now stands, and commits only if it is valid. Anything that
fails rolls everything back. Each function runs its own transaction, so pass a cursor that is not
inside one. Values only ever travel as parameters; no SQL text is built from input.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import duckdb
from pydantic import ValidationError

from registry.errors import ApplyFailed, NotFound, PlanOutdated, RegistryError
from registry.model import (
    KINDS,
    Agent,
    Budget,
    Department,
    Entity,
    Lifecycle,
    Policy,
    Registry,
    document_data,
    parse_entity_data,
)
from registry.plan import Action, Change, FieldChange, Plan, diff_documents, entity_change
from registry.validate import validate_registry
from warehouse.errors import WarehouseError

T = TypeVar("T")
Cursor = duckdb.DuckDBPyConnection


@dataclass(frozen=True)
class AuditEntry:
    """One change to one entity: who, when, what (add, change, retire, remove), before and after."""

    seq: int
    at: datetime
    actor: str
    action: str
    kind: str
    id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    change_id: str  # shared by all entries of one apply or edit

    @property
    def fields(self) -> tuple[FieldChange, ...]:
        """What changed, field by field (every field for an add or a remove)."""
        return diff_documents(self.before, self.after)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "kind": self.kind,
            "id": self.id,
            "change_id": self.change_id,
            "fields": [field.to_dict() for field in self.fields] if self.before and self.after else [],
            "before": self.before,
            "after": self.after,
        }


# Reading


_DOCUMENTS = {
    "Department": "SELECT document FROM departments ORDER BY id",
    "Policy": "SELECT document FROM policies ORDER BY id",
    "Budget": "SELECT document FROM budgets ORDER BY id",
    "Agent": "SELECT document FROM agents ORDER BY id",
}


def load_registry(cur: Cursor) -> Registry:
    """The whole registry as stored."""
    return Registry.of(entity for kind in KINDS for entity in _entities(cur, _DOCUMENTS[kind], {}))


# An empty scope list means "nothing"; NULL means "no restriction". Former ids count as the agent.
_AGENT_SCOPE = """
    ($departments::VARCHAR[] IS NULL OR list_contains($departments::VARCHAR[], department_id))
    AND ($agents::VARCHAR[] IS NULL OR list_contains($agents::VARCHAR[], id)
         OR id IN (SELECT agent_id FROM agent_aliases WHERE list_contains($agents::VARCHAR[], alias)))
"""

_LIST_AGENTS = f"""
SELECT document FROM agents
WHERE {_AGENT_SCOPE}
  AND ($lifecycles::VARCHAR[] IS NULL OR list_contains($lifecycles::VARCHAR[], lifecycle))
ORDER BY id
"""  # noqa: S608 - composed of constant SQL only

_GET_AGENT = f"""
SELECT document FROM agents
WHERE id = coalesce((SELECT agent_id FROM agent_aliases WHERE alias = $id), $id) AND {_AGENT_SCOPE}
"""  # noqa: S608 - composed of constant SQL only


def list_agents(
    cur: Cursor,
    *,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
    lifecycles: Collection[Lifecycle | str] | None = None,
) -> list[Agent]:
    """Agents by id, confined to these departments and agents (None: all; empty: none)."""
    params = _scope(department_ids, agent_ids) | {"lifecycles": _listed(lifecycles)}
    return _entities(cur, _LIST_AGENTS, params)  # type: ignore[return-value]


def get_agent(
    cur: Cursor,
    agent_id: str,
    *,
    department_ids: Collection[str] | None = None,
    agent_ids: Collection[str] | None = None,
) -> Agent | None:
    """The agent with this id or former id, if it exists inside the scope; None otherwise."""
    found = _entities(cur, _GET_AGENT, _scope(department_ids, agent_ids) | {"id": agent_id})
    return found[0] if found else None  # type: ignore[return-value]


_LIST_DEPARTMENTS = """
SELECT document FROM departments
WHERE ($departments::VARCHAR[] IS NULL OR list_contains($departments::VARCHAR[], id))
  AND ($id::VARCHAR IS NULL OR id = $id)
ORDER BY id
"""


def list_departments(cur: Cursor, *, department_ids: Collection[str] | None = None) -> list[Department]:
    """Departments by id, confined to these (None: all)."""
    params = {"departments": _listed(department_ids), "id": None}
    return _entities(cur, _LIST_DEPARTMENTS, params)  # type: ignore[return-value]


def get_department(
    cur: Cursor, department_id: str, *, department_ids: Collection[str] | None = None
) -> Department | None:
    """The department with this id if it exists inside the scope; None otherwise."""
    params = {"departments": _listed(department_ids), "id": department_id}
    found = _entities(cur, _LIST_DEPARTMENTS, params)
    return found[0] if found else None  # type: ignore[return-value]


_LIST_POLICIES = """
SELECT document FROM policies
WHERE $departments::VARCHAR[] IS NULL OR department_id IS NULL
   OR list_contains($departments::VARCHAR[], department_id)
ORDER BY id
"""


def list_policies(cur: Cursor, *, department_ids: Collection[str] | None = None) -> list[Policy]:
    """Policies by id: the organisation's, and those of these departments (None: every department)."""
    return _entities(cur, _LIST_POLICIES, {"departments": _listed(department_ids)})  # type: ignore[return-value]


_LIST_BUDGETS = """
SELECT b.document FROM budgets b LEFT JOIN agents a ON a.id = b.agent_id
WHERE ($departments::VARCHAR[] IS NULL
       OR list_contains($departments::VARCHAR[], coalesce(b.department_id, a.department_id)))
  AND ($agents::VARCHAR[] IS NULL OR list_contains($agents::VARCHAR[], b.agent_id))
ORDER BY b.id
"""


def list_budgets(
    cur: Cursor, *, department_ids: Collection[str] | None = None, agent_ids: Collection[str] | None = None
) -> list[Budget]:
    """Budgets by id. Scoped to departments: those of a department or of one of its agents; scoped to
    agents: those of these agents. Budgets by cost centre or provider alone are visible unscoped only."""
    return _entities(cur, _LIST_BUDGETS, _scope(department_ids, agent_ids))  # type: ignore[return-value]


def _scope(department_ids: Collection[str] | None, agent_ids: Collection[str] | None) -> dict[str, Any]:
    return {"departments": _listed(department_ids), "agents": _listed(agent_ids)}


def _listed(values: Collection[str] | None) -> list[str] | None:
    return None if values is None else sorted(str(value) for value in values)


def _entities(cur: Cursor, sql: str, params: dict[str, Any]) -> list[Entity]:
    return [_entity_of(row[0]) for row in _rows(cur, sql, params)]


def _entity_of(document: str) -> Entity:
    data = json.loads(document)
    try:
        return parse_entity_data(data)
    except ValidationError as exc:
        raise RegistryError(
            f"the stored {data.get('kind')} {data.get('metadata', {}).get('id')!r} no longer validates"
            f" ({exc.error_count()} errors): export the registry, fix it and apply it again"
        ) from exc


def _rows(cur: Cursor, sql: str, params: dict[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
    try:
        return cur.execute(sql, params).fetchall()
    except duckdb.Error as exc:
        raise WarehouseError(f"cannot read the registry: {exc}") from exc


# History


_ALIAS_EDGES = """
SELECT DISTINCT id, unnest(json_extract_string(document, '$.spec.aliases[*]')) AS alias
FROM (SELECT id, after AS document FROM registry_audit WHERE kind = 'Agent' AND after IS NOT NULL
      UNION ALL
      SELECT id, before FROM registry_audit WHERE kind = 'Agent' AND before IS NOT NULL)
"""

_CURRENT_ID = "SELECT coalesce((SELECT agent_id FROM agent_aliases WHERE alias = $id), $id)"

_AUDIT_COLUMNS = "seq, changed_at, actor, action, kind, id, before, after, change_id"

_HISTORY = f"""
SELECT {_AUDIT_COLUMNS} FROM registry_audit
WHERE kind = 'Agent' AND list_contains($ids::VARCHAR[], id) ORDER BY seq
"""  # noqa: S608 - composed of constant SQL only

_AUDIT_LOG = f"""
SELECT {_AUDIT_COLUMNS} FROM registry_audit
WHERE ($kind::VARCHAR IS NULL OR kind = $kind) AND ($id::VARCHAR IS NULL OR id = $id)
ORDER BY seq DESC LIMIT $limit
"""  # noqa: S608 - composed of constant SQL only


def history(cur: Cursor, agent_id: str) -> list[AuditEntry]:
    """Every change to an agent, oldest first, including those made under its former ids.

    `agent_id` may be the current id or a former one. Empty when no such agent was ever recorded.
    """
    ids = _ids_over_time(cur, agent_id)
    return [_audit_entry(row) for row in _rows(cur, _HISTORY, {"ids": sorted(ids)})]


def audit_log(
    cur: Cursor, *, kind: str | None = None, entity_id: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """The latest changes to the registry, newest first, optionally of one kind or one entity."""
    params = {"kind": kind, "id": entity_id, "limit": limit}
    return [_audit_entry(row) for row in _rows(cur, _AUDIT_LOG, params)]


def _ids_over_time(cur: Cursor, agent_id: str) -> set[str]:
    """The agent's current id and every id it carried before, following aliases transitively."""
    current = _rows(cur, _CURRENT_ID, {"id": agent_id})[0][0]
    former: dict[str, set[str]] = {}
    for owner, alias in _rows(cur, _ALIAS_EDGES, {}):
        former.setdefault(owner, set()).add(alias)
    found, pending = set(), [current]
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending += former.get(name, ())
    return found


def _audit_entry(row: tuple[Any, ...]) -> AuditEntry:
    seq, at, actor, action, kind, entity_id, before, after, change_id = row
    return AuditEntry(seq, at, actor, action, kind, entity_id, _json(before), _json(after), change_id)


def _json(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text is not None else None


# Changing


def apply_plan(cur: Cursor, plan: Plan, actor: str) -> None:
    """Apply every change of a plan, or none: PlanOutdated if the registry moved on since the plan,
    ValidationFailed if the result would be invalid, ApplyFailed if the warehouse refused a write."""

    def work(current: Registry) -> None:
        outdated = [change for change in plan.changes if current.get(change.kind, change.id) != change.before]
        if outdated:
            names = ", ".join(f"{change.kind} {change.id}" for change in outdated[:5])
            raise PlanOutdated(
                f"the registry changed since this plan was made ({names}"
                f"{' and more' if len(outdated) > 5 else ''}); nothing was applied: run plan again"
            )
        _write_changes(cur, plan.changes, actor)

    _transaction(cur, actor, work)


def upsert_entity(cur: Cursor, entity: Entity, actor: str) -> Change | None:
    """Add the entity or replace the one with its kind and id; None when it is already so (no audit)."""

    def work(current: Registry) -> Change | None:
        change = entity_change(current.get(entity.kind, entity.id), entity)
        if change is not None:
            _write_changes(cur, [change], actor)
        return change

    return _transaction(cur, actor, work)


def retire_agent(cur: Cursor, agent_id: str, actor: str) -> Change | None:
    """Set an agent's lifecycle to retired (it stays registered, so its telemetry still matches it).

    NotFound unless `agent_id` is a current id; None when the agent was retired already.
    """

    def work(current: Registry) -> Change | None:
        agent = current.agents.get(agent_id)
        if agent is None:
            raise NotFound(f"no agent {agent_id!r} is registered")
        retired = agent.model_copy(
            update={"spec": agent.spec.model_copy(update={"lifecycle": Lifecycle.RETIRED})}
        )
        change = entity_change(agent, retired)
        if change is not None:
            _write_changes(cur, [change], actor)
        return change

    return _transaction(cur, actor, work)


def remove_entity(cur: Cursor, kind: str, entity_id: str, actor: str) -> Change:
    """Delete an entity's registration (its audit trail stays); NotFound when there is none.

    Refused with ValidationFailed while others refer to it (a department that still has agents).
    """
    if kind not in KINDS:
        raise NotFound(f"there is no kind {kind!r}: use one of {', '.join(KINDS)}")

    def work(current: Registry) -> Change:
        change = entity_change(current.get(kind, entity_id), None)
        if change is None:
            raise NotFound(f"no {kind} {entity_id!r} is registered")
        _write_changes(cur, [change], actor)
        return change

    return _transaction(cur, actor, work)


def _transaction(cur: Cursor, actor: str, work: Callable[[Registry], T]) -> T:
    """Run `work` on the registry as it stands, validate the result and commit — or roll back."""
    if not isinstance(actor, str) or not actor.strip():
        raise RegistryError("every registry change needs an actor (who made it) for the audit trail")
    try:
        cur.begin()
    except duckdb.Error as exc:
        raise ApplyFailed(f"cannot start a registry transaction: {exc}") from exc
    try:
        result = work(load_registry(cur))
        validate_registry(load_registry(cur))
        cur.commit()
    except duckdb.Error as exc:
        _roll_back(cur)
        raise ApplyFailed(f"the warehouse refused the change, so nothing was stored: {exc}") from exc
    except BaseException:
        _roll_back(cur)
        raise
    return result


def _roll_back(cur: Cursor) -> None:
    with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already ended the transaction
        cur.rollback()


def _write_changes(cur: Cursor, changes: Iterable[Change], actor: str) -> None:
    """Delete every touched entity's rows first, then insert: an alias may move between agents.

    Rows are written a table at a time, since each statement costs far more than each row.
    """
    changes = list(changes)
    touched: dict[str, list[str]] = defaultdict(list)
    for change in changes:
        touched[change.kind].append(change.id)
    for kind, ids in touched.items():
        for sql in _DELETE[kind]:
            cur.execute(sql, {"ids": ids})
    batches: dict[_Insert, list[list[Any]]] = defaultdict(list)
    for change in changes:
        if change.after is not None:
            for insert, rows in _ROWS[change.kind](change.after, actor):
                batches[insert] += rows
    change_id = uuid.uuid4().hex
    batches[_INSERT_AUDIT] = [_audit_row(change, actor, change_id) for change in changes]
    for insert, rows in batches.items():
        _insert(cur, insert, rows)


@dataclass(frozen=True)
class _Insert:
    """An INSERT of many rows at once: `statement` then `row` (placeholders) repeated per row."""

    statement: str
    row: str


_ROWS_PER_STATEMENT = 250


def _insert(cur: Cursor, insert: _Insert, rows: list[list[Any]]) -> None:
    # One statement per chunk of rows: DuckDB runs executemany row by row, ~10x slower. Only
    # placeholders are repeated into the SQL; every value is still bound as a parameter.
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        sql = insert.statement + ", ".join([insert.row] * len(chunk))
        cur.execute(sql, [value for row in chunk for value in row])


_DELETE = {
    "Department": ["DELETE FROM departments WHERE list_contains($ids::VARCHAR[], id)"],
    "Policy": ["DELETE FROM policies WHERE list_contains($ids::VARCHAR[], id)"],
    "Budget": ["DELETE FROM budgets WHERE list_contains($ids::VARCHAR[], id)"],
    "Agent": [
        "DELETE FROM agents WHERE list_contains($ids::VARCHAR[], id)",
        "DELETE FROM agent_selectors WHERE list_contains($ids::VARCHAR[], agent_id)",
        "DELETE FROM agent_aliases WHERE list_contains($ids::VARCHAR[], agent_id)",
    ],
}

_INSERT_AUDIT = _Insert(
    "INSERT INTO registry_audit (changed_at, actor, action, kind, id, before, after, change_id) VALUES ",
    "(now(), ?, ?, ?, ?, ?, ?, ?)",
)


def _audit_row(change: Change, actor: str, change_id: str) -> list[Any]:
    before, after = _document_json(change.before), _document_json(change.after)
    return [actor, _audit_action(change), change.kind, change.id, before, after, change_id]


def _audit_action(change: Change) -> str:
    if (
        change.action is Action.CHANGE
        and isinstance(change.before, Agent)
        and isinstance(change.after, Agent)
        and change.after.spec.lifecycle is Lifecycle.RETIRED
        and change.before.spec.lifecycle is not Lifecycle.RETIRED
    ):
        return "retire"
    return change.action.value


def _document_json(entity: Entity | None) -> str | None:
    if entity is None:
        return None
    return json.dumps(document_data(entity), ensure_ascii=False, separators=(",", ":"))


Rows = list[tuple[_Insert, list[list[Any]]]]

_INSERT_DEPARTMENT = _Insert("INSERT INTO departments VALUES ", "(?, ?, ?, ?, ?, ?, ?, now(), ?)")
_INSERT_AGENT = _Insert("INSERT INTO agents VALUES ", "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)")
_INSERT_SELECTOR = _Insert("INSERT INTO agent_selectors VALUES ", "(?, ?, ?, ?, ?, ?, ?)")
_INSERT_ALIAS = _Insert("INSERT INTO agent_aliases VALUES ", "(?, ?)")
_INSERT_POLICY = _Insert("INSERT INTO policies VALUES ", "(?, ?, ?, now(), ?)")
_INSERT_BUDGET = _Insert("INSERT INTO budgets VALUES ", "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)")


def _department_rows(department: Department, actor: str) -> Rows:
    spec = department.spec
    row = [
        department.id,
        spec.name,
        spec.cost_centre,
        spec.monthly_budget,
        spec.currency,
        spec.finance_contact,
    ]
    return [(_INSERT_DEPARTMENT, [[*row, _document_json(department), actor]])]


def _agent_rows(agent: Agent, actor: str) -> Rows:
    spec = agent.spec
    row = [
        agent.id,
        spec.name,
        spec.department,
        spec.owner,
        spec.team,
        spec.platform,
        spec.lifecycle.value,
        spec.risk_tier.value,
        spec.cost_centre,
        spec.monthly_budget,
        spec.review_due,
    ]
    return [
        (_INSERT_AGENT, [[*row, _document_json(agent), actor]]),
        (_INSERT_SELECTOR, _selector_rows(agent)),
        (_INSERT_ALIAS, [[alias, agent.id] for alias in spec.aliases]),
    ]


def _selector_rows(agent: Agent) -> list[list[Any]]:
    own = [[agent.id, None, "agent_id", None, name, None, True] for name in (agent.id, *agent.spec.aliases)]
    return own + [
        [agent.id, index, s.key.value, s.namespace, s.value, s.environment, False]
        for index, s in enumerate(agent.spec.match)
    ]


def _policy_rows(policy: Policy, actor: str) -> Rows:
    return [(_INSERT_POLICY, [[policy.id, policy.spec.department, _document_json(policy), actor]])]


def _budget_rows(budget: Budget, actor: str) -> Rows:
    spec, scope = budget.spec, budget.spec.scope
    row = [budget.id, spec.amount, spec.currency, spec.period.value]
    row += [scope.department, scope.cost_centre, scope.agent, scope.provider, scope.model]
    return [(_INSERT_BUDGET, [[*row, _document_json(budget), actor]])]


_ROWS: dict[str, Callable[[Any, str], Rows]] = {
    "Department": _department_rows,
    "Policy": _policy_rows,
    "Budget": _budget_rows,
    "Agent": _agent_rows,
}
