"""Who is asking, and what they may see: API tokens with roles and scopes, and ingest credentials.

Roles, from most to least power:

    admin     everything, including tokens
    platform  the whole registry, read and write; ingest status; ingest credentials
    finance   read spend and the registry, of one department when the token is scoped to it
    owner     read its own agent (the token's scope) and manage that agent's ingest credentials
    viewer    read, of one department when scoped

A scoped token sees only its department's (or its agent's) data; something outside its scope is
reported as not found, so a token cannot even learn that it exists. Secrets are random, shown
once, and stored as SHA-256 digests. On first start the server writes a local admin token to
`<data dir>/admin.token` (mode 0600) for the CLI on the same machine.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import duckdb

from collector.credentials import secret_digest
from warehouse import access_store

TOKEN_FILE = "admin.token"  # noqa: S105 - a file name, not a secret


class Role(StrEnum):
    ADMIN = "admin"
    PLATFORM = "platform"
    FINANCE = "finance"
    OWNER = "owner"
    VIEWER = "viewer"


class Permission(StrEnum):
    READ = "read"
    READ_INGEST = "read_ingest"
    WRITE_REGISTRY = "write_registry"
    MANAGE_CREDENTIALS = "manage_credentials"
    MANAGE_TOKENS = "manage_tokens"
    TRIAGE = "triage"  # acknowledge and silence findings and alerts within the token's scope
    OPERATE = "operate"  # backups and retention: whole-warehouse operations


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.PLATFORM: frozenset(
        {
            Permission.READ,
            Permission.READ_INGEST,
            Permission.WRITE_REGISTRY,
            Permission.MANAGE_CREDENTIALS,
            Permission.TRIAGE,
        }
    ),
    Role.FINANCE: frozenset({Permission.READ, Permission.TRIAGE}),
    Role.OWNER: frozenset({Permission.READ, Permission.MANAGE_CREDENTIALS, Permission.TRIAGE}),
    Role.VIEWER: frozenset({Permission.READ}),
}


class AccessError(Exception):
    """A token cannot be created as asked (bad role or scope); the message says why."""


@dataclass(frozen=True)
class Principal:
    """The holder of a token: its role and the scope it is confined to."""

    name: str
    role: Role
    department_id: str | None = None
    agent_id: str | None = None

    def may(self, permission: Permission) -> bool:
        return permission in _GRANTS[self.role]

    @property
    def unscoped(self) -> bool:
        return self.department_id is None and self.agent_id is None


LOCAL_ADMIN = Principal("local", Role.ADMIN)  # the CLI working on the warehouse file directly


@dataclass(frozen=True)
class NewSecret:
    """A token or credential just created: `secret` is shown once and never stored."""

    id: str
    secret: str


def create_token(
    cur: duckdb.DuckDBPyConnection,
    *,
    role: str,
    department_id: str | None = None,
    agent_id: str | None = None,
    name: str | None = None,
    created_by: str,
) -> NewSecret:
    """Create an API token with a role and an optional scope."""
    try:
        role = Role(role)
    except ValueError:
        raise AccessError(f"unknown role {role!r}; choose one of {', '.join(Role)}") from None
    if role is Role.OWNER and not agent_id:
        raise AccessError("an owner token needs --agent: the agent it owns")
    if role is Role.ADMIN and (department_id or agent_id):
        raise AccessError("an admin token cannot be scoped; use another role for a department or agent")
    token = NewSecret("tok_" + secrets.token_hex(4), "mst_" + secrets.token_urlsafe(32))
    access_store.insert_token(
        cur,
        token_id=token.id,
        secret_sha256=secret_digest(token.secret),
        role=role.value,
        name=name,
        department_id=department_id,
        agent_id=agent_id,
        created_by=created_by,
    )
    return token


def create_credential(
    cur: duckdb.DuckDBPyConnection, *, agent_id: str, name: str | None = None, created_by: str
) -> NewSecret:
    """Create an ingest credential bound to an agent."""
    credential = NewSecret("cred_" + secrets.token_hex(4), "mic_" + secrets.token_urlsafe(32))
    access_store.insert_credential(
        cur,
        credential_id=credential.id,
        secret_sha256=secret_digest(credential.secret),
        agent_id=agent_id,
        name=name,
        created_by=created_by,
    )
    return credential


def authenticate(cur: duckdb.DuckDBPyConnection, presented: str | None) -> Principal | None:
    """The principal holding a presented bearer token, or None for a missing, wrong or revoked one.

    Lookup is by the digest of the presented secret, so no secret is ever compared byte by byte.
    """
    if not presented:
        return None
    record = access_store.token_by_secret(cur, secret_digest(presented))
    if record is None:
        return None
    return Principal(record.id, Role(record.role), record.department_id, record.agent_id)


def ensure_admin_token(cur: duckdb.DuckDBPyConnection, data_dir: Path) -> str:
    """The local admin token of `data_dir`: the one on file if it is still live, else a new one."""
    path = data_dir / TOKEN_FILE
    if path.exists():
        existing = path.read_text().strip()
        if authenticate(cur, existing) is not None:
            return existing
        path.unlink()
    token = create_token(cur, role=Role.ADMIN, name="local admin (data dir)", created_by="muster serve")
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token.secret + "\n")
    return token.secret


def read_admin_token(data_dir: Path) -> str | None:
    path = data_dir / TOKEN_FILE
    return path.read_text().strip() if path.exists() else None
