"""Steady traffic that never leaves the writer idle still gets its write-ahead log checkpointed.

Found by the soak (docs/reliability.md): at 160 spans/s the writer was never idle for 2 s, so the
WAL only grew (580 MB in 32 minutes, the database file still 12 KB) until `checkpoint_threshold`.
A lull in the queue now also checkpoints once the last checkpoint is `MAX_CHECKPOINT_AGE_SECONDS` old.
"""

from __future__ import annotations

import time

import grpc

from tests.conftest import start_server
from tests.faults_support import TRACES
from tests.payloads import trace_request
from warehouse import writer


def test_a_steady_trickle_of_exports_gets_the_wal_checkpointed(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "MAX_CHECKPOINT_AGE_SECONDS", 0.5)
    server = start_server(tmp_path / "data", decode_workers=0, jobs_interval_seconds=0)
    database = tmp_path / "data" / "muster.duckdb"
    try:
        server.query("CHECKPOINT")
        before = database.stat().st_size
        with grpc.insecure_channel(server.grpc_endpoint) as channel:
            export = channel.unary_unary(TRACES)
            for _ in range(15):  # every 0.2 s: never the 2 s of quiet an idle checkpoint waits for
                export(trace_request(200, pad=500).SerializeToString(), timeout=30)
                time.sleep(0.2)
        assert database.stat().st_size > before  # the spans reached the file, not only the WAL
    finally:
        server.stop()
