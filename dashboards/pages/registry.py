"""Registry: agents, departments, budgets and policies; edit any one document with the server's
validation (departments, budgets and policies with an unscoped token); plan and apply YAML (whole
registry) and export it."""

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
SINGULAR = {"Agents": "Agent", "Departments": "Department", "Budgets": "Budget", "Policies": "Policy"}


def flattened(documents: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per document: its id, then each spec field (lists and objects as text)."""
    rows = []
    for document in documents:
        row: dict[str, Any] = {"id": document["metadata"]["id"]}
        for key, value in document.get("spec", {}).items():
            row[key] = value if isinstance(value, str | int | float | bool) else yaml.safe_dump(value).strip()
        rows.append(row)
    return pd.DataFrame(rows)


def edit_document(kind: str, path: str, documents: list[dict[str, Any]]) -> None:
    """Edit one document of `kind` (e.g. "Agent") as YAML; the server validates it with the registry."""
    ids = [d["metadata"]["id"] for d in documents]
    if not ids:
        return
    key = f"reg_edit_{kind.lower()}"
    chosen = st.selectbox(f"{kind} to edit", ids, key=f"{key}_id")
    document = next(d for d in documents if d["metadata"]["id"] == chosen)
    with st.form(f"edit_{kind.lower()}"):
        text = st.text_area(
            f"{kind} document (YAML)",
            yaml.safe_dump(document, sort_keys=False),
            height=360,
            key=f"{key}_{chosen}",
        )
        submitted = st.form_submit_button(f"Save {kind.lower()}")
    if submitted:
        try:
            edited = yaml.safe_load(text)
            if not isinstance(edited, dict):
                raise ValueError("the document must be a mapping")
            api.send("PUT", f"{path}/{chosen}", json=edited)
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
who = api.who()
unscoped = api.may("write_registry") and not who.get("department_id") and not who.get("agent_id")
tabs = st.tabs(list(KINDS))
for tab, (kinds, path) in zip(tabs, KINDS.items(), strict=True):
    with tab:
        documents = api.load(path, kinds.lower())
        if documents is None:
            continue
        ui.paginated(flattened(documents), f"reg_{kinds}")
        # a scoped token edits its department's agents; the rest changes what every department sees
        if unscoped or (kinds == "Agents" and api.may("write_registry")):
            edit_document(SINGULAR[kinds], path, documents)
if unscoped:
    import_export()
