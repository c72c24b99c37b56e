"""Named, parameterised read queries over the warehouse. No SQL is ever built from user input.

Each function takes a DuckDB cursor (one per thread) and returns plain data, so the HTTP API and
the CLI serve the same answers whether they read through the server or from the file directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import duckdb


@dataclass(frozen=True)
class ServiceIngest:
    """What one service has sent: counts per signal and when it last arrived."""

    service_name: str | None
    spans: int
    metric_points: int
    log_records: int
    rejected: int
    last_received_at: datetime | None


@dataclass(frozen=True)
class RejectSummary:
    """Items refused at ingest, grouped by signal, service and reason."""

    signal: str
    service_name: str | None
    reason: str
    rejected: int
    last_at: datetime


@dataclass(frozen=True)
class IngestStatus:
    """What has arrived in the warehouse: the answer behind `muster status`."""

    services: list[ServiceIngest]
    rejects: list[RejectSummary]

    @property
    def totals(self) -> dict[str, int]:
        return {
            "spans": sum(s.spans for s in self.services),
            "metric_points": sum(s.metric_points for s in self.services),
            "log_records": sum(s.log_records for s in self.services),
            "rejected": sum(s.rejected for s in self.services),
        }

    @property
    def last_received_at(self) -> datetime | None:
        times = [s.last_received_at for s in self.services if s.last_received_at]
        return max(times, default=None)

    def to_dict(self) -> dict:
        return {
            "totals": self.totals,
            "last_received_at": self.last_received_at,
            "services": [asdict(s) for s in self.services],
            "rejects": [asdict(r) for r in self.rejects],
        }


_SERVICES = """
WITH arrived AS (
    SELECT service_name, count(*) AS spans, 0 AS metric_points, 0 AS log_records, 0 AS rejected,
           max(received_at) AS last_at
    FROM spans GROUP BY service_name
    UNION ALL
    SELECT service_name, 0, count(*), 0, 0, max(received_at) FROM metric_points GROUP BY service_name
    UNION ALL
    SELECT service_name, 0, 0, count(*), 0, max(received_at) FROM log_records GROUP BY service_name
    UNION ALL
    SELECT service_name, 0, 0, 0, sum(rejected), max(received_at) FROM ingest_rejects GROUP BY service_name
)
SELECT service_name, sum(spans)::BIGINT, sum(metric_points)::BIGINT, sum(log_records)::BIGINT,
       sum(rejected)::BIGINT, max(last_at)
FROM arrived GROUP BY service_name ORDER BY max(last_at) DESC NULLS LAST, service_name
"""

_REJECTS = """
SELECT signal, service_name, reason, sum(rejected)::BIGINT, max(received_at)
FROM ingest_rejects GROUP BY ALL ORDER BY max(received_at) DESC LIMIT $limit
"""


def ingest_status(cursor: duckdb.DuckDBPyConnection, *, reject_limit: int = 20) -> IngestStatus:
    """Counts per service and signal, last arrival, and the most recent reasons for rejects."""
    services = [ServiceIngest(*row) for row in cursor.execute(_SERVICES).fetchall()]
    rejects = [RejectSummary(*row) for row in cursor.execute(_REJECTS, {"limit": reject_limit}).fetchall()]
    return IngestStatus(services, rejects)
