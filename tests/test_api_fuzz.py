"""The OpenAPI schema fuzzed with schemathesis against a running server: no input makes it fail (5xx).

Every operation of the live schema gets generated requests, as admin and with no token at all.
(Driven through hypothesis directly: schemathesis' pytest plugin does not run on pytest 9.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from typer.testing import CliRunner

from muster.cli import app
from tests.conftest import start_server

FIXTURE = Path(__file__).parent / "fixtures" / "registry"
EXAMPLES = 25  # per operation and run; raise locally for a longer fuzz


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    server = start_server(data_dir, decode_workers=0, auth_failure_limit=0)  # fuzz, unthrottled
    env = {"MUSTER_DATA_DIR": str(data_dir)}
    applied = CliRunner().invoke(app, ["registry", "apply", "-f", str(FIXTURE)], env=env)
    assert applied.exit_code == 0, applied.output
    yield server
    server.stop()


def operations(server) -> list:
    schema = schemathesis.openapi.from_url(server.api_url + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_survives_generated_input(fuzzed_server):
    token = (fuzzed_server.server.settings.data_dir / "admin.token").read_text().strip()
    found = operations(fuzzed_server)
    assert len(found) >= 15, [op.label for op in found]
    for operation in found:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def fuzz(case):
            for headers in ({"Authorization": f"Bearer {token}"}, {}):
                case.call_and_validate(
                    base_url=fuzzed_server.api_url, headers=headers, checks=[not_a_server_error]
                )

        fuzz()
