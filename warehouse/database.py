"""Opening the DuckDB warehouse file and bringing its schema up to date.

The server process owns the file (DuckDB lets one process write, and no other process may even
read while it does). Inside that process the writer thread has the connection it was given and
every reader takes its own `cursor()`, as DuckDB asks of threads.
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path

import duckdb

from warehouse.errors import MigrationError, WarehouseError, WarehouseLocked

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def open_warehouse(
    path: Path,
    *,
    read_only: bool = False,
    memory_limit: str | None = None,
    checkpoint_threshold: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the warehouse at `path` and apply pending migrations.

    DuckDB's default checkpoint threshold (16 MiB of WAL) makes nearly every large group commit
    checkpoint, stalling ingest; the server raises it and checkpoints when the writer is idle.
    """
    config = {"memory_limit": memory_limit, "checkpoint_threshold": checkpoint_threshold}
    if read_only and not path.exists():
        raise WarehouseError(f"no warehouse at {path}: start `muster serve` once to create it")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(
            str(path), read_only=read_only, config={k: v for k, v in config.items() if v is not None}
        )
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseLocked(
                f"the warehouse {path} is in use by another process (is `muster serve` running?): {exc}"
            ) from exc
        raise WarehouseError(f"cannot open the warehouse {path}: {exc}") from exc
    if not read_only:
        # DuckDB draws a progress bar on stdout for long statements, such as a migration rebuilding
        # a table: it would litter the server's log and the CLI's output
        con.execute("SET enable_progress_bar = false")
        migrate(con)
    return con


def migrations() -> list[tuple[int, str, str]]:
    """The numbered migrations shipped with Muster, in order: (version, name, sql)."""
    found = []
    for entry in resources.files("warehouse.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; return their names."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    done = []
    for version, name, sql in migrations():
        if version in applied:
            continue
        log.info("applying migration %s", name)  # one may rebuild a large table: say why start-up waits
        try:
            con.execute("BEGIN")
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise MigrationError(f"migration {name} failed: {exc}") from exc
        done.append(name)
    return done
