"""Inventory (platform): every observed identity with its registration status, unregistered first;
sprawl over time; register an unregistered agent (prefilled from its telemetry) or link it to one."""

from __future__ import annotations

import hashlib
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import api, prefill, ui
from dashboards.text import plain

COLUMNS = [
    "observed_identity",
    "match_status",
    "agent_id",
    "department_id",
    "owner",
    "platform",
    "lifecycle",
    "environment",
    "first_seen",
    "last_seen",
    "calls",
    "cost_usd",
    "spend_pending",
]
LIFECYCLES = ["prototype", "pilot", "production", "deprecated", "retired"]
SELECTOR_LABELS = {
    "service": "by service (the whole application)",
    "agent_id": "by agent id",
    "agent_name": "by agent name",
}


def identities(filters: ui.Filters) -> list[dict[str, Any]] | None:
    rows = api.load("/api/v1/inventory", "the inventory", **filters.days())
    if rows is None:
        return None
    return [
        r
        for r in rows
        if filters.department in (None, r["department_id"])
        and filters.agent in (None, r["agent_id"])
        and filters.environment in (None, r["environment"])
    ]


def sprawl(filters: ui.Filters) -> None:
    rows = api.load("/api/v1/inventory/sprawl", "sprawl", **filters.days())
    if not rows:
        return
    data = pd.DataFrame(rows).melt(
        id_vars="week",
        value_vars=["registered", "unregistered", "ambiguous"],
        var_name="status",
        value_name="identities",
    )
    chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("week:O", title="week (from Monday)"),
            y=alt.Y("identities:Q", title="identities observed"),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(
                    domain=["registered", "unregistered", "ambiguous"],
                    range=["#4c78a8", "#e45756", "#f58518"],
                ),
            ),
            tooltip=["week:O", "status:N", "identities:Q"],
        )
    )
    st.altair_chart(chart, width="stretch")


def register_form(identity: str, departments: list[str]) -> None:
    kinds = prefill.selector_kinds(identity)
    if not kinds:
        st.info("This identity carries no key a registration can match (no service, agent id or name).")
        return
    parts = prefill.parse_identity(identity)
    key = _key(identity)  # widgets per identity, so choosing another one prefills afresh
    with st.form(f"register_{key}"):
        agent_id = st.text_input("Agent id", value=prefill.suggested_id(identity), key=f"reg_id_{key}")
        name = st.text_input(
            "Name", value=parts.get("agent.name") or prefill.suggested_id(identity), key=f"reg_name_{key}"
        )
        owner = st.text_input("Owner (accountable person)", key=f"reg_owner_{key}")
        department = st.selectbox("Department", departments, key=f"reg_department_{key}")
        lifecycle = st.selectbox(
            "Lifecycle",
            LIFECYCLES,
            index=LIFECYCLES.index(prefill.default_lifecycle(identity)),
            key=f"reg_lifecycle_{key}",
        )
        platform = st.text_input("Platform (optional)", key=f"reg_platform_{key}")
        by = st.selectbox("Match", kinds, format_func=SELECTOR_LABELS.get, key=f"reg_by_{key}")
        submitted = st.form_submit_button("Register agent")
    if submitted:
        document = prefill.agent_document(
            identity,
            agent_id=agent_id.strip(),
            name=name.strip(),
            owner=owner.strip(),
            department=department or "",
            lifecycle=lifecycle,
            platform=platform.strip() or None,
            by=by,
        )
        _save(document, f"Registered {agent_id.strip()}")


def link_form(identity: str, agents: list[str]) -> None:
    kinds = prefill.selector_kinds(identity)
    if not agents or not kinds:
        st.info("No registered agent to link to, or nothing in this identity to match on.")
        return
    with st.form(f"link_{_key(identity)}"):
        agent_id = st.selectbox("Existing agent", agents, key="link_agent")
        by = st.selectbox("Match", kinds, format_func=SELECTOR_LABELS.get, key="link_by")
        submitted = st.form_submit_button("Link to this agent")
    if submitted:
        try:
            document = api.get(f"/api/v1/agents/{agent_id}")
        except api.ApiError as exc:
            st.error(f"Could not read the agent: {plain(exc)}")
            return
        _save(prefill.linked(document, identity, by=by), f"Linked to {agent_id}")


def _save(document: dict[str, Any], done: str) -> None:
    """PUT the agent and ask for a cost job run without waiting for it.

    The inventory matches identities against the registry as it is now, so the agent shows as
    registered at once; its spend moves to it when the run has re-attributed history (a full run:
    minutes over a large warehouse), which the page does not wait for.
    """
    agent_id = document["metadata"]["id"]
    try:
        with st.spinner("Saving the agent…"):
            api.send("PUT", f"/api/v1/agents/{agent_id}", json=document)
    except api.ApiError as exc:
        st.error(f"Not saved: {plain(exc)}")
        return
    try:
        api.send("POST", "/api/v1/jobs/run", params={"wait": "false"})
        later = "its spend moves to it with the cost job run now under way"
    except api.ApiError:  # saved all the same: the scheduler's next run re-attributes it
        later = "its spend moves to it with the next cost job run"
    st.session_state["inventory_done"] = f"{done}: {later}."
    # a new widget: the browser would otherwise keep showing the identity just registered
    st.session_state["inv_version"] = st.session_state.get("inv_version", 0) + 1
    st.rerun()


def _key(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def actions(rows: list[dict[str, Any]]) -> None:
    unregistered = [r["observed_identity"] for r in rows if r["match_status"] != "registered"]
    if not unregistered:
        st.caption("Every observed identity is registered.")
        return
    version = st.session_state.get("inv_version", 0)
    identity = st.selectbox("Unregistered identity", unregistered, key=f"inv_identity_{version}")
    departments = [d["metadata"]["id"] for d in api.load("/api/v1/departments", "departments") or []]
    agents = [a["metadata"]["id"] for a in api.load("/api/v1/agents", "agents") or []]
    register, link = st.tabs(["Register as a new agent", "Link to an existing agent"])
    with register:
        register_form(identity, departments)
    with link:
        link_form(identity, agents)


filters = ui.filters()
st.title("Inventory")
if done := st.session_state.pop("inventory_done", None):
    st.success(plain(done))
rows = identities(filters)
if rows is not None:
    unregistered = sum(1 for r in rows if r["match_status"] == "unregistered")
    cols = st.columns(3)
    cols[0].metric("Observed identities", len(rows))
    cols[1].metric("Unregistered identities", unregistered)
    cols[2].metric("Ambiguous identities", sum(1 for r in rows if r["match_status"] == "ambiguous"))
    st.subheader("Unregistered")
    ui.paginated(
        ui.frame([r for r in rows if r["match_status"] != "registered"], COLUMNS), "inv_unregistered"
    )
    st.subheader("Registered")
    if pending := sum(1 for r in rows if r.get("spend_pending")):
        st.caption(
            f"{pending} identities' spend is still attributed as before their registration changed; "
            "it moves with the next cost job run."
        )
    ui.paginated(ui.frame([r for r in rows if r["match_status"] == "registered"], COLUMNS), "inv_registered")
st.subheader("Sprawl")
sprawl(filters)
if rows is not None and api.may("write_registry"):
    st.subheader("Register or link")
    actions(rows)
