"""Overview: spend this month and its forecast, budget burn, agents, open findings, spend trend."""

from __future__ import annotations

from decimal import Decimal

import altair as alt
import streamlit as st

from dashboards import api, ui
from dashboards.text import plain

SEVERITIES = ("critical", "warning", "info")


def month_spend(filters: ui.Filters) -> Decimal | None:
    today = ui.today()
    month = {"from": today.replace(day=1), "to": today}
    rows = api.load("/api/v1/spend", "spend this month", by="department", **ui.narrowing(filters), **month)
    if rows is None:
        return None
    return sum((ui.decimal(r["cost_usd"]) for r in rows), Decimal(0))


def month_forecast(filters: ui.Filters) -> Decimal | None:
    # one agent's forecast when an agent is chosen, else the departments' (or the one chosen)
    by, key = ("agent", filters.agent) if filters.agent else ("department", filters.department)
    answer = api.load("/api/v1/forecast", "the forecast", by=by)
    if answer is None:
        return None
    rows = answer.get("rows", [])
    return sum((ui.decimal(r["forecast_total"]) for r in rows if key in (None, r["key"])), Decimal(0))


def agent_counts(filters: ui.Filters) -> dict[str, int] | None:
    registered = api.load("/api/v1/agents", "registered agents")
    observed = api.load("/api/v1/inventory", "the inventory", **filters.days())
    if registered is None or observed is None:
        return None
    if filters.department:
        registered = [a for a in registered if a["spec"]["department"] == filters.department]
        observed = [o for o in observed if o["department_id"] in (filters.department, None)]
    return {
        "registered": len(registered),
        "observed": len({o["agent_id"] for o in observed if o["match_status"] == "registered"}),
        "unregistered": sum(1 for o in observed if o["match_status"] == "unregistered"),
    }


def open_findings(department: str | None) -> dict[str, int] | None:
    counts = {}
    for severity in SEVERITIES:
        answer = api.load(
            "/api/v1/findings", "findings", status="open", severity=severity, department=department, limit=1
        )
        if answer is None:
            return None
        counts[severity] = int(answer.get("total", 0))
    return counts


def spend_trend(filters: ui.Filters) -> None:
    rows = api.load("/api/v1/spend", "the spend trend", by="day", **ui.narrowing(filters), **filters.days())
    if not rows:
        st.caption("No spend in this time range.")
        return
    data = ui.frame(rows, ["day", "cost_usd", "calls"]).astype({"cost_usd": float})
    chart = (
        alt.Chart(data)
        .mark_area(line=True, opacity=0.4)
        .encode(
            x=alt.X("day:T", title="day (UTC)"),
            y=alt.Y("cost_usd:Q", title="spend (USD)"),
            tooltip=["day:T", alt.Tooltip("cost_usd:Q", format="$.4f"), "calls:Q"],
        )
    )
    st.altair_chart(chart, width="stretch")


filters = ui.filters()
st.title("Overview")
top = st.columns(3)
spent = month_spend(filters)
if spent is not None:
    top[0].metric("Spend this month (USD)", ui.money(spent))
forecast = month_forecast(filters)
if forecast is not None:
    top[1].metric("Forecast for the month (USD)", ui.money(forecast))
budgets = api.load("/api/v1/budgets/status", "budget burn")
if budgets is not None:
    rows = [b for b in budgets.get("budgets", []) if filters.department in (None, b.get("department_id"))]
    over = sum(1 for b in rows if b.get("status") == "over")
    top[2].metric(
        "Budgets over / warning", f"{over} / {sum(1 for b in rows if b.get('status') == 'warning')}"
    )
if filters.environment:
    # budgets and forecasts are kept per department and agent, not per environment
    st.caption(
        f"Spend is narrowed to the environment {plain(filters.environment)}; "
        "the forecast and the budgets cover every environment."
    )

st.subheader("Agents")
counts = agent_counts(filters)
if counts is not None:
    cols = st.columns(3)
    cols[0].metric("Registered agents", counts["registered"])
    cols[1].metric("Registered agents observed", counts["observed"])
    cols[2].metric("Unregistered identities", counts["unregistered"])

st.subheader("Open findings")
findings = open_findings(filters.department)
if findings is not None:
    cols = st.columns(len(SEVERITIES))
    for col, severity in zip(cols, SEVERITIES, strict=True):
        col.metric(f"Open {severity}", findings[severity])

st.subheader("Spend trend")
spend_trend(filters)
if budgets is not None and (budgets.get("budgets") or budgets.get("not_evaluated")):
    st.subheader("Budget burn")
    ui.budgets_not_evaluated(budgets, filters.department)
    ui.paginated(
        ui.frame(budgets["budgets"]).drop(columns=["scope", "thresholds"], errors="ignore"),
        "overview_budgets",
    )
