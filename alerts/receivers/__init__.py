"""Receivers: Slack, a generic webhook (Alertmanager v4 JSON), e-mail over SMTP, and a local log file.

`build_senders` turns the configured receivers and their resolved secrets into senders with one
verb, `send(payload)`, each raising `DeliveryError` that says whether a retry may help.
"""

from __future__ import annotations

from alerts.config import (
    AlertsConfig,
    EmailReceiver,
    LogfileReceiver,
    Secrets,
    SlackReceiver,
    WebhookReceiver,
)
from alerts.receivers.base import DeliveryError, Sender
from alerts.receivers.email import EmailSender, SmtpServer
from alerts.receivers.logfile import LogfileSender
from alerts.receivers.slack import SlackSender, slack_message
from alerts.receivers.webhook import WebhookSender, webhook_v4

__all__ = [
    "DeliveryError",
    "EmailSender",
    "LogfileSender",
    "Sender",
    "SlackSender",
    "WebhookSender",
    "build_senders",
    "slack_message",
    "webhook_v4",
]


def build_senders(config: AlertsConfig, secrets: Secrets) -> dict[str, Sender]:
    """A sender for every configured receiver, by name."""
    return {receiver.name: _sender(receiver, config, secrets) for receiver in config.receivers}


def _sender(receiver, config: AlertsConfig, secrets: Secrets) -> Sender:
    if isinstance(receiver, SlackReceiver):
        return SlackSender(
            receiver.name,
            secrets.get(receiver.url),  # type: ignore[arg-type]
            channel=receiver.channel,
            timeout=receiver.timeout.total_seconds(),
        )
    if isinstance(receiver, WebhookReceiver):
        return WebhookSender(
            receiver.name,
            secrets.get(receiver.url),  # type: ignore[arg-type]
            max_alerts=receiver.max_alerts,
            timeout=receiver.timeout.total_seconds(),
        )
    if isinstance(receiver, EmailReceiver):
        return EmailSender(receiver.name, _smtp_server(receiver, config, secrets))
    if isinstance(receiver, LogfileReceiver):
        return LogfileSender(receiver.name, receiver.path)
    raise TypeError(f"unknown receiver type {type(receiver).__name__}")


def _smtp_server(receiver: EmailReceiver, config: AlertsConfig, secrets: Secrets) -> SmtpServer:
    defaults = config.smtp

    def pick(own, default):
        return own if own is not None else default

    return SmtpServer(
        host=pick(receiver.host, defaults.host),
        port=pick(receiver.port, defaults.port),
        sender=pick(receiver.sender, defaults.sender),
        starttls=pick(receiver.starttls, defaults.starttls),
        username=pick(receiver.username, defaults.username),
        password=secrets.get(pick(receiver.password, defaults.password)),
        ca_file=pick(receiver.ca_file, defaults.ca_file),
        timeout=receiver.timeout.total_seconds(),
    )
