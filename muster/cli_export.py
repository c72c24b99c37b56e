"""`muster export focus`: a month of AI spend as a FOCUS file for FinOps tools.

The API builds the file (so a running server and the in-process API give the same bytes); this
command chooses where it goes. A relative path must stay inside the current directory, an absolute
one may go anywhere it names, and an existing file is replaced only with `--force`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from analytics.focus import ExportFormat, billing_month
from muster.cli_common import JsonOption, emit, fail, muster_session, out

export = typer.Typer(help="Export spend for other tools.", no_args_is_help=True)


@export.command("focus")
def focus(
    month: Annotated[
        str, typer.Option("--month", help="The UTC calendar month, YYYY-MM.", show_default=False)
    ],
    file_format: Annotated[
        ExportFormat | None,
        typer.Option("--format", help="File format (default: from the output's suffix, else csv)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File or directory to write (default: muster-focus-MONTH.FORMAT)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write one month of priced model calls as a FOCUS 1.0 file; unpriced calls are counted, not $0."""
    try:
        billing_month(month)
    except ValueError as exc:
        fail(str(exc), code=2)
    chosen = file_format or _format_of(output)
    target = _target(output, f"muster-focus-{month}.{chosen.value}")
    if target.exists() and not force:
        fail(f"{target} exists: pass --force to replace it, or choose another --output")
    with muster_session() as muster:
        response = muster.download("/api/v1/export/focus", month=month, format=chosen.value)
    _write(target, response.content, replace=force)
    summary = _summary(response.headers) | {"path": str(target), "format": chosen.value}
    emit(summary, as_json, _print_summary)


def _format_of(output: Path | None) -> ExportFormat:
    return ExportFormat.PARQUET if output is not None and output.suffix == ".parquet" else ExportFormat.CSV


def _target(output: Path | None, default_name: str) -> Path:
    """Where to write: `output` (a directory gets the default name), checked against escaping `.`."""
    here = Path.cwd().resolve()
    if output is None:
        return here / default_name
    target = output.expanduser()
    if target.is_dir():
        target = target / default_name
    resolved = target.resolve()
    if not target.is_absolute() and not resolved.is_relative_to(here):
        fail(
            f"{output} leads outside the current directory ({resolved}): "
            "give an absolute path to write there on purpose",
            code=2,
        )
    if not resolved.parent.is_dir():
        fail(f"{resolved.parent} is not a directory: create it first", code=2)
    return resolved


def _write(target: Path, content: bytes, *, replace: bool) -> None:
    """Write through a temporary file beside the target, so a failure never leaves half a file.

    Without `replace` the file is linked into place, which fails if a file appeared there meanwhile.
    """
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        if replace:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)
    except FileExistsError:
        fail(f"{target} exists: pass --force to replace it, or choose another --output")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _summary(headers: Mapping[str, str]) -> dict[str, Any]:
    return {
        "focus_version": headers["x-muster-focus-version"],
        "rows": int(headers["x-muster-rows"]),
        "priced_calls": int(headers["x-muster-priced-calls"]),
        "billed_cost_usd": headers["x-muster-billed-cost-usd"],
        "unpriced_calls": int(headers["x-muster-unpriced-calls"]),
        "unpriced_tokens": int(headers["x-muster-unpriced-tokens"]),
    }


def _print_summary(summary: Any) -> None:
    out.print(
        f"wrote {summary['rows']:,} FOCUS {summary['focus_version']} rows "
        f"({summary['priced_calls']:,} calls, ${summary['billed_cost_usd']}) to {summary['path']}"
    )
    if summary["unpriced_calls"]:
        out.print(
            f"[yellow]{summary['unpriced_calls']:,} unpriced calls ({summary['unpriced_tokens']:,} tokens) "
            "left out[/yellow]: they have no price yet; add one in the price overrides and run the jobs again"
        )
