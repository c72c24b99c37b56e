"""The e-mail receiver: a text and HTML message over SMTP, with STARTTLS and AUTH when configured.

Recipients are resolved when the notification is recorded (addresses written in the
configuration, the department's finance contact, the agent's owner) and travel in the payload,
so a retry after a restart goes to the same people. SMTP 4xx replies and lost connections are
retried; 5xx replies (a refused address, bad credentials) are not.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from alerts.receivers.base import DeliveryError
from alerts.receivers.slack import headline


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str
    starttls: bool
    username: str | None
    password: str | None
    ca_file: Path | None
    timeout: float

    def __repr__(self) -> str:  # never the password
        return f"SmtpServer({self.host}:{self.port}, starttls={self.starttls}, user={self.username!r})"


def email_message(payload: dict[str, Any], sender: str, recipients: list[str]) -> EmailMessage:
    """The notification as an e-mail: subject is the headline, body lists every alert."""
    message = EmailMessage()
    message["Subject"] = f"[Muster] {headline(payload)}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="muster.local")
    message.set_content(_text(payload))
    message.add_alternative(_html(payload), subtype="html")
    return message


def _text(payload: dict[str, Any]) -> str:
    lines = [headline(payload), ""]
    for alert in payload["alerts"]:
        lines.append(f"- [{alert['status']}] {alert['annotations'].get('summary', alert['fingerprint'])}")
        description = alert["annotations"].get("description")
        if description:
            lines.extend("    " + line for line in description.splitlines())
        lines.append(f"    {alert['generator_url']}")
    lines += ["", f"Muster: {payload['external_url']}"]
    return "\n".join(lines) + "\n"


def _html(payload: dict[str, Any]) -> str:
    items = "".join(
        f"<li><b>{html.escape(a['status'])}</b> "
        f'<a href="{html.escape(a["generator_url"])}">'
        f"{html.escape(a['annotations'].get('summary', a['fingerprint']))}</a></li>"
        for a in payload["alerts"]
    )
    link = html.escape(payload["external_url"])
    return (
        f"<html><body><h3>{html.escape(headline(payload))}</h3><ul>{items}</ul>"
        f'<p><a href="{link}">Open in Muster</a></p></body></html>'
    )


class EmailSender:
    """Sends notifications through one SMTP server to the recipients recorded with them."""

    def __init__(self, name: str, server: SmtpServer) -> None:
        self.name = name
        self._server = server

    def send(self, payload: dict[str, Any]) -> None:
        recipients = payload.get("recipients") or []
        if not recipients:
            raise DeliveryError(
                f"e-mail receiver {self.name!r} has no recipient for this group: "
                "the department has no financeContact or the agent's owner is not an address",
                retryable=False,
            )
        message = email_message(payload, self._server.sender, recipients)
        try:
            self._deliver(message, recipients)
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error(self.name, exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"SMTP refused the recipients: {exc.recipients}", retryable=all(400 <= c < 500 for c in codes)
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP server cannot do what is configured: {exc}", retryable=False) from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"TLS with the SMTP server failed: {exc.reason}", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            raise DeliveryError(f"cannot reach the SMTP server: {reason}", retryable=True) from None

    def _deliver(self, message: EmailMessage, recipients: list[str]) -> None:
        server = self._server
        with smtplib.SMTP(server.host, server.port, timeout=server.timeout) as smtp:
            smtp.ehlo()
            if server.starttls:
                context = ssl.create_default_context()
                if server.ca_file:
                    context.load_verify_locations(cafile=str(server.ca_file))
                smtp.starttls(context=context)
                smtp.ehlo()
            if server.username:
                smtp.login(server.username, server.password or "")
            smtp.send_message(message, to_addrs=recipients)

    def __repr__(self) -> str:
        return f"EmailSender({self.name!r}, {self._server!r})"


def _smtp_error(name: str, code: int, text: bytes | str) -> DeliveryError:
    reply = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return DeliveryError(
        f"SMTP server refused ({code} {reply[:200]}) for e-mail receiver {name!r}",
        retryable=400 <= code < 500,
    )
