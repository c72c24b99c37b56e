"""`muster findings` and `muster budgets`: what the rules found, triage it, and where budgets stand."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from muster.cli_common import JsonOption, emit, fail, muster_session, out

findings = typer.Typer(
    help="Findings of the detection rules: sprawl, drift, spend, hygiene.", no_args_is_help=True
)
budgets = typer.Typer(help="Budgets against actual and forecast spend.", no_args_is_help=True)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_HOURS = {"m": 1 / 60, "h": 1.0, "d": 24.0}
_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


@findings.command("list")
def list_findings(
    status: Annotated[
        str, typer.Option(help="active, open, acknowledged, silenced, resolved or all.")
    ] = "active",
    category: Annotated[str | None, typer.Option(help="sprawl, drift, spend or hygiene.")] = None,
    severity: Annotated[str | None, typer.Option(help="info, warning or critical.")] = None,
    rule: Annotated[str | None, typer.Option(help="A rule id, e.g. drift.model_not_allowed.")] = None,
    department: Annotated[str | None, typer.Option(help="A department id.")] = None,
    agent: Annotated[str | None, typer.Option(help="An agent id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Findings, most severe and most recent first (active ones unless --status says otherwise)."""
    with muster_session() as muster:
        answer = muster.get(
            "/api/v1/findings",
            status=status,
            category=category,
            severity=severity,
            rule=rule,
            department=department,
            agent=agent,
            limit=limit,
        )
    emit(answer, as_json, _print_findings)


@findings.command("show")
def show(fingerprint: str, as_json: JsonOption = False) -> None:
    """One finding with its evidence."""
    with muster_session() as muster:
        found = muster.get(f"/api/v1/findings/{fingerprint}")
    emit(found, as_json, _print_one)


@findings.command("ack")
def ack(
    fingerprint: str,
    comment: Annotated[str | None, typer.Option("--comment", "-m", help="Why, for the others.")] = None,
) -> None:
    """Acknowledge a finding: it stays acknowledged until its cause goes away."""
    with muster_session() as muster:
        found = muster.post(f"/api/v1/findings/{fingerprint}/acknowledge", {"comment": comment})
    out.print(f"acknowledged: {found['title']}")


@findings.command("silence")
def silence(
    fingerprint: str,
    duration: Annotated[str, typer.Option("--for", help="How long: 30m, 4h, 7d.")],
    comment: Annotated[str, typer.Option("--comment", "-m", help="Why (required).")],
) -> None:
    """Silence a finding for a while, with a reason."""
    match = _DURATION.match(duration)
    if not match:
        fail(f"--for {duration!r} is not a duration: write it as 30m, 4h or 7d", code=2)
        return
    hours = float(match.group(1)) * _HOURS[match.group(2)]
    with muster_session() as muster:
        found = muster.post(
            f"/api/v1/findings/{fingerprint}/silence", {"duration_hours": hours, "comment": comment}
        )
    out.print(f"silenced until {found['silenced_until']}: {found['title']}")


@findings.command("unsilence")
def unsilence(fingerprint: str) -> None:
    """End a finding's silence now."""
    with muster_session() as muster:
        found = muster.post(f"/api/v1/findings/{fingerprint}/unsilence")
    out.print(f"{found['status']}: {found['title']}")


@findings.command("run")
def run(as_json: JsonOption = False) -> None:
    """Run every detection rule now (the server runs them after each cost job anyway)."""
    with muster_session() as muster:
        result = muster.post("/api/v1/findings/run")
    emit(
        result,
        as_json,
        lambda r: out.print(
            f"{r['findings']} findings hold: {r['opened']} opened, {r['reopened']} reopened, "
            f"{r['resolved']} resolved, in {r['duration_s']:.2f} s"
        ),
    )


@findings.command("rules")
def rules(as_json: JsonOption = False) -> None:
    """Every detection rule: what triggers it, its default severity, how to resolve it."""
    with muster_session() as muster:
        found = muster.get("/api/v1/findings/rules")
    emit(found, as_json, _print_rules)


@budgets.command("status")
def budget_status(as_json: JsonOption = False) -> None:
    """Each budget: spent so far this month, quarter or year, forecast at its end, thresholds reached.

    Budgets in a currency without an exchange rate are listed as not evaluated, with the reason.
    """
    with muster_session() as muster:
        answer = muster.get("/api/v1/budgets/status")
    emit(answer, as_json, _print_budgets)


def _print_findings(answer: Any) -> None:
    shown = Table("severity", "rule", "status", "title", "last seen", "fingerprint")
    for found in answer["findings"]:
        style = _SEVERITY_STYLE.get(found["severity"], "")
        shown.add_row(
            f"[{style}]{found['severity']}[/{style}]" if style else found["severity"],
            found["rule"],
            found["status"],
            _plain(found["title"]),
            str(found["last_seen"])[:19],
            found["fingerprint"],
        )
    out.print(shown)
    out.print(f"{len(answer['findings'])} of {answer['total']} shown")


def _plain(text: str) -> str:
    """Agent-controlled text shown as text: rich markup in a name must not style or hide output."""
    return escape(text)


def _print_one(found: Any) -> None:
    out.print(f"[bold]{_plain(found['title'])}[/bold]")
    for key in (
        "rule",
        "category",
        "severity",
        "status",
        "subject_kind",
        "subject_id",
        "dimension",
        "agent_id",
        "department_id",
        "first_seen",
        "last_seen",
        "occurrences",
        "comment",
    ):
        if found.get(key) is not None:
            out.print(f"  {key}: {_plain(str(found[key]))}")
    out.print("  evidence:")
    for key, value in found["evidence"].items():
        out.print(f"    {key}: {_plain(str(value))}")


def _print_rules(found: Any) -> None:
    shown = Table("rule", "severity", "what triggers it", "how to resolve it")
    for rule in found:
        shown.add_row(rule["id"], rule["severity"], rule["description"], rule["resolution"])
    out.print(shown)


def _print_budgets(answer: Any) -> None:
    shown = Table("budget", "period", "amount", "spent", "%", "forecast", "%", "runs out", "status")
    for row in answer["budgets"]:
        shown.add_row(
            row["budget_id"],
            f"{row['period']} {row['period_label']}",
            _amount(row),
            row["actual"],
            _pct(row["actual_pct"]),
            row["forecast"],
            _pct(row["forecast_pct"]),
            row["exhausted_on"] or "",
            row["status"],
        )
    out.print(shown)
    for row in answer.get("not_evaluated", []):
        out.print(
            f"[yellow]not evaluated[/yellow] {_plain(row['budget_id'])} ({_amount(row)}, {row['period']}): "
            f"{_plain(row['reason'])}"
        )


def _amount(row: Any) -> str:
    """The amount with its currency when that is not USD (with the rate it was judged at)."""
    if row["currency"] == "USD":
        return row["amount"]
    rate = f" @ {row['exchange_rate']} USD" if row.get("exchange_rate") else ""
    return f"{row['amount']} {row['currency']}{rate}"


def _pct(value: float | None) -> str:
    return "∞" if value is None else f"{value:.0f}"
