"""The dispatcher: every few seconds, findings → alerts → groups → outbox → receivers.

One thread, started and stopped by `muster serve` beside the job scheduler, calls `tick`. A tick
reads the findings that fire (and the resolved ones some receiver was told of), the active
silences and every group's state; routes each alert; lets each group decide (alerts.grouping);
records the resulting notifications with the groups' new state in one transaction; then delivers
what is due (alerts.outbox). Tests call `tick(now)` directly with any clock. The four verbs of
a component: `validate` (the configuration, at construction), `start`, `shutdown`, and `tick`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import duckdb

from alerts.config import AlertsConfig, EmailReceiver, Secrets
from alerts.grouping import GroupState, Notification, step
from alerts.matchers import Matcher
from alerts.model import Alert, alert_from_finding
from alerts.outbox import Backoff, Outcome, start_deliveries
from alerts.receivers import DeliveryError, Sender, build_senders
from alerts.routing import Destination, route_alert
from alerts.silences import Silence, muting
from registry import Registry
from warehouse import alert_store
from warehouse.registry_store import load_registry

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TickReport:
    """What one tick did: notifications recorded and delivery outcomes."""

    recorded: list[str] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


class Dispatcher:
    """Routes findings to receivers on a schedule (`interval` seconds; 0: only when ticked)."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        config: AlertsConfig,
        secrets: Secrets,
        *,
        interval: float,
        external_url: str,
        clock: Clock = utc_now,
        senders: dict[str, Sender] | None = None,
    ) -> None:
        self.config = config
        self._connection = connection
        self._secrets = secrets
        self._interval = interval
        self._external_url = external_url
        self._clock = clock
        self._senders = senders if senders is not None else build_senders(config, secrets)
        self._backoff = Backoff(
            config.delivery.initial_backoff, config.delivery.max_backoff, config.delivery.give_up_after
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._sending: dict[str, Future[list[Outcome]]] = {}  # receivers whose worker is still busy
        self._redaction = _RedactingFilter(secrets)
        _install(self._redaction)  # from the first send on, including test-receiver and ticks in tests

    @property
    def receivers(self) -> list[str]:
        return sorted(self._senders)

    def start(self) -> None:
        """Start ticking every `interval` seconds; a second start does nothing."""
        if self._thread is not None:
            return
        if self._interval <= 0:
            log.info("the alert dispatcher is off (alerts_interval_seconds = 0)")
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="muster-alerts", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop ticking; a tick in progress finishes. Safe without start and twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        _uninstall(self._redaction)

    def tick(self, now: datetime | None = None, *, wait: bool = True) -> TickReport:
        """Decide and record what each group must be told now, then deliver whatever is due.

        With `wait` the report holds every delivery's outcome (tests); without it (the server's
        loop) a receiver's worker may go on sending after the tick, so a slow receiver never delays
        the next tick, the others' deliveries, and the recording of new notifications.
        """
        now = now or self._clock()
        with self._lock:
            report = TickReport(recorded=self._evaluate(now))
            self._sending = {name: f for name, f in self._sending.items() if not f.done()}
            started = start_deliveries(
                self._connection,
                self._senders,
                now,
                self._backoff,
                self._secrets.redact,
                self._workers(),
                busy=set(self._sending),
            )
            self._sending |= started
            for future in started.values():
                future.add_done_callback(_log_failure)
        if wait:
            report.outcomes = [outcome for future in started.values() for outcome in future.result()]
        return report

    def test_receiver(self, name: str) -> dict[str, Any]:
        """Send a test notification to one receiver now, outside the outbox; say how it went."""
        sender = self._senders.get(name)
        if sender is None:
            raise KeyError(name)
        payload = self._test_payload(name)
        started = self._clock()
        try:
            sender.send(payload)
        except DeliveryError as exc:
            error = self._secrets.redact(str(exc))
            return {"receiver": name, "ok": False, "error": error, "retryable": exc.retryable}
        seconds = (self._clock() - started).total_seconds()
        return {"receiver": name, "ok": True, "error": None, "seconds": round(seconds, 3)}

    # Evaluating

    def _evaluate(self, now: datetime) -> list[str]:
        with self._connection.cursor() as cur:
            alerts = self._alerts(cur, now)
            states = {row["group_key"]: GroupState(**row) for row in _state_rows(cur)}
            changed, notes = self._decide(alerts, states, now)
            if not changed and not notes:
                return []
            registry = load_registry(cur) if notes else None
            records = [self._record(registry, note) for note in notes]
            alert_store.save_tick(cur, [_group_row(s) for s in changed], records, now)
        for note in notes:
            log.info("recorded notification %s (%s) for %s", note.id, note.status, note.group_key)
        return [note.id for note in notes]

    def _alerts(self, cur: duckdb.DuckDBPyConnection, now: datetime) -> list[Alert]:
        silences = [silence_of(row) for row in alert_store.list_silences(cur, unexpired_at=now)]
        alerts = []
        for row in alert_store.alert_candidates(cur):
            alert = alert_from_finding(row, now, acked=row["acked"])
            alerts.append(_with_silences(alert, muting(silences, alert.labels, now)))
        return alerts

    def _decide(
        self, alerts: list[Alert], states: dict[str, GroupState], now: datetime
    ) -> tuple[list[GroupState], list[Notification]]:
        members: dict[str, tuple[Destination, dict[str, str], list[Alert]]] = {}
        for alert in alerts:
            for destination in route_alert(self.config.route, alert.labels):
                key = destination.group_key(alert.labels)
                entry = members.setdefault(key, (destination, destination.group_labels(alert.labels), []))
                entry[2].append(alert)
        changed: list[GroupState] = []
        notes: list[Notification] = []
        for key, (destination, labels, group_alerts) in members.items():
            state, note = step(destination, key, labels, states.get(key), group_alerts, now)
            if state is not None and state != states.get(key):
                changed.append(state)
            if note is not None:
                notes.append(note)
        for key, state in states.items():  # groups no alert routes to any more go idle
            if key not in members and state.active:
                changed.append(replace(state, active=False, notified_firing=frozenset()))
        return changed, notes

    def _record(self, registry: Registry, note: Notification) -> dict[str, Any]:
        payload = note.payload(self._external_url)
        payload["department_names"] = _department_names(registry, note.alerts)
        receiver = self._receiver_config(note.receiver)
        if isinstance(receiver, EmailReceiver):
            payload["recipients"] = _recipients(registry, receiver, note.alerts)
        return {
            "id": note.id,
            "group_key": note.group_key,
            "seq": note.seq,
            "receiver": note.receiver,
            "group_status": note.status,
            "fingerprints": [a.fingerprint for a in note.alerts],
            "payload": payload,
        }

    def _receiver_config(self, name: str):
        try:
            return self.config.receiver(name)
        except KeyError:
            return None

    def _test_payload(self, name: str) -> dict[str, Any]:
        now = self._clock()
        alert = Alert(
            fingerprint="test",
            labels={"alertname": "MusterTest", "rule": "muster.test", "severity": "info"},
            annotations={"summary": f"Test notification from Muster to receiver {name!r}"},
            starts_at=now,
            ends_at=None,
            episode=1,
        )
        note = Notification(f"{name}/test:{{}}", 0, name, "firing", {"rule": "muster.test"}, (alert,))
        payload = note.payload(self._external_url)
        receiver = self._receiver_config(name)
        if isinstance(receiver, EmailReceiver):
            payload["recipients"] = [to for to in receiver.to if "@" in to]
        return payload

    # Running

    def _workers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="muster-alerts-send")
        return self._pool

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick(wait=False)
            except Exception:  # the next tick starts again from what is stored
                log.exception("alert dispatch failed; retrying at the next tick")


def _log_failure(future: Future[list[Outcome]]) -> None:
    # a worker's outcomes are stored by the worker; only a crash of the worker itself is news here
    if not future.cancelled() and future.exception() is not None:
        log.error("an alert delivery worker failed", exc_info=future.exception())


def silence_of(row: dict[str, Any]) -> Silence:
    """A stored silence row as a Silence."""
    return Silence(
        id=row["id"],
        matchers=tuple(Matcher(**m) for m in row["matchers"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        created_by=row["created_by"],
        comment=row["comment"],
        created_at=row["created_at"],
        ended_by=row.get("ended_by"),
    )


def _with_silences(alert: Alert, silence_ids: tuple[str, ...]) -> Alert:
    if not silence_ids:
        return alert
    return replace(alert, silenced_by=silence_ids)


def _state_rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = alert_store.group_states(cur)
    for row in rows:
        row["notified_firing"] = frozenset(row["notified_firing"])
    return rows


def _group_row(state: GroupState) -> dict[str, Any]:
    row = asdict(state)
    row["notified_firing"] = sorted(state.notified_firing)
    return row


def _department_names(registry: Registry, alerts: tuple[Alert, ...]) -> dict[str, str]:
    """The registry's names of the alerts' departments, so messages say "Marketing", not its id."""
    found = {}
    for alert in alerts:
        department = registry.departments.get(alert.department or "")
        if department is not None:
            found[department.metadata.id] = department.spec.name
    return dict(sorted(found.items()))


def _recipients(registry: Registry, receiver: EmailReceiver, alerts: tuple[Alert, ...]) -> list[str]:
    """Addresses for a notification: literal ones, and the registry's contacts for its alerts."""
    found = [to for to in receiver.to if "@" in to]
    wanted = set(receiver.to)
    if wanted & {"department.financeContact", "agent.owner"}:
        for alert in alerts:
            department = registry.departments.get(alert.department or "")
            agent = registry.agents.get(alert.agent or "")
            if "department.financeContact" in wanted and department and department.spec.finance_contact:
                found.append(department.spec.finance_contact)
            if "agent.owner" in wanted and agent:
                found.append(agent.spec.owner)
    return sorted({address.strip() for address in found if "@" in address})


class _RedactingFilter(logging.Filter):
    """Hides secrets in log records of the HTTP libraries, which log request URLs."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._secrets.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_REDACTED_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2")


def _install(redaction: _RedactingFilter) -> None:
    for name in _REDACTED_LOGGERS:
        logging.getLogger(name).addFilter(redaction)


def _uninstall(redaction: _RedactingFilter) -> None:
    for name in _REDACTED_LOGGERS:
        logging.getLogger(name).removeFilter(redaction)
