"""The cost job and spend reports, end to end: OTLP in, `muster jobs run`, `muster spend` and the API out.

A real server with the fixture registry receives hand-built agent traces over OTLP/HTTP; expected
spend is priced call by call with genai-prices directly, independently of the job's vectorised
pricing, and attributed by what the fixture registry says of each agent.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import httpx
import polars as pl
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from typer.testing import CliRunner

from analytics.jobs import PRICED_CALL_ROWS_SCHEMA, ContractViolation, checked
from analytics.pricing import COST_DTYPE
from muster.cli import app
from tests.conftest import start_server
from tests.otlp_builders import span, trace_request
from tests.test_access import admin_headers, bearer, new_token

FIXTURE = Path(__file__).parent / "fixtures" / "registry"
runner = CliRunner()

# Who the fixture registry says each simulated agent is: (resource, agent name) → department.
CLAIMS_TRIAGE = (
    {
        "service.namespace": "claims",
        "service.name": "triage-api",
        "deployment.environment.name": "production",
    },
    "ClaimsTriage",
)
SUBMISSION_INTAKE = (
    {"service.name": "intake", "deployment.environment.name": "production"},
    "SubmissionIntake",
)
UNREGISTERED = ({"service.name": "skunkworks"}, "Mystery")
DEPARTMENT = {"ClaimsTriage": "claims", "SubmissionIntake": "underwriting", "Mystery": None}


@dataclass(frozen=True)
class Call:
    model: str
    input_tokens: int
    output_tokens: int


@dataclass
class Sent:
    """A trace as sent, kept to price its calls independently and to send it again."""

    request: ExportTraceServiceRequest
    agent: str
    calls: list[Call]
    started: datetime


def agent_trace(agent: tuple[dict, str], calls: list[Call]) -> Sent:
    """An invoke_agent root span with one chat span per call beneath it."""
    resource, name = agent
    trace_id = os.urandom(16)
    root_id = os.urandom(8)
    start = time.time_ns() - 5_000_000_000
    spans = [
        span(
            f"invoke_agent {name}",
            trace_id=trace_id,
            span_id=root_id,
            start=start,
            end=start + 4_000_000_000,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name},
        )
    ]
    for index, call in enumerate(calls):
        begins = start + (index + 1) * 1_000_000
        spans.append(chat_span(trace_id, root_id, call, begins))
    started = datetime.fromtimestamp(start / 1e9, UTC)
    return Sent(trace_request(resource, spans), name, list(calls), started)  # FLEET's lists stay as they are


def chat_span(trace_id: bytes, parent_id: bytes, call: Call, start: int):
    return span(
        f"chat {call.model}",
        trace_id=trace_id,
        span_id=os.urandom(8),
        parent_span_id=parent_id,
        start=start,
        end=start + 900_000,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": call.model,
            "gen_ai.usage.input_tokens": call.input_tokens,
            "gen_ai.usage.output_tokens": call.output_tokens,
        },
    )


def expected_cost(sent: Sent) -> Decimal:
    """The trace's cost, one genai-prices call per model call: no Polars, no shared code with the job."""
    total = Decimal(0)
    for call in sent.calls:
        usage = genai_prices.Usage(input_tokens=call.input_tokens, output_tokens=call.output_tokens)
        price = genai_prices.calc_price(
            usage, call.model, provider_id="openai", genai_request_timestamp=sent.started
        )
        total += price.total_price
    return total


def expected_by_department(traces: list[Sent]) -> dict[str | None, Decimal]:
    totals: dict[str | None, Decimal] = {}
    for sent in traces:
        department = DEPARTMENT[sent.agent]
        totals[department] = totals.get(department, Decimal(0)) + expected_cost(sent)
    return totals


def send(server, sent: Sent) -> None:
    response = httpx.post(
        server.http_url + "/v1/traces",
        content=sent.request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.text  # acknowledged only once committed


def cli(data_dir: Path, *args: str):
    return runner.invoke(app, list(args), env={"MUSTER_DATA_DIR": str(data_dir), "COLUMNS": "200"})


def run_job(server, *flags: str) -> dict:
    result = cli(server.server.settings.data_dir, "jobs", "run", "--json", *flags)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def spend(server, by: str = "department", token: str | None = None) -> dict[str | None, Decimal]:
    headers = bearer(token) if token else admin_headers(server)
    response = httpx.get(server.api_url + "/api/v1/spend", params={"by": by}, headers=headers)
    assert response.status_code == 200, response.text
    return {row[by]: Decimal(row["cost_usd"]) for row in response.json()}


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


FLEET = [
    (CLAIMS_TRIAGE, [Call("gpt-4o", 1200, 300), Call("gpt-4o-mini", 5000, 800)]),
    (CLAIMS_TRIAGE, [Call("gpt-4o", 90, 20)]),
    (SUBMISSION_INTAKE, [Call("gpt-4o", 40_000, 2_000), Call("gpt-4o", 700, 70), Call("gpt-4o-mini", 10, 1)]),
    (UNREGISTERED, [Call("gpt-4o-mini", 333, 33)]),
]


def send_fleet(server) -> list[Sent]:
    traces = [agent_trace(agent, calls) for agent, calls in FLEET]
    for sent in traces:
        send(server, sent)
    return traces


def test_spend_by_department_equals_the_sum_of_independently_priced_calls(costed):
    traces = send_fleet(costed)
    result = run_job(costed)
    assert result["traces"] == 4 and result["calls"] == 7 and result["unpriced_calls"] == 0
    today = datetime.now(UTC).date().isoformat()
    data_dir = costed.server.settings.data_dir
    answer = cli(data_dir, "spend", "--by", "department", "--from", today, "--to", today, "--json")
    assert answer.exit_code == 0, answer.output
    rows = json.loads(answer.output)
    assert {row["department"]: Decimal(row["cost_usd"]) for row in rows} == expected_by_department(traces)
    assert sum(row["calls"] for row in rows) == 7
    human = cli(data_dir, "spend", "--by", "agent")
    assert human.exit_code == 0 and "claims-triage" in human.output and "submission-intake" in human.output
    assert set(spend(costed, "model")) == {"gpt-4o", "gpt-4o-mini"}
    assert set(spend(costed, "cost_centre")) == {"CC-4100", "CC-4200", None}


def test_reruns_retried_exports_and_full_runs_never_double_count(costed):
    traces = send_fleet(costed)
    run_job(costed)
    first = spend(costed)
    again = run_job(costed)
    assert again["traces"] == 0 and spend(costed) == first
    send(costed, traces[0])  # an exporter retrying a batch it got no answer for
    retried = run_job(costed)
    assert retried["traces"] <= 1 and spend(costed) == first
    full = run_job(costed, "--full")
    assert full["watermark_from"] == 0 and full["calls"] == 7 and spend(costed) == first
    rows = costed.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM priced_calls")
    assert rows == [(7, 7)]


def test_an_incremental_run_reads_only_traces_touched_since_the_watermark(costed):
    traces = send_fleet(costed)
    first = run_job(costed)
    newer = agent_trace(SUBMISSION_INTAKE, [Call("gpt-4o", 1000, 100)])
    send(costed, newer)
    second = run_job(costed)
    assert second["watermark_from"] == first["watermark_to"] < second["watermark_to"]
    assert (second["traces"], second["calls"]) == (1, 1)
    # a late span of an old trace: that trace is re-derived whole, the others are not read
    late = Call("gpt-4o", 500, 50)
    old = traces[1]
    root = old.request.resource_spans[0].scope_spans[0].spans[0]
    late_request = trace_request(
        CLAIMS_TRIAGE[0], [chat_span(root.trace_id, root.span_id, late, root.start_time_unix_nano + 9)]
    )
    send(costed, Sent(late_request, old.agent, [late], old.started))
    third = run_job(costed)
    assert (third["traces"], third["spans"], third["calls"]) == (1, 3, 2)
    old.calls.append(late)
    assert spend(costed) == expected_by_department([*traces, newer])


def test_calls_whose_spans_retention_deleted_keep_their_cost_when_their_trace_is_derived_again(costed):
    traces = send_fleet(costed)
    run_job(costed)
    old = traces[2]  # three calls
    root = old.request.resource_spans[0].scope_spans[0].spans[0]
    # retention deletes the trace's call spans (as it does once they are old and priced)...
    costed.query(
        "DELETE FROM spans WHERE trace_id = ? AND span_id != ?", [root.trace_id.hex(), root.span_id.hex()]
    )
    # ...then the trace's last part arrives, in one batch with a newer trace
    late = Call("gpt-4o", 500, 50)
    late_request = trace_request(
        SUBMISSION_INTAKE[0], [chat_span(root.trace_id, root.span_id, late, root.start_time_unix_nano + 9)]
    )
    send(costed, Sent(late_request, old.agent, [late], old.started))
    newer = agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o", 1000, 100)])
    send(costed, newer)
    run_job(costed)
    old.calls.append(late)
    assert spend(costed) == expected_by_department([*traces, newer])


def test_a_finance_token_of_one_department_sees_only_its_spend(costed):
    send_fleet(costed)
    run_job(costed)
    finance = new_token(costed, "finance", department_id="claims")
    assert set(spend(costed, "department", finance)) == {"claims"}
    assert set(spend(costed, "agent", finance)) == {"claims-triage"}
    assert set(spend(costed, "cost_centre", finance)) == {"CC-4100"}
    assert spend(costed, "model", finance) == spend(
        costed, "model", new_token(costed, "owner", agent_id="claims-triage")
    )
    owner = new_token(costed, "owner", agent_id="submission-intake")
    assert set(spend(costed, "agent", owner)) == {"submission-intake"}
    refused = httpx.post(costed.api_url + "/api/v1/jobs/run", headers=bearer(finance))
    assert refused.status_code == 403


CLAIMS_TRIAGE_STAGING = (
    {
        "service.namespace": "claims",
        "service.name": "triage-api-staging",
        "deployment.environment.name": "staging",
    },
    "ClaimsTriage",
)


def environment_of(sent: Sent) -> str | None:
    """The environment the trace's resource names, read from the request as sent."""
    for attribute in sent.request.resource_spans[0].resource.attributes:
        if attribute.key == "deployment.environment.name":
            return attribute.value.string_value
    return None


def expected_by(traces: list[Sent], key) -> dict:
    totals: dict = {}
    for sent in traces:
        totals[key(sent)] = totals.get(key(sent), Decimal(0)) + expected_cost(sent)
    return totals


def spend_in(server, environments: list[str], by: str = "department", token: str | None = None) -> dict:
    headers = bearer(token) if token else admin_headers(server)
    params = [("by", by), *(("environment", name) for name in environments)]
    response = httpx.get(server.api_url + "/api/v1/spend", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return {row[by]: Decimal(row["cost_usd"]) for row in response.json()}


def test_spend_by_and_in_an_environment_equals_the_sum_of_independently_priced_calls(costed):
    traces = send_fleet(costed)
    staging = [
        agent_trace(CLAIMS_TRIAGE_STAGING, [Call("gpt-4o", 3000, 400), Call("gpt-4o-mini", 80, 8)]),
        agent_trace(CLAIMS_TRIAGE_STAGING, [Call("gpt-4o-mini", 20_000, 900)]),
    ]
    for sent in staging:
        send(costed, sent)
    every = [*traces, *staging]
    run_job(costed)
    by_environment = expected_by(every, environment_of)
    assert set(by_environment) == {"production", "staging", None}  # the unregistered agent names none
    assert spend(costed, "environment") == by_environment
    for environment in ("production", "staging"):
        chosen = [sent for sent in every if environment_of(sent) == environment]
        assert spend_in(costed, [environment]) == expected_by_department(chosen), environment
    both = [sent for sent in every if environment_of(sent) is not None]
    assert spend_in(costed, ["staging", "production"]) == expected_by_department(both)
    assert spend_in(costed, ["nowhere"]) == {}
    # the CLI asks the same: by environment, and narrowed to one
    data_dir = costed.server.settings.data_dir
    answer = cli(data_dir, "spend", "--by", "environment", "--json")
    assert answer.exit_code == 0, answer.output
    assert {r["environment"]: Decimal(r["cost_usd"]) for r in json.loads(answer.output)} == by_environment
    answer = cli(data_dir, "spend", "--by", "agent", "--environment", "staging", "--json")
    assert answer.exit_code == 0, answer.output
    rows = json.loads(answer.output)
    assert [(r["agent"], Decimal(r["cost_usd"])) for r in rows] == [
        ("claims-triage", by_environment["staging"])
    ]
    assert sum(r["calls"] for r in rows) == 3
    # an environment only narrows a scoped token's view, never widens it
    underwriting = new_token(costed, "finance", department_id="underwriting")
    assert spend_in(costed, ["staging"], token=underwriting) == {}
    assert spend_in(costed, ["production"], token=underwriting) == expected_by_department(
        [sent for sent in traces if sent.agent == "SubmissionIntake"]
    )


def test_a_failing_run_leaves_the_previous_results_and_says_why(costed, tmp_path):
    traces = send_fleet(costed)
    run_job(costed)
    before = spend(costed)
    (tmp_path / "prices.yaml").write_text("discount_percent:\n  openai: 150\n")  # not a percentage
    send(costed, agent_trace(CLAIMS_TRIAGE, [Call("gpt-4o", 10_000, 1_000)]))
    failed = cli(costed.server.settings.data_dir, "jobs", "run")
    assert failed.exit_code == 1
    assert "the cost job failed, previous results stay" in failed.output and "prices.yaml" in failed.output
    assert spend(costed) == before == expected_by_department(traces)
    state = httpx.get(costed.api_url + "/api/v1/jobs", headers=admin_headers(costed)).json()
    assert "OverridesError" in state[0]["last_error"]
    (tmp_path / "prices.yaml").unlink()  # back to the prices of the last successful run
    recovered = run_job(costed)
    assert recovered["traces"] == 1  # the watermark did not move past the failed run's spans
    assert recovered["full_reason"] is None
    assert (
        httpx.get(costed.api_url + "/api/v1/jobs", headers=admin_headers(costed)).json()[0]["last_error"]
        is None
    )


def test_the_output_contract_names_the_offending_rows():
    row = {
        "trace_id": "t1",
        "span_id": "s1",
        "start_time": datetime(2026, 1, 2),
        "day": datetime(2026, 1, 2).date(),
        "match_status": "registered",
        "cost_usd": Decimal("-1"),
        "price_source": "catalogue",
        "reported_cost_mismatch": False,
    }
    frame = pl.DataFrame([row, row | {"span_id": "s2", "cost_usd": None}]).with_columns(
        pl.col("cost_usd").cast(COST_DTYPE), pl.col("start_time").cast(pl.Datetime("ns"))
    )
    with pytest.raises(ContractViolation) as raised:
        checked(PRICED_CALL_ROWS_SCHEMA, frame)
    message = str(raised.value)
    assert "priced calls written" in message
    assert "greater_than_or_equal_to" in message and "cost present exactly when priced" in message


def test_the_server_runs_the_job_on_its_schedule(tmp_path):
    server = start_server(tmp_path / "data", decode_workers=0, jobs_interval_seconds=0.2)
    try:
        sent = agent_trace(UNREGISTERED, [Call("gpt-4o", 100, 10)])
        send(server, sent)
        deadline = time.monotonic() + 20
        while not spend(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert spend(server) == {None: expected_cost(sent)}
    finally:
        server.stop()


def test_jobs_run_and_spend_work_on_the_file_when_no_server_runs(tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(
        data_dir, decode_workers=0, jobs_interval_seconds=0, prices_file=tmp_path / "none.yaml"
    )
    try:
        sent = agent_trace(UNREGISTERED, [Call("gpt-4o-mini", 2_000, 200)])
        send(server, sent)
    finally:
        server.stop()
    env = {"MUSTER_DATA_DIR": str(data_dir), "MUSTER_PRICES_FILE": str(tmp_path / "none.yaml")}
    ran = runner.invoke(app, ["jobs", "run", "--json"], env=env)
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["calls"] == 1
    answer = runner.invoke(app, ["spend", "--by", "provider", "--json"], env=env)
    assert answer.exit_code == 0, answer.output
    assert [(row["provider"], Decimal(row["cost_usd"])) for row in json.loads(answer.output)] == [
        ("openai", expected_cost(sent))
    ]
    bad = runner.invoke(app, ["spend", "--from", "last tuesday"], env=env)
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


MYSTERY_AGENT = """
apiVersion: muster/v1
kind: Agent
metadata:
  id: mystery-bot
spec:
  name: Mystery bot
  owner: ada@example.com
  department: research
  lifecycle: pilot
  match:
    - agentName: Mystery
"""


def test_registering_an_agent_re_attributes_its_history_within_one_interval(tmp_path):
    data_dir = tmp_path / "data"
    server = start_server(
        data_dir, decode_workers=0, jobs_interval_seconds=0.2, prices_file=tmp_path / "prices.yaml"
    )
    try:
        applied = cli(data_dir, "registry", "apply", "-f", str(FIXTURE))
        assert applied.exit_code == 0, applied.output
        traces = [
            agent_trace(UNREGISTERED, [Call("gpt-4o", 100, 10)]),
            agent_trace(CLAIMS_TRIAGE, FLEET[0][1]),
        ]
        for sent in traces:
            send(server, sent)
        wait_for(lambda: spend(server, "agent").get("agent.name=Mystery, service=skunkworks"))
        (tmp_path / "mystery.yaml").write_text(MYSTERY_AGENT)
        registered = cli(data_dir, "registry", "register", "-f", str(tmp_path / "mystery.yaml"))
        assert registered.exit_code == 0, registered.output
        # no new spans arrive: only the changed registry can make the scheduled run re-attribute
        wait_for(lambda: "mystery-bot" in spend(server, "agent"))
        assert spend(server, "agent") == {
            "mystery-bot": expected_cost(traces[0]),
            "claims-triage": expected_cost(traces[1]),
        }
        assert spend(server, "department")["research"] == expected_cost(traces[0])
        assert server.query(
            "SELECT DISTINCT agent_id, department_id FROM trace_agents WHERE agent_name = 'Mystery'"
        ) == [("mystery-bot", "research")]
    finally:
        server.stop()


def test_a_changed_prices_file_makes_the_next_run_full_and_an_unchanged_one_does_not(costed, tmp_path):
    traces = send_fleet(costed)
    first = run_job(costed)
    assert first["full_reason"] == "first run"
    assert run_job(costed)["full_reason"] is None
    (tmp_path / "prices.yaml").write_text("discount_percent:\n  openai: 50\n")
    repriced = run_job(costed)
    assert repriced["full"] and "changed" in repriced["full_reason"] and repriced["calls"] == 7
    halved = {key: value / 2 for key, value in expected_by_department(traces).items()}
    assert spend(costed) == halved
    assert run_job(costed)["full_reason"] is None  # the digest of the successful run is kept
    state = httpx.get(costed.api_url + "/api/v1/jobs", headers=admin_headers(costed)).json()[0]
    assert len(state["inputs_digest"]) == 64


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)
