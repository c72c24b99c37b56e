"""`muster alerts …`: list alerts and deliveries, acknowledge, silence and unsilence, test a receiver."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from muster.cli_common import JsonOption, emit, err, fail, muster_session, out

alerts = typer.Typer(
    help="Alerts: findings routed to Slack, webhooks and e-mail; acknowledge and silence them.",
    no_args_is_help=True,
)


class AlertState(StrEnum):
    firing = "firing"
    resolved = "resolved"
    all = "all"


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


@alerts.command("list")
def list_alerts(
    state: Annotated[AlertState, typer.Option(help="Which alerts.")] = AlertState.firing,
    as_json: JsonOption = False,
) -> None:
    """Alerts with their state, labels, acknowledgement, silences and each receiver's delivery."""
    with muster_session() as muster:
        rows = muster.get("/api/v1/alerts", state=state.value)
    emit(rows, as_json, _print_alerts)


@alerts.command("ack")
def ack(
    alert_id: Annotated[str, typer.Argument(help="The alert's id (its finding's fingerprint, or 6+ chars).")],
    comment: Annotated[str, typer.Option(help="What is being done about it.")],
    as_json: JsonOption = False,
) -> None:
    """Acknowledge an alert: it is not repeated until it resolves."""
    with muster_session() as muster:
        done = muster.post(f"/api/v1/alerts/{quote(alert_id, safe='')}/ack", {"comment": comment})
    emit(done, as_json, lambda d: out.print(f"acknowledged {d['id']} as {d['acknowledged_by']}"))


@alerts.command("silence")
def silence(
    matcher: Annotated[
        list[str],
        typer.Option(help="A label matcher: key=value, key!=value, key=~regex, key!~regex (repeatable)."),
    ],
    comment: Annotated[str, typer.Option(help="Why: shown to everyone who sees the silence.")],
    duration: Annotated[str | None, typer.Option(help="How long, e.g. 2h, 3d, 1h30m.")] = None,
    until: Annotated[
        str | None, typer.Option(help="Until this time, ISO 8601 (UTC unless it says otherwise).")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="From this time, ISO 8601 (default: now); --duration counts from it."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Silence the alerts matching every matcher, for a duration or until a time, from now or a start."""
    from alerts import MatcherError, parse_matcher

    if (duration is None) == (until is None):
        fail("give --duration or --until (one of them)", code=2)
    try:
        matchers = [parse_matcher(text).model_dump() for text in matcher]
    except MatcherError as exc:
        fail(str(exc), code=2)
        raise  # unreachable: fail() exits
    body: dict[str, Any] = {"matchers": matchers, "comment": comment}
    if duration is not None:
        body["duration"] = duration
    else:
        body["ends_at"] = _moment(until, "--until")  # type: ignore[arg-type]
    if start is not None:
        body["starts_at"] = _moment(start, "--start")
    with muster_session() as muster:
        made = muster.post("/api/v1/silences", body)
    emit(
        made,
        as_json,
        lambda s: out.print(f"{s['id']} silences {', '.join(s['matchers_text'])} until {s['ends_at']}"),
    )


@alerts.command("unsilence")
def unsilence(
    silence_id: Annotated[str, typer.Argument(help="The silence's id, e.g. sil_3fa9c2d1e0b4.")],
    as_json: JsonOption = False,
) -> None:
    """End a silence now."""
    with muster_session() as muster:
        ended = muster.delete(f"/api/v1/silences/{quote(silence_id, safe='')}")
    emit(ended, as_json, lambda s: out.print(f"ended {s['id']}"))


@alerts.command("silences")
def silences(
    show_all: Annotated[bool, typer.Option("--all", help="Expired silences too.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Silences in force or still to start (with --all, expired ones too)."""
    with muster_session() as muster:
        rows = muster.get("/api/v1/silences", state="all" if show_all else "active")
    emit(rows, as_json, _print_silences)


@alerts.command("deliveries")
def deliveries(
    status: Annotated[DeliveryStatus | None, typer.Option(help="Only these.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Notifications sent or being sent to receivers, newest first, with attempts and errors."""
    with muster_session() as muster:
        rows = muster.get("/api/v1/alerts/deliveries", status=status.value if status else None)
    emit(rows, as_json, _print_deliveries)


@alerts.command("test-receiver")
def test_receiver(
    name: Annotated[str, typer.Argument(help="The receiver's name in the alert configuration.")],
    as_json: JsonOption = False,
) -> None:
    """Send a test notification to a receiver now and report the outcome (exit 1 if it failed)."""
    with muster_session() as muster:
        result = muster.post(f"/api/v1/receivers/{quote(name, safe='')}/test")
    emit(result, as_json, _print_test)
    if not result["ok"]:
        raise typer.Exit(1)


def _moment(text: str, option: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a time: write it as ISO 8601, e.g. 2026-05-01T18:00", code=2)
        raise  # unreachable: fail() exits
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _print_alerts(rows: Any) -> None:
    table = Table("id", "state", "severity", "rule", "department", "title", "ack", "silenced", "deliveries")
    for row in rows:
        labels = row["labels"]
        sent = ", ".join(f"{d['receiver']}: {d['status']}" for d in row["deliveries"]) or "-"
        table.add_row(
            row["id"][:12],
            row["state"],
            labels.get("severity", ""),
            labels.get("rule", ""),
            labels.get("department", "-"),
            row["title"],
            "yes" if row["acknowledged"] else "",
            ", ".join(row["silenced_by"]) or ("finding" if row["muted"] else ""),
            sent,
        )
    out.print(table)


def _print_silences(rows: Any) -> None:
    table = Table("id", "state", "matchers", "starts", "ends", "by", "comment")
    for row in rows:
        table.add_row(
            row["id"],
            row["state"],
            ", ".join(row["matchers_text"]),
            row["starts_at"][:19],
            row["ends_at"][:19],
            row["created_by"],
            row["comment"],
        )
    out.print(table)


def _print_deliveries(rows: Any) -> None:
    table = Table("id", "receiver", "status", "group", "state", "alerts", "attempts", "created", "last error")
    for row in rows:
        table.add_row(
            row["id"],
            row["receiver"],
            row["status"],
            row["group_key"],
            row["group_status"],
            str(row["alerts"]),
            str(row["attempts"]),
            (row["created_at"] or "")[:19],
            row["last_error"] or "",
        )
    out.print(table)


def _print_test(result: Any) -> None:
    if result["ok"]:
        out.print(f"sent a test notification to {result['receiver']} ({result['seconds']} s)")
    else:
        retry = " (temporary: it would be retried)" if result.get("retryable") else ""
        reason = escape(f"{result['receiver']}: {result['error']}{retry}")  # an error may hold [brackets]
        err.print(f"[red]failed[/red] to send to {reason}", highlight=False, soft_wrap=True)
