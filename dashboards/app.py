"""The dashboards' entry script (`streamlit run dashboards/app.py`): sign-in, navigation, filters.

Until a token is signed in only the sign-in page exists; after it, every page is there and the
API decides what each token sees. The shared filters render here, before the page, so they keep
their values from page to page.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts this file's folder on sys.path, not the project: make `dashboards` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboards import api, ui

PAGES = Path(__file__).parent / "pages"
# Query parameters alerts link with: one finding (alerts.model.alert_url), or a notification's
# group labels (a Slack button: alerts.receivers.slack) of which these narrow the Policy page
LINKED = ("finding", "rule", "category", "severity")


def _page(name: str, title: str, icon: str, url_path: str | None = None, **kwargs: object) -> st.Page:
    return st.Page(PAGES / f"{name}.py", title=title, icon=icon, url_path=url_path or name, **kwargs)


def main() -> None:
    st.set_page_config(page_title="Muster", page_icon=":material/groups:", layout="wide")
    if not api.token():
        # Its own url path: once signed in, "login" is no page, so Streamlit opens the overview.
        login = _page("signin", "Sign in", ":material/login:", url_path="login", default=True)
        st.navigation([login], position="hidden").run()
        return
    policy = _page("policy", "Policy", ":material/policy:")
    pages = [
        _page("overview", "Overview", ":material/dashboard:", default=True),
        _page("spend", "Spend", ":material/payments:"),
        _page("inventory", "Inventory", ":material/inventory_2:"),
        policy,
        _page("traces", "Traces", ":material/timeline:"),
        _page("alerts", "Alerts", ":material/notifications:"),
        _page("registry", "Registry", ":material/list_alt:"),
        _page("signin", "Account", ":material/account_circle:", url_path="account"),
    ]
    current = st.navigation(pages)
    if any(st.query_params.get(name) for name in LINKED) and current.url_path != policy.url_path:
        # An alert's link (`/?finding=<fingerprint>`, `/?rule=…&department=…`) opens the Policy page.
        st.switch_page(policy, query_params=st.query_params.to_dict())
    who = api.who()
    st.sidebar.text(f"Signed in: {who.get('role', '?')}" + _scope(who))
    ui.filter_sidebar()
    current.run()


def _scope(who: dict) -> str:
    if who.get("agent_id"):
        return f" of agent {who['agent_id']}"
    if who.get("department_id"):
        return f" of {who['department_id']}"
    return ""


main()
