"""Muster's own Prometheus metrics: what ingest received, refused and throttled, and commit latency.

Counters are read from the pipeline's `IngestStats` at scrape time, so the hot path only bumps
plain integers; the writer reports each group commit to a histogram.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from collector.pipeline import IngestStats
from warehouse.writer import CommitStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _IngestCollector:
    def __init__(self, stats: IngestStats) -> None:
        self._stats = stats

    def collect(self):
        stats = self._stats
        families = {
            "received": ("Items (spans, metric points, log records) stored", stats.received),
            "rejected": ("Items refused one by one (OTLP partial success)", stats.rejected),
            "failed_requests": ("Whole export requests refused as undecodable or too large", stats.failed),
            "throttled_requests": (
                "Export requests refused because the ingest queue was full",
                stats.throttled,
            ),
            "unauthenticated_requests": (
                "Export requests without a valid ingest credential",
                stats.unauthenticated,
            ),
        }
        for name, (help_text, counter) in families.items():
            family = CounterMetricFamily(f"muster_ingest_{name}", help_text, labels=["signal"])
            for signal in ("traces", "metrics", "logs"):
                family.add_metric([signal], counter[signal])
            yield family
        yield GaugeMetricFamily(
            "muster_ingest_queue_bytes",
            "Bytes of exports being decoded or awaiting commit",
            stats.queued_bytes,
        )


class SelfMetrics:
    """One registry per server, so several servers in one process (tests) do not collide."""

    def __init__(self, stats: IngestStats) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_IngestCollector(stats))
        self._commit_seconds = Histogram(
            "muster_commit_seconds",
            "Time to insert and commit one group of exports",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self._commit_rows = Counter(
            "muster_committed_rows",
            "Rows inserted by group commits (retries excluded)",
            registry=self.registry,
        )

    def on_commit(self, commit: CommitStats) -> None:
        self._commit_seconds.observe(commit.seconds)
        self._commit_rows.inc(commit.rows_stored)

    def render(self) -> bytes:
        return generate_latest(self.registry)
