"""Alerts: open alerts, silences and the delivery log, shown as the alerts API answers them."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards import api, ui
from dashboards.text import plain


def rows_of(answer: Any, key: str) -> list[dict[str, Any]]:
    """The list in an answer, whether it is the list itself or wrapped as {key: [...]}."""
    if isinstance(answer, dict):
        answer = answer.get(key, next((v for v in answer.values() if isinstance(v, list)), []))
    return [r if isinstance(r, dict) else {"value": r} for r in answer or []]


def table(rows: list[dict[str, Any]], key: str) -> None:
    if not rows:
        st.caption("None.")
        return
    data = ui.frame(rows).map(lambda v: v if isinstance(v, str | int | float | bool) or v is None else str(v))
    ui.paginated(data, key)


def acknowledge(alerts: list[dict[str, Any]]) -> None:
    ids = [str(a["id"]) for a in alerts if "id" in a]
    if not ids:
        return
    with st.form("ack"):
        chosen = st.selectbox("Alert", ids, key="alert_ack_id")
        if st.form_submit_button("Acknowledge"):
            try:
                api.send("POST", f"/api/v1/alerts/{chosen}/ack", json={})
            except api.ApiError as exc:
                st.error(f"Not acknowledged: {plain(exc)}")
            else:
                st.success("Acknowledged.")


st.title("Alerts")
state = st.selectbox("State", ["firing", "resolved", "all"], key="alert_state")
st.subheader("Alerts")
alerts = api.load("/api/v1/alerts", "alerts", state=state)
if alerts is not None:
    found = rows_of(alerts, "alerts")
    table(found, "alerts")
    if api.may("triage"):
        acknowledge(found)
st.subheader("Silences")
silences = api.load("/api/v1/silences", "silences")
if silences is not None:
    table(rows_of(silences, "silences"), "silences")
st.subheader("Delivery log")
deliveries = api.load("/api/v1/alerts/deliveries", "the delivery log")
if deliveries is not None:
    table(rows_of(deliveries, "deliveries"), "deliveries")
