"""SQL for API tokens and ingest credentials: create, look up by secret digest, list, revoke.

Secrets never reach the warehouse: callers pass the SHA-256 digest, so a copy of the file does
not hand out access.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str | None
    role: str
    department_id: str | None
    agent_id: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


@dataclass(frozen=True)
class CredentialRecord:
    id: str
    agent_id: str
    name: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


_SELECT_TOKENS = (
    "SELECT id, name, role, department_id, agent_id, created_at, created_by, revoked_at FROM api_tokens"
)
_SELECT_CREDENTIALS = "SELECT id, agent_id, name, created_at, created_by, revoked_at FROM ingest_credentials"


def insert_token(
    cur: duckdb.DuckDBPyConnection,
    *,
    token_id: str,
    secret_sha256: str,
    role: str,
    name: str | None,
    department_id: str | None,
    agent_id: str | None,
    created_by: str,
) -> None:
    cur.execute(
        "INSERT INTO api_tokens (id, name, secret_sha256, role, department_id, agent_id, created_at,"
        " created_by) VALUES (?, ?, ?, ?, ?, ?, now(), ?)",
        [token_id, name, secret_sha256, role, department_id, agent_id, created_by],
    )


def token_by_secret(cur: duckdb.DuckDBPyConnection, secret_sha256: str) -> TokenRecord | None:
    """The live (not revoked) token whose secret has this digest."""
    rows = cur.execute(
        _SELECT_TOKENS + " WHERE secret_sha256 = ? AND revoked_at IS NULL",
        [secret_sha256],
    ).fetchall()
    return TokenRecord(*rows[0]) if rows else None


def list_tokens(cur: duckdb.DuckDBPyConnection) -> list[TokenRecord]:
    rows = cur.execute(_SELECT_TOKENS + " ORDER BY created_at, id").fetchall()
    return [TokenRecord(*row) for row in rows]


def revoke_token(cur: duckdb.DuckDBPyConnection, token_id: str) -> bool:
    """Revoke a token; False when there is no live token with that id."""
    rows = cur.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = ? AND revoked_at IS NULL RETURNING id",
        [token_id],
    ).fetchall()
    return bool(rows)


def insert_credential(
    cur: duckdb.DuckDBPyConnection,
    *,
    credential_id: str,
    secret_sha256: str,
    agent_id: str,
    name: str | None,
    created_by: str,
) -> None:
    cur.execute(
        "INSERT INTO ingest_credentials (id, agent_id, name, secret_sha256, created_at, created_by)"
        " VALUES (?, ?, ?, ?, now(), ?)",
        [credential_id, agent_id, name, secret_sha256, created_by],
    )


def live_credentials(cur: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every live ingest credential: secret digest → agent id (the collector caches this)."""
    rows = cur.execute(
        "SELECT secret_sha256, agent_id FROM ingest_credentials WHERE revoked_at IS NULL"
    ).fetchall()
    return dict(rows)


def list_credentials(
    cur: duckdb.DuckDBPyConnection, agent_ids: list[str] | None = None
) -> list[CredentialRecord]:
    if agent_ids is None:
        rows = cur.execute(_SELECT_CREDENTIALS + " ORDER BY created_at, id")
    else:
        rows = cur.execute(
            _SELECT_CREDENTIALS + " WHERE list_contains(?, agent_id) ORDER BY created_at, id",
            [agent_ids],
        )
    return [CredentialRecord(*row) for row in rows.fetchall()]


def revoke_credential(cur: duckdb.DuckDBPyConnection, credential_id: str) -> str | None:
    """Revoke a credential; its agent id, or None when there is no live credential with that id."""
    rows = cur.execute(
        "UPDATE ingest_credentials SET revoked_at = now()"
        " WHERE id = ? AND revoked_at IS NULL RETURNING agent_id",
        [credential_id],
    ).fetchall()
    return rows[0][0] if rows else None


def credential_agent(cur: duckdb.DuckDBPyConnection, credential_id: str) -> str | None:
    rows = cur.execute("SELECT agent_id FROM ingest_credentials WHERE id = ?", [credential_id]).fetchall()
    return rows[0][0] if rows else None
