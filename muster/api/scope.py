"""What a principal may see: its scope turned into the filters the registry queries take."""

from __future__ import annotations

import duckdb

from muster.auth import Principal


def department_filter(who: Principal) -> set[str] | None:
    """The departments a principal is confined to; None means all."""
    return {who.department_id} if who.department_id else None


def visible_departments(cur: duckdb.DuckDBPyConnection, who: Principal) -> set[str] | None:
    """Departments a principal may see: its own, its agent's (owner tokens), or all (None)."""
    if who.agent_id is None:
        return department_filter(who)
    from warehouse import registry_store

    agent = registry_store.get_agent(cur, who.agent_id)
    return {agent.spec.department} if agent else set()


def agent_filter(who: Principal) -> set[str] | None:
    """The agents a principal is confined to; None means all."""
    return {who.agent_id} if who.agent_id else None


def visible_agent(cur: duckdb.DuckDBPyConnection, who: Principal, agent_id: str) -> bool:
    """Whether the agent is registered and inside the principal's scope."""
    from warehouse import registry_store

    found = registry_store.get_agent(
        cur, agent_id, department_ids=department_filter(who), agent_ids=agent_filter(who)
    )
    return found is not None


def narrowed(scope: set[str] | None, wanted: str | None) -> set[str] | None:
    """The scope cut down to `wanted` (nothing when it lies outside): a filter never widens a view."""
    if wanted is None:
        return scope
    return {wanted} if scope is None or wanted in scope else set()
