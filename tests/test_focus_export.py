"""FOCUS export end to end: OTLP in, the cost job, `muster export focus` and the API out.

A real server with the fixture registry receives agent traces over OTLP/HTTP and prices them with
the real cost job; the exported files are checked against `muster spend` to the last decimal and
by the FinOps Foundation's `focus-validator` (FOCUS 1.0, the newest version it checks), run as its
own command line in a virtualenv of its own (tests/focus-validator.txt says why).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import polars as pl
import pytest

from analytics.focus import CUSTOM_COLUMNS, FOCUS_COLUMNS, PRICED_CALL_INPUT_COLUMNS, focus_rows
from registry import Registry, load_paths
from tests.conftest import start_server
from tests.test_access import admin_headers, bearer, new_token
from tests.test_costs_job import FIXTURE, Call, agent_trace, cli, run_job, send, send_fleet

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = Path(__file__).parent / "focus-validator.txt"
VALIDATOR_VENV = Path(os.environ.get("MUSTER_FOCUS_VALIDATOR_VENV", ROOT / ".venv" / "focus-validator"))

# focus-validator 1.0.0 still names five FOCUS 1.0 columns as FOCUS 0.5 did; the specification
# (and this export) call them ProviderName, PublisherName, InvoiceIssuerName, ResourceId and
# ChargeCategory. ChargeType appears only in the SQL of its SkuPriceId check.
PRE_1_0_NAMES = {
    "Provider": "ProviderName",
    "Publisher": "PublisherName",
    "InvoiceIssuer": "InvoiceIssuerName",
    "ResourceID": "ResourceId",
    "ChargeType": "ChargeCategory",
}
_PRE_1_0_NAME = re.compile(r"\b(" + "|".join(PRE_1_0_NAMES) + r")\b")


@dataclass(frozen=True)
class Report:
    checks: int
    failed: set[str]


class FocusValidator:
    """The `focus-validator` command in its own virtualenv, reporting through its JUnit output."""

    def __init__(self, venv: Path, work: Path) -> None:
        self.command = venv / "bin" / "focus-validator"
        self.stock_rules = Path(
            _venv_output(venv, "import focus_validator.validator as v; print(v.DEFAULT_VERSION_SETS_PATH)")
        )
        # it reads its currency codes by a path relative to its package's parent directory
        self.cwd = self.stock_rules.parents[2]
        self.spec_rules = _spec_named_rules(self.stock_rules, work / "rules")
        self.work = work

    def validate(self, data: Path, rules: Path) -> Report:
        report = self.work / f"{data.name}-{rules.name}.xml"
        args = [str(self.command), "--data-file", str(data.resolve()), "--validate-version", "1.0"]
        args += [
            "--rule-set-path",
            str(rules),
            "--output-type",
            "unittest",
            "--output-destination",
            str(report),
        ]
        ran = subprocess.run(args, cwd=self.cwd, capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr
        root = ET.parse(report).getroot()
        failed = {
            case.get("name", "").split(" :: ")[0]
            for case in root.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None
        }
        assert int(root.get("errors", "0")) == 0 or failed, ET.tostring(root, encoding="unicode")
        return Report(checks=int(root.get("tests", "0")), failed=failed)


def _venv_output(venv: Path, code: str) -> str:
    return subprocess.check_output([str(venv / "bin" / "python"), "-c", code], text=True).strip()


def _spec_named_rules(stock: Path, target: Path) -> Path:
    """The validator's own FOCUS 1.0 rules, with only the pre-1.0 column names corrected."""
    shutil.copytree(stock / "1.0", target / "1.0")
    for rule in (target / "1.0").glob("*.yaml"):
        rule.write_text(_PRE_1_0_NAME.sub(lambda found: PRE_1_0_NAMES[found[1]], rule.read_text()))
    return target


@pytest.fixture(scope="session")
def focus_validator(tmp_path_factory) -> FocusValidator:
    """The validator, installed from the package registry into its virtualenv on first use."""
    if not (VALIDATOR_VENV / "bin" / "focus-validator").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VALIDATOR_VENV)], check=True)
        pip = [str(VALIDATOR_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]
        installed = subprocess.run(pip, capture_output=True, text=True, timeout=900)
        assert installed.returncode == 0, f"cannot install focus-validator:\n{installed.stderr}"
    return FocusValidator(VALIDATOR_VENV, tmp_path_factory.mktemp("focus-validator"))


@pytest.fixture
def costed(tmp_path):
    """A server with the fixture registry applied, jobs only on demand, and no price overrides."""
    data_dir = tmp_path / "data"
    server = start_server(
        data_dir, decode_workers=1, jobs_interval_seconds=0, prices_file=tmp_path / "prices.yaml"
    )
    applied = cli(data_dir, "registry", "apply", "-f", str(FIXTURE))
    assert applied.exit_code == 0, applied.output
    yield server
    server.stop()


UNREGISTERED = ({"service.name": "skunkworks"}, "Mystery")


def seed(server) -> str:
    """The fleet of test_costs_job plus one call no catalogue prices; the month it all happened in."""
    send_fleet(server)
    send(server, agent_trace(UNREGISTERED, [Call("no-such-model-7b", 400, 40)]))
    ran = run_job(server)
    assert ran["calls"] == 8 and ran["unpriced_calls"] == 1
    months = server.query("SELECT DISTINCT strftime(day, '%Y-%m') FROM priced_calls")
    assert len(months) == 1, months  # the traces start 5 s ago: one month unless run at midnight
    return months[0][0]


def spend_total(server, month: str, headers: dict) -> tuple[Decimal, int, int]:
    """`muster spend`'s exact total over the month, its calls and its unpriced calls, via the API."""
    first = f"{month}-01"
    last = server.query("SELECT (($m::DATE + INTERVAL 1 MONTH) - INTERVAL 1 DAY)::DATE", {"m": first})[0][0]
    answer = httpx.get(
        server.api_url + "/api/v1/spend",
        params={"by": "day", "from": first, "to": last.isoformat()},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    rows = answer.json()
    return (
        sum((Decimal(row["cost_usd"]) for row in rows), Decimal(0)),
        sum(row["calls"] for row in rows),
        sum(row["unpriced_calls"] for row in rows),
    )


def csv_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode())))


def export(server, month: str, headers: dict, file_format: str = "csv") -> httpx.Response:
    return httpx.get(
        server.api_url + "/api/v1/export/focus",
        params={"month": month, "format": file_format},
        headers=headers,
    )


def test_the_export_totals_equal_spend_and_pass_the_focus_validator(
    costed, focus_validator, tmp_path, monkeypatch
):
    month = seed(costed)
    monkeypatch.chdir(tmp_path)
    data_dir = costed.server.settings.data_dir
    written = cli(data_dir, "export", "focus", "--month", month, "--json")
    assert written.exit_code == 0, written.output
    summary = json.loads(written.output)
    csv_file = tmp_path / f"muster-focus-{month}.csv"
    assert Path(summary["path"]) == csv_file and summary["unpriced_calls"] == 1
    rows = csv_rows(csv_file.read_bytes())
    assert list(rows[0]) == [*FOCUS_COLUMNS, *CUSTOM_COLUMNS]

    total, calls, unpriced = spend_total(costed, month, admin_headers(costed))
    billed = sum((Decimal(row["BilledCost"]) for row in rows), Decimal(0))
    assert billed == total == Decimal(summary["billed_cost_usd"]) and total > 0
    assert sum(int(row["x_Calls"]) for row in rows) == calls - unpriced == 7
    for row in rows:  # no discounts or commitments: every cost is what was billed
        assert row["BilledCost"] == row["EffectiveCost"] == row["ListCost"] == row["ContractedCost"]
        assert Decimal(row["ConsumedQuantity"]) == int(row["x_InputTokens"]) + int(row["x_OutputTokens"])
    grain = {(r["ChargePeriodStart"], r["ResourceId"], r["ProviderName"], r["SkuId"]) for r in rows}
    assert len(grain) == len(rows)
    assert "no-such-model-7b" not in {row["SkuId"].split("/", 1)[1] for row in rows}  # never as $0
    claims = next(row for row in rows if row["ResourceId"] == "claims-triage")
    assert (claims["SubAccountId"], claims["SubAccountName"], claims["ResourceName"]) == (
        "claims",
        "Claims",
        "Claims Triage",
    )
    assert json.loads(claims["Tags"])["cost_centre"] == "CC-4100"
    mystery = next(row for row in rows if row["ResourceType"] == "Unregistered AI Agent")
    assert mystery["SubAccountId"] == "" and "Mystery" in mystery["ResourceId"]

    parquet = export(costed, month, admin_headers(costed), "parquet")
    assert parquet.status_code == 200, parquet.text
    assert parquet.headers["content-disposition"] == f'attachment; filename="muster-focus-{month}.parquet"'
    parquet_file = tmp_path / "export.parquet"
    parquet_file.write_bytes(parquet.content)
    frame = pl.read_parquet(parquet_file)
    assert frame["BilledCost"].to_list() == [float(row["BilledCost"]) for row in rows]

    for data in (csv_file, parquet_file):
        corrected = focus_validator.validate(data, focus_validator.spec_rules)
        assert corrected.checks == len(list((focus_validator.stock_rules / "1.0").glob("*.yaml")))
        assert corrected.failed == set(), f"{data.name} fails FOCUS 1.0 checks: {sorted(corrected.failed)}"
        # the validator's rules as shipped object to nothing but the four column names they predate
        stock = focus_validator.validate(data, focus_validator.stock_rules)
        assert stock.failed == {f"{name}_Required" for name in PRE_1_0_NAMES if name != "ChargeType"} | {
            "SkuPriceId_Nullable"  # its SQL reads ChargeType, which a FOCUS 1.0 file does not have
        }


def test_a_finance_token_of_one_department_exports_only_its_rows(costed):
    month = seed(costed)
    finance = bearer(new_token(costed, "finance", department_id="claims"))
    answer = export(costed, month, finance)
    assert answer.status_code == 200, answer.text
    rows = csv_rows(answer.content)
    assert rows and {row["SubAccountId"] for row in rows} == {"claims"}
    assert {row["ResourceId"] for row in rows} == {"claims-triage"}
    total, _, _ = spend_total(costed, month, finance)
    assert sum((Decimal(row["BilledCost"]) for row in rows), Decimal(0)) == total
    assert Decimal(answer.headers["x-muster-billed-cost-usd"]) == total
    assert answer.headers["x-muster-unpriced-calls"] == "0"  # the unpriced call is not theirs
    owner = bearer(new_token(costed, "owner", agent_id="submission-intake"))
    assert {row["ResourceId"] for row in csv_rows(export(costed, month, owner).content)} == {
        "submission-intake"
    }
    assert export(costed, month, {}).status_code == 401


@pytest.mark.parametrize(
    "params, message",
    [
        ({"month": "2026-13"}, "YYYY-MM"),
        ({"month": "2026-11-01"}, "YYYY-MM"),
        ({"month": "november"}, "YYYY-MM"),
        ({"month": "2026-1"}, "YYYY-MM"),
        ({"month": "2026-11", "format": "xlsx"}, "csv, parquet"),
    ],
)
def test_a_bad_month_or_format_is_refused_with_a_clear_message(server, params, message):
    answer = httpx.get(server.api_url + "/api/v1/export/focus", params=params, headers=admin_headers(server))
    assert answer.status_code == 400 and message in answer.json()["detail"]


def test_the_cli_refuses_bad_months_escaping_paths_and_overwrites(costed, tmp_path, monkeypatch):
    month = seed(costed)
    data_dir = costed.server.settings.data_dir
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    bad = cli(data_dir, "export", "focus", "--month", "2026-1")
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    escaping = cli(data_dir, "export", "focus", "--month", month, "-o", "../outside.csv")
    assert escaping.exit_code == 2 and "outside the current directory" in escaping.output
    assert not (tmp_path / "outside.csv").exists()
    first = cli(data_dir, "export", "focus", "--month", month, "-o", "sub/../spend.csv")
    assert first.exit_code == 0 and (work / "spend.csv").stat().st_size > 0, first.output
    (work / "spend.csv").write_text("keep me")
    again = cli(data_dir, "export", "focus", "--month", month, "-o", "spend.csv")
    assert again.exit_code == 1 and "--force" in again.output
    assert (work / "spend.csv").read_text() == "keep me"
    forced = cli(data_dir, "export", "focus", "--month", month, "-o", "spend.csv", "--force")
    assert forced.exit_code == 0 and (work / "spend.csv").read_text().startswith("AvailabilityZone,")
    absolute = cli(data_dir, "export", "focus", "--month", month, "-o", str(tmp_path / "f.parquet"))
    assert absolute.exit_code == 0, absolute.output
    assert pl.read_parquet(tmp_path / "f.parquet").height == len(csv_rows((work / "spend.csv").read_bytes()))
    assert sorted(p.name for p in work.iterdir()) == ["spend.csv"]  # no partial files left behind


def priced_call(**fields) -> dict:
    call = {
        "day": date(2026, 11, 3),
        "agent_id": "claims-triage",
        "observed_identity": "claims/triage-api",
        "department_id": "claims",
        "cost_centre": "CC-4100",
        "environment": "production",
        "provider": "openai",
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 10,
        "total_tokens": 110,
        "cache_read_tokens": None,
        "cache_write_tokens": None,
        "reasoning_tokens": None,
        "cost_usd": Decimal("0.000000000001"),
        "price_source": "catalogue",
    }
    return call | fields


def test_rows_group_calls_by_day_agent_provider_and_model_and_count_unpriced_ones_aside():
    calls = [
        priced_call(),
        priced_call(cost_usd=Decimal("123456789.123456789012"), price_source="override", total_tokens=None),
        priced_call(day=date(2026, 11, 4)),
        priced_call(environment="staging"),
        priced_call(day=date(2026, 11, 4), environment=None),  # claims-triage is registered for two
        priced_call(
            agent_id=None,
            department_id=None,
            cost_centre=None,
            environment=None,
            observed_identity="skunkworks",
        ),
        priced_call(
            model="mystery-1", cost_usd=None, price_source="unpriced", input_tokens=7, total_tokens=9
        ),
    ]
    frame = pl.DataFrame(calls, schema_overrides={"cost_usd": pl.Decimal(38, 12)}).select(
        PRICED_CALL_INPUT_COLUMNS
    )
    export = focus_rows(frame, load_paths([FIXTURE]), month=date(2026, 11, 1))
    rows = export.rows.to_dicts()
    assert [(r["ChargePeriodStart"].day, r["ResourceId"], r["x_Calls"]) for r in rows] == [
        (3, "claims-triage", 2),
        (3, "claims-triage", 1),
        (3, "skunkworks", 1),
        (4, "claims-triage", 1),
        (4, "claims-triage", 1),
    ]
    environments = [json.loads(r["Tags"]).get("environment") for r in rows]
    assert environments == ["production", "staging", None, "production", None]
    assert rows[0]["BilledCost"] == Decimal("123456789.123456789013")  # exact, not a float sum
    assert rows[0]["ConsumedQuantity"] == 220 and rows[0]["x_PriceSource"] == "catalogue,override"
    assert rows[0]["SkuPriceId"] == "openai/gpt-4o:catalogue,override"
    assert rows[2]["SubAccountId"] is None and json.loads(rows[2]["Tags"]) == {"agent": "skunkworks"}
    assert (export.unpriced_calls, export.unpriced_tokens) == (1, 9)
    assert export.summary()["billed_cost_usd"] == "123456789.123456789017"
    empty = focus_rows(frame.clear(), Registry(), month=date(2026, 11, 1))
    assert empty.summary() | {"month": None} == {
        "focus_version": "1.0",
        "month": None,
        "rows": 0,
        "priced_calls": 0,
        "billed_cost_usd": "0",
        "unpriced_calls": 0,
        "unpriced_tokens": 0,
    }
