"""What every page shares: the filters kept in the URL, money formatting, paginated tables.

Filters (time range, department, agent, environment) live in `st.query_params`, so a view can be
linked from an alert, and in session state, so they survive moving between pages. The token never
goes into the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import streamlit as st

from dashboards import api
from dashboards.text import plain

DEFAULT_DAYS = 30
PAGE_SIZE = 50
_STATE = "muster_filters"
_PARAMS = ("from", "to", "department", "agent", "env")
ALL = "(all)"


@dataclass(frozen=True)
class Filters:
    """The shared filters: UTC days `start`..`end` (both included) and optional narrowing."""

    start: date
    end: date
    department: str | None = None
    agent: str | None = None
    environment: str | None = None

    def days(self) -> dict[str, str]:
        """As the API's `from` / `to` day parameters."""
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}

    def times(self) -> dict[str, str]:
        """As the traces API's `from` (inclusive) / `to` (exclusive) times."""
        return {
            "from": f"{self.start.isoformat()}T00:00:00",
            "to": f"{self.end + timedelta(days=1)}T00:00:00",
        }


def narrowing(found: Filters) -> dict[str, str]:
    """The department, agent and environment filters as the spend API's parameters (unset ones left out)."""
    wanted = {"department": found.department, "agent": found.agent, "environment": found.environment}
    return {key: value for key, value in wanted.items() if value}


def today() -> date:
    return datetime.now(UTC).date()


def _day(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


def initial_filters() -> Filters:
    """Filters from the URL on a session's first run, else those kept in the session."""
    if _STATE in st.session_state:
        return st.session_state[_STATE]
    params = st.query_params
    end = _day(params.get("to"), today())
    start = _day(params.get("from"), end - timedelta(days=DEFAULT_DAYS - 1))
    found = Filters(
        start=min(start, end),
        end=end,
        department=params.get("department") or None,
        agent=params.get("agent") or None,
        environment=params.get("env") or None,
    )
    st.session_state[_STATE] = found
    return found


def filter_sidebar() -> Filters:
    """The filter widgets in the sidebar; what they say is written back to the URL."""
    current = initial_filters()
    bar = st.sidebar
    bar.header("Filters")
    chosen = bar.date_input("Time range (UTC days)", value=(current.start, current.end), key="f_range")
    start, end = (
        (chosen[0], chosen[-1])
        if isinstance(chosen, tuple | list) and chosen
        else (current.start, current.end)
    )
    departments = [d["metadata"]["id"] for d in _quiet("/api/v1/departments") or []]
    department = _choice(bar, "Department", departments, current.department, "f_department")
    agents = [
        a["metadata"]["id"]
        for a in _quiet("/api/v1/agents") or []
        if department is None or a["spec"].get("department") == department
    ]
    agent = _choice(bar, "Agent", agents, current.agent, "f_agent")
    environments = sorted(
        {row["environment"] for row in _quiet("/api/v1/inventory") or [] if row.get("environment")}
    )
    environment = _choice(bar, "Environment", environments, current.environment, "f_env")
    found = Filters(start=start, end=end, department=department, agent=agent, environment=environment)
    st.session_state[_STATE] = found
    _to_url(found)
    return found


def _quiet(path: str) -> Any:
    """Options for a filter: a failure here is shown by the page itself, not twice."""
    try:
        return api.get(path)
    except api.ApiError:
        return None


def _choice(bar: Any, label: str, options: list[str], current: str | None, key: str) -> str | None:
    values = [ALL, *sorted(set(options) | ({current} if current else set()))]
    picked = bar.selectbox(label, values, index=values.index(current) if current else 0, key=key)
    return None if picked == ALL else picked


def _to_url(found: Filters) -> None:
    wanted = {
        "from": found.start.isoformat(),
        "to": found.end.isoformat(),
        "department": found.department,
        "agent": found.agent,
        "env": found.environment,
    }
    for key in _PARAMS:
        value = wanted[key]
        if value and st.query_params.get(key) != value:
            st.query_params[key] = value
        elif not value and key in st.query_params:
            del st.query_params[key]


def filters() -> Filters:
    """The filters the sidebar set on this run."""
    return st.session_state.get(_STATE) or initial_filters()


def decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def money(value: Any) -> str:
    """USD with four decimals: agents' calls cost fractions of a cent (as the CLI shows them)."""
    return f"${decimal(value):,.4f}"


def frame(rows: list[dict[str, Any]], columns: list[str] | None = None) -> pd.DataFrame:
    found = pd.DataFrame(rows)
    if columns is not None:
        found = found.reindex(columns=columns)
    return found


def paginated(data: pd.DataFrame, key: str, page_size: int = PAGE_SIZE) -> pd.DataFrame:
    """Show one page of `data` (text cells are never rendered as markdown) and return that page."""
    pages = max(1, -(-len(data) // page_size))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"{key}_page"))
    shown = data.iloc[(page - 1) * page_size : page * page_size]
    st.dataframe(shown, hide_index=True, width="stretch")
    st.caption(f"{len(data):,} rows" + (f", {page_size} per page" if pages > 1 else ""))
    return shown


def budgets_not_evaluated(answer: dict[str, Any] | None, department: str | None) -> None:
    """A warning for each budget the server does not evaluate (a currency without an exchange rate)."""
    for row in (answer or {}).get("not_evaluated", []):
        if department in (None, row.get("department_id")):
            st.warning(
                f"Budget {plain(row['budget_id'])} ({plain(row['amount'])} {plain(row['currency'])},"
                f" {plain(row['period'])}) is not evaluated: {plain(row['reason'])}"
            )


def not_signed_in() -> bool:
    if api.token():
        return False
    st.warning("Sign in with an API token first.")
    return True
