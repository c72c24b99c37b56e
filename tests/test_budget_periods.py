"""Quarterly, annual and non-USD budgets: evaluated with known answers, or listed as not evaluated.

The series are synthetic with answers worked out by hand: a weekday pattern whose forecast is the
pattern itself, constant spend whose thresholds are crossed on a known day, an exchange rate that
puts a threshold exactly on a cent. A currency without a rate is a listed budget and a finding,
never a silent gap.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl
import pytest

from analytics.budgets import (
    budget_statuses,
    daily_spend_since,
    earliest_period_start,
    period_bounds,
    period_label,
    unevaluated_budgets,
)
from analytics.forecast import MONEY
from analytics.rules import DetectionConfig, DetectionContext, detect
from registry import load_texts
from registry.model import BudgetPeriod

TODAY = date(2026, 11, 18)  # a Wednesday in Q4

DEPARTMENT = """
apiVersion: muster/v1
kind: Department
metadata: {id: research}
spec: {name: Research, costCentre: CC-100}
"""


def budget(id_: str, amount: float, *, period: str = "monthly", currency: str = "USD", **thresholds) -> str:
    lines = f"  thresholds: {thresholds}\n" if thresholds else ""
    return (
        f"---\napiVersion: muster/v1\nkind: Budget\nmetadata: {{id: {id_}}}\nspec:\n"
        f"  scope: {{department: research}}\n  amount: {amount}\n  period: {period}\n"
        f"  currency: {currency}\n{lines}"
    )


def registry(*budgets: str, department: str = DEPARTMENT):
    return load_texts({"r.yaml": department + "".join(budgets)})


def pattern(day: date) -> Decimal:
    """$12 on weekdays, $5 at weekends: a week of $70, a mean of $10 a day."""
    return Decimal(12) if day.weekday() < 5 else Decimal(5)


def series(start: date, end: date, amount=pattern) -> pl.DataFrame:
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return pl.DataFrame(
        {
            "day": days,
            "agent_id": ["triage"] * len(days),
            "match_status": ["registered"] * len(days),
            "observed_identity": ["agent.name=triage"] * len(days),
            "department_id": ["research"] * len(days),
            "cost_centre": ["CC-100"] * len(days),
            "provider": ["openai"] * len(days),
            "model": ["gpt-4o"] * len(days),
            "spend": [amount(d) for d in days],
            "calls": [10] * len(days),
        },
        schema_overrides={"spend": MONEY},
    )


def total(start: date, end: date, amount=pattern) -> Decimal:
    return sum((amount(start + timedelta(days=i)) for i in range((end - start).days + 1)), Decimal(0))


def cents(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def status_of(rows: list[dict], budget_id: str) -> dict:
    (row,) = [r for r in rows if r["budget_id"] == budget_id]
    return row


@pytest.mark.parametrize(
    ("day", "period", "bounds", "label"),
    [
        (date(2026, 11, 18), "monthly", (date(2026, 11, 1), date(2026, 11, 30)), "2026-11"),
        (date(2026, 11, 18), "quarterly", (date(2026, 10, 1), date(2026, 12, 31)), "2026-Q4"),
        (date(2026, 2, 28), "quarterly", (date(2026, 1, 1), date(2026, 3, 31)), "2026-Q1"),
        (date(2026, 6, 30), "quarterly", (date(2026, 4, 1), date(2026, 6, 30)), "2026-Q2"),
        (date(2028, 2, 29), "monthly", (date(2028, 2, 1), date(2028, 2, 29)), "2028-02"),
        (date(2026, 11, 18), "annual", (date(2026, 1, 1), date(2026, 12, 31)), "2026"),
    ],
)
def test_periods_are_calendar_months_quarters_and_years(day, period, bounds, label):
    assert period_bounds(BudgetPeriod(period), day) == bounds
    assert period_label(BudgetPeriod(period), bounds[0]) == label


def test_a_quarterly_budget_gets_its_exact_actual_and_the_forecast_of_its_weekday_pattern():
    daily = series(date(2026, 8, 1), TODAY)
    (row,) = budget_statuses(registry(budget("q", 2000, period="quarterly")), daily, TODAY)
    start, end = date(2026, 10, 1), date(2026, 12, 31)
    assert (row["period"], row["period_start"], row["period_end"]) == (
        "quarterly",
        "2026-10-01",
        "2026-12-31",
    )
    assert row["period_label"] == "2026-Q4"
    assert row["actual"] == cents(total(start, TODAY))  # today included
    # learnt from complete days up to yesterday: the pattern is its own forecast, day by day
    expected = total(start, TODAY - timedelta(days=1)) + total(TODAY, end)
    assert row["forecast"] == cents(expected) == "922.00"  # 13 weeks of $70 and Thursday Dec 31
    assert row["forecast_pct"] == pytest.approx(float(expected / 2000 * 100), abs=0.01)
    assert row["exchange_rate"] == "1" and row["currency"] == "USD" and row["amount"] == "2000.00"


def test_an_annual_budget_reads_the_year_and_forecasts_to_december():
    daily = series(date(2026, 1, 1), TODAY)
    (row,) = budget_statuses(registry(budget("y", 5000, period="annual")), daily, TODAY)
    start, end = date(2026, 1, 1), date(2026, 12, 31)
    assert (row["period_start"], row["period_end"], row["period_label"]) == (
        "2026-01-01",
        "2026-12-31",
        "2026",
    )
    assert row["actual"] == cents(total(start, TODAY))
    assert row["forecast"] == cents(total(start, TODAY - timedelta(days=1)) + total(TODAY, end))
    assert row["status"] == "ok" and row["actual_threshold"] == 50  # 3,210 of 5,000: 64 %
    # a frame cut at five weeks, as monthly-only readers load, would lose most of the year
    short = daily.filter(pl.col("day") >= TODAY - timedelta(days=35))
    (cut,) = budget_statuses(registry(budget("y", 5000, period="annual")), short, TODAY)
    assert Decimal(cut["actual"]) < Decimal(row["actual"])


def test_readers_go_back_only_as_far_as_the_longest_period_needs():
    since = datetime(2026, 10, 14, 12)  # five weeks before TODAY
    monthly = registry(budget("m", 100))
    assert earliest_period_start(monthly, TODAY) == date(2026, 11, 1)
    assert daily_spend_since(monthly, since, TODAY) == since  # monthly-only: no longer read
    quarterly = registry(budget("m", 100), budget("q", 100, period="quarterly"))
    assert daily_spend_since(quarterly, since, TODAY) == datetime(2026, 10, 1)
    annual = registry(budget("q", 100, period="quarterly"), budget("y", 100, period="annual"))
    assert daily_spend_since(annual, since, TODAY) == datetime(2026, 1, 1)
    assert daily_spend_since(registry(), since, TODAY) == since


def budget_findings(reg, daily, day: date, **config) -> dict[str, list]:
    now = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    ctx = DetectionContext(registry=reg, now=now, daily_spend=daily, config=DetectionConfig(**config))
    found: dict[str, list] = {}
    for finding in detect(ctx):
        found.setdefault(finding.rule.id, []).append(finding)
    return found


def test_quarterly_thresholds_fire_on_the_day_spend_crosses_them_and_a_new_quarter_is_a_new_occurrence():
    reg = registry(budget("q", 1000, period="quarterly", actual=[46, 90], forecast=[95]))
    flat = lambda day: Decimal(10)  # noqa: E731
    daily = series(date(2026, 8, 1), date(2027, 3, 31), flat)

    def on(day: date) -> dict[str, list]:
        return budget_findings(reg, daily.filter(pl.col("day") <= day), day)

    # $10 a day from Oct 1: $450 on Nov 14 (day 45), $460 = 46 % on Nov 15, today included
    assert "spend.budget_threshold" not in on(date(2026, 11, 14))
    (crossed,) = on(date(2026, 11, 15))["spend.budget_threshold"]
    assert crossed.dimension == "2026-Q4:46" and crossed.subject_id == "q"
    assert crossed.evidence["period"] == "quarterly"
    assert (crossed.evidence["period_start"], crossed.evidence["period_end"]) == ("2026-10-01", "2026-12-31")
    assert crossed.evidence["actual"] == "460.00" and crossed.labels["period"] == "quarterly"
    assert "2026-Q4" in crossed.title
    # the quarter's forecast is 92 days x $10 = $920: 92 %, under the 95 % forecast threshold
    assert "spend.budget_forecast" not in on(date(2026, 11, 15))
    # the next quarter crosses 46 % on its 46th day, Feb 15, as a new finding
    assert "spend.budget_threshold" not in on(date(2027, 2, 14))
    (again,) = on(date(2027, 2, 15))["spend.budget_threshold"]
    assert again.dimension == "2027-Q1:46" and again.fingerprint != crossed.fingerprint


def test_forecast_threshold_of_an_annual_budget_fires_before_actual_spend_gets_there():
    reg = registry(budget("y", 3800, period="annual", actual=[100], forecast=[95]))
    daily = series(date(2026, 1, 1), TODAY, lambda day: Decimal(10))
    found = budget_findings(reg, daily, TODAY)
    (forecast,) = found["spend.budget_forecast"]  # 365 x $10 = $3,650: 96 % of $3,800
    assert forecast.dimension == "2026:95" and forecast.evidence["forecast"] == "3650.00"
    assert "by the end of 2026" in forecast.title
    assert "spend.budget_threshold" not in found


def test_a_eur_budget_is_converted_exactly_at_its_rate():
    # $30 a day, Nov 1-18: $540; EUR 1,000 at 1.08 USD is $1,080, so 50 % is exactly $540
    daily = series(date(2026, 10, 1), TODAY, lambda day: Decimal(30))
    reg = registry(budget("eu", 1000, currency="EUR"))
    (row,) = budget_statuses(reg, daily, TODAY, {"EUR": Decimal("1.08")})
    assert (row["currency"], row["exchange_rate"], row["amount"]) == ("EUR", "1.08", "1000.00")
    assert (row["amount_usd"], row["actual_usd"]) == ("1080.00", "540.00")
    assert row["actual"] == "500.00" and row["actual_pct"] == 50.0 and row["actual_threshold"] == 50
    assert row["forecast_usd"] == "900.00" and row["forecast"] == "833.33"  # 900 / 1.08
    # a rate a hundredth of a cent higher puts the budget just out of reach of 50 %
    (near,) = budget_statuses(reg, daily, TODAY, {"EUR": "1.0801"})
    assert near["actual_threshold"] is None and near["actual"] == "499.95"
    found = budget_findings(reg, daily, TODAY, exchange_rates={"EUR": Decimal("1.08")})
    (crossed,) = found["spend.budget_threshold"]
    assert crossed.evidence["exchange_rate"] == "1.08" and crossed.evidence["currency"] == "EUR"
    assert "500.00 EUR of 1000.00 EUR" in crossed.title


def test_a_department_in_another_currency_budgets_its_agents_in_it_too():
    department = DEPARTMENT.replace(
        "costCentre: CC-100}", "costCentre: CC-100, monthlyBudget: 800, currency: GBP}"
    )
    agent = """---
apiVersion: muster/v1
kind: Agent
metadata: {id: triage}
spec: {name: Triage, owner: ana@example.com, department: research, lifecycle: production, monthlyBudget: 400}
"""
    reg = load_texts({"r.yaml": department + agent})
    daily = series(date(2026, 10, 1), TODAY, lambda day: Decimal(25))  # $450 in November
    rows = budget_statuses(reg, daily, TODAY, {"GBP": "1.25"})
    assert [(r["budget_id"], r["currency"], r["actual"]) for r in rows] == [
        ("agent:triage", "GBP", "360.00"),
        ("department:research", "GBP", "360.00"),
    ]
    assert budget_statuses(reg, daily, TODAY) == []
    assert [r["budget_id"] for r in unevaluated_budgets(reg, {})] == ["agent:triage", "department:research"]


def test_a_jpy_budget_without_a_rate_is_listed_as_not_evaluated_and_is_a_hygiene_finding():
    reg = registry(budget("jp", 1_000_000, period="quarterly", currency="JPY"), budget("usd", 1000))
    daily = series(date(2026, 10, 1), TODAY)
    assert [r["budget_id"] for r in budget_statuses(reg, daily, TODAY)] == ["usd"]
    (listed,) = unevaluated_budgets(reg, {"EUR": "1.08"})
    assert (listed["budget_id"], listed["currency"], listed["period"], listed["status"]) == (
        "jp",
        "JPY",
        "quarterly",
        "not_evaluated",
    )
    assert "no exchange rate for JPY" in listed["reason"] and "exchange_rates" in listed["reason"]
    (finding,) = budget_findings(reg, daily, TODAY)["hygiene.budget_not_evaluated"]
    assert (finding.subject_kind, finding.subject_id, finding.dimension) == ("budget", "jp", "JPY")
    assert finding.effective_severity == "info" and finding.rule.category == "hygiene"
    assert finding.evidence["reason"] == listed["reason"] and finding.department_id == "research"
    # with a rate the budget is evaluated and the finding no longer holds
    rated = budget_findings(reg, daily, TODAY, exchange_rates={"JPY": Decimal("0.0065")})
    assert "hygiene.budget_not_evaluated" not in rated
    rows = budget_statuses(reg, daily, TODAY, {"JPY": "0.0065"})
    assert status_of(rows, "jp")["amount_usd"] == "6500.00"


def test_a_monthly_usd_budget_reads_as_before():
    daily = series(date(2026, 10, 1), TODAY, lambda day: Decimal(40))
    (row,) = budget_statuses(registry(budget("m", 1000)), daily, TODAY)
    assert (row["period"], row["period_start"], row["period_end"]) == ("monthly", "2026-11-01", "2026-11-30")
    assert (row["actual"], row["forecast"], row["actual_threshold"], row["forecast_threshold"]) == (
        "720.00",
        "1200.00",
        50,
        100,
    )
    assert row["exhausted_on"] == "2026-11-25" and row["status"] == "warning"


# Through the API and the CLI, as a user calls them: a real server, real OTLP, the real jobs.

SERVED = """
apiVersion: muster/v1
kind: Department
metadata: {id: research}
spec: {name: Research, monthlyBudget: 1000}
---
apiVersion: muster/v1
kind: Department
metadata: {id: sales}
spec: {name: Sales}
---
apiVersion: muster/v1
kind: Agent
metadata: {id: triage}
spec: {name: Triage, owner: ana@example.com, department: research, lifecycle: production,
       match: [{agentName: triage}]}
"""


def served_budget(id_: str, period: str, currency: str) -> str:
    return (
        f"---\napiVersion: muster/v1\nkind: Budget\nmetadata: {{id: {id_}}}\nspec:\n"
        f"  scope: {{department: research}}\n  amount: 1000\n  period: {period}\n  currency: {currency}\n"
    )


def model_call(at: datetime):
    """An OTLP request with one agent span and one priced chat call beneath it, started at `at`."""
    import os

    from tests.otlp_builders import span, trace_request

    trace_id, root, start = os.urandom(16), os.urandom(8), int(at.timestamp() * 1e9)
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"}
    call = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 200_000,
        "gen_ai.usage.output_tokens": 50_000,
    }
    spans = [
        span(
            "invoke_agent triage",
            trace_id=trace_id,
            span_id=root,
            start=start,
            end=start + 10**9,
            attributes=agent,
        ),
        span(
            "chat gpt-4o",
            trace_id=trace_id,
            span_id=os.urandom(8),
            parent_span_id=root,
            start=start + 1000,
            end=start + 2000,
            attributes=call,
        ),
    ]
    return trace_request({"service.name": "triage-svc"}, spans)


@pytest.fixture
def rated_server(tmp_path):
    from tests.conftest import start_server

    running = start_server(
        tmp_path / "data", decode_workers=1, jobs_interval_seconds=0, exchange_rates={"EUR": "1.25"}
    )
    yield running
    running.stop()


def test_budgets_status_and_the_cli_show_every_period_and_currency_or_why_not(rated_server):
    import json

    import httpx

    from tests.test_access import admin_headers, bearer, new_token
    from tests.test_costs_job import cli
    from tests.test_findings_job import apply, findings, run_jobs, send

    server, admin = rated_server, admin_headers(rated_server)
    budgets = [served_budget("q", "quarterly", "USD"), served_budget("y-eur", "annual", "EUR")]
    apply(server, **{"registry.yaml": SERVED + "".join(budgets) + served_budget("jp", "quarterly", "JPY")})
    now = datetime.now(UTC)
    # an older call in this year, beyond the five weeks a monthly-only registry reads whenever the date allows
    older = min(
        max(now - timedelta(days=60), datetime(now.year, 1, 1, 0, 10, tzinfo=UTC)), now - timedelta(minutes=2)
    )
    for at in (older, now - timedelta(minutes=1)):
        send(server, model_call(at))
    run_jobs(server)

    def spent_since(first: date) -> Decimal:
        params = {"by": "department", "from": first.isoformat(), "to": now.date().isoformat()}
        rows = httpx.get(server.api_url + "/api/v1/spend", params=params, headers=admin).json()
        return sum((Decimal(r["cost_usd"]) for r in rows if r["department"] == "research"), Decimal(0))

    answer = httpx.get(server.api_url + "/api/v1/budgets/status", headers=admin).json()
    rows = {row["budget_id"]: row for row in answer["budgets"]}
    assert set(rows) == {"department:research", "q", "y-eur"}
    quarter = period_bounds(BudgetPeriod.QUARTERLY, now.date())
    year_spend = spent_since(date(now.year, 1, 1))
    assert year_spend > spent_since(now.date()) > 0  # the older call is priced and in this year
    assert (rows["q"]["period_start"], rows["q"]["period_end"]) == tuple(d.isoformat() for d in quarter)
    assert rows["q"]["actual"] == cents(spent_since(quarter[0]))
    assert rows["department:research"]["actual"] == cents(spent_since(now.date().replace(day=1)))
    eur = rows["y-eur"]
    assert (eur["period"], eur["period_start"], eur["currency"], eur["exchange_rate"]) == (
        "annual",
        f"{now.year}-01-01",
        "EUR",
        "1.25",
    )
    assert eur["actual_usd"] == cents(year_spend) and eur["actual"] == cents(year_spend / Decimal("1.25"))
    assert eur["amount"] == "1000.00" and eur["amount_usd"] == "1250.00"
    (jp,) = answer["not_evaluated"]
    assert (jp["budget_id"], jp["currency"], jp["status"]) == ("jp", "JPY", "not_evaluated")
    assert "no exchange rate for JPY" in jp["reason"]

    (finding,) = findings(server, admin, rule="hygiene.budget_not_evaluated")
    assert (finding["subject_id"], finding["severity"], finding["category"]) == ("jp", "info", "hygiene")
    sales = bearer(new_token(server, "finance", department_id="sales"))
    scoped = httpx.get(server.api_url + "/api/v1/budgets/status", headers=sales).json()
    assert scoped == {"budgets": [], "not_evaluated": []}  # research's budgets are not sales' to see

    data_dir = server.server.settings.data_dir
    listed = cli(data_dir, "budgets", "status", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == answer
    shown = cli(data_dir, "budgets", "status")
    assert shown.exit_code == 0, shown.output
    assert f"quarterly {period_label(BudgetPeriod.QUARTERLY, quarter[0])}" in shown.output
    assert "1000.00 EUR @ 1.25 USD" in shown.output
    assert "not evaluated jp (1000.00 JPY, quarterly): no exchange rate for JPY" in shown.output


@pytest.mark.parametrize("page", ["spend", "overview"])
def test_the_dashboards_budget_views_say_which_budgets_are_not_evaluated(rated_server, monkeypatch, page):
    from tests.dashboards_seed import open_page
    from tests.test_findings_job import apply, run_jobs, send

    server = rated_server
    apply(server, **{"registry.yaml": SERVED + served_budget("jp", "quarterly", "JPY")})
    send(server, model_call(datetime.now(UTC) - timedelta(minutes=1)))
    run_jobs(server)
    token = (server.server.settings.data_dir / "admin.token").read_text().strip()
    monkeypatch.setenv("MUSTER_API_URL", server.api_url)
    at = open_page(server, page, token)
    (warning,) = [w.value for w in at.warning if "not evaluated" in w.value]
    assert "jp" in warning and "JPY" in warning and "exchange" in warning
