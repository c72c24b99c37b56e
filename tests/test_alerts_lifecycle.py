"""The alert lifecycle against real loopback HTTP servers standing in for Slack and an on-call webhook:
grouping, group_interval, repeat, resolve, silences, acknowledgements, fan-out, retries, no secrets in logs.

The dispatcher runs over a real DuckDB warehouse and is ticked with an explicit clock, so each test
walks through time without sleeping.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from alerts import Dispatcher, load_alerts_config, new_silence, parse_matcher
from tests.alerts_support import (
    T0,
    Sink,
    check_webhook_v4,
    insert_finding,
    minutes,
    reopen_finding,
    resolve_finding,
)
from warehouse import alert_store

CONFIG = {
    "route": {
        "receiver": "platform",
        "group_by": ["rule", "department"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
        "routes": [
            {"matchers": ["severity=critical"], "receiver": "oncall", "continue": True},
            {"matchers": ["category=~sprawl|drift"], "receiver": "platform"},
            {"matchers": ["category=spend"], "receiver": "log"},
        ],
    },
    "receivers": [
        {"name": "oncall", "type": "webhook", "url": "env:TEST_ONCALL_URL"},
        {"name": "platform", "type": "slack", "url": "env:TEST_SLACK_URL"},
    ],
    "delivery": {"initial_backoff": "10s", "max_backoff": "1m", "give_up_after": "1h"},
}


@pytest.fixture
def sinks(monkeypatch):
    slack, oncall = Sink().start(), Sink().start()
    monkeypatch.setenv("TEST_SLACK_URL", slack.url)
    monkeypatch.setenv("TEST_ONCALL_URL", oncall.url)
    yield slack, oncall
    slack.stop()
    oncall.stop()


@pytest.fixture
def dispatcher(warehouse, sinks, tmp_path):
    config, secrets = load_alerts_config(CONFIG, None, data_dir=tmp_path)
    found = Dispatcher(
        warehouse, config, secrets, interval=0, external_url="http://dash.example:8501", clock=lambda: T0
    )
    yield found
    found.shutdown()


def test_a_burst_of_40_unregistered_agents_is_one_slack_message(warehouse, dispatcher, sinks):
    slack, oncall = sinks
    for n in range(40):
        insert_finding(warehouse, f"fp{n:02d}", at=T0)
    assert dispatcher.tick(T0).recorded == []
    assert dispatcher.tick(T0 + timedelta(seconds=29)).recorded == []
    report = dispatcher.tick(T0 + timedelta(seconds=30))
    assert len(report.recorded) == 1
    assert [o.status for o in report.outcomes] == ["delivered"]
    assert len(slack.received) == 1 and oncall.received == []
    message = slack.received[0]
    assert message["text"].startswith(
        ":rotating_light: [FIRING:40] 40 unregistered agents appeared in marketing, $500.00 spent"
    )
    header, section, context, actions = message["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": "[FIRING:40] 40 unregistered agents appeared in marketing, $500.00 spent",
        },
    }
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].count("• Unregistered agent") == 10
    assert section["text"]["text"].endswith("…and 30 more")
    assert "severity: *warning*" in context["elements"][0]["text"]
    button = actions["elements"][0]
    assert button["type"] == "button" and button["text"]["type"] == "plain_text"
    assert button["url"] == "http://dash.example:8501/?department=marketing&rule=sprawl.unregistered_agent"
    assert all(len(b["text"]["text"]) <= 150 for b in message["blocks"] if b["type"] == "header")
    assert dispatcher.tick(T0 + minutes(3)).recorded == []  # nothing new: nothing sent


def test_group_interval_repeat_and_resolve_follow_alertmanager(warehouse, dispatcher, sinks):
    _, oncall = sinks
    drift = {"rule": "drift.model_not_allowed", "category": "drift", "severity": "critical"}
    insert_finding(warehouse, "d1", agent="claims-triage", at=T0, **drift)
    dispatcher.tick(T0)  # the group starts: group_wait
    dispatcher.tick(T0 + timedelta(seconds=30))
    assert [len(m["alerts"]) for m in oncall.received] == [1]

    insert_finding(warehouse, "d2", agent="claims-bot", at=T0 + minutes(1), **drift)
    dispatcher.tick(T0 + minutes(2))  # joins the group: waits for group_interval
    assert len(oncall.received) == 1
    dispatcher.tick(T0 + minutes(5.5))
    assert [len(m["alerts"]) for m in oncall.received] == [1, 2]

    dispatcher.tick(T0 + minutes(60))  # still firing, nothing new, repeat not due
    assert len(oncall.received) == 2
    dispatcher.tick(T0 + minutes(5.5) + timedelta(hours=4))  # repeat_interval
    assert len(oncall.received) == 3
    assert oncall.received[2]["alerts"] == oncall.received[1]["alerts"]

    resolve_finding(warehouse, "d1", T0 + timedelta(hours=5))
    dispatcher.tick(T0 + timedelta(hours=5, minutes=1))
    fourth = oncall.received[3]
    assert fourth["status"] == "firing"
    assert {a["fingerprint"]: a["status"] for a in fourth["alerts"]} == {"d1": "resolved", "d2": "firing"}

    resolve_finding(warehouse, "d2", T0 + timedelta(hours=5, minutes=2))
    dispatcher.tick(T0 + timedelta(hours=5, minutes=7))
    last = oncall.received[4]
    assert last["status"] == "resolved" and [a["fingerprint"] for a in last["alerts"]] == ["d2"]
    assert last["alerts"][0]["endsAt"].startswith("2026-03-02T14:02:00")
    dispatcher.tick(T0 + timedelta(hours=10))
    assert len(oncall.received) == 5
    for message in oncall.received:
        check_webhook_v4(message)
    assert oncall.received[0]["groupLabels"] == {"department": "marketing", "rule": "drift.model_not_allowed"}
    assert oncall.received[0]["receiver"] == "oncall"
    assert oncall.received[0]["commonAnnotations"]["summary"] == "Unregistered agent d1 appeared"
    assert oncall.received[0]["alerts"][0]["labels"]["agent"] == "claims-triage"
    assert oncall.received[0]["externalURL"] == "http://dash.example:8501"


def test_continue_fans_a_critical_sprawl_alert_out_to_both(warehouse, dispatcher, sinks):
    slack, oncall = sinks
    insert_finding(warehouse, "c1", severity="critical", at=T0)
    insert_finding(warehouse, "s1", rule="spend.budget_forecast", category="spend", at=T0)
    dispatcher.tick(T0)
    report = dispatcher.tick(T0 + minutes(1))
    assert len(report.recorded) == 3
    assert [m["blocks"][0]["text"]["text"] for m in slack.received] == [
        "[FIRING:1] Unregistered agent c1 appeared"  # one alert: its own summary
    ]
    assert [[a["fingerprint"] for a in m["alerts"]] for m in oncall.received] == [["c1"]]
    log_lines = (dispatcher.config.receiver("log").path).read_text().splitlines()  # default log receiver
    assert len(log_lines) == 1 and '"spend.budget_forecast"' in log_lines[0]


def test_a_silence_mutes_matching_alerts_until_it_ends(warehouse, dispatcher, sinks):
    slack, _ = sinks
    insert_finding(warehouse, "a1", department="marketing", at=T0)
    insert_finding(warehouse, "b1", department="claims", at=T0)
    silence = new_silence(
        [parse_matcher("department=marketing")],
        author="tok_test",
        comment="known rollout of new agents",
        now=T0,
        duration=timedelta(hours=2),
    )
    alert_store.insert_silence(
        warehouse,
        {
            "id": silence.id,
            "matchers": [m.model_dump() for m in silence.matchers],
            "starts_at": silence.starts_at,
            "ends_at": silence.ends_at,
            "created_by": silence.created_by,
            "comment": silence.comment,
            "created_at": silence.created_at,
        },
    )
    dispatcher.tick(T0)
    dispatcher.tick(T0 + minutes(1))
    assert [m["blocks"][0]["text"]["text"] for m in slack.received] == [
        "[FIRING:1] Unregistered agent b1 appeared"
    ]
    dispatcher.tick(T0 + minutes(60))
    assert len(slack.received) == 1
    dispatcher.tick(T0 + timedelta(hours=2))  # the silence is over: group_wait
    dispatcher.tick(T0 + timedelta(hours=2, minutes=1))
    assert [m["blocks"][0]["text"]["text"] for m in slack.received][1] == (
        "[FIRING:1] Unregistered agent a1 appeared"
    )


def test_finding_silenced_is_not_notified_acknowledged_is_not_repeated(warehouse, dispatcher, sinks):
    slack, _ = sinks
    insert_finding(warehouse, "q1", department="quiet", status="silenced", at=T0)
    insert_finding(warehouse, "k1", department="acked", status="acknowledged", at=T0)
    insert_finding(warehouse, "m1", department="manual", at=T0)
    dispatcher.tick(T0)
    dispatcher.tick(T0 + minutes(1))
    heads = sorted(m["blocks"][0]["text"]["text"] for m in slack.received)
    assert heads == [
        "[FIRING:1] Unregistered agent k1 appeared",
        "[FIRING:1] Unregistered agent m1 appeared",
    ]
    alert_store.acknowledge(warehouse, "m1", 1, by="tok_ops", comment="on it", now=T0 + minutes(2))
    dispatcher.tick(T0 + timedelta(hours=5))  # repeat due, but everything firing is acknowledged
    assert len(slack.received) == 2

    resolve_finding(warehouse, "m1", T0 + timedelta(hours=6))
    dispatcher.tick(T0 + timedelta(hours=6, minutes=1))  # told it fired: told it resolved
    assert slack.received[-1]["blocks"][0]["text"]["text"] == "[RESOLVED:1] Unregistered agent m1 appeared"
    reopen_finding(warehouse, "m1", T0 + timedelta(hours=7))  # a new episode: the ack was for the old one
    dispatcher.tick(T0 + timedelta(hours=7))
    dispatcher.tick(T0 + timedelta(hours=7, minutes=1))
    assert slack.received[-1]["blocks"][0]["text"]["text"] == "[FIRING:1] Unregistered agent m1 appeared"
    assert len(slack.received) == 4


def test_a_failing_receiver_is_retried_with_backoff_and_others_are_unaffected(
    warehouse, dispatcher, sinks, caplog
):
    caplog.set_level(logging.DEBUG)
    slack, oncall = sinks
    slack.status = 500
    insert_finding(warehouse, "x1", severity="critical", at=T0)
    dispatcher.tick(T0)
    now = T0 + minutes(1)
    report = dispatcher.tick(now)
    assert sorted((o.receiver, o.status) for o in report.outcomes) == [
        ("oncall", "delivered"),
        ("platform", "pending"),
    ]
    assert len(oncall.received) == 1
    pending = alert_store.list_notifications(warehouse, status="pending")
    assert [(n["attempts"], n["next_attempt_at"]) for n in pending] == [(1, now + timedelta(seconds=10))]
    assert pending[0]["last_error"] == "Slack receiver 'platform' answered HTTP 500: internal_error"

    assert dispatcher.tick(now + timedelta(seconds=5)).outcomes == []  # backing off
    assert [o.status for o in dispatcher.tick(now + timedelta(seconds=10)).outcomes] == ["pending"]
    slack.stop()  # now it refuses connections altogether
    third = dispatcher.tick(now + timedelta(seconds=30)).outcomes  # 10 s, then 20 s
    assert [o.attempts for o in third] == [3] and "cannot reach" in third[0].error
    assert alert_store.list_notifications(warehouse, status="pending")[0][
        "next_attempt_at"
    ] == now + timedelta(seconds=70)
    slack.status = 200
    slack.start()  # back on the same port
    assert dispatcher.tick(now + timedelta(seconds=69)).outcomes == []
    assert [o.status for o in dispatcher.tick(now + timedelta(seconds=70)).outcomes] == ["delivered"]
    assert len(slack.received) == 1 and len(oncall.received) == 1
    delivered = alert_store.list_notifications(warehouse, status="delivered")
    assert sorted(n["attempts"] for n in delivered) == [1, 4]
    assert dispatcher.tick(now + timedelta(hours=1)).outcomes == []  # sent once, never again
    for secret in (slack.url, oncall.url, "s3cr3t-webhook-token", "/hooks/T000/B000"):
        assert secret not in caplog.text
        assert all(secret not in (n["last_error"] or "") for n in delivered)
    assert "HTTP Request: POST" in caplog.text  # httpx did log its requests, redacted


def test_a_permanent_refusal_fails_at_once_and_retries_give_up(warehouse, dispatcher, sinks):
    slack, oncall = sinks
    slack.status = 400
    oncall.status = 503
    insert_finding(warehouse, "p1", severity="critical", at=T0)
    dispatcher.tick(T0)
    outcomes = dispatcher.tick(T0 + minutes(1)).outcomes
    assert sorted((o.receiver, o.status) for o in outcomes) == [("oncall", "pending"), ("platform", "failed")]
    moment = T0 + minutes(1)
    for _ in range(80):  # backoff caps at 1 minute; give_up_after is an hour
        moment += minutes(1)
        dispatcher.tick(moment)
    failed = alert_store.list_notifications(warehouse, status="failed")
    assert sorted(n["receiver"] for n in failed) == ["oncall", "platform"]
    oncall_failed = next(n for n in failed if n["receiver"] == "oncall")
    assert 50 < oncall_failed["attempts"] < 70
    assert "HTTP 503" in oncall_failed["last_error"]


def test_dispatcher_lifecycle_shutdown_without_start_and_start_twice(warehouse, sinks, tmp_path):
    quick = CONFIG | {"route": CONFIG["route"] | {"group_wait": "0s"}}
    config, secrets = load_alerts_config(quick, None, data_dir=tmp_path)
    Dispatcher(warehouse, config, secrets, interval=0.05, external_url="http://x").shutdown()  # never started
    running = Dispatcher(warehouse, config, secrets, interval=0.05, external_url="http://x")
    running.start()
    running.start()  # a second start does nothing
    with warehouse.cursor() as cur:
        insert_finding(cur, "l1", severity="critical", department="claims")
    _, oncall = sinks
    deadline = time.monotonic() + 60
    while not oncall.received:  # its own thread ticks on the real clock
        assert time.monotonic() < deadline, "the dispatcher thread never delivered"
        time.sleep(0.05)
    running.shutdown()
    running.shutdown()  # twice is fine
    assert [a["fingerprint"] for a in oncall.received[0]["alerts"]] == ["l1"]
    assert len(oncall.received) == 1


def test_a_hanging_receiver_holds_up_only_its_own_notifications(warehouse, sinks, tmp_path, monkeypatch):
    """The server's loop: a receiver that takes the request and does not answer (a black hole, a
    stuck proxy) delays neither the other receivers nor the recording of new notifications."""
    _, oncall = sinks
    stuck = Sink().start()
    stuck.gate.clear()
    monkeypatch.setenv("TEST_STUCK_URL", stuck.url)
    config = {
        "route": {
            "receiver": "oncall",
            "group_by": ["department"],
            "group_wait": "0s",
            "group_interval": "1m",
            "routes": [{"matchers": ["department=stuck"], "receiver": "stuck"}],
        },
        "receivers": [
            {"name": "oncall", "type": "webhook", "url": "env:TEST_ONCALL_URL"},
            {"name": "stuck", "type": "webhook", "url": "env:TEST_STUCK_URL", "timeout": "10m"},
        ],
    }
    loaded, secrets = load_alerts_config(config, None, data_dir=tmp_path)
    running = Dispatcher(warehouse, loaded, secrets, interval=0.05, external_url="http://x")
    try:
        with warehouse.cursor() as cur:
            insert_finding(cur, "h1", department="stuck")
            insert_finding(cur, "f1", department="first")
        running.start()
        assert stuck.arrived.wait(60), "nothing was sent to the hanging receiver"
        wait_until(lambda: len(oncall.received) == 1, "the other receiver did not get its notification")
        with warehouse.cursor() as cur:  # a new alert while the hanging receiver still holds its request
            insert_finding(cur, "f2", department="second")
        wait_until(lambda: len(oncall.received) == 2, "a hanging receiver held up the others")
        assert stuck.received == []
        stuck.gate.set()  # it answers at last
        wait_until(lambda: len(stuck.received) == 1, "the hanging receiver's notification was lost")
        time.sleep(0.5)  # more ticks: nothing is sent again
    finally:
        running.shutdown()
        stuck.stop()
    assert [m["groupLabels"] for m in oncall.received] == [{"department": "first"}, {"department": "second"}]
    assert [[a["fingerprint"] for a in m["alerts"]] for m in stuck.received] == [["h1"]]
    assert sorted(n["status"] for n in alert_store.list_notifications(warehouse)) == ["delivered"] * 3


def wait_until(condition, message: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)
