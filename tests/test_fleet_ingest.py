"""The simulated fleet, through real SDK exporters over gRPC and HTTP, lands exactly in the warehouse."""

from __future__ import annotations

from muster.simulate import build_fleet, run


def test_what_the_fleet_sent_is_what_the_warehouse_holds(server):
    ledger = run(
        build_fleet(seed=11, agents=12),
        grpc_endpoint=server.grpc_endpoint,
        http_endpoint=server.http_url,
        traces=120,
        seed=11,
    )
    assert ledger.failed_exports == 0
    assert set(ledger.transports.values()) == {"grpc", "http"}
    spans = dict(server.query("SELECT service_name, count(*) FROM spans GROUP BY ALL"))
    assert spans == dict(ledger.spans_by_service)
    logs = dict(server.query("SELECT service_name, count(*) FROM log_records GROUP BY ALL"))
    assert logs == {k: v for k, v in ledger.log_records_by_service.items() if v}
    points = dict(server.query("SELECT service_name, count(*) FROM metric_points GROUP BY ALL"))
    assert points == {k: v for k, v in ledger.metric_points_by_service.items() if v}
    conventions = {row[0] for row in server.query("SELECT DISTINCT convention FROM spans")}
    assert {"otel_genai", "otel_genai_legacy", "openinference", "openllmetry", "openlit"} <= conventions
    assert server.query("SELECT count(*) FROM ingest_rejects")[0][0] == 0
