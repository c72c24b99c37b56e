"""Cost job benchmark: a full run over 90 days of a 300-agent fleet, an incremental run, the findings
job, and spend, budgets and findings by API.

Generates `--spans` spans (10 million by default) over 90 days straight into a warehouse file
(Arrow inserts into `spans`, `ingest_seq` rising one commit of 2,000 spans at a time, as the
writer would have left them; OTLP would take too long), with a registry of 20 departments,
300 agents of which ~10 % are not registered, and a monthly budget per department and per provider.
Every trace is a supervisor `invoke_agent` span with a model call, a tool call and a second model
call, and a sub-agent (another agent of the fleet) with a model call, a tool call and an embeddings
call: 8 spans, 4 of them model calls. Attributes are realistic JSON text (~400 bytes), some spans
carry prompt content.

Then it measures, each in a fresh process so that peak RSS is the job's own:

1. a full run of the cost job (`run_cost_job(full=True)`), its time, CPU time and peak RSS (CPU
   time, the process's user + system, says more than wall time on a machine shared with others);
2. an incremental run after one minute of traffic at 2,000 spans/s (120,000 new spans);
3. a run of the findings job (`run_findings_job`) over the same warehouse;
4. spend by department over the 90 days, `/api/v1/budgets/status` and `/api/v1/findings` through the
   HTTP API (the FastAPI app over uvicorn on a loopback port, one keep-alive client), p50 and p95
   over 50 requests each after 3 warm-up requests.

    python bench/jobs.py                      # 10M spans: ~3 min to generate, then the runs
    python bench/jobs.py --spans 1000000      # a quick run
    python bench/jobs.py --keep /tmp/wh       # keep (and reuse, if present) the warehouse there
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import queue as queue_module
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, however this is run

TARGET_FULL_S = 60.0
TARGET_INCREMENTAL_S = 2.0
TARGET_SPEND_P95_MS = 300.0
TARGET_FINDINGS_S = 5.0
AGENTS = 300
DEPARTMENTS = 20


def unregistered(agent: int) -> bool:
    """About 10 % of the agents, one or two in every department, are not in the registry."""
    return (agent * 37 + agent // DEPARTMENTS) % 10 == 9


DAYS = 90
SPANS_PER_TRACE = 8
COMMIT_SPANS = 2_000  # spans per writer commit: one ingest_seq each
CHUNK_TRACES = 50_000  # traces generated and inserted at a time
# the server's default warehouse_memory_limit and checkpoint_threshold: the job runs as in the server
WAREHOUSE_OPTIONS = {"memory_limit": "256MB", "checkpoint_threshold": "1GB"}

MODELS = [  # (provider, model, operation) of the model calls, all in the catalogue
    ("openai", "gpt-4o", "chat"),
    ("openai", "gpt-4o-mini", "chat"),
    ("anthropic", "claude-sonnet-4-20250514", "chat"),
    ("gcp.gemini", "gemini-2.0-flash", "generate_content"),
    ("aws.bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", "chat"),
]
EMBEDDING = ("openai", "text-embedding-3-small", "embeddings")
ENDPOINTS = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "gcp.gemini": "generativelanguage.googleapis.com",
    "aws.bedrock": "bedrock-runtime.us-east-1.amazonaws.com",
}
TOOLS = ["policy_lookup", "fraud_score", "web_search", "sql_query", "send_email", "crm_update"]
SCOPES = [
    "openinference.instrumentation.langchain",
    "opentelemetry.instrumentation.openai_v2",
    "openai.agents",
]


# --------------------------------------------------------------------------------------------
# The fleet and its registry
# --------------------------------------------------------------------------------------------


def department_of(agent: int) -> str:
    return f"dept-{agent % DEPARTMENTS:02d}"


def registry_yaml() -> str:
    """20 departments and the registered 90 % of the 300 agents, matched by agent name."""
    documents = [
        f"apiVersion: muster/v1\nkind: Department\nmetadata:\n  id: dept-{d:02d}\n"
        f"spec:\n  name: Department {d}\n  costCentre: CC-{1000 + d}\n"
        for d in range(DEPARTMENTS)
    ]
    for agent in range(AGENTS):
        if unregistered(agent):
            continue
        documents.append(
            f"apiVersion: muster/v1\nkind: Agent\nmetadata:\n  id: agent-{agent:03d}\n"
            f"spec:\n  name: Agent {agent}\n  owner: owner{agent}@example.com\n"
            f"  department: {department_of(agent)}\n  lifecycle: production\n"
            f"  match:\n    - agentName: Agent{agent:03d}\n"
        )
    for d in range(DEPARTMENTS):
        documents.append(
            f"apiVersion: muster/v1\nkind: Budget\nmetadata:\n  id: budget-dept-{d:02d}\n"
            f"spec:\n  scope: {{department: dept-{d:02d}}}\n  amount: {5_000 + 250 * d}\n"
        )
    for provider in ("openai", "anthropic"):
        documents.append(
            f"apiVersion: muster/v1\nkind: Budget\nmetadata:\n  id: budget-{provider}\n"
            f"spec:\n  scope: {{provider: {provider}}}\n  amount: 60000\n"
        )
    return "---\n".join(documents)


def resource_json(agent: int) -> str:
    return (
        f'{{"service.name":"svc-{agent:03d}","service.namespace":"{department_of(agent)}",'
        f'"service.version":"1.{agent % 7}.0","deployment.environment.name":"production",'
        f'"host.name":"host-{agent % 40:02d}","telemetry.sdk.language":"{("python", "nodejs")[agent % 2]}",'
        f'"telemetry.sdk.name":"opentelemetry","telemetry.sdk.version":"1.38.0",'
        f'"process.runtime.name":"cpython","cloud.provider":"aws","cloud.region":"eu-west-1"}}'
    )


# --------------------------------------------------------------------------------------------
# Spans
# --------------------------------------------------------------------------------------------

# role of each span of a trace: (parent role or -1, operation, owner: 0 supervisor / 1 sub-agent)
ROLES = [
    (-1, "invoke_agent", 0),
    (0, "model", 0),
    (0, "execute_tool", 0),
    (0, "model", 0),
    (0, "invoke_agent", 1),
    (4, "model", 1),
    (4, "execute_tool", 1),
    (4, "embeddings", 1),
]


def hex_ids(rng: np.random.Generator, count: int, size: int) -> pl.Series:
    raw = rng.integers(0, 256, size=count * size, dtype=np.uint8).tobytes()
    return pl.Series([raw[i : i + size] for i in range(0, count * size, size)], dtype=pl.Binary).bin.encode(
        "hex"
    )


def chunk(rng: np.random.Generator, traces: int, start_ns: int, end_ns: int, first_seq: int) -> pl.DataFrame:
    """`traces` traces starting in [start_ns, end_ns), in time order, as rows of `spans`."""
    n = traces * SPANS_PER_TRACE
    starts = np.sort(rng.integers(start_ns, end_ns, size=traces))
    supervisor = rng.integers(0, AGENTS, size=traces)
    sub_agent = (supervisor + rng.integers(1, AGENTS, size=traces)) % AGENTS
    trace_ids = hex_ids(rng, traces, 16)
    span_ids = hex_ids(rng, n, 8)
    role = np.tile(np.arange(SPANS_PER_TRACE), traces)
    trace_of = np.repeat(np.arange(traces), SPANS_PER_TRACE)
    parent_role = np.array([parent for parent, _, _ in ROLES])[role]
    parent_index = np.where(parent_role >= 0, trace_of * SPANS_PER_TRACE + parent_role, -1)
    owner = np.array([who for _, _, who in ROLES])[role]
    agent = np.where(owner == 0, supervisor[trace_of], sub_agent[trace_of])
    offset = role.astype(np.int64) * 400_000_000 + rng.integers(0, 100_000_000, size=n)
    start = starts[trace_of] + offset
    duration = rng.integers(50_000_000, 3_000_000_000, size=n)
    model_pick = rng.integers(0, len(MODELS), size=n)
    kind = np.array([operation for _, operation, _ in ROLES])[role]
    is_model = kind == "model"
    is_embedding = kind == "embeddings"
    provider = np.where(is_embedding, EMBEDDING[0], np.array([m[0] for m in MODELS])[model_pick])
    model = np.where(is_embedding, EMBEDDING[1], np.array([m[1] for m in MODELS])[model_pick])
    operation = np.where(is_model, np.array([m[2] for m in MODELS])[model_pick], kind)
    calls = is_model | is_embedding
    input_tokens = rng.integers(200, 8_000, size=n)
    output_tokens = np.where(is_embedding, 0, rng.integers(20, 1_200, size=n))
    error = rng.random(n) < 0.01
    content = rng.random(n) < 0.05
    tool = np.array(TOOLS)[rng.integers(0, len(TOOLS), size=n)]
    frame = pl.DataFrame(
        {
            "trace_id": trace_ids.gather(pl.Series(trace_of)),
            "span_id": span_ids,
            "_parent": parent_index,
            "start_ns": start,
            "duration_ns": duration,
            "role_kind": kind,
            "operation": operation,
            "provider": provider,
            "model": model,
            "calls": calls,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "error": error & calls,
            "content": content & calls,
            "tool": tool,
            "agent": agent,
            "conversation": supervisor[trace_of] * 1_000 + trace_of % 1_000,
            "scope": np.array(SCOPES)[agent % len(SCOPES)],
        }
    )
    return _as_span_rows(frame, span_ids, first_seq)


def _as_span_rows(frame: pl.DataFrame, span_ids: pl.Series, first_seq: int) -> pl.DataFrame:
    calls, tool = pl.col("calls"), pl.col("role_kind") == "execute_tool"
    is_agent = pl.col("operation") == "invoke_agent"
    agent_name = pl.format("Agent{}", pl.col("agent").cast(pl.String).str.zfill(3))
    department = pl.format("dept-{}", (pl.col("agent") % DEPARTMENTS).cast(pl.String).str.zfill(2))
    service = pl.format("svc-{}", pl.col("agent").cast(pl.String).str.zfill(3))
    resources = pl.Series([resource_json(agent) for agent in range(AGENTS)])
    common = pl.format(
        '"gen_ai.operation.name":"{}","gen_ai.conversation.id":"c-{}","thread.id":{},"code.function":"run_step",'
        '"code.filepath":"/srv/app/agents/pipeline.py","code.lineno":{}',
        pl.col("operation"),
        pl.col("conversation"),
        pl.col("start_ns") % 97,
        pl.col("start_ns") % 500,
    )
    call_attributes = pl.format(
        ',"gen_ai.provider.name":"{}","gen_ai.request.model":"{}","gen_ai.response.model":"{}",'
        '"gen_ai.usage.input_tokens":{},"gen_ai.usage.output_tokens":{},"gen_ai.request.temperature":0.2,'
        '"gen_ai.request.max_tokens":2048,"gen_ai.response.finish_reasons":["stop"],"server.port":443',
        pl.col("provider"),
        pl.col("model"),
        pl.col("model"),
        pl.col("input_tokens"),
        pl.col("output_tokens"),
    )
    attributes = pl.concat_str(
        pl.lit("{"),
        common,
        pl.when(calls).then(call_attributes).otherwise(pl.lit("")),
        pl.when(pl.col("content"))
        .then(pl.lit(',"gen_ai.input.messages":"[{\\"role\\":\\"user\\",\\"parts\\":[]}]"'))
        .otherwise(pl.lit("")),
        pl.when(tool).then(pl.format(',"gen_ai.tool.name":"{}"', pl.col("tool"))).otherwise(pl.lit("")),
        pl.when(is_agent).then(pl.format(',"gen_ai.agent.name":"{}"', agent_name)).otherwise(pl.lit("")),
        pl.lit("}"),
    )
    start = pl.from_epoch("start_ns", time_unit="ns")
    return frame.select(
        "trace_id",
        "span_id",
        pl.when(pl.col("_parent") >= 0)
        .then(pl.col("span_id").gather(pl.col("_parent").clip(0)))
        .alias("parent_span_id"),
        pl.format("{} {}", pl.col("operation"), pl.when(calls).then("model").otherwise(agent_name)).alias(
            "name"
        ),
        pl.when(calls).then(pl.lit("client")).otherwise(pl.lit("internal")).alias("kind"),
        start.alias("start_time"),
        pl.from_epoch(pl.col("start_ns") + pl.col("duration_ns"), time_unit="ns").alias("end_time"),
        "duration_ns",
        pl.when("error").then(pl.lit("error")).otherwise(pl.lit("unset")).alias("status_code"),
        service.alias("service_name"),
        department.alias("service_namespace"),
        pl.format("host-{}", (pl.col("agent") % 40).cast(pl.String).str.zfill(2)).alias("host_name"),
        pl.lit("production").alias("environment"),
        pl.when(pl.col("agent") % 2 == 0)
        .then(pl.lit("python"))
        .otherwise(pl.lit("nodejs"))
        .alias("sdk_language"),
        pl.col("scope").alias("scope_name"),
        pl.lit("otel_genai").alias("convention"),
        "operation",
        pl.when(calls).then("provider").alias("provider"),
        pl.when(calls).then("model").alias("request_model"),
        pl.when(calls).then("model").alias("response_model"),
        pl.when(calls).then("input_tokens").alias("input_tokens"),
        pl.when(calls).then("output_tokens").alias("output_tokens"),
        agent_name.alias("agent_name"),
        pl.when(tool).then("tool").alias("tool_name"),
        pl.format("c-{}", pl.col("conversation")).alias("conversation_id"),
        pl.when(calls)
        .then(pl.col("provider").replace_strict(ENDPOINTS, default="api.example.com"))
        .alias("server_address"),
        attributes.alias("attributes"),
        pl.col("content").alias("content_captured"),  # as the collector decides it from the keys
        pl.col("agent")
        .replace_strict(list(range(AGENTS)), resources, return_dtype=pl.String)
        .alias("resource_attributes"),
        pl.lit('{"name":"instrumentation"}').alias("scope_attributes"),
        pl.lit(datetime.now(UTC)).alias("received_at"),
        (pl.int_range(pl.len(), dtype=pl.Int64) // COMMIT_SPANS + first_seq).alias("ingest_seq"),
    )


def insert(con, frame: pl.DataFrame) -> None:
    """Append rows to `spans` from Arrow, as the writer does (resource attributes once, in `resources`)."""
    from warehouse.resources import KnownResources

    unseen: dict = {}
    rows = KnownResources().keyed(frame.to_arrow(compat_level=pl.CompatLevel.oldest()), unseen)
    KnownResources().store(con, unseen)
    con.register("_bench_spans", rows)
    try:
        names = ", ".join(rows.column_names)
        con.execute(f"INSERT INTO spans ({names}) SELECT {names} FROM _bench_spans")
    finally:
        con.unregister("_bench_spans")


def apply_registry(con) -> None:
    from registry import load_texts, plan_changes
    from warehouse.registry_store import apply_plan, load_registry

    with con.cursor() as cur:
        desired = load_texts({"bench-registry.yaml": registry_yaml()})
        apply_plan(cur, plan_changes(load_registry(cur), desired), actor="bench")


def generate(path: Path, spans: int, seed: int = 7) -> int:
    """A fresh warehouse at `path`: the registry and `spans` spans over DAYS days up to now; the last seq."""
    from warehouse.database import open_warehouse

    rng = np.random.default_rng(seed)
    con = open_warehouse(path, memory_limit="2GB", checkpoint_threshold="4GB")
    apply_registry(con)
    traces = spans // SPANS_PER_TRACE
    now = time.time_ns() - 600 * 1_000_000_000  # leave the last minutes to the incremental traffic
    begin = now - DAYS * 86_400 * 1_000_000_000
    chunks = -(-traces // CHUNK_TRACES)
    seq, started = 1, time.monotonic()
    for index in range(chunks):
        count = min(CHUNK_TRACES, traces - index * CHUNK_TRACES)
        lo = begin + (now - begin) * index // chunks
        hi = begin + (now - begin) * (index + 1) // chunks
        frame = chunk(rng, count, lo, hi, seq)
        insert(con, frame)
        seq = int(frame["ingest_seq"].max()) + 1
        if index % 10 == 9 or index == chunks - 1:
            done = (index * CHUNK_TRACES + count) * SPANS_PER_TRACE
            print(f"  generated {done:,} spans in {time.monotonic() - started:.0f} s", flush=True)
    con.execute("CHECKPOINT")
    con.close()
    return seq


def add_traffic(path: Path, spans: int, first_seq: int, seed: int = 11) -> None:
    """One minute of new traffic: `spans` spans ending now, in commits of COMMIT_SPANS spans."""
    from warehouse.database import open_warehouse

    con = open_warehouse(path, **WAREHOUSE_OPTIONS)
    now = time.time_ns()
    insert(
        con, chunk(np.random.default_rng(seed), spans // SPANS_PER_TRACE, now - 60 * 10**9, now, first_seq)
    )
    con.close()


# --------------------------------------------------------------------------------------------
# Measurements (each in a fresh process)
# --------------------------------------------------------------------------------------------


def _job_in_child(path: str, full: bool, queue) -> None:
    from analytics.jobs import run_cost_job
    from warehouse.database import open_warehouse

    con = open_warehouse(Path(path), **WAREHOUSE_OPTIONS)
    _warm_up()
    started, cpu = time.monotonic(), time.process_time()
    result = run_cost_job(con.cursor(), full=full)
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    con.close()
    queue.put((elapsed, None, result.to_dict() | {"cpu_s": cpu}))


def _findings_in_child(path: str, queue) -> None:
    from analytics.findings_job import run_findings_job
    from warehouse.database import open_warehouse

    con = open_warehouse(Path(path), **WAREHOUSE_OPTIONS)
    _warm_up()
    started, cpu = time.monotonic(), time.process_time()
    result = run_findings_job(con.cursor())
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
    con.close()
    queue.put((elapsed, None, result.to_dict() | {"cpu_s": cpu}))


def _warm_up() -> None:
    """What a running server has done once already: pandera registers its backends on first use."""
    from analytics.jobs import SPANS_SCHEMA, checked

    checked(
        SPANS_SCHEMA,
        pl.DataFrame(
            schema={
                "trace_id": pl.String,
                "span_id": pl.String,
                "parent_span_id": pl.String,
                "start_time": pl.Datetime("ns"),
            }
        ),
    )


def run_job(path: Path, *, full: bool) -> tuple[float, float, dict]:
    """(seconds, peak RSS MiB sampled every 100 ms, JobResult) of one run in a fresh spawned process."""
    return _in_child(_job_in_child, str(path), full)


def run_findings(path: Path) -> tuple[float, float, dict]:
    """(seconds, peak RSS MiB, FindingsResult) of one findings job run in a fresh spawned process."""
    return _in_child(_findings_in_child, str(path))


def _in_child(target, *args) -> tuple[float, float, dict]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    # sampled from outside: the child's own ru_maxrss would include the driver's peak, which
    # Linux carries over fork and exec
    watched, peak = psutil.Process(process.pid), 0
    while queue.empty() and process.is_alive():
        with contextlib.suppress(psutil.Error):
            peak = max(peak, watched.memory_info().rss)
        time.sleep(0.1)
    try:  # a child that died put nothing: say so instead of waiting for ever
        elapsed, _, result = queue.get(timeout=5)
    except queue_module.Empty:
        process.join()
        raise SystemExit(f"{target.__name__} failed (exit code {process.exitcode}): see above") from None
    process.join()
    return elapsed, peak / 2**20, result


def endpoint_latencies(path: Path, requests: int = 50) -> dict[str, list[float]]:
    """Milliseconds of each request to each of ENDPOINTS, over real HTTP (3 warm-up requests each)."""
    import httpx
    import uvicorn

    from analytics.scheduler import JobScheduler
    from collector.credentials import IngestCredentials
    from collector.pipeline import IngestStats
    from muster.api import create_app
    from muster.auth import ensure_admin_token
    from muster.metrics import SelfMetrics
    from warehouse.access_store import live_credentials
    from warehouse.database import open_warehouse

    con = open_warehouse(path, **WAREHOUSE_OPTIONS)
    stats = IngestStats()
    app = create_app(
        connection=con,
        stats=stats,
        metrics=SelfMetrics(stats),
        credentials=IngestCredentials(lambda: live_credentials(con.cursor()), required=False),
        ready=lambda: True,
        jobs=JobScheduler(con, interval=0, prices_file=path.parent / "prices.yaml"),
    )
    token = ensure_admin_token(con.cursor(), path.parent)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    timings: dict[str, list[float]] = {}
    answers = {}
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http:
            for name, (url, params) in endpoints().items():
                timings[name] = []
                for attempt in range(requests + 3):
                    began = time.perf_counter()
                    response = http.get(url, params=params)
                    response.raise_for_status()
                    if attempt >= 3:
                        timings[name].append((time.perf_counter() - began) * 1000)
                answers[name] = response.json()
    finally:
        server.should_exit = True
        thread.join(10)
        con.close()
    spend = answers["spend by department"]
    assert len(spend) == DEPARTMENTS + 1, spend  # 20 departments and the unregistered agents' (none)
    return timings


def endpoints() -> dict[str, tuple[str, dict[str, str]]]:
    """What is timed over HTTP: name → (path, query)."""
    today = datetime.now(UTC).date()
    spend = {"by": "department", "from": (today - timedelta(days=DAYS)).isoformat(), "to": today.isoformat()}
    return {
        "spend by department": ("/api/v1/spend", spend),
        "budgets status": ("/api/v1/budgets/status", {}),
        "findings": ("/api/v1/findings", {}),
    }


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=10_000_000, help="spans in the 90 days (default 10M)")
    parser.add_argument("--keep", type=Path, help="directory for the warehouse; reused when it holds one")
    parser.add_argument("--skip-full", action="store_true", help="only the incremental run and spend")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="muster-bench-jobs-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "muster.duckdb"
    print(f"warehouse {path}; {os.cpu_count()} cores")
    if not path.exists():
        began = time.monotonic()
        generate(path, args.spans)
        print(f"generated {args.spans:,} spans in {time.monotonic() - began:.0f} s")
    else:  # a kept warehouse gets the registry of this version (budgets change no cost input)
        from warehouse.database import open_warehouse

        with contextlib.closing(open_warehouse(path, **WAREHOUSE_OPTIONS)) as con:
            apply_registry(con)
    if not args.skip_full:
        seconds, rss, result = run_job(path, full=True)
        print(
            f"full run:        {seconds:6.1f} s ({result['cpu_s']:.0f} s CPU), peak RSS {rss:,.0f} MiB  "
            f"({result['spans']:,} spans, "
            f"{result['traces']:,} traces, {result['calls']:,} calls, {result['unpriced_calls']:,} unpriced)"
            f"  target ≤ {TARGET_FULL_S:.0f} s: {verdict(seconds, TARGET_FULL_S)}"
        )
    from warehouse.database import open_warehouse

    con = open_warehouse(path, **WAREHOUSE_OPTIONS)
    seq = con.execute("SELECT max(ingest_seq) + 1 FROM spans").fetchall()[0][0]
    con.close()
    add_traffic(path, 120_000, seq)
    seconds, rss, result = run_job(path, full=False)
    print(
        f"incremental run: {seconds:6.2f} s ({result['cpu_s']:.2f} s CPU), peak RSS {rss:,.0f} MiB  "
        f"({result['spans']:,} spans, "
        f"{result['traces']:,} traces, full: {result['full']})"
        f"  target ≤ {TARGET_INCREMENTAL_S:.0f} s: {verdict(seconds, TARGET_INCREMENTAL_S)}"
    )
    seconds, rss, found = run_findings(path)
    print(
        f"findings job:    {seconds:6.2f} s ({found['cpu_s']:.2f} s CPU), peak RSS {rss:,.0f} MiB  "
        f"({found['findings']:,} findings)"
        f"  aim ≤ {TARGET_FINDINGS_S:.0f} s: {verdict(seconds, TARGET_FINDINGS_S)}"
    )
    for name, timings in endpoint_latencies(path).items():
        p50 = statistics.median(timings)
        p95 = statistics.quantiles(timings, n=20)[-1]
        target = f"  target p95 ≤ {TARGET_SPEND_P95_MS:.0f} ms: {verdict(p95, TARGET_SPEND_P95_MS)}"
        print(
            f"{name + ', HTTP:':27} p50 {p50:7.1f} ms, p95 {p95:7.1f} ms over {len(timings)} requests"
            + (target if name.startswith("spend") else "")
        )


if __name__ == "__main__":
    main()
