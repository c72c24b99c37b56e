"""Soak: the demo fleet at a steady rate against a real `muster serve`, with the jobs and alerts running.

Starts `muster serve` as a subprocess on free loopback ports over a fresh data directory (jobs
every 30 s, alert dispatcher every 5 s, alerts to `<data dir>/alerts.log`), applies the demo
registry through the API, then runs the demo fleet (`muster simulate`'s 60 agents, real SDK
exporters over gRPC, HTTP protobuf and HTTP JSON) at `--rate` traces a second for `--minutes`.
Every `--every` seconds it samples:

- ingest rate: spans stored per second (the server's `muster_ingest_received` counter);
- export latency: p50/p95/p99 of the span exports that finished in the interval, timed around the
  SDK exporter's `export()` (request, decode, group commit, answer);
- RSS of the server and its decode workers, and the warehouse file size (file + WAL).

At the end it runs the cost and findings jobs once more, stops the server, opens the file and
checks that the warehouse holds exactly what the simulator's ledger says it sent: spans, log
records and metric points per service, and model-call tokens per service in `priced_calls`, no
span or priced call twice. It writes the samples as JSON and a plot (PNG, matplotlib: the `bench`
extra, which `./dev` installs).

    python bench/soak.py --minutes 32 --rate 20          # the recorded run (docs/reliability.md)
    python bench/soak.py --minutes 1 --rate 5 --every 5  # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project, however this is run

from muster.auth import read_admin_token
from muster.fleet import demo_fleet
from muster.simulate import AgentSpec, Ledger, OtlpExporters, Transport, run
from muster.up import DEMO_REGISTRY, demo_registry_files

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Export latency: the SDK's span exporters, timed
# --------------------------------------------------------------------------------------------


class Latencies:
    """(finished at, seconds, ok) of every span export, shared by the exporters' threads.

    `take` hands over the exports since the last call; `every_ms` keeps them all, for the whole run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[float, float, bool]] = []
        self.every_ms: list[float] = []

    def add(self, finished: float, seconds: float, ok: bool) -> None:
        with self._lock:
            self._items.append((finished, seconds, ok))

    def take(self) -> list[tuple[float, float, bool]]:
        with self._lock:
            items, self._items = self._items, []
        self.every_ms.extend(seconds * 1000 for _, seconds, _ in items)
        return items


class _TimedSpanExporter:
    """Wraps an SDK span exporter; everything but `export` passes through."""

    def __init__(self, inner, latencies: Latencies) -> None:
        self._inner, self._latencies = inner, latencies

    def export(self, spans):
        started = time.perf_counter()
        result = self._inner.export(spans)
        finished = time.perf_counter()
        self._latencies.add(finished, finished - started, result.name == "SUCCESS")
        return result

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


@dataclass(frozen=True)
class TimedExporters:
    otlp: OtlpExporters
    latencies: Latencies

    def span_exporter(self, agent: AgentSpec, transport: Transport):
        return _TimedSpanExporter(self.otlp.span_exporter(agent, transport), self.latencies)

    def metric_exporter(self, agent: AgentSpec, transport: Transport):
        return self.otlp.metric_exporter(agent, transport)

    def log_exporter(self, agent: AgentSpec, transport: Transport):
        return self.otlp.log_exporter(agent, transport)


# --------------------------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------------------------


class Server:
    def __init__(self, data_dir: Path, *, jobs_interval: float, decode_workers: int) -> None:
        self.data_dir = data_dir
        self.grpc_port, self.http_port, self.api_port = free_port(), free_port(), free_port()
        env = os.environ | {
            "MUSTER_DATA_DIR": str(data_dir),
            "MUSTER_OTLP_GRPC_PORT": str(self.grpc_port),
            "MUSTER_OTLP_HTTP_PORT": str(self.http_port),
            "MUSTER_API_PORT": str(self.api_port),
            "MUSTER_DECODE_WORKERS": str(decode_workers),
            "MUSTER_JOBS_INTERVAL_SECONDS": str(jobs_interval),
            "MUSTER_ALERTS_INTERVAL_SECONDS": "5",
            "MUSTER_CONFIG": str(data_dir / "absent.toml"),  # never a stray ./muster.toml
        }
        self.log = (data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "muster", "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.api = f"http://127.0.0.1:{self.api_port}"
        self._wait_ready()
        token = read_admin_token(data_dir)
        self.http = httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {token}"}, timeout=600)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited during start-up; see {self.data_dir / 'server.log'}")
            try:
                if httpx.get(f"{self.api}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("the server did not become ready in 120 s")

    def spans_received(self) -> float:
        text = self.http.get("/metrics").text
        for line in text.splitlines():
            if line.startswith('muster_ingest_received_total{signal="traces"}'):
                return float(line.split()[-1])
        return 0.0

    def rss_mib(self) -> float:
        server = psutil.Process(self.process.pid)
        processes = [server, *server.children(recursive=True)]
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just exited
                total += process.memory_info().rss
        return total / 2**20

    def file_mib(self) -> float:
        files = [self.data_dir / "muster.duckdb", self.data_dir / "muster.duckdb.wal"]
        return sum(f.stat().st_size for f in files if f.exists()) / 2**20

    def stop(self) -> None:
        self.http.close()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(300)
        self.log.close()
        if code != 0:
            raise SystemExit(f"the server exited with {code}; see {self.data_dir / 'server.log'}")


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # seconds since the fleet started
    spans_per_s: float
    export_p50_ms: float | None
    export_p95_ms: float | None
    export_p99_ms: float | None
    exports: int
    failed_exports: int
    rss_mib: float
    file_mib: float


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def sample_until(server: Server, latencies: Latencies, every: float, done: threading.Event) -> list[Sample]:
    samples: list[Sample] = []
    started = last_t = time.monotonic()
    last_spans = server.spans_received()
    while not done.wait(every):
        now = time.monotonic()
        spans = server.spans_received()
        items = latencies.take()
        seconds = [s * 1000 for _, s, _ in items]
        samples.append(
            Sample(
                t=round(now - started, 1),
                spans_per_s=round((spans - last_spans) / (now - last_t), 1),
                export_p50_ms=_round(percentile(seconds, 50)),
                export_p95_ms=_round(percentile(seconds, 95)),
                export_p99_ms=_round(percentile(seconds, 99)),
                exports=len(items),
                failed_exports=sum(1 for *_, ok in items if not ok),
                rss_mib=round(server.rss_mib(), 1),
                file_mib=round(server.file_mib(), 1),
            )
        )
        print(json.dumps(asdict(samples[-1])), flush=True)
        last_t, last_spans = now, spans
    return samples


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --------------------------------------------------------------------------------------------
# The check: the warehouse holds what the ledger says was sent
# --------------------------------------------------------------------------------------------


def check_totals(path: Path, ledger: Ledger) -> dict:
    """Compare the stopped server's file with the ledger; every mismatch is listed."""
    problems = []
    with duckdb.connect(str(path), read_only=True) as con:

        def by_service(sql: str) -> Counter:
            return Counter({k: v for k, v in con.execute(sql).fetchall() if v})

        spans = by_service("SELECT service_name, count(*) FROM spans GROUP BY ALL")
        logs = by_service("SELECT service_name, count(*) FROM log_records GROUP BY ALL")
        points = by_service("SELECT service_name, count(*) FROM metric_points GROUP BY ALL")
        tokens = con.execute(
            "SELECT s.service_name, sum(p.input_tokens), sum(p.output_tokens) FROM priced_calls p"
            " JOIN spans s USING (trace_id, span_id) GROUP BY ALL"
        ).fetchall()
        doubled_spans = con.execute(
            "SELECT count(*) - count(DISTINCT (trace_id, span_id)) FROM spans"
        ).fetchall()[0][0]
        doubled_calls = con.execute(
            "SELECT count(*) - count(DISTINCT (trace_id, span_id)) FROM priced_calls"
        ).fetchall()[0][0]
        calls, cost = con.execute("SELECT count(*), sum(cost_usd) FROM priced_calls").fetchall()[0]
        findings = con.execute("SELECT count(*) FROM findings").fetchall()[0][0]
        notifications = dict(
            con.execute("SELECT status, count(*) FROM alert_notifications GROUP BY ALL").fetchall()
        )
    inputs = Counter({s: int(i) for s, i, _ in tokens if i})
    outputs = Counter({s: int(o) for s, _, o in tokens if o})
    for name, stored, sent in (
        ("spans", spans, +ledger.spans_by_service),
        ("log records", logs, +ledger.log_records_by_service),
        ("metric points", points, +ledger.metric_points_by_service),
        ("input tokens", inputs, +ledger.input_tokens_by_service),
        ("output tokens", outputs, +ledger.output_tokens_by_service),
    ):
        if stored != sent:
            diff = {k: (stored[k], sent[k]) for k in set(stored) | set(sent) if stored[k] != sent[k]}
            problems.append(f"{name}: stored != sent for {len(diff)} services, e.g. {list(diff.items())[:3]}")
    if doubled_spans or doubled_calls:
        problems.append(f"doubled: {doubled_spans} spans, {doubled_calls} priced calls")
    if ledger.failed_exports:
        problems.append(f"{ledger.failed_exports} exports failed at the exporter")
    return {
        "spans": spans.total(),
        "log_records": logs.total(),
        "metric_points": points.total(),
        "input_tokens": inputs.total(),
        "output_tokens": outputs.total(),
        "priced_calls": calls,
        "cost_usd": float(cost or 0),
        "findings": findings,
        "alert_notifications": notifications,
        "problems": problems,
    }


# --------------------------------------------------------------------------------------------
# The plot
# --------------------------------------------------------------------------------------------


def plot(samples: list[Sample], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    (rate, latency), (rss, size) = axes
    rate.plot(minutes, [s.spans_per_s for s in samples], color="tab:blue")
    rate.set_title("ingest: spans stored per second")
    lines = (("export_p50_ms", "tab:green"), ("export_p95_ms", "tab:orange"), ("export_p99_ms", "tab:red"))
    for key, colour in lines:
        latency.plot(minutes, [getattr(s, key) for s in samples], color=colour, label=key.split("_")[1])
    latency.set_title("span export latency (ms)")
    latency.set_yscale("log")
    latency.legend()
    rss.plot(minutes, [s.rss_mib for s in samples], color="tab:purple")
    rss.set_title("RSS of server + decode workers (MiB)")
    size.plot(minutes, [s.file_mib for s in samples], color="tab:brown")
    size.set_title("warehouse file + WAL (MiB)")
    for axis in (rss, size):
        axis.set_xlabel("minutes")
    for axis in axes.flat:
        axis.grid(alpha=0.3)
        axis.set_ylim(bottom=0 if axis is not latency else None)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


# --------------------------------------------------------------------------------------------


def summary(samples: list[Sample], all_latencies_ms: list[float]) -> dict:
    steady = samples[1:] or samples  # the first interval includes the fleet's start-up
    return {
        "spans_per_s_mean": round(statistics.fmean(s.spans_per_s for s in steady), 1),
        "spans_per_s_min": min(s.spans_per_s for s in steady),
        "export_p50_ms": _round(percentile(all_latencies_ms, 50)),
        "export_p95_ms": _round(percentile(all_latencies_ms, 95)),
        "export_p99_ms": _round(percentile(all_latencies_ms, 99)),
        "export_max_ms": _round(max(all_latencies_ms, default=None)),
        "exports": len(all_latencies_ms),
        "rss_mib_first": steady[0].rss_mib,
        "rss_mib_max": max(s.rss_mib for s in steady),
        "rss_mib_last": steady[-1].rss_mib,
        "file_mib_last": samples[-1].file_mib,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=10.0, help="traces per second")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--jobs-interval", type=float, default=30.0)
    parser.add_argument("--decode-workers", type=int, default=1)
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "soak.png")
    parser.add_argument("--json", type=Path, default=None, help="write samples and summary here")
    parser.add_argument("--keep", type=Path, default=None, help="data directory to use and keep")
    args = parser.parse_args()

    data_dir = args.keep or Path(tempfile.mkdtemp(prefix="muster-soak-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    server = Server(data_dir, jobs_interval=args.jobs_interval, decode_workers=args.decode_workers)
    print(f"server pid {server.process.pid}, data in {data_dir}", flush=True)
    server.http.post("/api/v1/registry/apply", json=demo_registry_files(DEMO_REGISTRY)).raise_for_status()

    latencies = Latencies()
    factory = TimedExporters(
        OtlpExporters(f"127.0.0.1:{server.grpc_port}", f"http://127.0.0.1:{server.http_port}"), latencies
    )
    done = threading.Event()
    result: dict = {}

    def fleet() -> None:
        try:
            result["ledger"] = run(
                demo_fleet(7),
                grpc_endpoint=f"127.0.0.1:{server.grpc_port}",
                http_endpoint=f"http://127.0.0.1:{server.http_port}",
                rate=args.rate,
                duration=args.minutes * 60,
                seed=7,
                exporter_factory=factory,
            )
        finally:
            done.set()

    thread = threading.Thread(target=fleet, name="soak-fleet")
    thread.start()
    samples = sample_until(server, latencies, args.every, done)
    thread.join()
    latencies.take()
    ledger: Ledger = result["ledger"]

    started = time.monotonic()
    last_job = server.http.post("/api/v1/jobs/run").json()
    server.http.post("/api/v1/findings/run").raise_for_status()
    jobs_status = server.http.get("/api/v1/jobs").json()
    final_job_s = round(time.monotonic() - started, 1)
    server.stop()

    totals = check_totals(data_dir / "muster.duckdb", ledger)
    report = {
        "minutes": args.minutes,
        "rate_traces_per_s": args.rate,
        "traces_sent": ledger.traces,
        "spans_sent": ledger.total_spans(),
        "summary": summary(samples, latencies.every_ms),
        "final_jobs_s": final_job_s,
        "last_job": last_job,
        "jobs": jobs_status,
        "warehouse": totals,
        "alerts_log_lines": _lines(data_dir / "alerts.log"),
        "samples": [asdict(s) for s in samples],
    }
    title = (
        f"soak: demo fleet at {args.rate:g} traces/s for {args.minutes:g} min "
        f"({ledger.total_spans():,} spans), jobs every {args.jobs_interval:g} s"
    )
    plot(samples, args.plot, title)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2, default=str))
    print(f"plot: {args.plot}")
    if totals["problems"]:
        print("MISMATCH:\n  " + "\n  ".join(totals["problems"]))
        return 1
    print("the warehouse holds exactly what the fleet sent")
    return 0


def _lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.exists() else 0


if __name__ == "__main__":
    raise SystemExit(main())
