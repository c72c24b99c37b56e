"""`muster up --demo` end to end, as a user runs it: one subprocess on free ports, every planted case
found, a clean stop — and spend by department equal, to the cent, to the simulator's own ledgers
priced here independently.

The independent price: each ledger group (service × provider × models × UTC day × outcome) goes
through `genai_prices.calc_price` at its day's historic price, or through a custom model of
data/prices.yaml (read here with PyYAML, aliases applied first), and lands in the department whose
service selector in data/demo matches its service. No Muster pricing or attribution code is used.

Run alone: `.venv/bin/python -m pytest tests/test_up_demo.py -q` (about a minute and a half; the
35-day backfill of the demo fleet is most of it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml
from genai_prices import Usage, calc_price

from muster.fleet import PLANTED, UNREGISTERED, demo_fleet
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
PRICES = ROOT / "data" / "prices.yaml"
LIVE_RATE = "1"  # traces a second after the history: enough to see live spans arrive, cheap to send
START_BOUND_S = 600  # generous bounds for a 2-core machine shared with other sessions; not timings
STOP_BOUND_S = 120
CENT = Decimal("0.01")

# How the fleet's instrumentations spell providers → genai-prices provider ids; this test's own table.
CATALOGUE_PROVIDER = {
    "gcp.gemini": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
}


def muster(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "muster", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def default_sigint() -> None:
    # A shell that starts pytest in the background ignores SIGINT, and children inherit that;
    # Python installs its KeyboardInterrupt handler only over the default disposition.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Up:
    """A running `muster up --demo`: its process, its output lines, its API."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        ports = {name: free_port() for name in ("OTLP_GRPC", "OTLP_HTTP", "API", "DASHBOARD")}
        self.env = os.environ | {f"MUSTER_{name}_PORT": str(port) for name, port in ports.items()}
        self.env |= {"MUSTER_DATA_DIR": str(data_dir), "MUSTER_HOST": "127.0.0.1"}
        self.api = f"http://127.0.0.1:{ports['API']}"
        self.dashboard = f"http://127.0.0.1:{ports['DASHBOARD']}"
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "muster", "up", "--demo", "--rate", LIVE_RATE],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=default_sigint,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def wait_for(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_BOUND_S
        while not self._holds(check, what):
            assert self.process.poll() is None, f"muster up exited before {what}:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {what} within {START_BOUND_S} s:\n{self.output()}"
            time.sleep(0.5)

    def _holds(self, check: Callable[[], bool], what: str) -> bool:
        # a refused connection while waiting means the server went away: say what `up` printed
        try:
            return check()
        except httpx.HTTPError as exc:
            raise AssertionError(f"{exc!r} while waiting for {what}:\n{self.output()}") from exc

    def get(self, path: str, **params: object) -> Any:
        token = (self.data_dir / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        response = httpx.get(self.api + path, params=params, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def ledger(self, name: str) -> dict:
        return json.loads((self.data_dir / name).read_text())


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    running = Up(tmp_path_factory.mktemp("up-demo") / "data")
    try:
        running.wait_for("/readyz", lambda: answers(running.api + "/readyz"))
        running.wait_for("dashboard health", lambda: answers(running.dashboard + "/_stcore/health"))
        running.wait_for("'history loaded'", lambda: any("history loaded" in line for line in running.lines))
        yield running
    finally:
        if running.process.poll() is None:  # a test failed before stopping it: do not leave it behind
            running.process.terminate()
            running.process.wait(STOP_BOUND_S)


def test_every_planted_case_is_found(up: Up) -> None:
    findings = up.get("/api/v1/findings", limit=1000)["findings"]

    def of(rule: str) -> list[dict]:
        return [f for f in findings if f["rule"] == rule]

    def agents(rule: str) -> set[str]:
        return {f["agent_id"] for f in of(rule)}

    assert PLANTED.disallowed_model in {
        (f["agent_id"], f["labels"]["model"]) for f in of("drift.model_not_allowed")
    }
    assert PLANTED.disallowed_tool in {
        (f["agent_id"], f["labels"]["tool"]) for f in of("drift.tool_not_allowed")
    }
    assert PLANTED.prototype_in_production in agents("drift.prototype_in_production")
    assert PLANTED.retired_running in agents("sprawl.retired_agent_running")
    assert PLANTED.runaway in agents("spend.runaway_agent")
    assert PLANTED.dormant in agents("sprawl.dormant_agent")
    shadows = {f["labels"]["service"] for f in of("sprawl.unregistered_agent")}
    assert shadows == {agent.service for agent in UNREGISTERED}
    new = {agent.service for agent in UNREGISTERED if agent.active_days and agent.active_days[0] <= 7}
    (rate,) = of("sprawl.new_unregistered_rate")
    assert all(
        any(f"/{service}," in identity for identity in rate["evidence"]["new_identities"]) for service in new
    )
    if dt.datetime.now(dt.UTC).day != 1:  # on the 1st the forecast covers last month (analytics/budgets.py)
        budget = of("spend.budget_forecast") + of("spend.budget_threshold")
        assert f"department:{PLANTED.over_budget_department}" in {f["subject_id"] for f in budget}


ALERTED_RULES = {  # planted problems whose alerts must reach the built-in log receiver
    "drift.model_not_allowed",
    "drift.tool_not_allowed",
    "drift.prototype_in_production",
    "sprawl.retired_agent_running",
    "sprawl.unregistered_agent",
    "spend.runaway_agent",
}


def logged_alerts(up: Up) -> list[dict]:
    """Every alert the built-in log receiver wrote to <data dir>/alerts.log (one group a line)."""
    log = up.data_dir / "alerts.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [alert for line in lines for alert in json.loads(line)["alerts"]]


def test_the_traces_and_alerts_pages_have_multi_agent_traces_and_logged_alerts(up: Up) -> None:
    traces = up.get("/api/v1/traces", limit=1000)["traces"]
    assert any(len(trace["agents"]) >= 2 for trace in traces), "no trace spans two agents"

    up.wait_for(
        "the planted alerts in alerts.log",
        lambda: {alert["labels"]["rule"] for alert in logged_alerts(up)} >= ALERTED_RULES,
    )
    # each alert links to the dashboards `up` runs, on the port it was given, not the default 8501
    links = {alert["generatorURL"] for alert in logged_alerts(up)}
    assert all(link.startswith(up.dashboard + "/?finding=") for link in links), links
    firing = {alert["labels"]["rule"] for alert in up.get("/api/v1/alerts")}
    assert firing >= ALERTED_RULES


def test_a_second_up_on_the_same_data_says_so_and_leaves_the_first_alone(up: Up) -> None:
    second = muster("up", "--no-dashboard", env=up.env)
    assert second.returncode != 0
    assert "already running" in second.stdout + second.stderr
    assert up.process.poll() is None
    assert answers(up.api + "/readyz")


def test_ctrl_c_stops_everything_and_spend_matches_the_ledgers_to_the_cent(up: Up) -> None:
    history = up.ledger("demo-ledger.json")
    # Live traffic has arrived once metric points have: a backfill sends none (muster.simulate.Ledger).
    # Span counts would not tell: retention deletes old spans once priced, keeping their costs.
    up.wait_for("live traffic", lambda: up.get("/api/v1/status")["totals"]["metric_points"] > 0)
    children = psutil.Process(up.process.pid).children(recursive=True)
    assert len(children) >= 3  # server, dashboards (and streamlit), live fleet

    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(STOP_BOUND_S) == 0, up.output()
    left = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [p.cmdline() for p in left]

    live = up.ledger("live-ledger.json")
    for ledger in (history, live):
        assert ledger["failed_exports"] == 0 and ledger["spans"] == ledger["spans_created"]
    assert live["traces"] > 0

    job = muster("jobs", "run", "--json", env=up.env)  # no server now: the job runs in that process
    assert job.returncode == 0, job.stderr
    spend = muster("spend", "--by", "department", "--json", env=up.env)
    assert spend.returncode == 0, spend.stderr
    rows = json.loads(spend.stdout)
    assert all(row["unpriced_calls"] == 0 for row in rows)
    measured = {row["department"]: Decimal(row["cost_usd"]) for row in rows}
    expected = ledger_spend_by_department([*history["calls"], *live["calls"]])

    diffs = {d: measured.get(d, Decimal(0)) - expected.get(d, Decimal(0)) for d in {*measured, *expected}}
    report = {str(d): f"muster {measured.get(d)} ledger {expected.get(d)}" for d in diffs}
    assert set(measured) == set(expected), report
    off = {d: report[str(d)] for d, diff in diffs.items() if abs(diff) >= CENT / 2}  # only these, or
    assert not off, off  # pytest cuts a long dict short and the department that differs is lost
    assert sum(expected.values()) > 100  # a month of an enterprise, not a handful of calls


# ---------------------------------------------------------------------------------------------
# The independent price of the ledgers
# ---------------------------------------------------------------------------------------------


def ledger_spend_by_department(calls: list[dict]) -> dict[str | None, Decimal]:
    """Each ledger group priced on its own and added up by the department its service belongs to."""
    department = departments_by_service()
    overrides = yaml.safe_load(PRICES.read_text())
    assert not overrides.get("discount_percent"), "the demo's prices.yaml has no discounts to apply"
    spend: dict[str | None, Decimal] = defaultdict(Decimal)
    for call in calls:
        spend[department.get(call["service"])] += group_cost(call, overrides)
    return dict(spend)


def departments_by_service() -> dict[str, str]:
    """Service name → department, from data/demo's `match: - service: {namespace, name}` selectors."""
    namespace = {agent.service: agent.namespace for agent in demo_fleet()}
    found: dict[str, str] = {}
    for path in sorted(DEMO.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Agent":
                for selector in doc["spec"]["match"]:
                    found[selector["service"]["name"]] = doc["spec"]["department"]
                    assert selector["service"]["namespace"] == namespace[selector["service"]["name"]]
    return found


def group_cost(call: dict, overrides: dict) -> Decimal:
    """The USD cost of one ledger group; failed calls carry no usage and cost nothing."""
    if call["status"] == "error":
        assert call["input_tokens"] == call["output_tokens"] == 0
        return Decimal(0)
    provider, model = aliased(call["provider"], call["response_model"] or call["request_model"], overrides)
    for custom in overrides.get("custom_models") or []:
        same_provider = custom.get("provider") is None or catalogue_id(custom["provider"]) == catalogue_id(
            provider
        )
        if same_provider and re.fullmatch(custom["model"], model, re.IGNORECASE):
            return custom_cost(call, custom)
    usage = Usage(
        input_tokens=call["input_tokens"],
        cache_read_tokens=call["cache_read_tokens"],
        cache_write_tokens=call["cache_write_tokens"],
        output_tokens=call["output_tokens"],
    )
    day = dt.datetime.fromisoformat(call["day"]).replace(tzinfo=dt.UTC)
    price = calc_price(usage, model, provider_id=catalogue_id(provider), genai_request_timestamp=day)
    # A group is priced as one call: exact while the price per input token does not depend on size.
    one = calc_price(
        Usage(input_tokens=1), model, provider_id=catalogue_id(provider), genai_request_timestamp=day
    )
    whole = calc_price(
        Usage(input_tokens=call["input_tokens"]),
        model,
        provider_id=catalogue_id(provider),
        genai_request_timestamp=day,
    )
    assert whole.input_price == one.input_price * call["input_tokens"], (
        f"tiered price for {model}: price per call"
    )
    return price.total_price


def aliased(provider: str, model: str, overrides: dict) -> tuple[str, str]:
    for alias in overrides.get("aliases") or []:
        found = re.fullmatch(alias["match"], model, re.IGNORECASE)
        if found:
            return (found.expand(alias["provider"]) if alias.get("provider") else provider), found.expand(
                alias["model"]
            )
    return provider, model


def custom_cost(call: dict, custom: dict) -> Decimal:
    """USD per million tokens; a cache price left out charges those tokens at the input price."""

    def rate(name: str) -> Decimal:
        return Decimal(str(custom.get(name, custom["input_per_mtok"])))

    plain = call["input_tokens"] - call["cache_read_tokens"] - call["cache_write_tokens"]
    micro = (
        plain * rate("input_per_mtok")
        + call["cache_read_tokens"] * rate("cache_read_per_mtok")
        + call["cache_write_tokens"] * rate("cache_write_per_mtok")
        + call["output_tokens"] * rate("output_per_mtok")
    )
    return micro / 1_000_000


def catalogue_id(provider: str) -> str:
    name = provider.lower()
    return CATALOGUE_PROVIDER.get(name, name)
