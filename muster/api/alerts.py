"""Alerts over HTTP: list alerts and their deliveries, acknowledge, silence and unsilence, test a receiver.

Reads need `read`; acknowledging and silencing need `triage`; testing a receiver (it sends a real
message) needs `write_registry`. Scope as everywhere: a token confined to a department sees only
alerts whose department label is its own (an owner token: its agent's), and the silences it makes
carry its department (or agent) as one more matcher, so they can never mute anyone else's alerts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from alerts import (
    AlertsConfigError,
    Dispatcher,
    Matcher,
    alert_from_finding,
    load_alerts_config,
    new_silence,
    parse_duration,
    silence_of,
)
from muster.api.deps import cursor, not_found, reader, registry_writer, triager
from muster.api.scope import agent_filter, department_filter
from muster.auth import Principal
from warehouse import alert_store

router = APIRouter(prefix="/api/v1", tags=["alerts"])

MAX_SILENCE_DAYS = 3650  # ten years: longer is a retirement, not a silence


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str = Field(min_length=1, max_length=2000, description="Why: what is being done about it.")


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: list[Matcher] = Field(min_length=1, max_length=50)
    starts_at: datetime | None = Field(None, description="When it starts (default: now).")
    ends_at: datetime | None = Field(None, description="When it ends; or give `duration`.")
    duration: str | None = Field(None, max_length=32, description="How long, e.g. 2h, 3d, 1h30m.")
    comment: str = Field(min_length=1, max_length=2000, description="Why the alerts are silenced.")


def _now() -> datetime:
    return datetime.now(UTC)


def dispatcher(request: Request) -> Dispatcher:
    """The server's dispatcher; in-process (the CLI without a server), one built from the settings."""
    found = getattr(request.app.state, "alerts", None)
    if found is None:
        from muster.settings import SettingsError, load_settings

        try:
            settings = load_settings()
            config, secrets = load_alerts_config(
                settings.alerts, settings.alerts_file, data_dir=settings.data_dir
            )
        except (SettingsError, AlertsConfigError) as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        found = Dispatcher(
            request.app.state.connection,
            config,
            secrets,
            interval=0,
            external_url=settings.dashboard_url,
        )
        request.app.state.alerts = found
    return found


def _scope_labels(who: Principal) -> dict[str, str]:
    """The matchers a principal's silences must carry: its department or its agent."""
    if who.agent_id:
        return {"agent": who.agent_id}
    if who.department_id:
        return {"department": who.department_id}
    return {}


# Alerts


@router.get("/alerts")
def list_alerts(
    state: Literal["firing", "resolved", "all"] = "firing",
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> list[dict[str, Any]]:
    """Alerts inside your scope: labels, state, acknowledgement, silences and each receiver's delivery."""
    now = _now()
    scope = {"department_ids": department_filter(who), "agent_ids": agent_filter(who)}
    rows = alert_store.list_alert_findings(cur, state=state, **scope)
    silences = [silence_of(row) for row in alert_store.list_silences(cur, unexpired_at=now)]
    deliveries = _deliveries_by_alert(alert_store.list_notifications(cur, limit=5000, **scope))
    return [_alert_view(row, now, silences, deliveries) for row in rows]


def _alert_view(
    row: dict[str, Any], now: datetime, silences: list, deliveries: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    alert = alert_from_finding(row, now, acked=row["acked"])
    silenced_by = [s.id for s in silences if s.mutes(alert.labels, now)]
    return {
        "id": alert.fingerprint,
        "state": alert.status,
        "title": row["title"],
        "labels": alert.labels,
        "annotations": alert.annotations,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        "finding_status": row["status"],
        "acknowledged": alert.acknowledged,
        "acknowledged_by": row["acked_by"],
        "ack_comment": row["ack_comment"],
        "silenced_by": silenced_by,
        "muted": alert.finding_silenced or bool(silenced_by),
        "deliveries": deliveries.get(alert.fingerprint, []),
    }


def _deliveries_by_alert(notifications: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each alert's latest notification per receiver (the list comes newest first)."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for note in notifications:
        for fingerprint in note["fingerprints"]:
            found.setdefault(fingerprint, {}).setdefault(note["receiver"], _delivery_view(note))
    return {fp: list(by_receiver.values()) for fp, by_receiver in found.items()}


def _delivery_view(note: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": note["id"],
        "receiver": note["receiver"],
        "group_key": note["group_key"],
        "seq": note["seq"],
        "group_status": note["group_status"],
        "status": note["status"],
        "attempts": note["attempts"],
        "last_error": note["last_error"],
        "created_at": _iso(note["created_at"]),
        "next_attempt_at": _iso(note["next_attempt_at"]) if note["status"] == "pending" else None,
        "delivered_at": _iso(note["delivered_at"]),
        "alerts": len(note["fingerprints"]),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@router.get("/alerts/deliveries")
def deliveries(
    status_: Literal["pending", "delivered", "failed"] | None = Query(None, alias="status"),
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> list[dict[str, Any]]:
    """Notifications recorded for receivers, newest first: pending, delivered, or failed with the error."""
    rows = alert_store.list_notifications(
        cur, status=status_, department_ids=department_filter(who), agent_ids=agent_filter(who)
    )
    return [_delivery_view(row) for row in rows]


@router.post("/alerts/{alert_id}/ack")
def acknowledge(
    alert_id: str,
    body: AckRequest,
    who: Principal = Depends(triager),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> dict[str, Any]:
    """Acknowledge an alert: it is not repeated until it resolves (a new episode notifies afresh)."""
    found = alert_store.find_finding(
        cur, alert_id, department_ids=department_filter(who), agent_ids=agent_filter(who)
    )
    if not found:
        raise not_found(f"alert {alert_id!r}")
    if len(found) > 1:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{alert_id!r} names more than one alert: give more")
    row = found[0]
    now = _now()
    alert_store.acknowledge(
        cur, row["fingerprint"], int(row["occurrences"]), by=who.name, comment=body.comment, now=now
    )
    return {
        "id": row["fingerprint"],
        "acknowledged_by": who.name,
        "acknowledged_at": now.isoformat(),
        "comment": body.comment,
    }


# Silences


@router.get("/silences")
def list_silences(
    state: Literal["active", "all"] = "active",
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> list[dict[str, Any]]:
    """Silences inside your scope: those not yet expired (pending and active), or all."""
    now = _now()
    rows = alert_store.list_silences(cur, unexpired_at=now if state == "active" else None)
    silences = [silence_of(row) for row in rows]
    return [s.to_dict(now) for s in silences if _visible_silence(s, who)]


def _visible_silence(silence, who: Principal) -> bool:
    scope = _scope_labels(who)
    return all(Matcher(name=name, value=value) in silence.matchers for name, value in scope.items())


@router.post("/silences", status_code=status.HTTP_201_CREATED)
def create_silence(
    body: SilenceRequest,
    who: Principal = Depends(triager),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> dict[str, Any]:
    """Silence the alerts matching every matcher, from `starts_at` (now) until `ends_at` or for `duration`."""
    now = _now()
    try:
        duration = parse_duration(body.duration) if body.duration is not None else None
        silence = new_silence(
            body.matchers,
            author=who.name,
            comment=body.comment,
            now=now,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            duration=duration,
            scope=_scope_labels(who),
            max_days=MAX_SILENCE_DAYS,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    record = silence.to_dict(now) | {"starts_at": silence.starts_at, "ends_at": silence.ends_at}
    record |= {"created_at": silence.created_at, "matchers": [m.model_dump() for m in silence.matchers]}
    alert_store.insert_silence(cur, record)
    return silence.to_dict(now)


@router.delete("/silences/{silence_id}")
def end_silence(
    silence_id: str,
    who: Principal = Depends(triager),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> dict[str, Any]:
    """End a silence now; the record stays, with who ended it."""
    row = alert_store.get_silence(cur, silence_id)
    if row is None or not _visible_silence(silence_of(row), who):
        raise not_found(f"silence {silence_id!r}")
    now = _now()
    alert_store.end_silence(cur, silence_id, by=who.name, now=now)
    return silence_of(alert_store.get_silence(cur, silence_id)).to_dict(now)  # type: ignore[arg-type]


# Receivers


@router.get("/receivers")
def receivers(_: Principal = Depends(reader), alerts: Dispatcher = Depends(dispatcher)) -> list[str]:
    """The configured receivers' names."""
    return alerts.receivers


@router.post("/receivers/{name}/test")
def test_receiver(
    name: str, _: Principal = Depends(registry_writer), alerts: Dispatcher = Depends(dispatcher)
) -> dict[str, Any]:
    """Send a test notification to one receiver now and report how it went (ok, or the error)."""
    try:
        return alerts.test_receiver(name)
    except KeyError:
        raise not_found(f"receiver {name!r}") from None
