"""Ingest credentials: which agent an export belongs to, for certain, and whether one is required.

An exporter sends `Authorization: Bearer mic_…` (HTTP header or gRPC metadata, e.g. through
`OTEL_EXPORTER_OTLP_HEADERS`). The secret's SHA-256 digest is looked up in a cache of the live
credentials, refreshed from the warehouse whenever one is created or revoked, so the hot path
never touches the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Protocol

from collector.errors import Unauthenticated


def secret_digest(secret: str) -> str:
    """The SHA-256 hex digest under which a secret is stored (never the secret itself)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer(value: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` value, or None when there is none."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class AuthFailures(Protocol):
    """Failed authentications per client address, shared with the API (muster.api.deps.FailedAuthLimit)."""

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it is within its limit."""

    def failed(self, client: str) -> None:
        """Count a failed authentication of `client`."""


class IngestCredentials:
    """Maps a presented credential to its agent; refuses missing ones when they are required."""

    def __init__(self, load: Callable[[], Mapping[str, str]], *, required: bool) -> None:
        self._load = load
        self.required = required
        self._agents: Mapping[str, str] = {}

    def reload(self) -> None:
        """Re-read the live credentials (call after creating or revoking one)."""
        self._agents = dict(self._load())

    def agent_for(self, credential: str | None) -> str | None:
        """The agent bound to `credential`; None for an anonymous export where that is allowed."""
        if credential is None:
            if self.required:
                raise Unauthenticated(
                    "this Muster requires an ingest credential: send 'Authorization: Bearer <credential>'"
                    " (OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<credential>)"
                )
            return None
        agent = self._agents.get(secret_digest(credential))
        if agent is None:
            raise Unauthenticated("the ingest credential is not valid or has been revoked")
        return agent
