"""The log-file receiver: one JSON line per notification, in webhook v4 shape, appended to a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alerts.receivers.base import DeliveryError
from alerts.receivers.webhook import webhook_v4


class LogfileSender:
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    def send(self, payload: dict[str, Any]) -> None:
        line = json.dumps(webhook_v4(payload), sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as log:
                log.write(line + "\n")
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc.strerror}", retryable=True) from None
