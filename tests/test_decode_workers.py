"""Decode workers load the decoder and nothing else: no DuckDB, gRPC, pandas or CLI in each of them.

Every worker is a spawned interpreter, so whatever it imports is paid once per worker in RSS
(before this was guarded, ~222 MiB a worker under the `muster` console script, ~79 MiB after).
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from tests.conftest import start_server

# Shared libraries that only the server's side needs; a worker mapping one has imported it.
SERVER_ONLY = ("duckdb", "pandas", "cygrpc", "polars", "uvloop", "httptools")


def _spawned_children() -> list[int]:
    # (a child is listed under the thread that started it: the server runs in a thread)
    tasks = Path(f"/proc/{os.getpid()}/task").glob("*/children")
    children = [pid for task in tasks for pid in task.read_text().split()]
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def test_a_servers_decode_workers_map_none_of_the_servers_libraries(tmp_path: Path) -> None:
    before = set(_spawned_children())
    server = start_server(tmp_path / "data", decode_workers=2)
    try:
        workers = [pid for pid in _spawned_children() if pid not in before]
        assert len(workers) == 2
        for pid in workers:
            mapped = Path(f"/proc/{pid}/maps").read_text()
            assert [lib for lib in SERVER_ONLY if lib in mapped] == [], pid
            assert "pyarrow" in mapped  # the decoder itself is loaded (the warm-up saw to it)
    finally:
        server.stop()


def test_the_console_script_imports_the_cli_only_when_run() -> None:
    # A spawned worker re-imports the console script's module as its __main__.
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "muster"]
    module = script.value.split(":")[0]
    loaded = "sorted(m for m in ('muster.cli', 'duckdb', 'typer') if m in sys.modules)"
    probe = f"import sys, {module}; print({loaded})"
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"
