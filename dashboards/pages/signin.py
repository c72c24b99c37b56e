"""Sign in with an API token (kept in this browser session only, never in the URL), or sign out."""

from __future__ import annotations

import streamlit as st

from dashboards import api
from dashboards.text import plain

st.title("Muster")
if api.token():
    who = api.who()
    st.subheader("Signed in")
    st.text(f"token {who.get('name')} — role {who.get('role')}")
    st.text(f"scope: department {who.get('department_id') or 'all'}, agent {who.get('agent_id') or 'all'}")
    st.text("may: " + ", ".join(who.get("permissions", [])))
    if st.button("Sign out", key="sign_out"):
        api.sign_out()
        st.rerun()
else:
    st.write("Sign in with an API token (`muster tokens create --role finance --department …`).")
    with st.form("sign_in"):
        secret = st.text_input("API token", type="password", key="token_input")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if not secret.strip():
            st.error("Paste a token first.")
        else:
            try:
                api.sign_in(secret)
            except api.ApiError as exc:
                st.error(f"Sign-in refused: {plain(exc)}")
            else:
                st.rerun()
