"""The `muster` command line: thin commands over the library, tables for people, `--json` for scripts.

Errors go to stderr with a non-zero exit code. While a server runs it owns the warehouse file, so
reading commands ask its API; with no server they read the file directly.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from muster import __version__
from muster.cli_access import credentials, tokens
from muster.cli_admin import backup, restore
from muster.cli_alerts import alerts
from muster.cli_common import JsonOption, emit, fail, muster_session, out, settings_or_exit
from muster.cli_costs import jobs, spend
from muster.cli_export import export
from muster.cli_findings import budgets, findings
from muster.cli_registry import registry

app = typer.Typer(
    help="Muster: see, pay for and govern every AI agent.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens; never print them
)
app.add_typer(tokens, name="tokens")
app.add_typer(credentials, name="credentials")
app.add_typer(registry, name="registry")
app.add_typer(jobs, name="jobs")
app.add_typer(findings, name="findings")
app.add_typer(budgets, name="budgets")
app.add_typer(export, name="export")
app.add_typer(alerts, name="alerts")
app.command()(spend)
app.command()(backup)
app.command()(restore)


@app.command()
def serve() -> None:
    """Run the server: OTLP receivers (gRPC, HTTP), the warehouse writer and the HTTP API."""
    settings = settings_or_exit()
    from alerts import AlertsConfigError
    from muster.server import serve as run_server
    from warehouse.errors import WarehouseError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_server(settings)
    except WarehouseError as exc:
        fail(str(exc))
    except AlertsConfigError as exc:
        fail(str(exc), code=2)
    except OSError as exc:
        fail(f"{exc}; choose another port with MUSTER_*_PORT")


@app.command()
def up(
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Load the demo registry and a simulated fleet with 35 days of history."),
    ] = False,
    dashboard: Annotated[bool, typer.Option(help="Serve the dashboards too.")] = True,
    rate: Annotated[float, typer.Option(help="With --demo: live traces per second after the history.")] = 5.0,
) -> None:
    """Run Muster as one supervised unit: the server, the dashboards and, with --demo, a simulated fleet."""
    from muster.up import run_up

    settings = settings_or_exit()
    raise typer.Exit(run_up(settings, demo=demo, dashboard=dashboard, rate=rate, out=print))


@app.command()
def status(as_json: JsonOption = False) -> None:
    """What has arrived: spans, metric points and log records per service, last ingest, rejects."""
    with muster_session() as muster:
        answer = muster.get("/api/v1/status") | {"source": muster.source}
    emit(answer, as_json, print_status)


@app.command()
def simulate(
    fleet: Annotated[
        str, typer.Option(help="demo: the 60-agent enterprise of data/demo; basic: --agents templates.")
    ] = "demo",
    agents: Annotated[int, typer.Option(help="Fleet size of the basic fleet.")] = 12,
    seed: Annotated[int, typer.Option(help="Seed for the fleet and its traffic.")] = 7,
    traces: Annotated[int | None, typer.Option(help="Send exactly this many traces, then stop.")] = None,
    rate: Annotated[
        float | None, typer.Option(help="Traces per second (default: 5, or unpaced with --traces).")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    backfill: Annotated[
        str | None,
        typer.Option(
            "--backfill",
            "--backfill-days",
            help="Send history over the past N days (35d or 35); without --traces, the fleet's daily volume.",
        ),
    ] = None,
    grpc_endpoint: Annotated[
        str | None, typer.Option(help="OTLP/gRPC host:port (default: this Muster's).")
    ] = None,
    http_endpoint: Annotated[
        str | None, typer.Option(help="OTLP/HTTP base URL (default: this Muster's).")
    ] = None,
    as_json: JsonOption = False,
    ledger_file: Annotated[
        Path | None,
        typer.Option(
            "--ledger", help="When the run ends (Ctrl-C too), write every model call it sent here as JSON."
        ),
    ] = None,
) -> None:
    """A simulated fleet of AI agents exporting real OTLP through the OpenTelemetry SDK; Ctrl-C stops it."""
    settings = settings_or_exit()
    import signal
    import threading

    from muster.fleet_cli import backfill_plan, chosen_fleet
    from muster.simulate import run

    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    if grpc_endpoint is None and http_endpoint is None:
        grpc_endpoint = f"{host}:{settings.otlp_grpc_port}"
        http_endpoint = f"http://{host}:{settings.otlp_http_port}"
    try:
        backfill_days, traces = backfill_plan(fleet, backfill, traces)
    except ValueError as exc:
        fail(str(exc), code=2)
    if traces is None and rate is None:
        rate = 5.0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # finish the trace in flight, flush, then report
        signal.signal(sig, lambda *_: stop.set())
    try:
        ledger = run(
            chosen_fleet(fleet, seed=seed, agents=agents),
            grpc_endpoint=grpc_endpoint,
            http_endpoint=http_endpoint,
            traces=traces,
            rate=rate,
            duration=duration,
            backfill_days=backfill_days,
            stop=stop,
            seed=seed,
        )
    except ValueError as exc:
        fail(str(exc), code=2)
    if ledger_file is not None:  # after run(): its providers have flushed, so the ledger is final
        ledger.write_json(ledger_file)
    summary = ledger.as_dict()
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"sent {summary['traces']:,} traces: {summary['spans']:,} spans, {summary['metric_points']:,} "
            f"metric points, {summary['log_records']:,} log records from {len(summary['services'])} agents"
        )
    if ledger.failed_exports:
        fail(
            f"{ledger.failed_exports} exports failed: is Muster running at {grpc_endpoint or http_endpoint}?"
        )


@app.command()
def dashboard(
    port: Annotated[int | None, typer.Option(help="Port (default: MUSTER_DASHBOARD_PORT, 8501).")] = None,
) -> None:
    """Serve the Streamlit dashboards against the running server's API; sign in with an API token."""
    settings = settings_or_exit()
    import os
    import subprocess
    import sys

    from dashboards import APP
    from muster.client import api_url

    url = settings.api_url or api_url(settings)
    if url is None:
        fail("no running server found: start `muster serve` first (or set MUSTER_API_URL)")
    env = os.environ | {"MUSTER_API_URL": url}
    if settings.tls_cert_file:  # the dashboards trust the server's own certificate, as the CLI does
        env["MUSTER_TLS_CERT_FILE"] = str(settings.tls_cert_file)
    chosen = settings.dashboard_port if port is None else port
    out.print(f"Muster dashboards on http://{settings.host}:{chosen} reading {url}")
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(chosen)]
    command += ["--server.address", settings.host, "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false", "--global.developmentMode", "false"]
    command += ["--client.toolbarMode", "viewer"]
    try:
        code = subprocess.run(command, env=env, check=False).returncode
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print Muster's version."""
    out.print(__version__)


def print_status(answer: dict) -> None:
    totals = answer["totals"]
    out.print(
        f"[bold]{totals['spans']:,}[/bold] spans, [bold]{totals['metric_points']:,}[/bold] metric points, "
        f"[bold]{totals['log_records']:,}[/bold] log records, [bold]{totals['rejected']:,}[/bold] rejected; "
        f"last ingest {when(answer['last_received_at'])} ({answer['source']})"
    )
    table = Table("service", "spans", "metric points", "log records", "rejected", "last ingest")
    for row in answer["services"]:
        table.add_row(
            row["service_name"] or "(none)",
            f"{row['spans']:,}",
            f"{row['metric_points']:,}",
            f"{row['log_records']:,}",
            f"{row['rejected']:,}",
            when(row["last_received_at"]),
        )
    out.print(table)
    if answer["rejects"]:
        rejects = Table("signal", "service", "rejected", "reason", title="recent rejects")
        for row in answer["rejects"]:
            rejects.add_row(
                row["signal"], row["service_name"] or "(none)", f"{row['rejected']:,}", row["reason"]
            )
        out.print(rejects)


def when(value: str | datetime | None) -> str:
    if value is None:
        return "never"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
