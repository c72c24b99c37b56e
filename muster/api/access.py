"""API tokens (admin) and per-agent ingest credentials (admin, platform, the agent's owner)."""

from __future__ import annotations

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict

from muster.api.deps import credential_manager, cursor, not_found, token_manager
from muster.api.scope import visible_agent
from muster.auth import AccessError, Principal, create_credential, create_token
from warehouse import access_store

router = APIRouter(prefix="/api/v1", tags=["access"])


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str
    department_id: str | None = None
    agent_id: str | None = None
    name: str | None = None


class CreatedSecret(BaseModel):
    id: str
    secret: str
    note: str = "shown once: store it now; Muster keeps only its digest"


class CredentialRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def new_token(
    body: TokenRequest,
    who: Principal = Depends(token_manager),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> CreatedSecret:
    """Create an API token; its secret is in the answer and nowhere else."""
    try:
        token = create_token(cur, **body.model_dump(), created_by=who.name)
    except AccessError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return CreatedSecret(id=token.id, secret=token.secret)


@router.get("/tokens", dependencies=[Depends(token_manager)])
def tokens(cur: duckdb.DuckDBPyConnection = Depends(cursor)) -> list[access_store.TokenRecord]:
    """Every token, live and revoked, without secrets."""
    return access_store.list_tokens(cur)


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(token_manager)],
)
def revoke_token(token_id: str, cur: duckdb.DuckDBPyConnection = Depends(cursor)) -> None:
    """Revoke a token at once."""
    if not access_store.revoke_token(cur, token_id):
        raise not_found(f"live token {token_id!r}")


@router.post("/agents/{agent_id}/credentials", status_code=status.HTTP_201_CREATED)
def new_credential(
    agent_id: str,
    request: Request,
    body: CredentialRequest | None = None,
    who: Principal = Depends(credential_manager),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> CreatedSecret:
    """Create an ingest credential: exports sent with it are attributed to this agent for certain."""
    if not visible_agent(cur, who, agent_id):
        raise not_found(f"agent {agent_id!r}")
    credential = create_credential(
        cur, agent_id=agent_id, name=body.name if body else None, created_by=who.name
    )
    request.app.state.credentials.reload()
    return CreatedSecret(id=credential.id, secret=credential.secret)


@router.get("/agents/{agent_id}/credentials")
def credentials(
    agent_id: str,
    who: Principal = Depends(credential_manager),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> list[access_store.CredentialRecord]:
    """The agent's ingest credentials, live and revoked, without secrets."""
    if not visible_agent(cur, who, agent_id):
        raise not_found(f"agent {agent_id!r}")
    return access_store.list_credentials(cur, [agent_id])


@router.delete("/credentials/{credential_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_credential(
    credential_id: str,
    request: Request,
    who: Principal = Depends(credential_manager),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> None:
    """Revoke an ingest credential; exports sent with it are refused from now on."""
    agent_id = access_store.credential_agent(cur, credential_id)
    if agent_id is None or not visible_agent(cur, who, agent_id):
        raise not_found(f"credential {credential_id!r}")
    if access_store.revoke_credential(cur, credential_id) is None:
        raise not_found(f"live credential {credential_id!r}")
    request.app.state.credentials.reload()
