"""The generic webhook receiver: Alertmanager's webhook v4 JSON, which on-call tools already accept."""

from __future__ import annotations

from typing import Any

from alerts.receivers.base import post_json

# Alertmanager's "zero time" for the endsAt of an alert that still fires.
ZERO_TIME = "0001-01-01T00:00:00Z"


def webhook_v4(payload: dict[str, Any], *, max_alerts: int = 0) -> dict[str, Any]:
    """A recorded notification as Alertmanager's webhook v4 message."""
    alerts = payload["alerts"]
    shown = alerts[:max_alerts] if max_alerts else alerts
    return {
        "version": "4",
        "groupKey": payload["group_key"],
        "truncatedAlerts": len(alerts) - len(shown),
        "status": payload["status"],
        "receiver": payload["receiver"],
        "groupLabels": payload["group_labels"],
        "commonLabels": payload["common_labels"],
        "commonAnnotations": payload["common_annotations"],
        "externalURL": payload["external_url"],
        "alerts": [_alert(alert) for alert in shown],
    }


def _alert(alert: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": alert["status"],
        "labels": alert["labels"],
        "annotations": alert["annotations"],
        "startsAt": _rfc3339(alert["starts_at"]),
        "endsAt": _rfc3339(alert["ends_at"]) if alert["ends_at"] else ZERO_TIME,
        "generatorURL": alert["generator_url"],
        "fingerprint": alert["fingerprint"],
    }


def _rfc3339(iso: str) -> str:
    return iso.replace("+00:00", "Z")


class WebhookSender:
    """POSTs webhook v4 JSON to one URL."""

    def __init__(self, name: str, url: str, *, max_alerts: int = 0, timeout: float = 10) -> None:
        self.name = name
        self._url = url
        self._max_alerts = max_alerts
        self._timeout = timeout

    def send(self, payload: dict[str, Any]) -> None:
        body = webhook_v4(payload, max_alerts=self._max_alerts)
        post_json(self._url, body, timeout=self._timeout, what=f"webhook receiver {self.name!r}")

    def __repr__(self) -> str:  # never the URL: it is a secret
        return f"WebhookSender({self.name!r})"
