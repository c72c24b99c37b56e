"""E-mail alerts through a real SMTP server (aiosmtpd) with STARTTLS (a trustme certificate) and AUTH:
the message as received, the department's finance contact from the registry, 4xx retried, 5xx not."""

from __future__ import annotations

import email
import email.policy
import logging
import ssl
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from alerts import Dispatcher, load_alerts_config
from registry import load_paths, plan_changes
from tests.alerts_support import T0, insert_finding, minutes
from tests.ports import free_port
from warehouse import alert_store, registry_store

FIXTURE = Path(__file__).parent / "fixtures" / "registry"
PASSWORD = "smtp-Pa55word-never-logged"


class Mailbox:
    """aiosmtpd handler: keeps messages; `busy` makes it answer 451 (try again later)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.busy = False

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.busy:
            return "451 4.3.0 mailbox busy, try again later"
        assert session.authenticated, "the message was sent without AUTH"
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = auth_data.login == b"muster" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself


@pytest.fixture
def smtp_server(tmp_path):
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    yield controller, mailbox, ca_file
    controller.stop()


def email_config(controller: Controller, ca_file: Path, to: list[str]) -> dict:
    return {
        "smtp": {
            "host": "127.0.0.1",
            "port": controller.port,
            "from": "muster@example.com",
            "starttls": True,
            "username": "muster",
            "password": "env:TEST_SMTP_PASSWORD",
            "ca_file": str(ca_file),
        },
        "route": {
            "receiver": "finance",
            "group_by": ["department"],
            "group_wait": "1m",
            "group_interval": "5m",
            "repeat_interval": "1d",
        },
        "receivers": [{"name": "finance", "type": "email", "to": to}],
        "delivery": {"initial_backoff": "30s", "max_backoff": "5m", "give_up_after": "1d"},
    }


@pytest.fixture
def registered(warehouse):
    registry_store.apply_plan(
        warehouse, plan_changes(registry_store.load_registry(warehouse), load_paths([FIXTURE])), "test"
    )
    return warehouse


def dispatcher_for(warehouse, config: dict, tmp_path: Path) -> Dispatcher:
    loaded, secrets = load_alerts_config(config, None, data_dir=tmp_path)
    return Dispatcher(warehouse, loaded, secrets, interval=0, external_url="http://dash.example:8501")


def test_forecast_overrun_mails_the_department_finance_contact_over_starttls_and_auth(
    registered, smtp_server, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    controller, mailbox, ca_file = smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    config = email_config(controller, ca_file, ["department.financeContact", "cfo@example.com"])
    dispatcher = dispatcher_for(registered, config, tmp_path)
    insert_finding(
        registered,
        "budget-claims",
        rule="spend.budget_forecast",
        category="spend",
        severity="warning",
        department="claims",
        title="Claims is forecast to spend $51,200 of its $42,000 budget this month",
        evidence={"forecast_usd": "51200", "budget_usd": "42000"},
        at=T0,
    )
    dispatcher.tick(T0)
    outcomes = dispatcher.tick(T0 + minutes(1)).outcomes
    assert [o.status for o in outcomes] == ["delivered"]
    [(recipients, message)] = mailbox.messages
    assert recipients == ["cfo@example.com", "maria.okafor@example.com"]
    assert message["Subject"] == (
        "[Muster] [FIRING:1] Claims is forecast to spend $51,200 of its $42,000 budget this month"
    )
    assert message["From"] == "muster@example.com"
    text = message.get_body(("plain",)).get_content()
    assert "Claims is forecast to spend $51,200 of its $42,000 budget this month" in text
    assert "forecast_usd: 51200" in text
    assert "http://dash.example:8501/?finding=budget-claims" in text
    assert (
        'href="http://dash.example:8501/?finding=budget-claims"' in message.get_body(("html",)).get_content()
    )
    assert PASSWORD not in caplog.text

    resolved = T0 + timedelta(days=2)
    registered.execute("UPDATE findings SET resolved_at = ? WHERE fingerprint = 'budget-claims'", [resolved])
    dispatcher.tick(resolved + minutes(5))
    assert mailbox.messages[-1][1]["Subject"].startswith("[Muster] [RESOLVED:1] Claims is forecast")


def test_smtp_4xx_is_retried_with_backoff_until_it_succeeds(registered, smtp_server, tmp_path, monkeypatch):
    controller, mailbox, ca_file = smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    dispatcher = dispatcher_for(registered, email_config(controller, ca_file, ["ops@example.com"]), tmp_path)
    insert_finding(registered, "f1", at=T0)
    dispatcher.tick(T0)
    mailbox.busy = True
    now = T0 + minutes(1)
    [first] = dispatcher.tick(now).outcomes
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.error.startswith("SMTP server refused (451 4.3.0 mailbox busy")
    assert dispatcher.tick(now + timedelta(seconds=29)).outcomes == []
    assert [o.attempts for o in dispatcher.tick(now + timedelta(seconds=30)).outcomes] == [2]
    mailbox.busy = False
    assert dispatcher.tick(now + timedelta(seconds=89)).outcomes == []  # 30 s, then 60 s
    assert [o.status for o in dispatcher.tick(now + timedelta(seconds=90)).outcomes] == ["delivered"]
    assert len(mailbox.messages) == 1
    assert dispatcher.tick(now + timedelta(hours=1)).outcomes == []


def test_wrong_password_fails_for_good_without_showing_it(registered, smtp_server, tmp_path, monkeypatch):
    controller, mailbox, ca_file = smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "not-the-password-42")
    dispatcher = dispatcher_for(registered, email_config(controller, ca_file, ["ops@example.com"]), tmp_path)
    insert_finding(registered, "f1", at=T0)
    dispatcher.tick(T0)
    [outcome] = dispatcher.tick(T0 + minutes(1)).outcomes
    assert outcome.status == "failed" and outcome.error.startswith("SMTP server refused (535")
    assert "not-the-password-42" not in outcome.error
    assert mailbox.messages == []
    [stored] = alert_store.list_notifications(registered, status="failed")
    assert stored["attempts"] == 1


def test_an_untrusted_certificate_is_refused(registered, smtp_server, tmp_path, monkeypatch):
    controller, _, _ = smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    dispatcher = dispatcher_for(registered, email_config(controller, other_ca, ["ops@example.com"]), tmp_path)
    result = dispatcher.test_receiver("finance")
    assert result["ok"] is False and "TLS" in result["error"]


def test_test_receiver_sends_a_real_test_mail(registered, smtp_server, tmp_path, monkeypatch):
    controller, mailbox, ca_file = smtp_server
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    config = email_config(controller, ca_file, ["ops@example.com", "agent.owner"])
    result = dispatcher_for(registered, config, tmp_path).test_receiver("finance")
    assert result["ok"] is True, result
    [(recipients, message)] = mailbox.messages
    assert recipients == ["ops@example.com"]
    assert "Test notification from Muster" in message.get_body(("plain",)).get_content()
