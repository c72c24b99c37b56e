"""Overload: with a tiny ingest queue, real SDK exporters are throttled, retry, and nothing is lost."""

from __future__ import annotations

import threading

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.conftest import start_server
from tests.test_exporters import span_exporter

EXPORTERS = 6
SPANS_EACH = 400


def fleet_round(server, transport: str) -> None:
    """Several agents flush at the same moment, as a fleet does after a burst."""
    providers = []
    for index in range(EXPORTERS):
        provider = TracerProvider(resource=Resource.create({"service.name": f"agent-{index}"}))
        provider.add_span_processor(
            BatchSpanProcessor(span_exporter(transport, server), max_export_batch_size=SPANS_EACH)
        )
        tracer = provider.get_tracer("muster.tests")
        for n in range(SPANS_EACH):
            tracer.start_span("chat", attributes={"gen_ai.request.model": "gpt-4o", "n": n}).end()
        providers.append(provider)
    flushes = [threading.Thread(target=p.force_flush, args=(30_000,)) for p in providers]
    for flush in flushes:
        flush.start()
    for flush in flushes:
        flush.join()
    for provider in providers:
        provider.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_overloaded_exporters_back_off_and_retry_without_loss(tmp_path, transport):
    server = start_server(
        tmp_path / "data", decode_workers=1, ingest_queue_bytes=1024, retry_after_seconds=0.2
    )
    try:
        rounds = 0
        while not server.server.ingest.stats.throttled["traces"] and rounds < 5:
            fleet_round(server, transport)
            rounds += 1
        stored = server.query("SELECT count(*) FROM spans")[0][0]
    finally:
        server.stop()
    assert server.server.ingest.stats.throttled["traces"] > 0, "the queue never filled"
    assert stored == rounds * EXPORTERS * SPANS_EACH
