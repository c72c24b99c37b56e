"""Bearer-token check for the HTTP API, and the local admin token the CLI uses.

On first start the server writes a random admin token to `<data dir>/admin.token`, readable only
by its owner, so the CLI on the same machine can call the API and nobody else can without it.
Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = "admin.token"  # noqa: S105 - a file name, not a secret


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / TOKEN_FILE


def ensure_admin_token(data_dir: Path) -> str:
    """The local admin token, created (mode 0600) if there is none yet."""
    path = admin_token_path(data_dir)
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = "mst_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def read_admin_token(data_dir: Path) -> str | None:
    path = admin_token_path(data_dir)
    return path.read_text().strip() if path.exists() else None


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not reveal how much of a guess was right."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())
