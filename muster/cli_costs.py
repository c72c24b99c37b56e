"""`muster jobs run` and `muster spend`: compute costs now, and read spend by any dimension.

`muster jobs run` runs the job in this process, with a progress bar, when no server owns the
warehouse; through a running server's API it prints one summary line when the run ends.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from muster.cli_common import JsonOption, emit, err, fail, muster_session, out, settings_or_exit
from muster.settings import Settings

jobs = typer.Typer(help="The jobs that price and attribute model calls.", no_args_is_help=True)


class SpendBy(StrEnum):
    department = "department"
    agent = "agent"
    model = "model"
    provider = "provider"
    cost_centre = "cost_centre"
    day = "day"
    environment = "environment"


@jobs.command("run")
def run(
    full: Annotated[bool, typer.Option("--full", help="Recompute every trace, not only new ones.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the cost job now: price and attribute the model calls of the traces that arrived."""
    from muster.server import read_runtime  # heavy (receivers, writer): only for this command

    settings = settings_or_exit()
    if read_runtime(settings.data_dir) is None:  # no server owns the file: run here, with a progress bar
        result = _run_here(settings, full)
    else:  # the server runs it (a single summary line); a dead server's leftover file falls back in-process
        with muster_session() as muster:
            result = muster.post(f"/api/v1/jobs/run?full={str(full).lower()}")
    emit(result, as_json, _print_job)


def _run_here(settings: Settings, full: bool) -> dict[str, Any]:
    """The cost job in this process over the warehouse file, its batches shown on stderr."""
    from analytics.jobs import JobProgress
    from analytics.scheduler import JobScheduler
    from warehouse.database import open_warehouse
    from warehouse.errors import WarehouseError

    if not settings.warehouse_path.exists():
        fail(f"no warehouse at {settings.warehouse_path}: start `muster serve` once, or set MUSTER_DATA_DIR")
    try:
        con = open_warehouse(settings.warehouse_path)
    except WarehouseError as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with con, Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("pricing and attributing", total=None)

        def progress(step: JobProgress) -> None:
            description = f"batch {step.batch}/{step.batches}: {step.spans:,} of ~{step.planned:,} spans"
            bar.update(task, total=step.batches, completed=step.batch, description=description)

        try:
            return (
                JobScheduler(con, interval=0, prices_file=settings.prices_file)
                .run_now(full=full, progress=progress)
                .to_dict()
            )
        except Exception as exc:  # the same words as the API's, whichever process ran the job
            fail(f"the cost job failed, previous results stay: {type(exc).__name__}: {exc}")
            raise  # unreachable: fail() exits


def spend(
    by: Annotated[SpendBy, typer.Option("--by", help="What to group spend by.")] = SpendBy.department,
    start: Annotated[
        str | None, typer.Option("--from", help="First UTC day included, YYYY-MM-DD.", show_default=False)
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last UTC day included, YYYY-MM-DD.", show_default=False)
    ] = None,
    environment: Annotated[
        list[str] | None,
        typer.Option(
            "--environment",
            help="Only spend in this deployment environment; repeat it for several.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Spend in USD, calls and tokens by department, agent, model, provider, cost centre, day, environment."""
    start_day, end_day = _day(start, "--from"), _day(end, "--to")
    with muster_session() as muster:
        rows = muster.get(
            "/api/v1/spend",
            by=by.value,
            environment=environment or None,
            **{"from": start_day, "to": end_day},
        )
    emit(rows, as_json, lambda _: _print_spend(rows, by.value))


def _day(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        fail(f"{option} {value!r} is not a date: write it as YYYY-MM-DD", code=2)
        raise  # unreachable: fail() exits


def _print_job(result: Any) -> None:
    out.print(
        f"priced {result['priced_calls']:,} of {result['calls']:,} model calls "
        f"({result['unpriced_calls']:,} unpriced) in {result['traces']:,} traces, "
        f"{result['duration_s']:.2f} s; watermark {result['watermark_from']} → {result['watermark_to']}"
        + (f" (full run: {result['full_reason']})" if result.get("full_reason") else "")
    )


def _print_spend(rows: list[dict[str, Any]], by: str) -> None:
    shown = Table(by)
    for column in ("cost (USD)", "calls", "unpriced", "input tokens", "output tokens"):
        shown.add_column(column, justify="right")
    total = Decimal(0)
    for row in rows:
        cost = Decimal(row["cost_usd"])
        total += cost
        shown.add_row(
            "(none)" if row[by] is None else str(row[by]),
            f"{cost:,.4f}",  # agents' calls cost fractions of a cent; cents would show 0.00
            f"{row['calls']:,}",
            f"{row['unpriced_calls']:,}",
            f"{row['input_tokens']:,}",
            f"{row['output_tokens']:,}",
        )
    out.print(shown)
    out.print(f"total [bold]${total:,.4f}[/bold]")
