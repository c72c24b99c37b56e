"""`muster tokens …` and `muster credentials …`: who may use the API, and which agent sends what."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from muster.cli_common import JsonOption, emit, muster_session, out

tokens = typer.Typer(help="API tokens: create with a role and scope, list, revoke.", no_args_is_help=True)
credentials = typer.Typer(help="Per-agent ingest credentials for OTLP exporters.", no_args_is_help=True)


@tokens.command("create")
def create_token(
    role: Annotated[str, typer.Option(help="admin, platform, finance, owner or viewer.")],
    department: Annotated[str | None, typer.Option(help="Confine the token to one department.")] = None,
    agent: Annotated[str | None, typer.Option(help="Confine the token to one agent (owner tokens).")] = None,
    name: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API token; its secret is printed once and never stored."""
    body = {"role": role, "department_id": department, "agent_id": agent, "name": name}
    with muster_session() as muster:
        created = muster.post("/api/v1/tokens", body)
    emit(created, as_json, lambda c: out.print(f"{c['id']}  {c['secret']}\\n[dim]{c['note']}[/dim]"))


@tokens.command("list")
def list_tokens(as_json: JsonOption = False) -> None:
    """Every token, live and revoked (never their secrets)."""
    with muster_session() as muster:
        rows = muster.get("/api/v1/tokens")
    columns = ("id", "role", "department_id", "agent_id", "name", "created_at", "revoked_at")
    emit(rows, as_json, lambda r: out.print(table(r, columns)))


@tokens.command("revoke")
def revoke_token(token_id: Annotated[str, typer.Argument(help="The token's id, e.g. tok_3fa9c2d1.")]) -> None:
    """Revoke a token at once."""
    with muster_session() as muster:
        muster.delete(f"/api/v1/tokens/{token_id}")
    out.print(f"revoked {token_id}")


@credentials.command("create")
def create_credential(
    agent: Annotated[str, typer.Argument(help="The registered agent the credential belongs to.")],
    name: Annotated[str | None, typer.Option(help="Where it is used, e.g. the deployment.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an ingest credential; set it in the agent's OTEL_EXPORTER_OTLP_HEADERS."""
    with muster_session() as muster:
        created = muster.post(f"/api/v1/agents/{agent}/credentials", {"name": name})
    emit(
        created,
        as_json,
        lambda c: out.print(
            f"{c['id']}  {c['secret']}\\n[dim]{c['note']}. For the agent's exporter:[/dim]\\n"
            f"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20{c['secret']}"
        ),
    )


@credentials.command("list")
def list_credentials(
    agent: Annotated[str, typer.Argument(help="The agent whose credentials to list.")],
    as_json: JsonOption = False,
) -> None:
    """An agent's ingest credentials, live and revoked (never their secrets)."""
    with muster_session() as muster:
        rows = muster.get(f"/api/v1/agents/{agent}/credentials")
    emit(rows, as_json, lambda r: out.print(table(r, ("id", "agent_id", "name", "created_at", "revoked_at"))))


@credentials.command("revoke")
def revoke_credential(credential_id: Annotated[str, typer.Argument(help="e.g. cred_51b0e7aa")]) -> None:
    """Revoke an ingest credential; exports sent with it are refused from now on."""
    with muster_session() as muster:
        muster.delete(f"/api/v1/credentials/{credential_id}")
    out.print(f"revoked {credential_id}")


def table(rows: list[dict], columns: tuple[str, ...]) -> Table:
    """A table of `rows` showing `columns`, empty cells for missing values."""
    shown = Table(*columns)
    for row in rows:
        shown.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
    return shown
