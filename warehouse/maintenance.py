"""Keeping the warehouse in shape while the server runs: retention, and consistent online backups.

Retention deletes raw telemetry after `raw_days` and cost facts after `cost_days`: the cost job has
derived what it needs from spans within minutes, and finance reports read the cost facts, so the
bulky raw rows can go long before the money does. Backups copy the whole database into a new file
from inside the server process (the only process that may open the warehouse), in one read
transaction: the copy is a consistent snapshot even while exports are being committed.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

Cursor = duckdb.DuckDBPyConnection

__all__ = [
    "BACKUP_NAME",
    "COST_TABLES",
    "RAW_TABLES",
    "BackupError",
    "apply_retention",
    "backup_path",
    "backup_to",
    "restore_from",
]

# Raw telemetry and cost facts, each with the column that dates a row (docs/operations.md lists them).
RAW_TABLES = {
    "spans": "start_time",
    "metric_points": "time",
    "log_records": "time",
    "ingest_rejects": "received_at",
}
COST_TABLES = {"priced_calls": "start_time", "trace_agents": "last_seen", "daily_costs": "day"}
BACKUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.duckdb$")


class BackupError(ValueError):
    """A backup cannot be made as asked; the message says why."""


def apply_retention(
    cur: Cursor, *, now: datetime, raw_days: int, cost_days: int, span_grace: timedelta = timedelta(0)
) -> dict[str, int]:
    """Delete raw rows older than `raw_days` and cost facts older than `cost_days`; rows deleted per table.

    A span received less than `span_grace` ago stays, however old its timestamps: a trace exported in
    parts (its root span ends, and is exported, last) is then still whole when its last part
    arrives, so the cost job prices it whole again instead of without the calls deleted meanwhile.
    """
    deleted = {}
    for tables, days in ((RAW_TABLES, raw_days), (COST_TABLES, cost_days)):
        cutoff = (now - timedelta(days=days)).replace(tzinfo=None)
        for table, column in tables.items():
            # spans the cost job has not read yet stay, however old: their cost must be counted first
            priced = " AND ingest_seq <= $priced AND received_at < $received" if table == "spans" else ""
            rows = cur.execute(
                f"DELETE FROM {table} WHERE {column} < $cutoff{priced}",  # noqa: S608 - constant names
                {"cutoff": cutoff if column != "received_at" else now - timedelta(days=days)}
                | ({"priced": _cost_watermark(cur), "received": now - span_grace} if priced else {}),
            ).fetchall()
            deleted[table] = rows[0][0] if rows else 0
    return deleted


def _cost_watermark(cur: Cursor) -> int:
    rows = cur.execute("SELECT watermark FROM job_state WHERE job = 'costs'").fetchall()
    return rows[0][0] if rows else 0


def backup_path(directory: Path, name: str | None, now: datetime) -> Path:
    """Where a backup called `name` goes: always a new file directly inside `directory`.

    A name is a plain file name ending in `.duckdb` — no directories, no `..` — so a request can
    never write outside the backup directory or over an existing file.
    """
    name = name or f"muster-{now:%Y%m%dT%H%M%SZ}.duckdb"
    if not BACKUP_NAME.fullmatch(name):  # not match(): `$` lets a final newline through
        raise BackupError(
            f"{name!r} is not a backup name: use letters, digits, '.', '_', '-', ending in .duckdb"
        )
    target = directory / name
    if target.exists():
        raise BackupError(f"a backup called {name} already exists: choose another name")
    return target


def backup_to(cur: Cursor, target: Path) -> dict[str, int]:
    """Copy every table into a new DuckDB file at `target`, as one snapshot; row counts per table."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source = cur.execute("SELECT current_database()").fetchall()[0][0]
    cur.execute("ATTACH $path AS muster_backup", {"path": str(target)})
    try:
        cur.execute("BEGIN")
        cur.execute(f'COPY FROM DATABASE "{source}" TO muster_backup')
        counts = {
            table: cur.execute(f'SELECT count(*) FROM muster_backup.main."{table}"').fetchall()[0][0]  # noqa: S608
            for (table,) in cur.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'muster_backup' ORDER BY 1"
            ).fetchall()
        }
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    finally:
        cur.execute("DETACH muster_backup")
    return counts


def restore_from(backup: Path, warehouse: Path, now: datetime) -> Path | None:
    """Replace the warehouse file by a backup; the file replaced is kept beside it. Returns its new path.

    Run only while no server has the warehouse open (DuckDB's lock refuses otherwise). The backup is
    opened first, so a file that is not a Muster warehouse is refused before anything is moved.
    """
    try:
        with duckdb.connect(str(backup), read_only=True) as con:
            con.execute("SELECT count(*) FROM schema_migrations").fetchall()
    except duckdb.Error as exc:
        raise BackupError(f"{backup} is not a Muster warehouse backup: {exc}") from None
    kept = None
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    if warehouse.exists():
        kept = warehouse.with_name(f"{warehouse.stem}.before-restore-{now:%Y%m%dT%H%M%SZ}{warehouse.suffix}")
        warehouse.rename(kept)
        wal = warehouse.with_name(warehouse.name + ".wal")
        if wal.exists():
            wal.rename(kept.with_name(kept.name + ".wal"))
    shutil.copyfile(backup, warehouse)
    return kept
