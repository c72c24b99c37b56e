"""Registry: agents, departments, budgets and policies; edit an agent with the server's validation;
plan and apply YAML (whole registry) and export it."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
import yaml

from dashboards import api, ui
from dashboards.text import plain

_EXPORT = "reg_exported"
KINDS = {
    "Agents": "/api/v1/agents",
    "Departments": "/api/v1/departments",
    "Budgets": "/api/v1/budgets",
    "Policies": "/api/v1/policies",
}


def flattened(documents: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per document: its id, then each spec field (lists and objects as text)."""
    rows = []
    for document in documents:
        row: dict[str, Any] = {"id": document["metadata"]["id"]}
        for key, value in document.get("spec", {}).items():
            row[key] = value if isinstance(value, str | int | float | bool) else yaml.safe_dump(value).strip()
        rows.append(row)
    return pd.DataFrame(rows)


def edit_agent(agents: list[dict[str, Any]]) -> None:
    ids = [a["metadata"]["id"] for a in agents]
    if not ids:
        return
    chosen = st.selectbox("Agent to edit", ids, key="reg_edit_id")
    document = next(a for a in agents if a["metadata"]["id"] == chosen)
    with st.form("edit_agent"):
        text = st.text_area(
            "Agent document (YAML)",
            yaml.safe_dump(document, sort_keys=False),
            height=360,
            key=f"reg_edit_{chosen}",
        )
        submitted = st.form_submit_button("Save agent")
    if submitted:
        try:
            edited = yaml.safe_load(text)
            if not isinstance(edited, dict):
                raise ValueError("the document must be a mapping")
            api.send("PUT", f"/api/v1/agents/{chosen}", json=edited)
        except (yaml.YAMLError, ValueError) as exc:
            st.error(f"Not valid YAML: {plain(exc)}")
        except api.ApiError as exc:
            st.error(f"Not saved: {plain(exc)}")
        else:
            st.success(f"Saved {plain(chosen)}.")


def import_export() -> None:
    st.subheader("YAML import and export (whole registry)")
    uploaded = st.file_uploader("Registry YAML", type=["yaml", "yml"], key="reg_upload")
    text = st.text_area("…or paste YAML documents", key="reg_paste", height=200)
    files = (
        {uploaded.name: uploaded.getvalue().decode()}
        if uploaded
        else ({"pasted.yaml": text} if text.strip() else {})
    )
    cols = st.columns(3)
    if cols[0].button("Plan", key="reg_plan", disabled=not files):
        _show("POST", "/api/v1/registry/plan", files, "Plan")
    if cols[1].button("Apply", key="reg_apply", disabled=not files):
        _show("POST", "/api/v1/registry/apply", files, "Applied")
    if cols[2].button("Prepare export", key="reg_export"):
        st.session_state.pop(_EXPORT, None)
        try:
            st.session_state[_EXPORT] = api.get("/api/v1/registry/export")
        except api.ApiError as exc:
            st.error(f"Could not export: {plain(exc)}")
    if _EXPORT in st.session_state:
        # Kept in the session: the download's own click runs the page again, without "Prepare".
        st.download_button(
            "Download registry.yaml",
            st.session_state[_EXPORT],
            file_name="registry.yaml",
            mime="application/yaml",
            key="reg_download",
        )


def _show(method: str, path: str, files: dict[str, str], what: str) -> None:
    try:
        answer = api.send(method, path, json=files)
    except api.ApiError as exc:
        st.error(f"{what} refused: {plain(exc)}")
    else:
        st.caption(what)
        st.json(answer)


st.title("Registry")
tabs = st.tabs(list(KINDS))
for tab, (kind, path) in zip(tabs, KINDS.items(), strict=True):
    with tab:
        documents = api.load(path, kind.lower())
        if documents is None:
            continue
        ui.paginated(flattened(documents), f"reg_{kind}")
        if kind == "Agents" and api.may("write_registry"):
            edit_agent(documents)
who = api.who()
if api.may("write_registry") and not who.get("department_id") and not who.get("agent_id"):
    import_export()
