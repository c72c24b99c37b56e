"""`JobScheduler`: the cost job, then the findings job, inside `muster serve` on a schedule and on demand.

Retention (deleting raw telemetry and cost facts past their days) runs on the same thread, hourly.
One thread runs the jobs on a schedule; `run_now` runs it from the caller's thread (an API
request); `run_soon` asks for a run without waiting for it: the schedule's thread runs it at once,
or, when there is no schedule, a thread started for it. A lock keeps two runs from overlapping, so
an on-demand run waits for a scheduled one and then finds only what is newer. Every run takes a
fresh cursor of its own, as DuckDB asks of threads, and re-reads the registry and the price
overrides file, so edits to either apply without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb

from analytics.findings_job import FindingsResult, run_findings_job
from analytics.jobs import BATCH_SPANS, JobResult, ProgressCallback, run_cost_job
from analytics.rules import DetectionConfig
from warehouse.maintenance import apply_retention

log = logging.getLogger(__name__)

__all__ = ["JobScheduler"]

RETENTION_INTERVAL_S = 3600.0  # deleting a day's worth of old rows an hour late costs nothing


class JobScheduler:
    """Runs the jobs every `interval` seconds (0: only on demand) over `connection`.

    `retention_days` (raw, cost) turns on hourly retention; None leaves every row in place.
    `retention_grace_s`: spans received more recently stay, however old (`apply_retention`).
    `exchange_rates` (USD per unit) let the findings job judge budgets in other currencies.
    """

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        *,
        interval: float,
        prices_file: Path,
        retention_days: tuple[int, int] | None = None,
        retention_grace_s: float = 0.0,
        batch_spans: int = BATCH_SPANS,
        exchange_rates: Mapping[str, Decimal] | None = None,
    ) -> None:
        self._connection = connection
        self._interval = interval
        self._prices_file = prices_file
        self._retention_days = retention_days
        self._retention_grace = timedelta(seconds=retention_grace_s)
        self._batch_spans = batch_spans
        self._findings_config = DetectionConfig(exchange_rates=dict(exchange_rates or {}))
        self._retention_due = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # runs asked for by run_soon: requests made while one waits or runs fold into the next run
        self._soon = threading.Event()
        self._soon_full = False
        self._soon_lock = threading.Lock()
        self._soon_thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0:
            log.info("scheduled jobs are off (jobs_interval_seconds = 0); `muster jobs run` runs them")
            return
        self._thread = threading.Thread(target=self._loop, name="muster-jobs", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop the schedule; a run in progress finishes first (it is one transaction either way)."""
        with self._soon_lock:
            self._stop.set()
            self._soon.set()  # wakes the schedule's thread out of its wait
            on_demand, self._soon_thread = self._soon_thread, None
        for thread in (self._thread, on_demand):
            if thread is not None:
                thread.join()
        self._thread = None

    def run_soon(self, *, full: bool = False) -> None:
        """Start a cost job run without waiting for it; what it did is in `job_state` afterwards.

        On a schedule, the schedule's thread runs it at once (then waits its interval again);
        without one, a thread of its own does. Asked again while a run waits or goes on, the
        requests become one more run after it, so nothing asked for is missed and none piles up.
        """
        with self._soon_lock:
            if self._stop.is_set():
                return
            self._soon_full = self._soon_full or full
            self._soon.set()
            if self._thread is None and self._soon_thread is None:
                self._soon_thread = threading.Thread(
                    target=self._run_asked, name="muster-jobs-now", daemon=True
                )
                self._soon_thread.start()

    def _take_request(self) -> bool:
        """Whether the run asked for (if any) should be a full one; the request is then forgotten."""
        with self._soon_lock:
            full, self._soon_full = self._soon_full, False
            if not self._stop.is_set():  # the wake-up that stops the schedule must stay
                self._soon.clear()
            return full

    def _run_asked(self) -> None:
        while True:
            with self._soon_lock:  # decided under the lock, so run_soon never finds a thread leaving
                if not self._soon.is_set() or self._stop.is_set():
                    self._soon_thread = None
                    return
            self._logged(self.run_now, full=self._take_request())

    def run_now(self, *, full: bool = False, progress: ProgressCallback | None = None) -> JobResult:
        """Run the cost job now, after any run in progress; raises what the job raised.

        `progress` is called after each batch the run commits (see `run_cost_job`).
        """
        with self._lock, self._connection.cursor() as cur:
            return run_cost_job(
                cur, overrides=self._prices_file, full=full, progress=progress, batch_spans=self._batch_spans
            )

    def run_findings_now(self) -> FindingsResult:
        """Run every detection rule now, after any job in progress; raises what the job raised."""
        with self._lock, self._connection.cursor() as cur:
            return run_findings_job(cur, config=self._findings_config)

    def apply_retention_now(self) -> dict[str, int]:
        """Delete what is past its retention days now; nothing when retention is off."""
        if self._retention_days is None:
            return {}
        raw, cost = self._retention_days
        with self._lock, self._connection.cursor() as cur:
            return apply_retention(
                cur, now=datetime.now(UTC), raw_days=raw, cost_days=cost, span_grace=self._retention_grace
            )

    def _retention_if_due(self) -> None:
        if time.monotonic() >= self._retention_due:
            self._retention_due = time.monotonic() + RETENTION_INTERVAL_S
            deleted = self.apply_retention_now()
            if any(deleted.values()):
                log.info("retention deleted %s", ", ".join(f"{n:,} {t}" for t, n in deleted.items() if n))

    def _loop(self) -> None:
        while True:
            self._soon.wait(self._interval)  # the interval, or less when a run is asked for
            if self._stop.is_set():
                return
            full = self._take_request()
            # findings read what the cost job wrote; retention runs last, off the critical path
            self._logged(self.run_now, full=full)
            self._logged(self.run_findings_now)
            self._logged(self._retention_if_due)

    @staticmethod
    def _logged(job: Callable[..., object], **kwargs: bool) -> None:
        try:
            job(**kwargs)
        except Exception:  # already recorded in job_state; the next tick retries
            log.debug("%s failed", job.__name__, exc_info=True)
