"""The dashboards' actions under AppTest against a real seeded server where findings and alerts exist.

Acknowledging and silencing on the Policy page, acknowledging, silencing and ending silences on the
Alerts page, the budget numbers on Overview and Spend, and the FOCUS download are each checked
against what the API answers afterwards; a finance token of one department sees and acts on its own
department's findings and alerts only.
"""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
import streamlit as st
import yaml
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from alerts.model import alert_url
from alerts.receivers.slack import _dashboard_link
from dashboards import APP
from dashboards.text import plain
from dashboards.ui import DEFAULT_DAYS, money
from tests.dashboards_seed import (
    admin_token,
    api,
    apply_registry,
    job_run_after,
    new_token,
    open_page,
    run_jobs,
    seeded_server,
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    server = seeded_server(tmp_path_factory.mktemp("dashboards-actions") / "data")
    try:
        ran = api(server, "POST", "/api/v1/findings/run")
        assert ran.status_code == 200, ran.text
        assert ran.json()["findings"] > 0
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture
def app_for(seeded, monkeypatch):
    monkeypatch.setenv("MUSTER_API_URL", seeded.api_url)

    def opened(page: str, token: str) -> AppTest:
        at = open_page(seeded, page, token)
        assert not at.error, [e.value for e in at.error]
        return at

    return opened


def findings(seeded, token: str, **params) -> list[dict]:
    answer = api(seeded, "GET", "/api/v1/findings", token, params={"limit": 1000, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["findings"]


def finding(seeded, fingerprint: str) -> dict:
    return api(seeded, "GET", f"/api/v1/findings/{fingerprint}").json()


def press(at: AppTest, label: str) -> AppTest:
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} among {[b.label for b in at.button]}"
    found[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r} among {[m.label for m in at.metric]}"
    return found[0]


def table_with(at: AppTest, column: str):
    found = [df.value for df in at.dataframe if column in df.value.columns]
    assert found, f"no table with {column!r}"
    return found[0]


def open_drift(seeded, department: str) -> dict:
    rows = findings(seeded, admin_token(seeded), status="open", rule="drift.tool_not_allowed")
    return next(f for f in rows if f["department_id"] == department)


def test_acknowledging_a_finding_on_the_policy_page_changes_its_status(app_for, seeded):
    target = open_drift(seeded, "customer-care")
    at = app_for("policy", admin_token(seeded))
    at.selectbox(key="pol_finding").set_value(target["fingerprint"]).run()
    at.text_input(key="pol_comment").input("asked the owner to declare the refund tool")
    press(at, "Acknowledge")
    assert not at.error, [e.value for e in at.error]
    after = finding(seeded, target["fingerprint"])
    assert after["status"] == "acknowledged"
    assert after["comment"] == "asked the owner to declare the refund tool"
    assert any("now acknowledged" in s.value for s in at.success)
    shown = table_with(at, "fingerprint")
    assert (
        dict(zip(shown["fingerprint"], shown["status"], strict=True))[target["fingerprint"]] == "acknowledged"
    )


def test_silencing_needs_a_reason_and_then_shows_the_finding_silenced(app_for, seeded):
    target = open_drift(seeded, "legal")
    at = app_for("policy", admin_token(seeded))
    at.selectbox(key="pol_finding").set_value(target["fingerprint"]).run()
    press(at, "Silence")
    assert any("needs a reason" in e.value for e in at.error)
    assert finding(seeded, target["fingerprint"])["status"] == "open"
    at.text_input(key="pol_comment").input("tool approved by legal ops, registry change pending")
    at.number_input(key="pol_hours").set_value(48.0)
    press(at, "Silence")
    assert not at.error, [e.value for e in at.error]
    after = finding(seeded, target["fingerprint"])
    assert after["status"] == "silenced"
    until = datetime.fromisoformat(after["silenced_until"].replace("Z", "+00:00"))
    hours = (until - datetime.now(UTC)).total_seconds() / 3600
    assert 47 < hours <= 48
    shown = table_with(at, "fingerprint")
    assert dict(zip(shown["fingerprint"], shown["status"], strict=True))[target["fingerprint"]] == "silenced"
    press(at, "Unsilence")
    assert finding(seeded, target["fingerprint"])["status"] == "open"


def test_the_alerts_page_lists_the_api_alerts_and_acknowledges_with_a_comment(app_for, seeded):
    token = admin_token(seeded)
    alerts = api(seeded, "GET", "/api/v1/alerts", token).json()
    assert alerts
    at = app_for("alerts", token)
    assert sorted(table_with(at, "state")["id"]) == sorted(a["id"] for a in alerts)
    target = next(a for a in alerts if not a["acknowledged"])
    at.selectbox(key="alert_ack_id").set_value(target["id"]).run()
    press(at, "Acknowledge")
    assert any("say what is being done" in e.value for e in at.error)
    at.text_input(key="alert_ack_comment").input("paging the owner")
    press(at, "Acknowledge")
    assert not at.error, [e.value for e in at.error]
    after = {a["id"]: a for a in api(seeded, "GET", "/api/v1/alerts", token).json()}[target["id"]]
    assert after["acknowledged"] and after["ack_comment"] == "paging the owner"
    assert not [o for o in at.selectbox(key="alert_ack_id").options if o.endswith(target["id"][:8])]


def test_the_alerts_page_creates_lists_and_ends_a_silence(app_for, seeded):
    token = admin_token(seeded)
    at = app_for("alerts", token)
    at.text_area(key="silence_matchers").input("rule=sprawl.unregistered_agent\nseverity=~warn.*")
    at.text_input(key="silence_duration").input("3h")
    at.text_input(key="silence_comment").input("shadow agents triaged in the weekly review")
    press(at, "Silence")
    assert not at.error, [e.value for e in at.error]
    made = [
        s
        for s in api(seeded, "GET", "/api/v1/silences", token).json()
        if s["comment"] == "shadow agents triaged in the weekly review"
    ]
    assert len(made) == 1 and made[0]["state"] == "active"
    assert made[0]["matchers_text"] == ["rule=sprawl.unregistered_agent", "severity=~warn.*"]
    assert made[0]["id"] in list(table_with(at, "matchers_text")["id"])
    muted = [
        a for a in api(seeded, "GET", "/api/v1/alerts", token).json() if made[0]["id"] in a["silenced_by"]
    ]
    assert muted and all(a["labels"]["rule"] == "sprawl.unregistered_agent" for a in muted)

    at.selectbox(key="silence_end_id").set_value(made[0]["id"]).run()
    press(at, "End silence")
    assert not at.error, [e.value for e in at.error]
    active = api(seeded, "GET", "/api/v1/silences", token).json()
    assert made[0]["id"] not in [s["id"] for s in active]
    ended = {
        s["id"]: s for s in api(seeded, "GET", "/api/v1/silences", token, params={"state": "all"}).json()
    }
    assert ended[made[0]["id"]]["ended_by"]


def test_a_bad_matcher_is_refused_on_the_page_and_nothing_is_made(app_for, seeded):
    token = admin_token(seeded)
    before = api(seeded, "GET", "/api/v1/silences", token).json()
    at = app_for("alerts", token)
    at.text_area(key="silence_matchers").input("no operator here")
    at.text_input(key="silence_comment").input("why")
    press(at, "Silence")
    assert any("is not a matcher" in e.value for e in at.error)
    at.text_area(key="silence_matchers").input("severity=~(unclosed")  # the server judges regexes
    press(at, "Silence")
    assert any("Not silenced" in e.value and "HTTP 422" in e.value for e in at.error), [
        e.value for e in at.error
    ]
    assert api(seeded, "GET", "/api/v1/silences", token).json() == before


def test_overview_and_spend_budget_numbers_equal_the_api(app_for, seeded):
    token = admin_token(seeded)
    budgets = api(seeded, "GET", "/api/v1/budgets/status", token).json()["budgets"]
    assert {b["budget_id"] for b in budgets} >= {"department:legal", "department:engineering"}
    forecast = api(seeded, "GET", "/api/v1/forecast", token, params={"by": "department"}).json()["rows"]

    at = app_for("overview", token)
    over = sum(1 for b in budgets if b["status"] == "over")
    warning = sum(1 for b in budgets if b["status"] == "warning")
    assert metric(at, "Budgets over / warning") == f"{over} / {warning}"
    assert metric(at, "Forecast for the month (USD)") == money(
        sum(Decimal(r["forecast_total"]) for r in forecast)
    )
    shown = table_with(at, "budget_id")
    assert {b: Decimal(str(a)) for b, a in zip(shown["budget_id"], shown["actual"], strict=True)} == {
        b["budget_id"]: Decimal(b["actual"]) for b in budgets
    }

    at = app_for("spend", token)
    burn = table_with(at, "budget_id")
    departments = {b["budget_id"]: b for b in budgets if b["source"] == "department"}
    assert sorted(burn["budget_id"]) == sorted(departments)
    for row in burn.to_dict("records"):
        expected = departments[row["budget_id"]]
        for column in ("actual", "forecast", "amount"):
            assert row[column] == float(Decimal(expected[column])), (row["budget_id"], column)
        assert row["status"] == expected["status"]


@pytest.fixture
def stored(monkeypatch) -> list[tuple[bytes | str, str, str | None]]:
    """Every file a page hands Streamlit (downloads): (data, MIME type, file name), in order."""
    files: list[tuple[bytes | str, str, str | None]] = []
    keep = MemoryMediaFileStorage.load_and_get_id

    def recording(self, path_or_data, mimetype, kind, filename=None):
        files.append((path_or_data, mimetype, filename))
        return keep(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", recording)
    return files


def test_the_spend_csv_holds_the_apis_figures_for_the_pages_range(app_for, seeded, stored):
    token = admin_token(seeded)
    at = app_for("spend", token)
    at.selectbox(key="spend_by").set_value("model").run()
    [data] = [data for data, _, name in stored if name == "spend-by-model.csv"]
    text = data.decode() if isinstance(data, bytes) else data
    downloaded = {row["model"]: Decimal(row["cost_usd"]) for row in csv.DictReader(io.StringIO(text))}
    end = datetime.now(UTC).date()
    days = {"from": (end - timedelta(days=DEFAULT_DAYS - 1)).isoformat(), "to": end.isoformat()}
    answer = api(seeded, "GET", "/api/v1/spend", token, params={"by": "model", **days}).json()
    assert downloaded == {row["model"] or "(none)": Decimal(row["cost_usd"]) for row in answer}
    assert len(downloaded) > 1


def test_the_focus_download_yields_the_api_bytes(app_for, seeded, stored):
    token = admin_token(seeded)
    month = datetime.now(UTC).strftime("%Y-%m")
    at = app_for("spend", token)
    for file_format, mime in (("csv", "text/csv"), ("parquet", "application/vnd.apache.parquet")):
        expected = api(
            seeded, "GET", "/api/v1/export/focus", token, params={"month": month, "format": file_format}
        )
        assert expected.status_code == 200 and int(expected.headers["X-Muster-Rows"]) > 0
        at.selectbox(key="focus_format").set_value(file_format).run()
        stored.clear()
        press(at, "Prepare FOCUS export")
        assert not at.error, [e.value for e in at.error]
        files = [(data, kind) for data, kind, name in stored if name == f"muster-focus-{month}.{file_format}"]
        assert files == [(expected.content, mime)], file_format
        # the download's own click runs the page again: the button must still be there
        stored.clear()
        at.run()
        kept = [data for data, _, name in stored if name and name.startswith("muster-focus-")]
        assert kept == [expected.content], file_format


def test_a_finance_token_sees_and_acts_on_its_own_department_only(app_for, seeded):
    token = new_token(seeded, "finance", department_id="legal")
    everything = findings(seeded, admin_token(seeded), status="all")
    legal = {f["fingerprint"] for f in everything if f["department_id"] == "legal"}
    others = {f["fingerprint"] for f in everything} - legal
    assert legal and others

    at = app_for("policy", token)
    assert {o.rsplit(" · ", 1)[1] for o in at.selectbox(key="pol_finding").options} == {f[:8] for f in legal}
    assert set(table_with(at, "fingerprint")["fingerprint"]) == legal
    assert int(metric(at, "Findings")) == len(findings(seeded, token))

    theirs = api(
        seeded,
        "POST",
        "/api/v1/silences",
        json={"matchers": [{"name": "department", "value": "engineering"}], "duration": "1h", "comment": "x"},
    )
    assert theirs.status_code == 201, theirs.text
    at = app_for("alerts", token)
    listed = set(table_with(at, "state")["id"]) if [d for d in at.dataframe if "state" in d.value] else set()
    assert listed <= legal and not listed & others
    assert {o.rsplit(" · ", 1)[1] for o in at.selectbox(key="alert_ack_id").options} <= {f[:8] for f in legal}
    # A silence made on the page by this token is confined to its department by the server.
    at.text_area(key="silence_matchers").input("category=drift")
    at.text_input(key="silence_comment").input("legal reviews drift on Fridays")
    press(at, "Silence")
    assert not at.error, [e.value for e in at.error]
    made = next(
        s
        for s in api(seeded, "GET", "/api/v1/silences").json()
        if s["comment"] == "legal reviews drift on Fridays"
    )
    assert "department=legal" in made["matchers_text"]
    muted = [a for a in api(seeded, "GET", "/api/v1/alerts").json() if made["id"] in a["silenced_by"]]
    assert muted and all(a["labels"].get("department") == "legal" for a in muted)
    # The admin's silences are not this token's to see or end.
    options = {o.split(":", 1)[0] for o in at.selectbox(key="silence_end_id").options}
    assert made["id"] in options and theirs.json()["id"] not in options
    assert theirs.json()["id"] not in str(table_with(at, "matchers_text").to_dict("list"))


def opened_link(seeded, monkeypatch, link: str, token: str) -> AppTest:
    """The app as a browser opens `link` (an alert's): a new session, so signed in first."""
    monkeypatch.setenv("MUSTER_API_URL", seeded.api_url)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(dict(parse_qsl(urlsplit(link).query)))
    at.run()
    at.text_input(key="token_input").input(token)
    press(at, "Sign in")  # the link's path is the root: the app itself must take it to its page
    return at


def test_an_alert_link_opens_its_finding_on_the_policy_page(seeded, monkeypatch):
    token = admin_token(seeded)
    alert = next(a for a in api(seeded, "GET", "/api/v1/alerts", token).json() if not a["acknowledged"])
    at = opened_link(seeded, monkeypatch, alert_url("http://dashboards.example:8501", alert["id"]), token)
    assert [t.value for t in at.title] == ["Policy"]
    assert "Linked from an alert" in [h.value for h in at.subheader]
    linked = table_with(at, "fingerprint")
    assert list(linked["fingerprint"]) == [alert["id"]]
    at.text_input(key="pol_linked_comment").input("seen from the alert e-mail")
    press(at, "Acknowledge")
    after = finding(seeded, alert["id"])
    assert (after["status"], after["comment"]) == ("acknowledged", "seen from the alert e-mail")
    press(at, "Show all findings")
    assert "finding" not in at.query_params
    assert "Linked from an alert" not in [h.value for h in at.subheader]


def test_a_slack_buttons_link_opens_the_policy_page_on_its_rule(seeded, monkeypatch):
    token = admin_token(seeded)
    rule = next(f["rule"] for f in findings(seeded, token) if f["category"] == "drift")
    group = {"external_url": "http://dashboards.example:8501", "group_labels": {"rule": rule}}
    at = opened_link(seeded, monkeypatch, _dashboard_link(group), token)
    assert [t.value for t in at.title] == ["Policy"]
    assert at.text_input(key="pol_rule").value == rule
    shown = table_with(at, "fingerprint")
    assert set(shown["rule"]) == {rule}
    assert len(shown) == len(findings(seeded, token, rule=rule, status="active"))


def chart_frames(at: AppTest) -> list:
    """The data of every Altair chart on the page, one frame per layer's dataset."""
    charts = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    return [convert_arrow_bytes_to_pandas_df(d.data.data) for c in charts for d in c.proto.datasets]


def test_the_burn_down_adds_up_the_period_to_the_budget_actual_with_forecast_and_thresholds(app_for, seeded):
    token = admin_token(seeded)
    budgets = api(seeded, "GET", "/api/v1/budgets/status", token).json()["budgets"]
    budget = next(b for b in budgets if b["budget_id"] == "department:engineering")
    at = app_for("spend", token)
    at.selectbox(key="burn_department").set_value("engineering").run()
    assert not at.exception and not at.error
    frames = chart_frames(at)
    lines = next(f for f in frames if "line" in f and "spent" in set(f["line"]))
    spent = lines[lines["line"] == "spent"].sort_values("day")
    start, end = budget["period_start"], min(budget["period_end"], datetime.now(UTC).date().isoformat())
    assert (spent["day"].min().date().isoformat(), spent["day"].max().date().isoformat()) == (start, end)
    assert spent["usd"].is_monotonic_increasing
    daily = api(
        seeded,
        "GET",
        "/api/v1/spend",
        token,
        params={"by": "day", "department": "engineering", "from": start, "to": end},
    ).json()
    assert spent["usd"].iloc[-1] == pytest.approx(float(sum(Decimal(r["cost_usd"]) for r in daily)))
    assert spent["usd"].iloc[-1] == pytest.approx(float(Decimal(budget["actual_usd"])), abs=0.005)  # in cents
    forecast = lines[lines["line"] == "forecast"].sort_values("day")
    assert forecast["usd"].iloc[-1] == pytest.approx(float(Decimal(budget["forecast_usd"])))
    assert forecast["day"].iloc[-1].date().isoformat() == budget["period_end"]
    levels = next(f for f in frames if "level" in f)
    amount = float(Decimal(budget["amount_usd"]))
    expected = {"budget": amount} | {f"{t:g} %": amount * t / 100 for t in budget["thresholds"]["actual"]}
    assert dict(zip(levels["level"], levels["usd"], strict=True)) == pytest.approx(expected)
    assert len(expected) > 1


def test_the_registry_page_lists_the_api_validates_edits_and_exports(app_for, seeded, stored):
    token = admin_token(seeded)
    at = app_for("registry", token)
    for path in ("/api/v1/agents", "/api/v1/departments", "/api/v1/budgets", "/api/v1/policies"):
        ids = sorted(d["metadata"]["id"] for d in api(seeded, "GET", path, token).json())
        assert ids in [sorted(df.value["id"]) for df in at.dataframe if "id" in df.value], path
    before = api(seeded, "GET", "/api/v1/agents/support-copilot", token).json()
    at.selectbox(key="reg_edit_agent_id").set_value("support-copilot").run()
    edited = dict(before, spec=dict(before["spec"], lifecycle="immortal"))
    at.text_area(key="reg_edit_agent_support-copilot").input(yaml.safe_dump(edited))
    press(at, "Save agent")
    assert any("Not saved" in e.value and "lifecycle" in e.value for e in at.error), [
        e.value for e in at.error
    ]
    assert api(seeded, "GET", "/api/v1/agents/support-copilot", token).json()["spec"] == before["spec"]
    edited = dict(before, spec=dict(before["spec"], lifecycle="pilot"))
    at.text_area(key="reg_edit_agent_support-copilot").input(yaml.safe_dump(edited))
    press(at, "Save agent")
    assert not at.error, [e.value for e in at.error]
    assert api(seeded, "GET", "/api/v1/agents/support-copilot", token).json()["spec"]["lifecycle"] == "pilot"
    api(seeded, "PUT", "/api/v1/agents/support-copilot", token, json=before)  # as it was, for other tests

    expected = api(seeded, "GET", "/api/v1/registry/export", token).content
    stored.clear()
    press(at, "Prepare export")
    assert [data for data, _, name in stored if name == "registry.yaml"] == [expected]
    stored.clear()
    at.run()  # the download's own click runs the page again: the file must still be offered
    assert [data for data, _, name in stored if name == "registry.yaml"] == [expected]


def test_a_department_budget_and_policy_are_each_edited_on_the_registry_page(app_for, seeded):
    token = admin_token(seeded)
    at = app_for("registry", token)
    edits = {"department": ("financeContact", "edited@example.com"), "budget": ("description", "edited")}
    for kind, path in (("department", "departments"), ("budget", "budgets"), ("policy", "policies")):
        field, value = edits.get(kind, ("description", "edited"))
        [document, *_] = api(seeded, "GET", f"/api/v1/{path}", token).json()
        name = document["metadata"]["id"]
        at.selectbox(key=f"reg_edit_{kind}_id").set_value(name).run()
        wrong = dict(document, metadata=dict(document["metadata"], id=f"{name}-renamed"))
        at.text_area(key=f"reg_edit_{kind}_{name}").input(yaml.safe_dump(wrong))
        press(at, f"Save {kind}")
        assert any("Not saved" in e.value and "ids never change" in e.value for e in at.error), kind
        changed = dict(document, spec=dict(document["spec"], **{field: value}))
        at.text_area(key=f"reg_edit_{kind}_{name}").input(yaml.safe_dump(changed))
        press(at, f"Save {kind}")
        assert not at.error, [e.value for e in at.error]
        stored = next(
            d for d in api(seeded, "GET", f"/api/v1/{path}", token).json() if d["metadata"]["id"] == name
        )
        assert stored["spec"][field] == value
        assert api(seeded, "PUT", f"/api/v1/{path}/{name}", token, json=document).status_code == 200


def test_only_an_unscoped_token_edits_departments_budgets_and_policies(seeded):
    admin = admin_token(seeded)
    scoped = new_token(seeded, "platform", department_id="engineering")
    departments = api(seeded, "GET", "/api/v1/departments", admin).json()
    document = next(d for d in departments if d["metadata"]["id"] == "engineering")
    assert api(seeded, "PUT", "/api/v1/departments/engineering", scoped, json=document).status_code == 403
    unknown = dict(document, spec=dict(document["spec"], parent="no-such-department"))
    refused = api(seeded, "PUT", "/api/v1/departments/engineering", admin, json=unknown)
    assert refused.status_code == 422, refused.text
    assert api(seeded, "PUT", "/api/v1/departments/engineering", admin, json=document).status_code == 200


def test_linking_an_unregistered_identity_to_an_agent_moves_it_to_that_agent(app_for, seeded):
    token = admin_token(seeded)
    inventory = api(seeded, "GET", "/api/v1/inventory", token).json()
    target = next(
        r["observed_identity"]
        for r in inventory
        if r["match_status"] == "unregistered" and "service=" in r["observed_identity"]
    )
    before = api(seeded, "GET", "/api/v1/agents/contract-review", token).json()
    at = app_for("inventory", token)
    at.selectbox(key="inv_identity_0").set_value(target).run()
    at.selectbox(key="link_agent").set_value("contract-review").run()
    press(at, "Link to this agent")
    assert not at.error, [e.value for e in at.error]
    assert any(plain("Linked to contract-review") in s.value for s in at.success)
    after = {r["observed_identity"]: r for r in api(seeded, "GET", "/api/v1/inventory", token).json()}
    assert (after[target]["match_status"], after[target]["agent_id"]) == ("registered", "contract-review")
    assert target not in at.selectbox(key="inv_identity_1").options
    agent = api(seeded, "GET", "/api/v1/agents/contract-review", token).json()
    assert agent["spec"]["match"][: len(before["spec"]["match"])] == before["spec"]["match"]
    api(seeded, "PUT", "/api/v1/agents/contract-review", token, json=before)  # as it was, for other tests
    api(seeded, "POST", "/api/v1/jobs/run", token, params={"full": "true"})


def test_registering_on_the_inventory_page_answers_at_once_and_the_run_follows(app_for, seeded):
    token = admin_token(seeded)
    target = next(
        r
        for r in api(seeded, "GET", "/api/v1/inventory", token).json()
        if r["match_status"] == "unregistered" and "service=" in r["observed_identity"]
    )
    identity = target["observed_identity"]
    st.cache_data.clear()  # reads cached by pages of earlier tests, before their registry was restored
    try:
        # the scheduler's lock held: no cost job can run, so a page that waited for one would hang
        with seeded.server.jobs._lock:
            before = api(seeded, "GET", "/api/v1/jobs", token).json()
            at = app_for("inventory", token)
            at.selectbox(key="inv_identity_0").set_value(identity).run()
            key = hashlib.sha256(identity.encode()).hexdigest()[:12]
            at.text_input(key=f"reg_owner_{key}").input("page.owner@example.com")
            press(at, "Register agent")
            assert not at.error, [e.value for e in at.error]
            assert any("Registered" in s.value and "spend moves to it" in s.value for s in at.success)
            assert api(seeded, "GET", "/api/v1/jobs", token).json() == before  # no run has ended
            rows = {r["observed_identity"]: r for r in api(seeded, "GET", "/api/v1/inventory", token).json()}
            assert (rows[identity]["match_status"], rows[identity]["spend_pending"]) == ("registered", True)
            assert identity not in at.selectbox(key="inv_identity_1").options
        assert job_run_after(seeded, before)["last_error"] is None  # the run the page asked for
        rows = {r["observed_identity"]: r for r in api(seeded, "GET", "/api/v1/inventory", token).json()}
        assert rows[identity]["spend_pending"] is False
        assert rows[identity]["attributed_agent_id"] == rows[identity]["agent_id"]
    finally:  # the registry and spend as they were, for other tests
        apply_registry(seeded)
        run_jobs(seeded)


def test_overview_counts_open_findings_by_severity_as_the_api(app_for, seeded):
    token = admin_token(seeded)
    at = app_for("overview", token)
    for severity in ("critical", "warning", "info"):
        answer = api(
            seeded,
            "GET",
            "/api/v1/findings",
            token,
            params={"status": "open", "severity": severity, "limit": 1},
        ).json()
        assert int(metric(at, f"Open {severity}")) == answer["total"], severity
    assert sum(int(metric(at, f"Open {s}")) for s in ("critical", "warning", "info")) > 0


@pytest.mark.parametrize(
    ("role", "scope"),
    [("owner", {"agent_id": "support-copilot"}), ("viewer", {}), ("platform", {})],
)
def test_every_page_opens_for_every_role_without_an_error(app_for, seeded, role, scope):
    token = new_token(seeded, role, **scope)
    others = [a["metadata"]["id"] for a in api(seeded, "GET", "/api/v1/agents").json()]
    for page in ("overview", "spend", "inventory", "policy", "traces", "alerts", "registry", "signin"):
        at = app_for(page, token)
        if role == "owner":
            shown = "\n".join(str(df.value.to_dict("list")) for df in at.dataframe)
            assert not [a for a in others if a != "support-copilot" and a in shown], page


@pytest.mark.parametrize("page", ["overview", "spend", "inventory", "policy", "traces", "alerts", "registry"])
def test_an_unreachable_api_is_a_message_on_every_page(page, monkeypatch):
    monkeypatch.setenv("MUSTER_API_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["muster_token"] = "mst_anything"
    at.session_state["muster_who"] = {"role": "admin", "permissions": ["read", "triage", "write_registry"]}
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("cannot reach Muster" in e.value for e in at.error), page
