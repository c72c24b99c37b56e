"""Delivering the outbox: each pending notification sent, retried with capped exponential backoff.

A notification was recorded (warehouse.alert_store.save_tick) before anything is sent; here it is
sent and marked delivered, or pending again with its error and the time of the next attempt, or
failed once the error is permanent or retries have run for `give_up_after`. Every receiver is
delivered by its own worker thread with its own cursor, so a receiver that is down or slow holds
up only its own notifications: the server's dispatcher does not wait for a worker still busy, it
starts the others and leaves that receiver until its worker is done. After a retryable failure
the rest of a receiver's queue waits for the next tick rather than failing one by one. Errors
are redacted before they are stored or logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from alerts.receivers import DeliveryError, Sender
from warehouse import alert_store

log = logging.getLogger(__name__)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Backoff:
    initial: timedelta
    cap: timedelta
    give_up_after: timedelta

    def delay(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt: initial, 2×, 4×, … up to the cap."""
        exponent = min(max(0, attempts - 1), 32)  # 2**32 × any initial is past every sane cap
        return min(self.cap, self.initial * (2**exponent))


@dataclass(frozen=True)
class Outcome:
    notification_id: str
    receiver: str
    status: str
    attempts: int
    error: str | None = None


def start_deliveries(
    connection: duckdb.DuckDBPyConnection,
    senders: Mapping[str, Sender],
    now: datetime,
    backoff: Backoff,
    redact: Callable[[str], str],
    pool: ThreadPoolExecutor,
    busy: Collection[str] = (),
) -> dict[str, Future[list[Outcome]]]:
    """Start a worker for each receiver with notifications due by `now`, except the `busy` ones.

    A receiver still busy from an earlier start (slow, or hanging until its timeout) is left to
    finish: starting it again could send its notifications twice, and waiting for it would hold
    up every other receiver.
    """
    with connection.cursor() as cur:
        receivers = [name for name in alert_store.receivers_with_due(cur, now) if name not in busy]
    return {
        name: pool.submit(_deliver_receiver, connection, name, senders.get(name), now, backoff, redact)
        for name in receivers
    }


def deliver_due(
    connection: duckdb.DuckDBPyConnection,
    senders: Mapping[str, Sender],
    now: datetime,
    backoff: Backoff,
    redact: Callable[[str], str],
    pool: ThreadPoolExecutor,
) -> list[Outcome]:
    """Send every notification due by `now`, each receiver in its own worker; what happened to each."""
    futures = start_deliveries(connection, senders, now, backoff, redact, pool)
    return [outcome for future in futures.values() for outcome in future.result()]


def _deliver_receiver(
    connection: duckdb.DuckDBPyConnection,
    name: str,
    sender: Sender | None,
    now: datetime,
    backoff: Backoff,
    redact: Callable[[str], str],
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    with connection.cursor() as cur:
        for row in alert_store.due_notifications(cur, name, now):
            outcome = _attempt(cur, row, sender, now, backoff, redact)
            outcomes.append(outcome)
            if outcome.status == PENDING:  # down: the rest of its queue waits for the next tick
                break
    return outcomes


def _attempt(
    cur: duckdb.DuckDBPyConnection,
    row: dict[str, Any],
    sender: Sender | None,
    now: datetime,
    backoff: Backoff,
    redact: Callable[[str], str],
) -> Outcome:
    attempts = row["attempts"] + 1
    try:
        if sender is None:
            raise DeliveryError(f"receiver {row['receiver']!r} is no longer configured", retryable=False)
        sender.send(row["payload"])
    except DeliveryError as exc:
        return _failed(cur, row, attempts, redact(str(exc)), exc.retryable, now, backoff)
    except Exception as exc:  # a bug in rendering must not stop the other receivers
        log.exception("sending notification %s failed unexpectedly", row["id"])
        error = redact(f"{type(exc).__name__}: {exc}")
        return _failed(cur, row, attempts, error, False, now, backoff)
    alert_store.record_attempt(
        cur, row["id"], status=DELIVERED, attempts=attempts, now=now, next_attempt_at=now, error=None
    )
    log.info("delivered notification %s to %s (attempt %d)", row["id"], row["receiver"], attempts)
    return Outcome(row["id"], row["receiver"], DELIVERED, attempts)


def _failed(
    cur: duckdb.DuckDBPyConnection,
    row: dict[str, Any],
    attempts: int,
    error: str,
    retryable: bool,
    now: datetime,
    backoff: Backoff,
) -> Outcome:
    next_at = now + backoff.delay(attempts)
    give_up = not retryable or next_at - row["created_at"] > backoff.give_up_after
    status = FAILED if give_up else PENDING
    alert_store.record_attempt(
        cur, row["id"], status=status, attempts=attempts, now=now, next_attempt_at=next_at, error=error
    )
    if give_up:
        log.warning("notification %s to %s failed for good: %s", row["id"], row["receiver"], error)
    else:
        log.info(
            "notification %s to %s failed (attempt %d), retrying at %s: %s",
            row["id"],
            row["receiver"],
            attempts,
            next_at.isoformat(),
            error,
        )
    return Outcome(row["id"], row["receiver"], status, attempts, error)
