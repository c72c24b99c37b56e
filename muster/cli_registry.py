"""`muster registry …`: the registry as code (plan, apply, export) and one agent at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from muster.cli_access import table
from muster.cli_common import JsonOption, emit, fail, muster_session, out
from registry import RegistryError, read_sources, render_plan

registry = typer.Typer(help="The agent registry: YAML as code, and agents one by one.", no_args_is_help=True)

FilesOption = Annotated[
    list[Path], typer.Option("--file", "-f", help="A YAML file or a directory of them (repeatable).")
]


def _sources(paths: list[Path]) -> dict[str, str]:
    try:
        return read_sources(paths)
    except RegistryError as exc:
        fail(str(exc))
        raise  # unreachable


@registry.command()
def plan(files: FilesOption, as_json: JsonOption = False) -> None:
    """Show what applying the files would change: added, changed (field by field), removed."""
    sources = _sources(files)
    with muster_session() as muster:
        changes = muster.post("/api/v1/registry/plan", sources)
    emit(changes, as_json, lambda p: out.print(render_plan(p), highlight=False, markup=False))


@registry.command()
def apply(files: FilesOption, as_json: JsonOption = False) -> None:
    """Make the registry exactly what the files say: all of it or, on any problem, none of it."""
    sources = _sources(files)
    with muster_session() as muster:
        changes = muster.post("/api/v1/registry/apply", sources)
    emit(changes, as_json, lambda p: out.print(render_plan(p).replace("Plan:", "Applied:"), markup=False))


@registry.command()
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Write the whole registry as YAML; applying it back changes nothing."""
    with muster_session() as muster:
        text = muster.get("/api/v1/registry/export")
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}")


@registry.command("list")
def list_agents(
    lifecycle: Annotated[str | None, typer.Option(help="Only agents in this lifecycle stage.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Registered agents you may see."""
    with muster_session() as muster:
        agents = muster.get("/api/v1/agents", lifecycle=lifecycle)
    rows = [{"id": a["metadata"]["id"], **a["spec"]} for a in agents]
    columns = ("id", "name", "department", "owner", "lifecycle", "platform")
    emit(agents, as_json, lambda _: out.print(table(rows, columns)))


@registry.command()
def show(
    agent: Annotated[str, typer.Argument(help="Agent id (or a former id).")], as_json: JsonOption = False
) -> None:
    """One agent's registration, as YAML."""
    with muster_session() as muster:
        document = muster.get(f"/api/v1/agents/{agent}")
    emit(document, as_json, lambda d: typer.echo(yaml.safe_dump(d, sort_keys=False, allow_unicode=True)))


@registry.command()
def register(
    file: Annotated[Path, typer.Option("--file", "-f", help="A YAML file of Agent documents.")],
    as_json: JsonOption = False,
) -> None:
    """Register or update the agents in a file, one by one (the rest of the registry is untouched)."""
    try:
        documents = [d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        fail(f"cannot read {file}: {exc}")
    results = []
    with muster_session() as muster:
        for document in documents:
            agent_id = (document.get("metadata") or {}).get("id")
            if document.get("kind") != "Agent" or not agent_id:
                fail(f"{file}: every document must be an Agent with metadata.id")
            results.append(muster.put(f"/api/v1/agents/{agent_id}", document))
    emit(results, as_json, lambda r: out.print(f"{len(r)} agents registered or updated"))


@registry.command()
def retire(agent: Annotated[str, typer.Argument(help="Agent id.")]) -> None:
    """Set an agent's lifecycle to retired (it stays registered, so its telemetry still matches it)."""
    with muster_session() as muster:
        result = muster.post(f"/api/v1/agents/{agent}/retire")
    out.print(f"retired {agent}" if result["changed"] else f"{agent} was already retired")


@registry.command()
def history(
    agent: Annotated[str, typer.Argument(help="Agent id (or a former id).")], as_json: JsonOption = False
) -> None:
    """Every change to an agent: when, who, what, field by field."""
    with muster_session() as muster:
        entries = muster.get(f"/api/v1/agents/{agent}/history")

    def show_entries(rows: list[dict]) -> None:
        for entry in rows:
            out.print(
                f"{entry['at']}  {entry['actor']}  {entry['action']} {entry['kind']} {entry['id']}",
                markup=False,
            )
            for field in entry["fields"]:
                out.print(f"    {field['path']}: {field['before']!r} → {field['after']!r}", markup=False)

    emit(entries, as_json, show_entries)
