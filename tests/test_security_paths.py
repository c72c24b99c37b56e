"""File paths in the export and backup commands cannot escape their directory (beyond the cases of
tests/test_focus_export.py and tests/test_maintenance.py): names with a trailing newline, NUL,
look-alike slashes or encoded dots, and symbolic links that lead out."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import start_server
from tests.test_access import admin_headers
from tests.test_costs_job import cli, run_job, send_fleet

SNEAKY_NAMES = [
    "x.duckdb\n",  # `$` in a regex also matches before a final newline
    "x.duckdb\x00.txt",
    "..duckdb",
    ".hidden.duckdb",
    "..%2fx.duckdb",
    "\u2215etc\u2215x.duckdb",  # DIVISION SLASH, a look-alike
    "\uff0e\uff0e\uff0fx.duckdb",  # full-width dots and slash
    "a\\..\\x.duckdb",
    "x" * 300 + ".duckdb",
    "",
]


@pytest.mark.parametrize("name", SNEAKY_NAMES, ids=repr)
def test_backup_names_that_are_not_plain_file_names_are_refused(server, name):
    backups = server.server.settings.data_dir / "backups"
    before = sorted(backups.iterdir()) if backups.exists() else []
    response = httpx.post(
        server.api_url + "/api/v1/admin/backup", json={"name": name}, headers=admin_headers(server)
    )
    if name == "":  # empty means "the default name", which is a plain name inside backups/
        assert response.status_code == 201 and response.json()["path"].startswith(str(backups))
        return
    assert response.status_code == 422, (name, response.text)
    assert (sorted(backups.iterdir()) if backups.exists() else []) == before


def test_the_backup_command_refuses_an_escaping_name(server, tmp_path):
    data_dir = server.server.settings.data_dir
    done = cli(data_dir, "backup", "../escaped.duckdb")
    assert done.exit_code != 0 and "not a backup name" in done.output, done.output
    assert not (data_dir / "escaped.duckdb").exists()


@pytest.fixture
def costed(tmp_path):
    server = start_server(tmp_path / "data", decode_workers=1, jobs_interval_seconds=0)
    send_fleet(server)
    run_job(server)
    yield server
    server.stop()


def test_the_export_refuses_a_symlinked_directory_that_leads_outside(costed, tmp_path, monkeypatch):
    month = costed.query("SELECT max(strftime(day, '%Y-%m')) FROM priced_calls")[0][0]
    data_dir = costed.server.settings.data_dir
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (work / "reports").symlink_to(outside)
    monkeypatch.chdir(work)
    escaping = cli(data_dir, "export", "focus", "--month", month, "-o", "reports/spend.csv")
    assert escaping.exit_code == 2 and "outside the current directory" in escaping.output, escaping.output
    assert list(outside.iterdir()) == []

    # a file that is a link to somewhere else: refused, and with --force the link itself is replaced
    victim = outside / "victim.txt"
    victim.write_text("untouched")
    (work / "spend.csv").symlink_to(victim)
    linked = cli(data_dir, "export", "focus", "--month", month, "-o", "spend.csv", "--force")
    assert linked.exit_code == 2 and "outside the current directory" in linked.output, linked.output
    assert victim.read_text() == "untouched"
