"""The Slack receiver: an incoming-webhook message with Block Kit blocks and a plain-text fallback.

Slack shows `text` in notifications and where blocks cannot be shown; the blocks carry the
headline, each alert's summary (up to ten, then a count), and a button to the dashboard. Limits
respected: header text 150 characters, section text 3000, button text 75.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from alerts.receivers.base import post_json

MAX_LISTED = 10
_ICON = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}


# How a group of one rule reads in a headline: "3 unregistered agents appeared in marketing".
_PLURALS = {
    "sprawl.unregistered_agent": "unregistered agents appeared",
    "sprawl.unidentified_traffic": "sources of unidentified traffic appeared",
    "sprawl.retired_agent_running": "retired agents are running",
    "drift.model_not_allowed": "agents use models they may not",
    "drift.tool_not_allowed": "agents use tools they may not",
    "spend.runaway_agent": "agents are looping",
    "spend.unpriced_model": "models cannot be priced",
}


def headline(payload: dict[str, Any]) -> str:
    """`[FIRING:3] 3 unregistered agents appeared in Marketing, $412.00 spent in the last 30 days`; one
    alert: its summary;
    else the group's labels, a department by its registry name."""
    firing = [a for a in payload["alerts"] if a["status"] == "firing"]
    count = len(firing) if payload["status"] == "firing" else len(payload["alerts"])
    return f"[{payload['status'].upper()}:{count}] {_summary(payload, count)}"


def _summary(payload: dict[str, Any], count: int) -> str:
    alerts = payload["alerts"]
    if len(alerts) == 1 and alerts[0]["annotations"].get("summary"):
        return alerts[0]["annotations"]["summary"]  # one alert says best what it is about
    common = payload["common_labels"]
    phrase = _PLURALS.get(common.get("rule", ""))
    if not phrase or count < 2 or payload["status"] != "firing":
        labels = payload["group_labels"]
        named = [_department(payload, v) if k == "department" else v for k, v in labels.items()]
        return " ".join(named) or payload["receiver"]
    where = f" in {_department(payload, common['department'])}" if "department" in common else ""
    spends = [a["annotations"].get("spend_usd") for a in payload["alerts"] if a["status"] == "firing"]
    spent = sum((Decimal(s) for s in spends if s is not None), Decimal(0))
    money = f", ${spent.quantize(Decimal('0.01')):,} spent" if any(s is not None for s in spends) else ""
    windows = {a["annotations"].get("spend_days") for a in payload["alerts"] if a["status"] == "firing"}
    if money and len(windows) == 1 and None not in windows:
        money += f" in the last {windows.pop()} days"
    return f"{count} {phrase}{where}{money}"


def _department(payload: dict[str, Any], department_id: str) -> str:
    # recorded with the notification; older records have none and say the id
    return payload.get("department_names", {}).get(department_id, department_id)


def slack_message(payload: dict[str, Any], *, channel: str | None = None) -> dict[str, Any]:
    """A recorded notification as a Slack incoming-webhook message."""
    alerts = payload["alerts"]
    lines = [_line(alert) for alert in alerts[:MAX_LISTED]]
    if len(alerts) > MAX_LISTED:
        lines.append(f"…and {len(alerts) - MAX_LISTED} more")
    title = headline(payload)
    link = _dashboard_link(payload)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(f"{title}", 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(lines), 3000)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(_context(payload), 3000)}]},
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open in Muster"}, "url": link}
            ],
        },
    ]
    message: dict[str, Any] = {
        "text": _cut(f"{_ICON[payload['status']]} {title}: " + "; ".join(lines) + f" <{link}|Open>", 3000),
        "blocks": blocks,
    }
    if channel:
        message["channel"] = channel
    return message


def _line(alert: dict[str, Any]) -> str:
    mark = "" if alert["status"] == "firing" else " (resolved)"
    return f"• {_escape(alert['annotations'].get('summary', alert['fingerprint']))}{mark}"


def _context(payload: dict[str, Any]) -> str:
    common = payload["common_labels"]
    values = {k: common[k] for k in ("severity", "category", "department") if k in common}
    if "department" in values:
        values["department"] = _department(payload, values["department"])
    shown = [f"{k}: *{_escape(v)}*" for k, v in values.items()]
    return " | ".join(shown) or f"receiver: {payload['receiver']}"


def _dashboard_link(payload: dict[str, Any]) -> str:
    base = payload["external_url"].rstrip("/")
    query = "&".join(f"{quote(k)}={quote(v)}" for k, v in payload["group_labels"].items())
    return f"{base}/?{query}" if query else base


def _escape(text: str) -> str:
    # Slack's mrkdwn reserves these three
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SlackSender:
    """POSTs a message to one Slack incoming-webhook URL."""

    def __init__(self, name: str, url: str, *, channel: str | None = None, timeout: float = 10) -> None:
        self.name = name
        self._url = url
        self._channel = channel
        self._timeout = timeout

    def send(self, payload: dict[str, Any]) -> None:
        message = slack_message(payload, channel=self._channel)
        post_json(self._url, message, timeout=self._timeout, what=f"Slack receiver {self.name!r}")

    def __repr__(self) -> str:  # never the URL: it is a secret
        return f"SlackSender({self.name!r})"
