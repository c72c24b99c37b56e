"""What every `muster` command shares: consoles, errors and exit codes, settings, the API session."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from muster.settings import Settings, SettingsError, load_settings

err = Console(stderr=True)
out = Console()

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), code=2)
        raise  # unreachable: fail() exits


@contextlib.contextmanager
def muster_session() -> Iterator:
    """A session with Muster for one command; a failure becomes an error message and exit code 1."""
    settings = settings_or_exit()
    from muster.client import MusterClientError, connect

    try:
        with connect(settings) as muster:
            yield muster
    except MusterClientError as exc:
        fail(str(exc))


def emit(value: object, as_json: bool, table: Callable[[object], None]) -> None:
    """Print a command's answer as JSON for scripts, or as a table for people."""
    if as_json:
        out.print_json(json.dumps(value, default=str))
    else:
        table(value)
