"""The ingest pipeline shared by every receiver: admit → decode off the loop → write → answer.

A receiver hands `Ingest.export()` the raw body of one OTLP export. The pipeline admits it against
a bounded byte budget (when the budget is spent the exporter is throttled with a retryable error,
so memory stays bounded and nothing is dropped), decodes it in a worker process (protobuf parsing
is fast, the Python walk over spans is not, and processes sidestep the GIL), submits the rows to
the warehouse writer and waits for the commit. Only then is the export answered: an acknowledged
export is durable.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import pyarrow as pa

from collector.credentials import AuthFailures, IngestCredentials
from collector.decode import Format, Signal, decode
from collector.errors import Throttled, Unauthenticated, Unavailable
from collector.normalise import DEFAULT_LIMITS, Limits, Normalised
from collector.worker import start_worker, warm_up
from warehouse.errors import WarehouseError
from warehouse.writer import RejectRow, WriteBatch, Writer

log = logging.getLogger(__name__)

TABLES = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}


@dataclass(frozen=True)
class ExportResult:
    """What the exporter is told: how many items were refused and why (empty when none)."""

    rejected: int = 0
    error_message: str = ""


@dataclass
class IngestStats:
    """Counters since start-up, per signal, for `/metrics` and `muster status`."""

    received: Counter = field(default_factory=Counter)  # items accepted and committed
    rejected: Counter = field(default_factory=Counter)  # items refused (partial success)
    failed: Counter = field(default_factory=Counter)  # whole requests refused (bad body, too large)
    throttled: Counter = field(default_factory=Counter)  # requests refused because the queue was full
    unauthenticated: Counter = field(default_factory=Counter)  # requests without a valid credential
    queued_bytes: int = 0


class Ingest:
    """Admission, decoding and writing for OTLP exports; `start()` before use, `shutdown()` after."""

    def __init__(
        self,
        writer: Writer,
        credentials: IngestCredentials,
        *,
        stats: IngestStats | None = None,
        decode_workers: int,
        max_request_bytes: int,
        queue_bytes: int,
        retry_after: float,
        limits: Limits = DEFAULT_LIMITS,
        auth_failures: AuthFailures | None = None,
    ) -> None:
        self._writer = writer
        self._auth_failures = auth_failures
        self._limits = limits
        self.credentials = credentials
        self._workers = decode_workers
        self._max_request_bytes = max_request_bytes
        self._queue_bytes = queue_bytes
        self._retry_after = retry_after
        self._executor: Executor | None = None
        self.stats = stats or IngestStats()

    def start(self) -> None:
        """Start the decode workers and wait until each has imported the decoder, so that "ready"
        means the first export is answered at full speed, not after a worker's start-up."""
        if self._executor is None:
            self._executor = self._new_executor()
            list(self._executor.map(warm_up, range(max(self._workers, 1))))

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def export(
        self,
        signal: Signal,
        body: bytes,
        fmt: Format,
        encoding: str | None,
        credential: str | None = None,
        client: str | None = None,
    ) -> ExportResult:
        """Store one export durably, or raise an `ExportError` saying why not.

        `client` is the sender's address: one that has presented too many wrong credentials lately
        is refused (retryably, after a while) before its credential is even looked up.
        """
        limited = self._auth_failures if client else None
        if limited is not None and (wait := limited.retry_after(client)):
            self.stats.unauthenticated[signal] += 1
            raise Throttled(
                "too many failed authentications from this address; retry later", retry_after=wait
            )
        try:  # before any work, so a refused export costs nothing
            agent_id = self.credentials.agent_for(credential)
        except Unauthenticated:
            self.stats.unauthenticated[signal] += 1
            if limited is not None and credential is not None:  # a wrong one, not a missing one
                limited.failed(client)
            raise
        size = len(body)
        # An empty queue admits any request (its size is bounded by max_request_bytes), so a
        # request larger than the whole budget is slow, not refused forever.
        if self.stats.queued_bytes and self.stats.queued_bytes + size > self._queue_bytes:
            self.stats.throttled[signal] += 1
            raise Throttled("Muster's ingest queue is full; retry later", retry_after=self._retry_after)
        self.stats.queued_bytes += size
        try:
            normalised = await self._decode(signal, body, fmt, encoding)
            await self._write(signal, normalised, agent_id)
        finally:
            self.stats.queued_bytes -= size
        self.stats.received[signal] += normalised.table.num_rows
        self.stats.rejected[signal] += normalised.rejected
        return ExportResult(normalised.rejected, normalised.error_message)

    async def _decode(self, signal: Signal, body: bytes, fmt: Format, encoding: str | None) -> Normalised:
        if self._executor is None:
            raise Unavailable("Muster is not accepting data (starting or stopping); retry later")
        loop = asyncio.get_running_loop()
        job = (signal, body, fmt, encoding, self._max_request_bytes, self._limits)
        try:
            return await loop.run_in_executor(self._executor, decode, *job)
        except BrokenProcessPool:
            # A worker died (killed, or out of memory): replace the pool so later exports work.
            log.error("a decode worker died; restarting the decode pool")
            self._executor = self._new_executor()
            raise Unavailable("a decode worker failed; retry later", retry_after=self._retry_after) from None
        except Exception:
            self.stats.failed[signal] += 1
            raise

    async def _write(self, signal: Signal, normalised: Normalised, agent_id: str | None) -> None:
        rejects = [RejectRow(signal, r.service_name, r.count, r.reason) for r in normalised.rejects]
        rows = normalised.table
        if agent_id is not None:
            bound = pa.array([agent_id] * rows.num_rows, pa.string())
            rows = rows.append_column("credential_agent_id", bound)
        batch = WriteBatch(TABLES[signal], rows, rejects)
        try:
            await asyncio.wrap_future(self._writer.submit(batch))
        except WarehouseError as exc:
            raise Unavailable(str(exc), retry_after=self._retry_after) from exc

    def _new_executor(self) -> Executor:
        if self._workers == 0:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="muster-decode")
        # gRPC and fork do not mix: a pool forked after gRPC starts dies. Spawn a clean interpreter.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=context, initializer=start_worker)
