"""`muster serve`: one process that owns the warehouse and runs every component around it.

Start-up, in small named steps: open the warehouse (refused if another server holds it), start the
writer, start the decode workers, start the job scheduler, then the listeners (OTLP/gRPC,
OTLP/HTTP, API). A runtime file `<data dir>/server.json` tells the CLI where the API is. Shutdown
runs the same steps backwards, so the listeners stop taking data before the writer commits what is
queued and the file closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import duckdb
from fastapi import FastAPI

from alerts import Dispatcher, load_alerts_config
from analytics.scheduler import JobScheduler
from collector.asgi_server import AsgiServer
from collector.credentials import IngestCredentials
from collector.grpc_receiver import GrpcReceiver
from collector.http_receiver import http_receiver
from collector.normalise import Limits
from collector.pipeline import Ingest, IngestStats
from muster.api import create_app
from muster.api.deps import FailedAuthLimit
from muster.auth import ensure_admin_token
from muster.metrics import SelfMetrics
from muster.settings import Settings
from warehouse.access_store import live_credentials
from warehouse.database import open_warehouse
from warehouse.writer import Writer

log = logging.getLogger(__name__)

RUNTIME_FILE = "server.json"


def runtime_path(data_dir: Path) -> Path:
    return data_dir / RUNTIME_FILE


def read_runtime(data_dir: Path) -> dict | None:
    """Where a running server listens, as it recorded on start-up; None when none has."""
    try:
        return json.loads(runtime_path(data_dir).read_text())
    except (OSError, ValueError):
        return None


class Server:
    """Everything `muster serve` runs, wired from one `Settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = False
        self.ports: dict[str, int] = {}
        self.warehouse = None  # the DuckDB connection, while running
        self.ingest: Ingest | None = None
        self.jobs: JobScheduler | None = None
        self.alerts: Dispatcher | None = None
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        """Ask a running server to shut down; safe to call from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with AsyncExitStack() as stack:
            await self._start(stack)
            self.ready = True
            log.info("Muster is ready; data in %s", self.settings.warehouse_path)
            await self._stop.wait()
            self.ready = False
            log.info("stopping")

    async def _start(self, stack: AsyncExitStack) -> None:
        con = self.warehouse = self._open_warehouse(stack)
        credentials = IngestCredentials(
            lambda: _live_credentials(con), required=self.settings.require_credentials
        )
        credentials.reload()
        stats = IngestStats()
        metrics = SelfMetrics(stats)
        writer = Writer(con.cursor(), max_rows=self.settings.commit_max_rows, on_commit=metrics.on_commit)
        writer.start()
        stack.callback(writer.shutdown)
        # failed authentications per address count alike on the API and the receivers
        auth_failures = FailedAuthLimit(
            self.settings.auth_failure_limit, self.settings.auth_failure_window_seconds
        )
        self.ingest = self._ingest(writer, credentials, stats, auth_failures)
        self.ingest.start()
        stack.callback(self.ingest.shutdown)
        self.jobs = self._start_jobs(stack, con)
        self.alerts = self._start_alerts(stack, con)
        api = create_app(
            connection=con,
            stats=stats,
            metrics=metrics,
            credentials=credentials,
            ready=lambda: self.ready,
            jobs=self.jobs,
            settings=self.settings,
        )
        api.state.alerts = self.alerts
        api.state.failed_auth_limit = auth_failures
        await self._start_listeners(stack, self._listeners(self.ingest, api))

    def _open_warehouse(self, stack: AsyncExitStack) -> duckdb.DuckDBPyConnection:
        settings = self.settings
        con = open_warehouse(
            settings.warehouse_path,
            memory_limit=settings.warehouse_memory_limit,
            checkpoint_threshold=settings.checkpoint_threshold,
        )
        stack.callback(con.close)
        with con.cursor() as cur:
            ensure_admin_token(cur, settings.data_dir)
        return con

    def _start_jobs(self, stack: AsyncExitStack, con: duckdb.DuckDBPyConnection) -> JobScheduler:
        """The jobs on their schedule; stopped before the writer, so their last run can commit."""
        settings = self.settings
        jobs = JobScheduler(
            con,
            interval=settings.jobs_interval_seconds,
            prices_file=settings.prices_file,
            retention_days=(settings.raw_retention_days, settings.cost_retention_days),
            retention_grace_s=settings.raw_retention_grace_seconds,
            batch_spans=settings.jobs_batch_spans,
            exchange_rates=settings.exchange_rates,
        )
        jobs.start()
        stack.callback(jobs.shutdown)
        return jobs

    def _start_alerts(self, stack: AsyncExitStack, con: duckdb.DuckDBPyConnection) -> Dispatcher:
        """The alert dispatcher on its schedule; stopped before the jobs and the writer."""
        settings = self.settings
        config, secrets = load_alerts_config(
            settings.alerts, settings.alerts_file, data_dir=settings.data_dir
        )
        dispatcher = Dispatcher(
            con,
            config,
            secrets,
            interval=settings.alerts_interval_seconds,
            external_url=settings.dashboard_url,
        )
        dispatcher.start()
        stack.callback(dispatcher.shutdown)
        return dispatcher

    async def _start_listeners(self, stack: AsyncExitStack, listeners: list) -> None:
        """Listen on every port, then tell the CLI where (the runtime file goes when they stop)."""
        for listener in listeners:
            await listener.start()
            stack.push_async_callback(listener.shutdown)
            self.ports[listener.name] = listener.port
        self._write_runtime(self.ports)
        stack.callback(runtime_path(self.settings.data_dir).unlink, missing_ok=True)

    def _ingest(
        self,
        writer: Writer,
        credentials: IngestCredentials,
        stats: IngestStats,
        auth_failures: FailedAuthLimit,
    ) -> Ingest:
        settings = self.settings
        return Ingest(
            writer,
            credentials,
            stats=stats,
            decode_workers=settings.decode_workers,
            max_request_bytes=settings.max_request_bytes,
            queue_bytes=settings.ingest_queue_bytes,
            retry_after=settings.retry_after_seconds,
            limits=Limits(
                max_attributes=settings.max_attributes_per_item,
                max_value_length=settings.max_attribute_value_length,
                max_depth=settings.max_attribute_depth,
                max_events=settings.max_events_per_span,
                max_links=settings.max_links_per_span,
            ),
            auth_failures=auth_failures,
        )

    def _listeners(self, ingest: Ingest, api: FastAPI) -> list:
        settings = self.settings
        tls = (settings.tls_cert_file, settings.tls_key_file) if settings.tls else None
        return [
            GrpcReceiver(
                ingest,
                host=settings.host,
                port=settings.otlp_grpc_port,
                max_message_bytes=settings.max_request_bytes,
                tls=tls,
                max_concurrent_streams=settings.grpc_max_concurrent_streams,
                max_connection_idle=settings.grpc_max_connection_idle_seconds,
                max_connection_age=settings.grpc_max_connection_age_seconds,
                max_connection_age_grace=settings.grpc_max_connection_age_grace_seconds,
                max_metadata_bytes=settings.grpc_max_metadata_bytes,
            ),
            http_receiver(
                ingest,
                host=settings.host,
                port=settings.otlp_http_port,
                max_request_bytes=settings.max_request_bytes,
                tls=tls,
                header_timeout=settings.http_header_timeout_seconds,
                body_timeout=settings.http_body_timeout_seconds,
                keep_alive=settings.http_keep_alive_seconds,
            ),
            AsgiServer(
                api,
                host=settings.host,
                port=settings.api_port,
                name="API",
                tls=tls,
                header_timeout=settings.http_header_timeout_seconds,
                keep_alive=settings.http_keep_alive_seconds,
            ),
        ]

    def _write_runtime(self, ports: dict[str, int]) -> None:
        runtime = {"pid": os.getpid(), "host": self.settings.host, "ports": ports, "tls": self.settings.tls}
        runtime_path(self.settings.data_dir).write_text(json.dumps(runtime))


def _live_credentials(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    with con.cursor() as cur:
        return live_credentials(cur)


def serve(settings: Settings) -> None:
    """Run the server until SIGINT or SIGTERM."""
    server = Server(settings)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        await server.run()

    asyncio.run(main())
