"""Policy: findings (drift, sprawl, spend, hygiene) by rule, agent and department with their
evidence (observed vs allowed); acknowledge, silence and unsilence for roles that may triage."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import api, ui
from dashboards.text import plain

STATUSES = ["active", "open", "acknowledged", "silenced", "resolved", "all"]
CATEGORIES = [ui.ALL, "drift", "sprawl", "spend", "hygiene"]
SEVERITIES = [ui.ALL, "critical", "warning", "info"]
_DONE = "pol_done"  # what the last triage action did, shown after the page runs again
LINKED = "finding"  # ?finding=<fingerprint>: the finding an alert links to (alerts.model.alert_url)
COLUMNS = [
    "severity",
    "rule",
    "category",
    "title",
    "agent_id",
    "department_id",
    "subject_kind",
    "subject_id",
    "status",
    "first_seen",
    "last_seen",
    "occurrences",
    "fingerprint",
]


def query(filters: ui.Filters) -> dict[str, Any]:
    cols = st.columns(4)
    # an alert's group labels in the URL preset the filters (the widgets' keys keep later choices)
    linked = st.query_params
    status = cols[0].selectbox("Status", STATUSES, key="pol_status")
    category = cols[1].selectbox(
        "Category", CATEGORIES, index=_index(CATEGORIES, linked.get("category")), key="pol_category"
    )
    severity = cols[2].selectbox(
        "Severity", SEVERITIES, index=_index(SEVERITIES, linked.get("severity")), key="pol_severity"
    )
    rule = cols[3].text_input("Rule", value=linked.get("rule", ""), key="pol_rule")
    return {
        "status": status,
        "category": None if category == ui.ALL else category,
        "severity": None if severity == ui.ALL else severity,
        "rule": rule.strip() or None,
        "department": filters.department,
        "agent": filters.agent,
    }


def _index(options: list[str], value: str | None) -> int:
    return options.index(value) if value in options else 0


def page_of_findings(params: dict[str, Any]) -> dict[str, Any] | None:
    page = st.session_state.get("pol_page", 1)
    return api.load(
        "/api/v1/findings", "findings", limit=ui.PAGE_SIZE, offset=(page - 1) * ui.PAGE_SIZE, **params
    )


def by_rule(findings: list[dict[str, Any]]) -> None:
    data = pd.DataFrame(findings).groupby(["rule", "severity"]).size().reset_index(name="findings")
    chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(x=alt.X("findings:Q"), y=alt.Y("rule:N", sort="-x"), color="severity:N", tooltip=list(data))
    )
    st.altair_chart(chart, width="stretch")


def evidence(finding: dict[str, Any]) -> None:
    st.text(finding.get("title", ""))
    labels = finding.get("evidence") or {}
    observed = {k: v for k, v in labels.items() if "observed" in k}
    allowed = {k: v for k, v in labels.items() if "allowed" in k}
    cols = st.columns(2)
    cols[0].caption("Observed")
    cols[0].json(observed or labels)
    cols[1].caption("Allowed")
    cols[1].json(allowed)


def triage(finding: dict[str, Any], key: str = "pol") -> None:
    fingerprint = finding["fingerprint"]
    with st.form(f"{key}_triage"):
        comment = st.text_input("Comment", key=f"{key}_comment")
        hours = st.number_input("Silence for (hours)", min_value=1.0, value=24.0, key=f"{key}_hours")
        cols = st.columns(3)
        acknowledge = cols[0].form_submit_button("Acknowledge")
        silence = cols[1].form_submit_button("Silence")
        unsilence = cols[2].form_submit_button("Unsilence")
    action = None
    if acknowledge:
        action = ("acknowledge", {"comment": comment.strip() or None})
    elif silence:
        if not comment.strip():
            st.error("Not silenced: say why in the comment (a silence needs a reason).")
            return
        action = ("silence", {"duration_hours": hours, "comment": comment.strip()})
    elif unsilence:
        action = ("unsilence", {})
    if action:
        try:
            done = api.send(
                "POST", f"/api/v1/findings/{quote(fingerprint, safe='')}/{action[0]}", json=action[1]
            )
        except api.ApiError as exc:
            st.error(f"Not done: {plain(exc)}")
        else:
            # Run the page again so the table shows the new status; say what was done there.
            st.session_state[_DONE] = f"Done: {action[0]}; the finding is now {done['status']}."
            st.rerun()


def linked_finding(fingerprint: str) -> None:
    """The finding an alert linked to, whatever its status or page in the list below."""
    st.subheader("Linked from an alert")
    found = api.load(f"/api/v1/findings/{quote(fingerprint, safe='')}", "the linked finding")
    if found is not None:
        st.dataframe(ui.frame([found], COLUMNS), hide_index=True, width="stretch")
        evidence(found)
        if api.may("triage"):
            triage(found, key="pol_linked")
    if st.button("Show all findings", key="pol_unlink"):
        del st.query_params[LINKED]
        st.rerun()


filters = ui.filters()
st.title("Policy")
if _DONE in st.session_state:
    st.success(st.session_state.pop(_DONE))
if linked := st.query_params.get(LINKED):
    linked_finding(linked)
    st.subheader("All findings")
answer = page_of_findings(query(filters))
if answer is not None:
    findings = answer.get("findings", [])
    total = int(answer.get("total", len(findings)))
    st.metric("Findings", total)
    pages = max(1, -(-total // ui.PAGE_SIZE))
    if pages > 1:
        st.number_input(f"Page (of {pages})", 1, pages, key="pol_page")
    if findings:
        by_rule(findings)
        st.dataframe(ui.frame(findings, COLUMNS), hide_index=True, width="stretch")
        chosen = st.selectbox(
            "Evidence of",
            [f["fingerprint"] for f in findings],
            # The label must be unique: Streamlit maps a chosen label back to the first option
            # with it, and one agent can have several findings of one rule (one per tool).
            format_func=lambda fp: next(
                f"{f['rule']} · {f['subject_id']} · {f.get('dimension') or ''} · {fp[:8]}"
                for f in findings
                if f["fingerprint"] == fp
            ),
            key="pol_finding",
        )
        finding = next(f for f in findings if f["fingerprint"] == chosen)
        evidence(finding)
        if api.may("triage"):
            triage(finding)
    else:
        st.caption("No findings match.")
