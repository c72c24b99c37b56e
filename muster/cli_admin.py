"""`muster backup` and `muster restore`: a consistent copy of the warehouse, and putting one back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from muster.cli_common import JsonOption, emit, fail, muster_session, out, settings_or_exit


def backup(
    name: Annotated[
        str | None, typer.Argument(help="File name ending in .duckdb (default: muster-<UTC time>.duckdb).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Copy the whole warehouse into <data dir>/backups/, consistently, even while the server runs."""
    with muster_session() as muster:
        result = muster.post("/api/v1/admin/backup", {"name": name})
    emit(
        result,
        as_json,
        lambda r: out.print(
            f"backed up {sum(r['tables'].values()):,} rows of {len(r['tables'])} tables to {r['path']}"
            f" in {r['duration_s']:.1f} s"
        ),
    )


def restore(
    backup_file: Annotated[Path, typer.Argument(help="A backup made by `muster backup`.", exists=True)],
) -> None:
    """Replace the warehouse by a backup (stop the server first); the replaced file is kept beside it."""
    from muster.client import answers_at, api_url
    from warehouse.maintenance import BackupError, restore_from

    settings = settings_or_exit()
    url = api_url(settings)
    if url and answers_at(url, settings):
        fail(f"a Muster server is running at {url} on this data directory: stop it, then restore")
    try:
        kept = restore_from(backup_file, settings.warehouse_path, datetime.now(UTC))
    except BackupError as exc:
        fail(str(exc))
        return
    out.print(f"restored {settings.warehouse_path} from {backup_file}")
    if kept:
        out.print(f"the warehouse it replaced is kept as {kept}")
