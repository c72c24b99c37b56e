"""What every receiver shares: one verb, `send`, and one error that says whether a retry can help.

A receiver turns a recorded notification (the neutral payload of `alerts.grouping.Notification`)
into its system's format and delivers it, raising `DeliveryError` when it could not. Whether the
error is worth retrying is decided once, here at the boundary: connection failures, timeouts,
HTTP 408/429/5xx and SMTP 4xx are; other refusals are not, since sending again would fail again.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx


class DeliveryError(Exception):
    """A notification was not delivered; `retryable` says whether trying again later may work."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sender(Protocol):
    name: str

    def send(self, payload: dict[str, Any]) -> None:
        """Deliver one notification or raise DeliveryError."""


_RETRYABLE_STATUS = {408, 425, 429}


def post_json(url: str, body: dict[str, Any], *, timeout: float, what: str) -> None:
    """POST `body` as JSON; map every failure to DeliveryError without ever quoting the URL."""
    try:
        response = httpx.post(url, json=body, timeout=timeout)
    except httpx.TimeoutException:
        raise DeliveryError(f"{what} did not answer within {timeout:g} s", retryable=True) from None
    except httpx.TransportError as exc:
        # httpx's message for a connection error names the host at most, not the secret path
        reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
        raise DeliveryError(f"cannot reach {what}: {reason}", retryable=True) from None
    if response.is_success:
        return
    code = response.status_code
    retryable = code >= 500 or code in _RETRYABLE_STATUS
    raise DeliveryError(f"{what} answered HTTP {code}: {response.text[:200]}", retryable=retryable)
