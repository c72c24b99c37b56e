"""Decode workers load the decoder and nothing else: no DuckDB, gRPC, pandas or CLI in each of them.

Every worker is a spawned interpreter, so whatever it imports is paid once per worker in RSS
(before this was guarded, ~222 MiB a worker under the `muster` console script, ~79 MiB after).
A spawned worker also re-imports its parent's main module, so the server is started here as users
start it, by the `muster` console script, not inside the test process.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.faults_support import Serve

# Shared libraries that only the server's side needs; a worker mapping one has imported it.
SERVER_ONLY = ("duckdb", "pandas", "cygrpc", "polars", "uvloop", "httptools", "streamlit")


def _spawned_children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").glob("*/children")  # (children are listed per thread)
    children = [int(child) for task in tasks for child in task.read_text().split()]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_the_muster_scripts_decode_workers_map_none_of_the_servers_libraries(tmp_path: Path) -> None:
    serve = Serve(tmp_path / "data", tmp_path / "serve.log", MUSTER_DECODE_WORKERS="2")
    serve.command = [str(Path(sys.executable).parent / "muster"), "serve"]
    serve.start()  # ready only once every worker has imported the decoder (Ingest.start)
    try:
        workers = _spawned_children(serve.process.pid)
        assert len(workers) == 2
        for pid in workers:
            mapped = Path(f"/proc/{pid}/maps").read_text().splitlines()
            libraries = {line.split()[-1] for line in mapped}
            assert sorted(lib for lib in libraries if any(name in lib for name in SERVER_ONLY)) == [], pid
            assert any("pyarrow" in lib for lib in libraries)  # the decoder itself is loaded
    finally:
        serve.stop()
