"""Alerts: open alerts, silences and the delivery log, shown as the alerts API answers them."""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from dashboards import api, ui
from dashboards.text import plain

_DONE = "alerts_done"  # what the last action did, shown after the page runs again


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


# The written form `muster alerts silence --matcher` takes. Only split here: the dashboards talk to
# the API alone (they do not import the alerts package), and the server checks names and regexes.
_MATCHER = re.compile(r"^\s*([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def matcher(text: str) -> dict[str, Any]:
    """A matcher in the API's shape from `name=value`, `name!=value`, `name=~regex` or `name!~regex`."""
    found = _MATCHER.match(text)
    if not found:
        raise ValueError(f"{text!r} is not a matcher: write name=value, name!=value, name=~re or name!~re")
    name, op, value = found.groups()
    return {"name": name, "value": value, "regex": "~" in op, "negative": op.startswith("!")}


def _done(message: str) -> None:
    # Run the page again so the tables show the change; say what was done there.
    st.session_state[_DONE] = message
    st.rerun()


def acknowledge(alerts: list[dict[str, Any]]) -> None:
    ids = [str(a["id"]) for a in alerts if "id" in a and not a.get("acknowledged")]
    if not ids:
        return
    # Unique labels: Streamlit maps a chosen label back to the first option that has it.
    titles = {str(a["id"]): f"{a.get('title') or ''} · {str(a['id'])[:8]}" for a in alerts}
    with st.form("ack"):
        chosen = st.selectbox("Alert", ids, format_func=titles.get, key="alert_ack_id")
        comment = st.text_input("What is being done about it", key="alert_ack_comment")
        pressed = st.form_submit_button("Acknowledge")
    if not pressed:
        return
    if not comment.strip():
        st.error("Not acknowledged: say what is being done about it.")
        return
    try:
        api.send("POST", f"/api/v1/alerts/{chosen}/ack", json={"comment": comment.strip()})
    except api.ApiError as exc:
        st.error(f"Not acknowledged: {plain(exc)}")
    else:
        _done(f"Acknowledged {chosen}.")


def create_silence() -> None:
    with st.form("silence"):
        written = st.text_area(
            "Matchers, one per line (name=value, name!=value, name=~regex, name!~regex)",
            key="silence_matchers",
        )
        duration = st.text_input("For how long (e.g. 2h, 3d, 1h30m)", value="2h", key="silence_duration")
        comment = st.text_input("Why", key="silence_comment")
        pressed = st.form_submit_button("Silence")
    if not pressed:
        return
    try:
        matchers = [matcher(line) for line in written.splitlines() if line.strip()]
    except ValueError as exc:
        st.error(f"Not silenced: {plain(exc)}")
        return
    if not matchers or not comment.strip():
        st.error("Not silenced: give at least one matcher and say why.")
        return
    body = {"matchers": matchers, "duration": duration.strip(), "comment": comment.strip()}
    try:
        made = api.send("POST", "/api/v1/silences", json=body)
    except api.ApiError as exc:
        st.error(f"Not silenced: {plain(exc)}")
    else:
        _done(f"Silence {made['id']} made: {', '.join(made['matchers_text'])} until {made['ends_at']}.")


def end_silence(silences: list[dict[str, Any]]) -> None:
    ids = [str(s["id"]) for s in silences if s.get("state") in ("active", "pending")]
    if not ids:
        return
    texts = {str(s["id"]): f"{s['id']}: {', '.join(s.get('matchers_text', []))}" for s in silences}
    with st.form("end_silence"):
        chosen = st.selectbox("Silence", ids, format_func=texts.get, key="silence_end_id")
        pressed = st.form_submit_button("End silence")
    if not pressed:
        return
    try:
        api.send("DELETE", f"/api/v1/silences/{chosen}")
    except api.ApiError as exc:
        st.error(f"Not ended: {plain(exc)}")
    else:
        _done(f"Silence {chosen} ended.")


st.title("Alerts")
if _DONE in st.session_state:
    st.success(st.session_state.pop(_DONE))
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
    active = rows_of(silences, "silences")
    table(active, "silences")
    if api.may("triage"):
        end_silence(active)
        create_silence()
st.subheader("Delivery log")
deliveries = api.load("/api/v1/alerts/deliveries", "the delivery log")
if deliveries is not None:
    table(rows_of(deliveries, "deliveries"), "deliveries")
