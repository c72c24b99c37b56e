"""The warehouse's own exceptions; `duckdb` errors are translated here so callers never see them.

WarehouseError
├── WarehouseLocked   another process holds the DuckDB file
├── MigrationError    a numbered migration failed to apply
└── WriteFailed       a group commit failed; nothing in it was stored (retryable)
"""

from __future__ import annotations


class WarehouseError(Exception):
    """Something went wrong in the warehouse; the message says what and what to do."""


class WarehouseLocked(WarehouseError):
    """The DuckDB file is open in another process (DuckDB allows one writing process)."""


class MigrationError(WarehouseError):
    """A schema migration could not be applied; the warehouse is left at the previous version."""


class WriteFailed(WarehouseError):
    """A commit failed and was rolled back: the data was not stored and may be sent again."""
