"""Who the bearer token belongs to: its role, its scope and what it may do (the dashboards ask once)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from muster.api.deps import principal
from muster.auth import Permission, Principal

router = APIRouter(prefix="/api/v1", tags=["access"])


@router.get("/whoami")
def whoami(who: Principal = Depends(principal)) -> dict[str, Any]:
    """The token's id, role, department or agent scope, and its permissions."""
    return {
        "name": who.name,
        "role": who.role.value,
        "department_id": who.department_id,
        "agent_id": who.agent_id,
        "permissions": sorted(permission.value for permission in Permission if who.may(permission)),
    }
