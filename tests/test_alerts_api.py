"""Alerts through the API and the CLI of a running server: list, ack, silence, unsilence, deliveries,
test-receiver; roles and department scope; configuration errors stop start-up with a clear message."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from typer.testing import CliRunner

from alerts import AlertsConfigError, load_alerts_config
from muster.cli import app
from tests.alerts_support import Sink, check_webhook_v4, insert_finding, resolve_finding
from tests.conftest import start_server

runner = CliRunner()

CONFIG = {
    "route": {
        "receiver": "oncall",
        "group_by": ["department"],
        "group_wait": "0s",
        "group_interval": "1m",
        "repeat_interval": "4h",
    },
    "receivers": [{"name": "oncall", "type": "webhook", "url": "env:TEST_ONCALL_URL"}],
}


@pytest.fixture
def sink(monkeypatch):
    found = Sink().start()
    monkeypatch.setenv("TEST_ONCALL_URL", found.url)
    yield found
    found.stop()


@pytest.fixture
def served(tmp_path, sink):
    running = start_server(tmp_path / "data", decode_workers=0, alerts=CONFIG, alerts_interval_seconds=0)
    with running.server.warehouse.cursor() as cur:
        insert_finding(cur, "aaaaaaaa01", department="claims", agent="claims-triage", severity="critical")
        insert_finding(cur, "bbbbbbbb02", department="marketing")
    yield running
    running.stop()


def headers(running, token: str | None = None) -> dict:
    token = token or (running.server.settings.data_dir / "admin.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def new_token(running, role: str, **scope) -> str:
    response = httpx.post(
        running.api_url + "/api/v1/tokens", json={"role": role} | scope, headers=headers(running)
    )
    assert response.status_code == 201, response.text
    return response.json()["secret"]


def cli(running, *args: str):
    return runner.invoke(app, list(args), env={"MUSTER_DATA_DIR": str(running.server.settings.data_dir)})


def test_cli_lists_acks_and_shows_deliveries(served, sink):
    served.server.alerts.tick()
    assert len(sink.received) == 2
    for message in sink.received:
        check_webhook_v4(message)
    listed = cli(served, "alerts", "list", "--json")
    assert listed.exit_code == 0, listed.output
    alerts = {a["id"]: a for a in json.loads(listed.output)}
    assert set(alerts) == {"aaaaaaaa01", "bbbbbbbb02"}
    assert alerts["aaaaaaaa01"]["labels"]["department"] == "claims"
    assert [(d["receiver"], d["status"]) for d in alerts["aaaaaaaa01"]["deliveries"]] == [
        ("oncall", "delivered")
    ]

    acked = cli(served, "alerts", "ack", "aaaaaaaa", "--comment", "rolling back the model change")
    assert acked.exit_code == 0, acked.output
    assert "acknowledged aaaaaaaa01" in acked.output
    listed = json.loads(cli(served, "alerts", "list", "--json").output)
    claims = next(a for a in listed if a["id"] == "aaaaaaaa01")
    assert claims["acknowledged"] is True and claims["ack_comment"] == "rolling back the model change"
    table = cli(served, "alerts", "list")
    assert table.exit_code == 0 and "claims" in table.output

    deliveries = cli(served, "alerts", "deliveries", "--status", "delivered", "--json")
    assert [d["status"] for d in json.loads(deliveries.output)] == ["delivered", "delivered"]
    assert cli(served, "alerts", "ack", "nope-nope", "--comment", "x").exit_code == 1

    with served.server.warehouse.cursor() as cur:
        resolve_finding(cur, "bbbbbbbb02", served.server.alerts._clock())
    served.server.alerts.tick(served.server.alerts._clock() + timedelta(minutes=2))
    assert sink.received[-1]["status"] == "resolved"
    resolved = json.loads(cli(served, "alerts", "list", "--state", "resolved", "--json").output)
    assert [a["id"] for a in resolved] == ["bbbbbbbb02"]


def test_cli_silences_and_unsilences(served, sink):
    made = cli(
        served,
        "alerts",
        "silence",
        "--matcher",
        "department=claims",
        "--matcher",
        "severity=~critical|warning",
        "--duration",
        "2h",
        "--comment",
        "maintenance window",
        "--json",
    )
    assert made.exit_code == 0, made.output
    silence = json.loads(made.output)
    assert silence["matchers_text"] == ["department=claims", "severity=~critical|warning"]
    assert silence["state"] == "active"
    served.server.alerts.tick()
    assert [m["groupLabels"] for m in sink.received] == [{"department": "marketing"}]
    listed = json.loads(cli(served, "alerts", "list", "--json").output)
    assert next(a for a in listed if a["id"] == "aaaaaaaa01")["silenced_by"] == [silence["id"]]

    assert [s["id"] for s in json.loads(cli(served, "alerts", "silences", "--json").output)] == [
        silence["id"]
    ]
    ended = cli(served, "alerts", "unsilence", silence["id"])
    assert ended.exit_code == 0, ended.output
    assert json.loads(cli(served, "alerts", "silences", "--json").output) == []
    every = json.loads(cli(served, "alerts", "silences", "--all", "--json").output)
    assert every[0]["state"] == "expired" and every[0]["ended_by"]
    served.server.alerts.tick()
    assert [m["groupLabels"] for m in sink.received][-1] == {"department": "claims"}

    start = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    later = cli(
        served,
        "alerts",
        "silence",
        "--matcher",
        "department=marketing",
        "--start",
        start.strftime("%Y-%m-%dT%H:%M"),
        "--duration",
        "2h",
        "--comment",
        "planned migration",
        "--json",
    )
    assert later.exit_code == 0, later.output
    planned = json.loads(later.output)
    assert (planned["state"], planned["starts_at"], planned["ends_at"]) == (
        "pending",
        start.isoformat(),
        (start + timedelta(hours=2)).isoformat(),
    )
    listed = json.loads(cli(served, "alerts", "list", "--json").output)
    assert next(a for a in listed if a["id"] == "bbbbbbbb02")["silenced_by"] == []  # not yet
    bad_start = cli(
        served,
        "alerts",
        "silence",
        "--matcher",
        "a=b",
        "--start",
        "soon",
        "--duration",
        "1h",
        "--comment",
        "x",
    )
    assert bad_start.exit_code == 2 and "--start 'soon' is not a time" in bad_start.stderr

    bad = cli(served, "alerts", "silence", "--matcher", "department", "--duration", "1h", "--comment", "x")
    assert bad.exit_code == 2 and "is not a matcher" in bad.output
    neither = cli(served, "alerts", "silence", "--matcher", "a=b", "--comment", "x")
    assert neither.exit_code == 2


def test_test_receiver_reports_success_and_failure(served, sink):
    ok = cli(served, "alerts", "test-receiver", "oncall", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True
    check_webhook_v4(sink.received[-1])
    assert sink.received[-1]["alerts"][0]["labels"]["alertname"] == "MusterTest"
    sink.status = 500
    failed = cli(served, "alerts", "test-receiver", "oncall")
    assert failed.exit_code == 1 and "HTTP 500" in failed.stderr and "HTTP 500" not in failed.stdout
    assert sink.url not in failed.output and "s3cr3t" not in failed.output
    assert cli(served, "alerts", "test-receiver", "nobody").exit_code == 1


def test_department_scope_and_roles(served, sink):
    claims_finance = headers(served, new_token(served, "finance", department_id="claims"))
    viewer = headers(served, new_token(served, "viewer"))
    url = served.api_url + "/api/v1"
    seen = httpx.get(url + "/alerts", headers=claims_finance).json()
    assert [a["id"] for a in seen] == ["aaaaaaaa01"]
    assert (
        httpx.post(url + "/alerts/bbbbbbbb02/ack", json={"comment": "x"}, headers=claims_finance).status_code
        == 404
    )
    assert (
        httpx.post(url + "/alerts/aaaaaaaa01/ack", json={"comment": "x"}, headers=viewer).status_code == 403
    )
    assert (
        httpx.post(url + "/alerts/aaaaaaaa01/ack", json={"comment": "x"}, headers=claims_finance).status_code
        == 200
    )

    body = {
        "matchers": [{"name": "severity", "value": "critical", "regex": False}],
        "duration": "1h",
        "comment": "ok",
    }
    created = httpx.post(url + "/silences", json=body, headers=claims_finance)
    assert created.status_code == 201, created.text
    assert created.json()["matchers_text"] == ["severity=critical", "department=claims"]
    admin_silence = httpx.post(url + "/silences", json=body, headers=headers(served)).json()
    assert [s["id"] for s in httpx.get(url + "/silences", headers=claims_finance).json()] == [
        created.json()["id"]
    ]
    assert httpx.delete(url + f"/silences/{admin_silence['id']}", headers=claims_finance).status_code == 404
    assert httpx.post(url + "/silences", json=body, headers=viewer).status_code == 403
    assert httpx.post(url + "/receivers/oncall/test", headers=claims_finance).status_code == 403

    served.server.alerts.tick()  # claims' critical alert is silenced; marketing's is not
    assert [m["groupLabels"] for m in sink.received] == [{"department": "marketing"}]
    deliveries = httpx.get(url + "/alerts/deliveries", headers=claims_finance).json()
    assert deliveries == []


@pytest.mark.parametrize(
    "body, message",
    [
        ({"matchers": [], "duration": "1h", "comment": "x"}, "at least 1"),
        ({"matchers": [{"name": "rule", "value": "("}], "duration": "1h", "comment": "x"}, "not a matcher"),
        ({"matchers": [{"name": "rule", "value": "a"}], "comment": "x"}, "either an end time or a duration"),
        (
            {"matchers": [{"name": "rule", "value": "a"}], "duration": "soon", "comment": "x"},
            "not a duration",
        ),
        (
            {"matchers": [{"name": "rule", "value": ".*", "regex": True}], "duration": "1h", "comment": "x"},
            "matches everything",
        ),
        ({"matchers": [{"name": "rule", "value": "a"}], "duration": "99999w", "comment": "x"}, "at most"),
    ],
)
def test_bad_silences_are_refused_with_a_reason(served, body, message):
    if message == "not a matcher":
        body["matchers"][0]["regex"] = True
        message = "not a valid regular expression"
    if message == "matches everything":
        message = "does not match everything"
    response = httpx.post(served.api_url + "/api/v1/silences", json=body, headers=headers(served))
    assert response.status_code == 422
    assert message in response.text


def test_configuration_errors_name_the_field(tmp_path, monkeypatch):
    literal = {"receivers": [{"name": "s", "type": "slack", "url": "https://hooks.slack.com/services/T/B/x"}]}
    with pytest.raises(AlertsConfigError, match=r"receivers\.0\.slack\.url.*reference, not the secret"):
        load_alerts_config(literal, None, data_dir=tmp_path)
    unknown = {"route": {"receiver": "pager"}}
    with pytest.raises(AlertsConfigError, match="not defined: pager"):
        load_alerts_config(unknown, None, data_dir=tmp_path)
    missing = {"receivers": [{"name": "s", "type": "slack", "url": "env:NOT_SET_ANYWHERE"}]}
    with pytest.raises(AlertsConfigError, match="NOT_SET_ANYWHERE is not set"):
        load_alerts_config(missing, None, data_dir=tmp_path)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('slack = "https://hooks.slack.com/services/T/B/from-file"\n')
    from_file = {
        "secrets_file": str(secrets),
        "receivers": [{"name": "s", "type": "slack", "url": "secret:slack"}],
    }
    config, resolved = load_alerts_config(from_file, None, data_dir=tmp_path)
    assert resolved.get("secret:slack").endswith("from-file")
    assert "from-file" not in repr(resolved) and "from-file" not in repr(config)
    assert resolved.redact("posting to https://hooks.slack.com/services/T/B/from-file") == "posting to ***"


def test_alerts_file_in_yaml_and_a_bad_one_stops_serve(tmp_path):
    good = tmp_path / "alerts.yaml"
    good.write_text(
        "route:\n  receiver: team\n  routes:\n    - matchers: ['category=spend']\n      receiver: log\n"
        "receivers:\n  - name: team\n    type: logfile\n    path: team.log\n"
    )
    config, _ = load_alerts_config(None, good, data_dir=tmp_path)
    assert [r.name for r in config.receivers] == ["team", "log"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("route:\n  group_wait: soon\n")
    env = {"MUSTER_ALERTS_FILE": str(bad), "MUSTER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "muster", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "route.group_wait" in result.stderr and "not a duration" in result.stderr


def test_alerts_table_in_muster_toml(tmp_path, monkeypatch):
    from muster.settings import load_settings

    toml = tmp_path / "muster.toml"
    toml.write_text(
        '[alerts.route]\nreceiver = "oncall"\ngroup_wait = "10s"\n\n'
        '[[alerts.route.routes]]\nmatchers = ["severity=critical"]\nreceiver = "oncall"\ncontinue = true\n\n'
        '[[alerts.receivers]]\nname = "oncall"\ntype = "webhook"\nurl = "env:TEST_TOML_URL"\n'
    )
    monkeypatch.setenv("MUSTER_CONFIG", str(toml))
    monkeypatch.setenv("TEST_TOML_URL", "http://127.0.0.1:9/hook")
    settings = load_settings()
    config, secrets = load_alerts_config(settings.alerts, settings.alerts_file, data_dir=tmp_path)
    assert config.route.group_wait == timedelta(seconds=10)
    assert config.route.routes[0].continue_ is True
    assert secrets.get("env:TEST_TOML_URL") == "http://127.0.0.1:9/hook"
    with pytest.raises(AlertsConfigError, match="configured twice"):
        load_alerts_config(settings.alerts, tmp_path / "alerts.yaml", data_dir=tmp_path)
