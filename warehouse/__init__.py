"""The DuckDB warehouse: schema migrations, the one writer thread, and named read queries.

All SQL lives in this package, so a second engine would be a second module, not a search.
"""

from warehouse.database import migrate, open_warehouse
from warehouse.errors import MigrationError, WarehouseError, WarehouseLocked, WriteFailed
from warehouse.queries import IngestStatus, ingest_status
from warehouse.writer import CommitStats, RejectRow, WriteBatch, Writer

__all__ = [
    "CommitStats",
    "IngestStatus",
    "MigrationError",
    "RejectRow",
    "WarehouseError",
    "WarehouseLocked",
    "WriteBatch",
    "WriteFailed",
    "Writer",
    "ingest_status",
    "migrate",
    "open_warehouse",
]
