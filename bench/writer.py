"""Replay of the DuckDB writer: the CPU and wall time it spends per span, by phase.

Decodes `--requests` benchmark requests (`bench/genai_load.py`, 1,000 spans each) with the
server's decoder, then commits them with `warehouse.writer.Writer` into a fresh warehouse opened
as the server opens it (256MB memory limit, 1GB checkpoint threshold), in groups of `--group`
requests — what the writer takes at a time at max load. Each phase is timed: the INSERTs (with
the retry anti-join), the COMMIT (the write-ahead log), and a final CHECKPOINT (folding the WAL
into the file, which the server does every ~650k spans), so the total is what a span costs the
writer. CPU is the process's (the writer thread and DuckDB's threads); decode is not counted.

    python bench/writer.py [--requests 400] [--group 20] [--repeat 2] [--set NAME=VALUE] [--plain] [--json]

`--plain` inserts without the anti-join, to measure what storing the rows costs DuckDB itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa

from bench.genai_load import RequestStream, build_templates
from collector.decode import decode
from warehouse.database import open_warehouse
from warehouse.writer import WriteBatch, Writer

LIMIT = 64 * 1024 * 1024


class _Clock:
    """Wall and process-CPU seconds accumulated per phase."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def add(self, phase: str, wall: float, cpu: float) -> None:
        self.wall[phase] = self.wall.get(phase, 0.0) + wall
        self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _tables(requests: int) -> list[pa.Table]:
    stream = RequestStream(build_templates())
    return [decode("traces", stream.next_body()[0], "protobuf", None, LIMIT).table for _ in range(requests)]


def _plain_insert(writer: Writer):
    """The writer's INSERT without the retry anti-join: what storing the rows alone costs DuckDB."""

    def insert(table: str, rows: pa.Table) -> int:
        writer._con.register("incoming", writer._resources.keyed(rows, writer._unseen))
        try:
            sql = f"INSERT INTO {table} BY NAME SELECT *, now() AS received_at, $seq AS ingest_seq"
            sql += " FROM incoming"
            return writer._con.execute(sql, {"seq": writer._seq}).fetchall()[0][0]
        finally:
            writer._con.unregister("incoming")

    return insert


def replay(
    tables: list[pa.Table], group: int, directory: Path, settings: list[str], plain: bool = False
) -> dict[str, object]:
    """Commit `tables` in groups into a fresh warehouse under `directory`; the figures per row."""
    con = open_warehouse(directory / "replay.duckdb", memory_limit="256MB", checkpoint_threshold="1GB")
    for setting in settings:  # an experiment: `--set name=value`, a DuckDB setting
        name, value = setting.split("=", 1)
        con.execute(f"SET {name} = ?", [value])
    writer = Writer(con.cursor())
    clock = _Clock()
    insert = _plain_insert(writer) if plain else writer._insert

    def timed_insert(table: str, rows: pa.Table) -> int:
        wall, cpu = _now()
        stored = insert(table, rows)
        clock.add("insert", time.perf_counter() - wall, time.process_time() - cpu)
        return stored

    writer._insert = timed_insert  # type: ignore[method-assign]
    stored = 0
    for first in range(0, len(tables), group):
        batches = [WriteBatch("spans", rows) for rows in tables[first : first + group]]
        wall, cpu = _now()
        stored += writer._commit(batches)
        clock.add("commit_total", time.perf_counter() - wall, time.process_time() - cpu)
    wal = directory / "replay.duckdb.wal"
    wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
    wall, cpu = _now()
    con.execute("CHECKPOINT")
    clock.add("checkpoint", time.perf_counter() - wall, time.process_time() - cpu)
    file_mb = (directory / "replay.duckdb").stat().st_size / 2**20
    con.close()
    for figures in (clock.wall, clock.cpu):
        figures["commit"] = figures.pop("commit_total") - figures["insert"]
        figures["total"] = figures["insert"] + figures["commit"] + figures["checkpoint"]
    us = {
        f"{kind}_{phase}": round(seconds / stored * 1e6, 2)
        for kind, figures in (("wall", clock.wall), ("cpu", clock.cpu))
        for phase, seconds in figures.items()
    }
    return {"rows": stored, "wal_mb": round(wal_mb, 1), "file_mb": round(file_mb, 1), **us}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="1,000-span requests to replay")
    parser.add_argument("--group", type=int, default=20, help="requests per commit")
    parser.add_argument("--repeat", type=int, default=2, help="replays, each into a fresh file")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a DuckDB setting")
    parser.add_argument(
        "--plain", action="store_true", help="INSERT without the retry anti-join: DuckDB's own cost"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    tables = _tables(args.requests)
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(replay(tables, args.group, Path(tmp), args.set, args.plain))
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"load_average_1m": load, "runs": runs}))
        return 0
    plain = ", plain INSERT (no anti-join)" if args.plain else ""
    shape = f"{args.requests} requests, {args.group} per commit{plain}"
    print(f"load average (1 min) {load:.2f}; µs per row; {shape}")
    for run in runs:
        print(
            f"rows {run['rows']:,}  WAL {run['wal_mb']} MB  file {run['file_mb']} MB  "
            + "  ".join(
                f"{kind} insert {run[f'{kind}_insert']} commit {run[f'{kind}_commit']}"
                f" checkpoint {run[f'{kind}_checkpoint']} total {run[f'{kind}_total']}"
                for kind in ("cpu", "wall")
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
