"""`analytics.inventory.live_inventory`: observed identities judged by the registry as it is now.

The frames are what `warehouse.inventory_store.identity_spend` returns; the registry is real
documents. The HTTP side (a registration shows at once through a real server) is in
tests/test_dashboards_api.py.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import polars as pl

from analytics.attribution import identity_verdicts
from analytics.inventory import INVENTORY_COLUMNS, live_inventory
from registry import IDENTITY_COLUMNS, load_texts

REGISTRY = load_texts(
    {
        "r.yaml": """
apiVersion: muster/v1
kind: Department
metadata: {id: legal}
spec: {name: Legal}
---
apiVersion: muster/v1
kind: Agent
metadata: {id: contract-review}
spec:
  name: Contract Review
  owner: raj@example.com
  department: legal
  platform: semantic-kernel
  lifecycle: pilot
  match:
    - service: {namespace: legal, name: contract-review}
"""
    }
)
COST = pl.Decimal(38, 12)


def spend_rows(*rows: dict) -> pl.DataFrame:
    """identity_spend's frame: identity keys (service only here), the job's verdict, and spend."""
    schema = {name: pl.String for name in IDENTITY_COLUMNS} | {
        "attributed_status": pl.String,
        "attributed_agent_id": pl.String,
        "observed_identity": pl.String,
        "first_seen": pl.Datetime("ns"),
        "last_seen": pl.Datetime("ns"),
        "calls": pl.Int64,
        "cost_usd": COST,
        "unpriced_calls": pl.Int64,
    }
    full = [{name: row.get(name) for name in schema} for row in rows]
    return pl.DataFrame(full, schema=schema)


def row(namespace: str, name: str, status: str, agent: str | None, cost: str, day: int) -> dict:
    return {
        "service_namespace": namespace,
        "service_name": name,
        "attributed_status": status,
        "attributed_agent_id": agent,
        "observed_identity": f"service={namespace}/{name}",
        "first_seen": datetime(2026, 5, day, 9),
        "last_seen": datetime(2026, 5, day, 17),
        "calls": 3,
        "cost_usd": Decimal(cost),
        "unpriced_calls": 1,
    }


# mid-run: some of contract-review's traces are re-attributed, some not yet; a shadow agent beside it
SPEND = spend_rows(
    row("legal", "contract-review", "unregistered", None, "1.50", 1),
    row("legal", "contract-review", "registered", "contract-review", "0.25", 3),
    row("shop", "checkout", "unregistered", None, "9", 2),
)


def test_the_verdict_is_the_registrys_now_and_spend_pending_says_the_job_differs():
    rows = live_inventory(SPEND, REGISTRY)
    assert [tuple(r) for r in rows] == [INVENTORY_COLUMNS] * 2
    shadow, review = rows
    assert (shadow["observed_identity"], shadow["match_status"], shadow["spend_pending"]) == (
        "service=shop/checkout",
        "unregistered",
        False,
    )
    assert review | {"first_seen": None, "last_seen": None} == {
        "observed_identity": "service=legal/contract-review",
        "match_status": "registered",
        "agent_id": "contract-review",
        "department_id": "legal",
        "agent_name": "Contract Review",
        "owner": "raj@example.com",
        "platform": "semantic-kernel",
        "lifecycle": "pilot",
        "environment": None,
        "first_seen": None,
        "last_seen": None,
        "calls": 6,
        "cost_usd": Decimal("1.75"),
        "unpriced_calls": 2,
        "spend_pending": True,  # 1.50 of it is still the job's "unregistered"
        "attributed_status": "unregistered",
        "attributed_agent_id": None,
    }
    assert (review["first_seen"], review["last_seen"]) == (datetime(2026, 5, 1, 9), datetime(2026, 5, 3, 17))


def test_it_decides_as_the_job_does():
    identities = SPEND.select(IDENTITY_COLUMNS).unique()
    expected = identity_verdicts(identities, REGISTRY)
    by_identity = {r["observed_identity"]: r for r in live_inventory(SPEND, REGISTRY)}
    for verdict in expected.iter_rows(named=True):
        found = by_identity[verdict["observed_identity"]]
        assert (found["match_status"], found["agent_id"], found["department_id"]) == (
            verdict["match_status"],
            verdict["agent_id"],
            verdict["department_id"],
        )


def test_scope_follows_the_verdict_now():
    legal = live_inventory(SPEND, REGISTRY, department_ids={"legal"})
    assert [r["agent_id"] for r in legal] == ["contract-review"]
    assert [r["agent_id"] for r in live_inventory(SPEND, REGISTRY, agent_ids={"contract-review"})] == [
        "contract-review"
    ]
    assert live_inventory(SPEND, REGISTRY, department_ids={"people"}) == []
    assert live_inventory(SPEND, REGISTRY, department_ids=set()) == []


def test_an_empty_warehouse_has_an_empty_inventory():
    assert live_inventory(spend_rows(), REGISTRY) == []
