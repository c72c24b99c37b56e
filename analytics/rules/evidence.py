"""How evidence values are written: money as decimal text, times as ISO 8601 in UTC."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

_CENT_HUNDREDTHS = Decimal("0.0001")  # agents' calls cost fractions of a cent: cents alone would show 0.00


def money(value: Decimal | float | None) -> str:
    """Dollars to a hundredth of a cent, as text (exact for Decimal); "0.0000" for none."""
    return str(Decimal(str(value or 0)).quantize(_CENT_HUNDREDTHS))


def timestamp(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None
