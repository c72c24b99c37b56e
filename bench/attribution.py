"""Benchmark of `analytics.attribution`: spans per second through model calls, owners, attribution, costs.

Builds a synthetic day of multi-agent traffic — by default 100,000 traces of 10 spans (a supervisor
with a planning call, a researcher sub-agent with two calls and a tool, half of them in a remote
service, a writer sub-agent with a call, a tool and a legacy span that names no operation) — with a
registry of 300 agents of which some identities are unregistered, and times each stage.

    python bench/attribution.py [--traces 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.attribution import agent_costs, agent_span_costs, attribute, model_calls, owning_agents
from registry import Agent, Department, Registry

# One trace: (operation, parent position); position 9 is a legacy model call with no operation.
TEMPLATE = [
    ("invoke_agent", None),  # supervisor
    ("chat", 0),  # its planning call
    ("invoke_agent", 0),  # researcher
    ("chat", 2),
    ("execute_tool", 2),
    ("chat", 2),
    ("invoke_agent", 0),  # writer
    ("chat", 6),
    ("execute_tool", 6),
    (None, 6),
]
AGENT_ROLES = {0: "sup", 2: "res", 6: "wri"}
FLEET = 100  # distinct agents per role


def spans_frame(traces: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    width = len(TEMPLATE)
    count = traces * width
    trace = np.repeat(np.arange(traces), width)
    position = np.tile(np.arange(width), traces)
    parents = np.array([-1 if parent is None else parent for _, parent in TEMPLATE])
    parent_position = parents[position]
    span_number = np.arange(count)
    trace_ids = [f"{t:032x}" for t in range(traces)]
    span_ids = [f"{n:016x}" for n in range(count)]
    frame = pl.DataFrame(
        {
            "trace_id": pl.Series(trace_ids).gather(pl.Series(trace)),
            "span_id": span_ids,
            "parent_span_id": pl.Series(span_ids).gather(
                pl.Series(np.where(parent_position < 0, 0, span_number - position + parent_position))
            ),
            "_has_parent": parent_position >= 0,
            "_position": position,
            "_trace": trace,
            "_tokens": rng.integers(50, 4000, count),
            "_cost": rng.random(count) / 100,
        }
    )
    operations = {position: operation for position, (operation, _) in enumerate(TEMPLATE)}
    operation = pl.col("_position").replace_strict(operations, default=None, return_dtype=pl.String)
    role = pl.col("_position").replace_strict(AGENT_ROLES, default=None, return_dtype=pl.String)
    remote = (pl.col("_position").is_between(2, 5)) & (pl.col("_trace") % 2 == 0)
    service = (
        pl.when(remote).then(pl.lit("research-svc")).otherwise(pl.format("svc-{}", pl.col("_trace") % 50))
    )
    is_call = pl.col("_position").is_in([1, 3, 5, 7, 9])
    is_agent = pl.col("_position").is_in(list(AGENT_ROLES))
    return frame.select(
        "trace_id",
        "span_id",
        pl.when("_has_parent").then("parent_span_id").alias("parent_span_id"),
        operation.alias("operation"),
        pl.when(is_call | is_agent).then(pl.lit("gpt-4o")).alias("request_model"),
        # agent spans carry their children's usage rolled up, as some instrumentations do
        pl.when(is_call | is_agent).then(pl.col("_tokens")).alias("input_tokens"),
        pl.when(is_call | is_agent).then(pl.col("_tokens") // 4).alias("output_tokens"),
        pl.when(is_call | is_agent).then(pl.col("_tokens") + pl.col("_tokens") // 4).alias("total_tokens"),
        pl.lit(None, dtype=pl.String).alias("agent_id"),
        pl.when(is_agent).then(pl.format("{}-{}", role, pl.col("_trace") % FLEET)).alias("agent_name"),
        pl.lit(None, dtype=pl.String).alias("credential_agent_id"),
        pl.lit("acme").alias("service_namespace"),
        service.alias("service_name"),
        pl.lit("prod").alias("environment"),
        pl.concat_str(pl.lit('{"service.namespace":"acme","service.name":"'), service, pl.lit('"}')).alias(
            "resource_attributes"
        ),
        pl.when(is_call).then(pl.col("_cost")).cast(pl.Decimal(38, 12)).alias("cost_usd"),
    )


def registry() -> Registry:
    def agent(agent_id: str) -> Agent:
        spec = {
            "name": agent_id,
            "owner": "o",
            "department": f"d{hash(agent_id) % 10}",
            "lifecycle": "production",
        }
        spec["match"] = [{"agentName": agent_id}]
        return Agent.model_validate({"kind": "Agent", "metadata": {"id": agent_id}, "spec": spec})

    departments = [
        Department.model_validate(
            {
                "kind": "Department",
                "metadata": {"id": f"d{i}"},
                "spec": {"name": f"D{i}", "costCentre": f"CC-{i}"},
            }
        )
        for i in range(10)
    ]
    # every supervisor and researcher is registered, a fifth of the writers are not (shadow agents)
    names = [f"{role}-{i}" for role in ("sup", "res") for i in range(FLEET)]
    names += [f"wri-{i}" for i in range(FLEET) if i % 5]
    return Registry.of([*departments, *map(agent, names)])


def timed(label: str, spans: int, repeat: int, work: Callable[[], object]) -> object:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    print(f"  {label:<18} {best * 1000:8.0f} ms  {spans / best:12,.0f} spans/s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    spans = spans_frame(args.traces)
    known = registry()
    count = len(spans)
    print(
        f"attribution: {count:,} spans in {args.traces:,} traces, {len(known.agents)} registered agents; "
        f"Python {platform.python_version()}, Polars {pl.__version__}, {os.cpu_count()} CPUs, "
        f"best of {args.repeat}"
    )
    calls = timed("model_calls", count, args.repeat, lambda: model_calls(spans))
    owners = timed("owning_agents", count, args.repeat, lambda: owning_agents(spans))
    attributed = timed("attribute", count, args.repeat, lambda: attribute(calls, owners, known))
    timed("agent_span_costs", count, args.repeat, lambda: agent_span_costs(attributed, owners, known))
    per_agent = timed("agent_costs", count, args.repeat, lambda: agent_costs(attributed, owners, known))

    def everything() -> pl.DataFrame:
        found = owning_agents(spans)
        done = attribute(model_calls(spans), found, known)
        agent_span_costs(done, found, known)
        return agent_costs(done, found, known)

    timed("all stages", count, args.repeat, everything)
    status = attributed["match_status"].value_counts().sort("match_status")
    print(f"  {len(attributed):,} model calls; " + json.dumps(dict(status.iter_rows())))
    print(f"  {len(per_agent):,} agents and identities; total cost {per_agent['exclusive_cost_usd'].sum()}")


if __name__ == "__main__":
    main()
