"""Exports over HTTP: a month of AI spend as a FOCUS file for FinOps tools.

Scoped like /api/v1/spend: a finance token of one department exports only that department's
calls, an owner token only its agent's; calls no registered agent owns go to unscoped tokens
alone. The file's summary (rows, total, unpriced calls left out) travels in `X-Muster-*` headers.
"""

from __future__ import annotations

from datetime import date

import duckdb
from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from analytics.focus import FOCUS_VERSION, ExportFormat, billing_month, encoded, focus_rows
from muster.api.deps import cursor, reader
from muster.api.scope import agent_filter, department_filter
from muster.auth import Principal
from warehouse import export_store
from warehouse.registry_store import load_registry

router = APIRouter(prefix="/api/v1/export", tags=["export"])

_FORMATS = ", ".join(ExportFormat)


def _month(month: str = Query(..., description="The UTC calendar month, YYYY-MM.")) -> date:
    try:
        return billing_month(month)
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def _format(
    file_format: str = Query("csv", alias="format", description=f"One of {_FORMATS}."),
) -> ExportFormat:
    try:
        return ExportFormat(file_format)
    except ValueError:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"format {file_format!r} is not known: choose one of {_FORMATS}"
        ) from None


@router.get(
    "/focus",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
def focus(
    month: date = Depends(_month),
    file_format: ExportFormat = Depends(_format),
    who: Principal = Depends(reader),
    cur: duckdb.DuckDBPyConnection = Depends(cursor),
) -> Response:
    """One month of priced model calls as a FOCUS file (CSV or Parquet), inside your scope.

    Unpriced calls have no cost to report, so they are left out and counted in the
    `X-Muster-Unpriced-Calls` header instead of appearing as $0.
    """
    calls = export_store.priced_calls_of_month(
        cur, month, department_ids=department_filter(who), agent_ids=agent_filter(who)
    )
    export = focus_rows(calls, load_registry(cur), month=month)
    summary = export.summary()
    name = f"muster-focus-{summary['month']}.{file_format.value}"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Muster-Focus-Version": FOCUS_VERSION,
        "X-Muster-Rows": str(summary["rows"]),
        "X-Muster-Priced-Calls": str(summary["priced_calls"]),
        "X-Muster-Billed-Cost-USD": summary["billed_cost_usd"],
        "X-Muster-Unpriced-Calls": str(summary["unpriced_calls"]),
        "X-Muster-Unpriced-Tokens": str(summary["unpriced_tokens"]),
    }
    return Response(encoded(export.rows, file_format), media_type=file_format.media_type, headers=headers)
