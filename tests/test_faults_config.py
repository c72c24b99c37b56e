"""A corrupted or half-written muster.toml or registry file: a clear error naming the file and line,
nothing started and nothing changed. And the warehouse opened by a second server: refused clearly,
the first one unaffected."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from muster.cli import app
from tests.faults_support import Serve, query
from tests.payloads import trace_request
from tests.test_crash import span_ids

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
runner = CliRunner()


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` and a digest of its bytes."""
    return {
        str(f.relative_to(directory)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(directory.rglob("*"))
        if f.is_file()
    }


@pytest.fixture(scope="module")
def stopped_data_dir(tmp_path_factory) -> Path:
    """A data directory a server created, holding a little telemetry; the server is stopped."""
    root = tmp_path_factory.mktemp("config")
    serve = Serve(root / "data", root / "first.log").start()
    serve.export(trace_request(5).SerializeToString())
    serve.stop()
    return root / "data"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'api_port = 8123\n[alerts.route]\nreceiver = "platf', "line 3"),  # cut mid-string
        (b"api_port = 8123\ndecode_workers = \n", "line 2"),  # cut after the equals sign
        (b"api_port = 8123\n[alerts.route\n", "line 2"),  # cut inside a table header
        (b'api_port = 8123\ndata_dir = "d\xc3', "utf-8"),  # cut inside a multi-byte character
    ],
)
def test_a_half_written_muster_toml_stops_serve_naming_file_and_line(
    stopped_data_dir, tmp_path, content, expected
):
    config = tmp_path / "muster.toml"
    config.write_bytes(content)
    before = snapshot(stopped_data_dir)
    serve = Serve(stopped_data_dir, tmp_path / "serve.log", MUSTER_CONFIG=str(config))
    done = subprocess.run(
        [sys.executable, "-m", "muster", "serve"], env=serve.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert str(config) in done.stderr and expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert snapshot(stopped_data_dir) == before  # nothing started, nothing written
    assert not (stopped_data_dir / "server.json").exists()


def cli(data_dir: Path, *args: str):
    return runner.invoke(app, list(args), env={"MUSTER_DATA_DIR": str(data_dir), "COLUMNS": "200"})


@pytest.mark.parametrize(
    ("cut", "expected"),
    [
        ('  allowedModels: ["claude-sonnet-4', r"claims\.yaml:18: not valid YAML"),  # a list cut short
        ("  riskTier: high\n  allowedProviders: anth\x00\x00", r"claims\.yaml:\d+: "),  # zeroed tail
    ],
)
def test_a_half_written_registry_file_is_refused_naming_file_and_line_and_changes_nothing(
    tmp_path, cut, expected
):
    serve = Serve(tmp_path / "data", tmp_path / "serve.log").start()
    try:
        assert cli(serve.data_dir, "registry", "apply", "-f", str(DEMO)).exit_code == 0
        agents = serve.api("GET", "/api/v1/agents").json()
        history = serve.api("GET", "/api/v1/agents/claims-triage/history").json()
        broken = tmp_path / "registry"
        shutil.copytree(DEMO, broken)
        claims = broken / "agents" / "claims.yaml"
        text = claims.read_text()
        start = text.index(cut.split("\n")[0].split("[")[0])
        claims.write_text(text[:start] + cut)  # the rest of the file never made it to disk
        applied = cli(serve.data_dir, "registry", "apply", "-f", str(broken))
        assert applied.exit_code != 0, applied.output
        assert re.search(expected, applied.output) and "nothing was changed" in applied.output, applied.output
        assert serve.api("GET", "/api/v1/agents").json() == agents  # all or nothing: nothing
        assert serve.api("GET", "/api/v1/agents/claims-triage/history").json() == history
        serve.stop()
    finally:
        serve.ensure_stopped()


def test_a_second_server_on_the_same_warehouse_is_refused_and_the_first_carries_on(tmp_path):
    first = Serve(tmp_path / "data", tmp_path / "first.log").start()
    try:
        runtime = (first.data_dir / "server.json").read_text()
        token = first.token()
        second = Serve(first.data_dir, tmp_path / "second.log")
        done = subprocess.run(
            [sys.executable, "-m", "muster", "serve"],
            env=second.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "in use by another process" in done.stderr and "muster.duckdb" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        # the first server's runtime file and token are untouched; it still ingests and answers
        assert (first.data_dir / "server.json").read_text() == runtime
        assert first.token() == token
        sent = trace_request(20).SerializeToString()
        first.export(sent)
        assert first.api("GET", "/api/v1/status").status_code == 200
        first.stop()
    finally:
        first.ensure_stopped()
    stored = {row[0] for row in query(first.data_dir / "muster.duckdb", "SELECT span_id FROM spans")}
    assert stored == set(span_ids(sent))
