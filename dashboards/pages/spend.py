"""Spend (finance): by department, cost centre, agent, model, provider and environment, over time; budget
burn-down with forecast and thresholds; top movers; unit costs; CSV and FOCUS downloads."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import api, ui
from dashboards.text import plain

DIMENSIONS = {
    "department": "Department",
    "cost_centre": "Cost centre",
    "agent": "Agent",
    "model": "Model",
    "provider": "Provider",
    "environment": "Environment",
}


def spend_rows(
    by: str, filters: ui.Filters, days: dict[str, str] | None = None
) -> list[dict[str, Any]] | None:
    return api.load(
        "/api/v1/spend", f"spend by {by}", by=by, **ui.narrowing(filters), **(days or filters.days())
    )


def totals(rows: list[dict[str, Any]]) -> dict[str, Decimal | int]:
    return {
        "cost": sum((ui.decimal(r["cost_usd"]) for r in rows), Decimal(0)),
        "calls": sum(int(r["calls"]) for r in rows),
        "unpriced": sum(int(r["unpriced_calls"]) for r in rows),
        "tokens": sum(int(r["input_tokens"]) + int(r["output_tokens"]) for r in rows),
    }


def headline(filters: ui.Filters) -> None:
    rows = spend_rows("department", filters)
    if rows is None:
        return
    found = totals(rows)
    cols = st.columns(5)
    cols[0].metric("Total spend (USD)", ui.money(found["cost"]))
    cols[1].metric("Model calls", f"{found['calls']:,}")
    cols[2].metric("Unpriced calls", f"{found['unpriced']:,}")
    cols[3].metric("Per call (USD)", ui.money(found["cost"] / found["calls"]) if found["calls"] else "—")
    per_k = found["cost"] * 1000 / found["tokens"] if found["tokens"] else None
    cols[4].metric("Per 1k tokens (USD)", ui.money(per_k) if per_k is not None else "—")
    runs = api.load("/api/v1/spend/runs", "agent runs", **ui.narrowing(filters), **filters.days())
    if runs is None:
        return
    per_conversation = found["cost"] / runs["conversations"] if runs["conversations"] else None
    st.metric("Per conversation (USD)", ui.money(per_conversation) if per_conversation is not None else "—")
    st.caption(
        f"Over {runs['conversations']:,} conversations and {runs['traces']:,} agent runs (traces)"
        + (f"; per run {ui.money(found['cost'] / runs['traces'])}" if runs["traces"] else "")
    )


def breakdown(filters: ui.Filters) -> None:
    by = st.selectbox("Group by", list(DIMENSIONS), format_func=DIMENSIONS.get, key="spend_by")
    rows = spend_rows(by, filters)
    if rows is None:
        return
    data = ui.frame(rows).rename(columns={by: "key"})
    if data.empty:
        st.caption("No spend in this time range.")
        return
    data["key"] = data["key"].fillna("(none)").astype(str)
    data["cost_usd"] = data["cost_usd"].map(ui.decimal)
    chart = (
        alt.Chart(data.head(15).astype({"cost_usd": float}))
        .mark_bar()
        .encode(
            x=alt.X("cost_usd:Q", title="spend (USD)"),
            y=alt.Y("key:N", sort="-x", title=DIMENSIONS[by]),
            tooltip=["key:N", alt.Tooltip("cost_usd:Q", format="$.4f"), "calls:Q"],
        )
    )
    st.altair_chart(chart, width="stretch")
    named = data.rename(columns={"key": by})
    ui.paginated(named, f"spend_{by}")
    st.download_button(
        "Download as CSV",
        named.to_csv(index=False),
        file_name=f"spend-by-{by}.csv",
        mime="text/csv",
        key="csv",
    )


def over_time(filters: ui.Filters) -> None:
    rows = spend_rows("day", filters)
    if not rows:
        return
    data = ui.frame(rows, ["day", "cost_usd", "calls"]).astype({"cost_usd": float})
    chart = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("day:T", title="day (UTC)"),
            y=alt.Y("cost_usd:Q", title="spend (USD)"),
            tooltip=list(data),
        )
    )
    st.altair_chart(chart, width="stretch")


def burn_down(filters: ui.Filters) -> None:
    answer = api.load("/api/v1/budgets/status", "budget burn-down")
    if answer is None:
        return
    ui.budgets_not_evaluated(answer, filters.department)
    rows = [
        b
        for b in answer.get("budgets", [])
        if b.get("source") == "department" and filters.department in (None, b.get("department_id"))
    ]
    if not rows:
        st.caption("No department budgets in your scope.")
        return
    data = pd.DataFrame(rows)
    # the chart is in USD whatever each department's currency; the table shows both
    amounts = ("actual", "forecast", "amount", "forecast_low", "forecast_high")
    for column in (*amounts, "actual_usd", "forecast_usd", "amount_usd"):
        if column in data:
            data[column] = data[column].map(lambda v: float(ui.decimal(v)))
    base = alt.Chart(data).encode(y=alt.Y("department_id:N", title="department"))
    bars = base.mark_bar(opacity=0.8).encode(x=alt.X("actual_usd:Q", title="USD"), color="status:N")
    forecast = base.mark_tick(color="black", thickness=2).encode(x="forecast_usd:Q")
    amount = base.mark_tick(color="red", thickness=3).encode(x="amount_usd:Q")
    st.altair_chart(bars + forecast + amount, width="stretch")
    st.caption("Bar: spent so far; black tick: forecast for the period; red tick: the budget.")
    ui.paginated(data.drop(columns=["scope"], errors="ignore"), "burn_down")
    chosen = st.selectbox("Burn-down of", [r["department_id"] for r in rows], key="burn_department")
    burn_down_over_time(next(r for r in rows if r["department_id"] == chosen))


def burn_line(budget: dict[str, Any]) -> pd.DataFrame | None:
    """The period's spend so far, day by day and added up (USD), as the spend API answers it."""
    today = ui.today()
    start, end = budget["period_start"], min(budget["period_end"], today.isoformat())
    rows = api.load(
        "/api/v1/spend",
        "the burn-down",
        by="day",
        department=budget["department_id"],
        **{"from": start, "to": end},
    )
    if rows is None:
        return None
    spent = {r["day"]: ui.decimal(r["cost_usd"]) for r in rows}
    days = pd.date_range(start, end, freq="D")
    total, points = Decimal(0), []
    for day in days:
        total += spent.get(day.date().isoformat(), Decimal(0))
        points.append({"day": day, "usd": float(total), "line": "spent"})
    return pd.DataFrame(points)


def burn_down_over_time(budget: dict[str, Any]) -> None:
    """Spend added up over the budget's period, the forecast to its end, the budget and its thresholds."""
    spent = burn_line(budget)
    if spent is None or spent.empty:
        return
    last = spent.iloc[-1]
    forecast = pd.DataFrame(
        [
            {"day": last["day"], "usd": last["usd"], "line": "forecast"},
            {
                "day": pd.Timestamp(budget["period_end"]),
                "usd": float(ui.decimal(budget["forecast_usd"])),
                "line": "forecast",
            },
        ]
    )
    amount = float(ui.decimal(budget["amount_usd"]))
    levels = pd.DataFrame(
        [{"usd": amount, "level": "budget"}]
        + [
            {"usd": amount * t / 100, "level": f"{t:g} %"}
            for t in budget.get("thresholds", {}).get("actual", [])
        ]
    )
    lines = (
        alt.Chart(pd.concat([spent, forecast]))
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "day:T",
                title="day (UTC)",
                scale=alt.Scale(domain=[budget["period_start"], budget["period_end"]]),
            ),
            y=alt.Y("usd:Q", title="spent in the period (USD)"),
            color=alt.Color(
                "line:N", scale=alt.Scale(domain=["spent", "forecast"], range=["#4c78a8", "#999999"])
            ),
            strokeDash=alt.StrokeDash(
                "line:N", scale=alt.Scale(domain=["spent", "forecast"], range=[[1, 0], [6, 4]])
            ),
            tooltip=["day:T", alt.Tooltip("usd:Q", format="$.4f"), "line:N"],
        )
    )
    rules = (
        alt.Chart(levels)
        .mark_rule(color="#e45756")
        .encode(y="usd:Q", tooltip=["level:N", alt.Tooltip("usd:Q", format="$.2f")])
    )
    labels = (
        alt.Chart(levels)
        .mark_text(align="left", dx=4, dy=-6, color="#e45756")
        .encode(y="usd:Q", text="level:N")
    )
    st.altair_chart(lines + rules + labels, width="stretch")
    st.caption(
        f"{plain(budget['department_id'])}, {plain(budget['period_label'])}: solid, spent so far; dashed, the"
        " forecast to the period's end; red, the budget and its alert thresholds (USD)."
    )


def movers(filters: ui.Filters) -> None:
    length = (filters.end - filters.start).days + 1
    before_end = filters.start - timedelta(days=1)
    before = {"from": (before_end - timedelta(days=length - 1)).isoformat(), "to": before_end.isoformat()}
    now_rows, then_rows = spend_rows("agent", filters), spend_rows("agent", filters, before)
    if now_rows is None or then_rows is None:
        return
    then = {r["agent"]: ui.decimal(r["cost_usd"]) for r in then_rows}
    now = {r["agent"]: ui.decimal(r["cost_usd"]) for r in now_rows}
    data = pd.DataFrame(
        [
            {
                "agent": agent,
                "previous_usd": then.get(agent, Decimal(0)),
                "current_usd": now.get(agent, Decimal(0)),
            }
            for agent in set(then) | set(now)
        ]
    )
    if data.empty:
        return
    data["change_usd"] = data["current_usd"] - data["previous_usd"]
    data = data.reindex(data["change_usd"].abs().sort_values(ascending=False).index)
    st.caption(f"Against the previous {length} days ({before['from']} … {before['to']}).")
    ui.paginated(data.head(10), "movers")


FOCUS_FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
_FOCUS_FILE = "focus_file"


def focus_download() -> None:
    cols = st.columns(2)
    month = cols[0].text_input("Month (YYYY-MM)", value=ui.today().strftime("%Y-%m"), key="focus_month")
    file_format = cols[1].selectbox("Format", list(FOCUS_FORMATS), key="focus_format")
    if st.button("Prepare FOCUS export", key="focus_prepare"):
        st.session_state.pop(_FOCUS_FILE, None)
        try:
            content = api.download("/api/v1/export/focus", month=month, format=file_format)
        except api.NotAvailable:
            st.info("The FOCUS export: not available yet on this server.")
        except api.ApiError as exc:
            st.error(f"Could not export: {plain(exc)}")
        else:
            # Kept in the session: the download button's own click reruns the page, and the
            # prepare button is no longer pressed then.
            st.session_state[_FOCUS_FILE] = (month, file_format, content)
    prepared = st.session_state.get(_FOCUS_FILE)
    if prepared and prepared[:2] == (month, file_format):
        st.download_button(
            f"Download FOCUS {file_format.upper()}",
            prepared[2],
            file_name=f"muster-focus-{month}.{file_format}",
            mime=FOCUS_FORMATS[file_format],
            key="focus_download",
        )


filters = ui.filters()
st.title("Spend")
headline(filters)
st.subheader("Breakdown")
breakdown(filters)
st.subheader("Over time")
over_time(filters)
st.subheader("Budget burn-down by department")
burn_down(filters)
st.subheader("Top movers by agent")
movers(filters)
st.subheader("FOCUS export")
focus_download()
