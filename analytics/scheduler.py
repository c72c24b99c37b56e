"""`JobScheduler`: runs the cost job inside `muster serve`, every few seconds and on demand.

One thread runs the job on a schedule; `run_now` runs it from the caller's thread (an API
request). A lock keeps two runs from overlapping, so an on-demand run waits for a scheduled one
and then finds only what is newer. Every run takes a fresh cursor of its own, as DuckDB asks of
threads, and re-reads the registry and the price overrides file, so edits to either apply
without a restart.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import duckdb

from analytics.jobs import JobResult, ProgressCallback, run_cost_job

log = logging.getLogger(__name__)

__all__ = ["JobScheduler"]


class JobScheduler:
    """Runs the cost job every `interval` seconds (0: only on demand) over `connection`."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, *, interval: float, prices_file: Path) -> None:
        self._connection = connection
        self._interval = interval
        self._prices_file = prices_file
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0:
            log.info("scheduled jobs are off (jobs_interval_seconds = 0); `muster jobs run` runs them")
            return
        self._thread = threading.Thread(target=self._loop, name="muster-jobs", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop the schedule; a run in progress finishes first (it is one transaction either way)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def run_now(self, *, full: bool = False, progress: ProgressCallback | None = None) -> JobResult:
        """Run the cost job now, after any run in progress; raises what the job raised.

        `progress` is called after each batch the run commits (see `run_cost_job`).
        """
        with self._lock, self._connection.cursor() as cur:
            return run_cost_job(cur, overrides=self._prices_file, full=full, progress=progress)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_now()
            except Exception:  # already recorded in job_state; the next tick retries
                log.debug("scheduled cost job failed", exc_info=True)
