"""Settings: defaults without a file, MUSTER_* variables, muster.toml, and clear errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from muster.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(__import__("os").environ):
        if name.startswith("MUSTER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_need_no_file():
    settings = load_settings()
    assert settings.data_dir == Path("data")
    assert settings.warehouse_path == Path("data/muster.duckdb")
    assert (settings.host, settings.otlp_grpc_port, settings.otlp_http_port, settings.api_port) == (
        "127.0.0.1",
        4317,
        4318,
        8000,
    )
    assert settings.max_request_bytes == 64 * 1024 * 1024


def test_environment_variables_override(monkeypatch):
    monkeypatch.setenv("MUSTER_OTLP_GRPC_PORT", "14317")
    monkeypatch.setenv("MUSTER_HOST", "0.0.0.0")
    monkeypatch.setenv("MUSTER_DATA_DIR", "/srv/muster")
    settings = load_settings()
    assert (settings.otlp_grpc_port, settings.host, settings.data_dir) == (
        14317,
        "0.0.0.0",
        Path("/srv/muster"),
    )


def test_toml_file_is_read_and_environment_wins(monkeypatch, tmp_path):
    (tmp_path / "muster.toml").write_text("api_port = 9000\notlp_http_port = 14318\n")
    monkeypatch.setenv("MUSTER_API_PORT", "9100")
    settings = load_settings()
    assert (settings.api_port, settings.otlp_http_port) == (9100, 14318)


def test_bad_value_names_the_setting_and_the_value(monkeypatch):
    monkeypatch.setenv("MUSTER_OTLP_GRPC_PORT", "not-a-port")
    with pytest.raises(SettingsError, match=r"MUSTER_OTLP_GRPC_PORT.*'not-a-port'"):
        load_settings()


def test_unknown_toml_key_is_refused(tmp_path):
    (tmp_path / "muster.toml").write_text("api_prot = 9000\n")
    with pytest.raises(SettingsError, match="api_prot"):
        load_settings()


def test_bad_setting_stops_serve_with_the_message(tmp_path):
    env = {"MUSTER_API_PORT": "99999", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "muster", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "MUSTER_API_PORT" in result.stderr and "99999" in result.stderr


def test_every_setting_is_documented():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`(MUSTER_[A-Z_]+)`", doc))
    expected = {f"MUSTER_{name.upper()}" for name in Settings.model_fields}
    assert expected <= documented, f"missing from docs/configuration.md: {sorted(expected - documented)}"
