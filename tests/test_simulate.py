"""The fleet simulator: deterministic, every convention present, an exact ledger, real trace shapes.

Most tests capture in process through an exporter factory; two run the real OTLP exporters
against small capture servers (stdlib HTTP, grpcio) that decode what arrives, so the ledger is
checked against the bytes on the wire as well. Token sums are recomputed here from the span
attributes with this file's own reading of each convention, so a mistake in the simulator's
bookkeeping cannot cancel itself out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from muster.simulate import AgentSpec, Ledger, Transport, build_fleet, run, signal_url

# ---------------------------------------------------------------------------------------------
# In-process capture
# ---------------------------------------------------------------------------------------------


class MetricCapture(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs
    ) -> MetricExportResult:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        pass

    def points(self) -> int:
        return sum(
            len(metric.data.data_points)
            for batch in self.batches
            for rm in batch.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        )


class Capture:
    """An exporter factory that keeps everything in memory, one exporter per agent and signal."""

    def __init__(self) -> None:
        self.spans: dict[str, InMemorySpanExporter] = {}
        self.metrics: dict[str, MetricCapture] = {}
        self.logs: dict[str, InMemoryLogRecordExporter] = {}
        self.transports: dict[str, Transport] = {}

    def span_exporter(self, agent: AgentSpec, transport: Transport) -> InMemorySpanExporter:
        self.transports[agent.service] = transport
        return self.spans.setdefault(agent.service, InMemorySpanExporter())

    def metric_exporter(self, agent: AgentSpec, transport: Transport) -> MetricCapture:
        return self.metrics.setdefault(agent.service, MetricCapture())

    def log_exporter(self, agent: AgentSpec, transport: Transport) -> InMemoryLogRecordExporter:
        return self.logs.setdefault(agent.service, InMemoryLogRecordExporter())

    def all_spans(self) -> list[ReadableSpan]:
        return [span for exporter in self.spans.values() for span in exporter.get_finished_spans()]


def simulate(seed: int = 7, agents: int = 12, traces: int = 150, **kwargs) -> tuple[Ledger, Capture]:
    capture = Capture()
    ledger = run(
        build_fleet(seed=seed, agents=agents),
        grpc_endpoint="127.0.0.1:4317",
        http_endpoint="http://127.0.0.1:4318",
        traces=traces,
        seed=seed,
        exporter_factory=capture,
        **kwargs,
    )
    return ledger, capture


@pytest.fixture(scope="module")
def fleet_run() -> tuple[Ledger, Capture]:
    return simulate()


# ---------------------------------------------------------------------------------------------
# This file's own reading of the conventions
# ---------------------------------------------------------------------------------------------


def convention_of(attrs: Mapping[str, object]) -> str | None:
    """Which convention a model-call span speaks, by the attributes only that convention sets."""
    if "openinference.span.kind" in attrs:
        return "openinference"
    if "llm.request.type" in attrs or "traceloop.span.kind" in attrs:
        return "openllmetry"
    if "gen_ai.application_name" in attrs:
        return "openlit"
    if "gen_ai.provider.name" in attrs:
        return "otel_genai"
    if "gen_ai.system" in attrs:
        return "otel_genai_legacy"
    return None


def model_call_tokens(attrs: Mapping[str, object]) -> tuple[int, int] | None:
    """(input, output) tokens of a model-call span; None for agent, tool and retrieval spans."""
    operation = attrs.get("gen_ai.operation.name")
    is_model_call = (
        operation in ("chat", "embeddings")
        or attrs.get("openinference.span.kind") in ("LLM", "EMBEDDING")
        or "llm.request.type" in attrs
        or (operation is None and "gen_ai.system" in attrs and "traceloop.span.kind" not in attrs)
    )
    if not is_model_call:
        return None

    def first(*keys: str) -> int:
        return next((int(attrs[key]) for key in keys if key in attrs), 0)  # type: ignore[call-overload]

    inp = first("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
    out = first("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
    return inp, out


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def by_trace(spans: Iterable[ReadableSpan]) -> dict[int, list[ReadableSpan]]:
    traces: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        traces[span.context.trace_id].append(span)
    return traces


def shape(spans: list[ReadableSpan]) -> tuple:
    """A trace without its ids and its absolute time: what must repeat for the same seed."""
    ordered = sorted(spans, key=lambda s: (s.start_time, s.name))
    t0 = ordered[0].start_time
    index = {span.context.span_id: i for i, span in enumerate(ordered)}
    return tuple(
        (
            service_of(span),
            span.name,
            span.kind,
            index.get(span.parent.span_id) if span.parent else None,
            span.start_time - t0,
            span.end_time - t0,
            span.status.status_code,
            tuple(sorted((k, str(v)) for k, v in span.attributes.items())),
        )
        for span in ordered
    )


# ---------------------------------------------------------------------------------------------
# The fleet
# ---------------------------------------------------------------------------------------------


def test_fleet_is_deterministic_and_covers_every_convention() -> None:
    fleet = build_fleet(seed=3, agents=12)
    assert fleet == build_fleet(seed=3, agents=12)
    assert fleet != build_fleet(seed=4, agents=12)
    assert len({agent.service for agent in fleet}) == 12
    assert {agent.convention for agent in fleet[:5]} == {
        "otel_genai",
        "otel_genai_legacy",
        "openinference",
        "openllmetry",
        "openlit",
    }


def test_larger_fleets_repeat_templates_with_unique_services() -> None:
    fleet = build_fleet(agents=30)
    services = [agent.service for agent in fleet]
    assert len(set(services)) == 30
    assert "support-copilot-3" in services
    # A delegate must be in the fleet, or its spans would belong to no agent of the ledger.
    assert all(agent.remote in services for agent in fleet if agent.remote)
    assert all(agent.remote is None for agent in build_fleet(agents=4))  # data-analyst is 10th


def test_signal_url_accepts_a_base_or_a_signal_url() -> None:
    assert signal_url("http://h:4318", "logs") == "http://h:4318/v1/logs"
    assert signal_url("http://h:4318/v1/traces", "metrics") == "http://h:4318/v1/metrics"
    assert signal_url("http://h:4318/", "traces") == "http://h:4318/v1/traces"


# ---------------------------------------------------------------------------------------------
# One captured run
# ---------------------------------------------------------------------------------------------


def test_exactly_the_asked_traces_are_sent(fleet_run: tuple[Ledger, Capture]) -> None:
    ledger, capture = fleet_run
    spans = capture.all_spans()
    roots = [span for span in spans if span.parent is None]
    assert ledger.traces == 150
    assert len(roots) == 150
    assert len(by_trace(spans)) == 150


def test_ledger_equals_what_the_exporters_received(fleet_run: tuple[Ledger, Capture]) -> None:
    ledger, capture = fleet_run
    spans = capture.all_spans()
    assert ledger.spans_by_service == Counter(service_of(span) for span in spans)
    assert ledger.total_spans() == len(spans) == ledger.spans_created
    assert ledger.failed_exports == 0

    inputs: Counter[str] = Counter()
    outputs: Counter[str] = Counter()
    for span in spans:
        tokens = model_call_tokens(span.attributes)
        if tokens is not None:
            inputs[service_of(span)] += tokens[0]
            outputs[service_of(span)] += tokens[1]
    assert +ledger.input_tokens_by_service == +inputs
    assert +ledger.output_tokens_by_service == +outputs
    assert sum(inputs.values()) > 1_000_000  # realistic sizes, not a handful of tokens

    points = {service: exporter.points() for service, exporter in capture.metrics.items()}
    assert +ledger.metric_points_by_service == +Counter(points)
    assert ledger.metric_points > 0
    records = {service: len(exporter.get_finished_logs()) for service, exporter in capture.logs.items()}
    assert +ledger.log_records_by_service == +Counter(records)
    assert ledger.log_records > 0


def first_int(attrs: Mapping[str, object], *keys: str) -> int:
    return next((int(attrs[key]) for key in keys if key in attrs), 0)  # type: ignore[call-overload]


def test_ledger_calls_are_what_the_spans_report() -> None:
    """The ledger's model calls (by service, provider, UTC day and outcome) against this file's own
    reading of the spans: cache tokens only where the convention reports them, failed calls with none."""
    from muster.fleet import demo_fleet

    capture = Capture()
    ledger = run(
        demo_fleet(), grpc_endpoint="127.0.0.1:4317", http_endpoint=None, traces=600, backfill_days=35,
        exporter_factory=capture,
    )  # fmt: skip
    seen: Counter[tuple] = Counter()
    for span in capture.all_spans():
        attrs = span.attributes
        tokens = model_call_tokens(attrs)
        if tokens is None:
            continue
        provider = (
            attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system") or attrs.get("llm.provider")
        )
        day = dt.datetime.fromtimestamp(span.start_time / 1e9, tz=dt.UTC).date().isoformat()
        key = (service_of(span), provider, day, "ok" if span.status.is_ok else "error")
        cache_read = first_int(
            attrs,
            "gen_ai.usage.cache_read.input_tokens",
            "llm.token_count.prompt_details.cache_read",
            "gen_ai.usage.cache_read_input_tokens",
        )
        cache_write = first_int(
            attrs,
            "gen_ai.usage.cache_write.input_tokens",
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
        )
        for name, value in zip(
            ("calls", "input", "cache_read", "cache_write", "output"),
            (1, *tokens[:1], cache_read, cache_write, tokens[1]),
            strict=True,
        ):
            seen[(*key, name)] += value
    kept: Counter[tuple] = Counter()
    for call, totals in ledger.calls.items():
        key = (call.service, call.provider, call.day, call.status)
        assert (call.status == "ok") == (call.response_model is not None)
        kept[(*key, "calls")] += totals.calls
        kept[(*key, "input")] += totals.input_tokens
        kept[(*key, "cache_read")] += totals.cache_read_tokens
        kept[(*key, "cache_write")] += totals.cache_write_tokens
        kept[(*key, "output")] += totals.output_tokens
    assert +kept == +seen
    assert {name for *_, name in +kept} == {"calls", "input", "cache_read", "cache_write", "output"}
    assert len({day for _, _, day, _, _ in kept}) > 30  # spread over the backfill's days


def test_agent_span_rollups_are_not_counted_as_usage(fleet_run: tuple[Ledger, Capture]) -> None:
    ledger, capture = fleet_run
    traces = by_trace(capture.spans["support-copilot"].get_finished_spans())
    rollups = 0
    for spans in traces.values():
        root = next(span for span in spans if span.parent is None)
        own_calls = sum(
            span.attributes["gen_ai.usage.input_tokens"]
            for span in spans
            if span.attributes.get("gen_ai.operation.name") in ("chat", "embeddings")
            and "gen_ai.usage.input_tokens" in span.attributes
        )
        # The supervisor's span repeats the usage of every model call beneath it, and no more.
        assert root.attributes["gen_ai.usage.input_tokens"] == own_calls
        rollups += own_calls
    assert rollups > 0
    assert ledger.input_tokens_by_service["support-copilot"] == rollups


def test_rollups_stop_at_the_service_boundary() -> None:
    # A custom fleet: the research assistant, which delegates to data-analyst over the network,
    # now speaks current OTel GenAI and rolls usage up onto its agent spans.
    fleet = [
        dataclasses.replace(agent, convention="otel_genai", rollup_usage=True)
        if agent.service == "research-assistant"
        else agent
        for agent in build_fleet()
    ]
    capture = Capture()
    run(fleet, grpc_endpoint="g", http_endpoint=None, traces=80, exporter_factory=capture)
    crossing = 0
    for spans in by_trace(capture.all_spans()).values():
        root = next(span for span in spans if span.parent is None)
        if service_of(root) != "research-assistant":
            continue
        services = {service_of(span) for span in spans}
        crossing += len(services) > 1
        own_calls = sum(
            span.attributes.get("gen_ai.usage.input_tokens", 0)
            for span in spans
            if service_of(span) == "research-assistant"
            and span.attributes.get("gen_ai.operation.name") in ("chat", "embeddings")
        )
        assert root.attributes["gen_ai.usage.input_tokens"] == own_calls
    assert crossing > 0


def test_every_convention_and_provider_is_present(fleet_run: tuple[Ledger, Capture]) -> None:
    _, capture = fleet_run
    model_calls = [span for span in capture.all_spans() if model_call_tokens(span.attributes) is not None]
    assert {convention_of(span.attributes) for span in model_calls} == {
        "otel_genai",
        "otel_genai_legacy",
        "openinference",
        "openllmetry",
        "openlit",
    }
    providers = {
        span.attributes.get("gen_ai.provider.name")
        or span.attributes.get("gen_ai.system")
        or span.attributes.get("llm.provider")
        for span in model_calls
    }
    assert {"openai", "anthropic", "gcp.gemini", "aws.bedrock", "AWS", "google", "az.ai.openai"} <= providers

    anthropic = [s for s in model_calls if s.attributes.get("gen_ai.provider.name") == "anthropic"]
    assert any(s.attributes.get("gen_ai.usage.cache_read.input_tokens", 0) > 0 for s in anthropic)
    assert all(
        s.attributes["gen_ai.usage.input_tokens"]
        >= s.attributes["gen_ai.usage.cache_read.input_tokens"]
        + s.attributes["gen_ai.usage.cache_creation.input_tokens"]
        for s in anthropic
        if "gen_ai.usage.input_tokens" in s.attributes
    )
    self_hosted = {
        s.attributes.get("server.address") for s in model_calls if s.attributes.get("server.port") == 8000
    }
    assert self_hosted == {"vllm.it-ops.internal"}
    legacy = [s for s in model_calls if convention_of(s.attributes) == "otel_genai_legacy"]
    assert all("gen_ai.usage.prompt_tokens" in s.attributes for s in legacy if s.status.is_ok)
    assert not any("gen_ai.usage.input_tokens" in s.attributes for s in legacy)


def test_every_operation_kind_appears(fleet_run: tuple[Ledger, Capture]) -> None:
    _, capture = fleet_run
    attrs = [span.attributes for span in capture.all_spans()]
    assert {a.get("gen_ai.operation.name") for a in attrs} >= {
        "invoke_agent",
        "chat",
        "execute_tool",
        "embeddings",
        "retrieval",
    }
    assert {a.get("openinference.span.kind") for a in attrs} >= {"AGENT", "LLM", "TOOL", "RETRIEVER"}
    assert {a.get("traceloop.span.kind") for a in attrs} >= {"agent", "tool", "task"}
    assert any("gen_ai.usage.cost" in a and "gen_ai.application_name" in a for a in attrs)


def test_resources_carry_identity_and_both_environment_keys(fleet_run: tuple[Ledger, Capture]) -> None:
    _, capture = fleet_run
    resources = {
        service: exporter.get_finished_spans()[0].resource.attributes
        for service, exporter in capture.spans.items()
    }
    for attrs in resources.values():
        assert {
            "service.name",
            "service.namespace",
            "service.version",
            "host.name",
            "telemetry.sdk.name",
        } <= set(attrs)
        assert ("deployment.environment.name" in attrs) != ("deployment.environment" in attrs)
    assert sum("deployment.environment" in attrs for attrs in resources.values()) >= 3
    assert resources["support-copilot"]["gen_ai.main_agent.name"] == "TriageAgent"


def test_errors_have_status_and_error_type(fleet_run: tuple[Ledger, Capture]) -> None:
    _, capture = fleet_run
    failed = [span for span in capture.all_spans() if span.status.status_code is StatusCode.ERROR]
    assert failed
    for span in failed:
        assert span.events and span.events[0].name == "exception"
        if convention_of(span.attributes) != "openinference":  # OpenInference has only the status
            assert span.attributes.get("error.type")
        assert model_call_tokens(span.attributes) in (None, (0, 0))  # a failed call used no tokens


def test_spans_nest_in_time_and_have_no_orphans(fleet_run: tuple[Ledger, Capture]) -> None:
    _, capture = fleet_run
    for spans in by_trace(capture.all_spans()).values():
        by_id = {span.context.span_id: span for span in spans}
        assert sum(span.parent is None for span in spans) == 1
        for span in spans:
            assert span.start_time <= span.end_time
            if span.parent is not None:
                parent = by_id[span.parent.span_id]  # KeyError: an orphan
                assert parent.start_time <= span.start_time and span.end_time <= parent.end_time


def test_multi_agent_traces_have_supervisor_sub_agent_and_model_calls(
    fleet_run: tuple[Ledger, Capture],
) -> None:
    _, capture = fleet_run
    chains = 0
    for spans in by_trace(capture.spans["support-copilot"].get_finished_spans()).values():
        by_id = {span.context.span_id: span for span in spans}
        for span in spans:
            if span.attributes.get("gen_ai.operation.name") != "chat" or span.parent is None:
                continue
            sub_agent = by_id[span.parent.span_id]
            if sub_agent.parent is None:
                continue  # the supervisor's own planning call
            supervisor = by_id[sub_agent.parent.span_id]
            assert sub_agent.attributes["gen_ai.operation.name"] == "invoke_agent"
            assert supervisor.attributes["gen_ai.operation.name"] == "invoke_agent"
            assert supervisor.parent is None
            assert supervisor.attributes["gen_ai.agent.name"] == "TriageAgent"
            assert sub_agent.attributes["gen_ai.agent.name"] != "TriageAgent"
            chains += 1
    assert chains > 10


def test_some_traces_cross_services(fleet_run: tuple[Ledger, Capture]) -> None:
    _, capture = fleet_run
    crossing = [
        spans for spans in by_trace(capture.all_spans()).values() if len({service_of(s) for s in spans}) > 1
    ]
    assert crossing
    for spans in crossing:
        by_id = {span.context.span_id: span for span in spans}
        remote_roots = [s for s in spans if s.kind is SpanKind.SERVER]
        assert [service_of(s) for s in remote_roots] == ["data-analyst"]
        caller = by_id[remote_roots[0].parent.span_id]
        assert service_of(caller) == "research-assistant" and caller.parent is None


# ---------------------------------------------------------------------------------------------
# Determinism, transports, pacing, backfill
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_traces_other_seed_other_traces() -> None:
    def shapes(seed: int) -> list[tuple]:
        _, capture = simulate(seed=seed, agents=6, traces=40)
        return sorted(shape(spans) for spans in by_trace(capture.all_spans()).values())

    first = shapes(11)
    assert first == shapes(11)
    assert first != shapes(12)


def test_agents_alternate_transports_when_both_endpoints_are_given(fleet_run: tuple[Ledger, Capture]) -> None:
    ledger, capture = fleet_run
    fleet = build_fleet()
    assert [capture.transports[a.service] for a in fleet] == ["grpc", "http"] * 6
    assert ledger.transports == capture.transports

    only_http = Capture()
    run(
        build_fleet(agents=3),
        grpc_endpoint=None,
        http_endpoint="http://h:4318",
        traces=3,
        exporter_factory=only_http,
    )
    assert set(only_http.transports.values()) == {"http"}


def test_rate_paces_traffic_until_the_duration() -> None:
    started = time.monotonic()
    ledger, _ = simulate(agents=4, traces=None, rate=40, duration=0.5)
    elapsed = time.monotonic() - started
    assert 12 <= ledger.traces <= 22  # ~20 at 40/s in 0.5 s
    assert elapsed < 5


def test_stop_event_ends_a_live_run() -> None:
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    ledger, capture = simulate(agents=4, traces=None, rate=200, stop=stop)
    assert 0 < ledger.traces < 200
    assert ledger.total_spans() == len(capture.all_spans())


def test_backfill_spreads_traces_over_the_past_with_quiet_weekends() -> None:
    before = time.time_ns()
    ledger, capture = simulate(agents=6, traces=400, backfill_days=14)
    after = time.time_ns()
    spans = capture.all_spans()
    earliest = before - 14 * 86_400 * 10**9
    assert all(earliest <= span.start_time and span.end_time <= after for span in spans)
    roots = [span for span in spans if span.parent is None]
    days = {dt.datetime.fromtimestamp(s.start_time / 1e9, tz=dt.UTC).date() for s in roots}
    assert len(days) >= 12  # spread, not bunched
    weekday = Counter(dt.datetime.fromtimestamp(s.start_time / 1e9, tz=dt.UTC).weekday() >= 5 for s in roots)
    # 14 days hold 10 weekdays and 4 weekend days: compare traffic per day.
    assert weekday[True] / 4 < 0.6 * weekday[False] / 10
    assert ledger.metric_points == 0  # SDK metrics cannot be back-dated, so none are sent
    logs = [record for exporter in capture.logs.values() for record in exporter.get_finished_logs()]
    assert logs and all(earliest <= r.log_record.timestamp <= after for r in logs)


class Refusing(InMemorySpanExporter):
    def export(self, spans):  # type: ignore[override]
        super().export(spans)
        return SpanExportResult.FAILURE


class Slow(InMemorySpanExporter):
    def export(self, spans):  # type: ignore[override]
        time.sleep(0.02)
        return super().export(spans)


class CaptureWith(Capture):
    """Capture through another kind of span exporter."""

    def __init__(self, kind: type[InMemorySpanExporter]) -> None:
        super().__init__()
        self.kind = kind

    def span_exporter(self, agent: AgentSpec, transport: Transport) -> InMemorySpanExporter:
        return self.spans.setdefault(agent.service, self.kind())


def test_failed_exports_are_reported() -> None:
    capture = CaptureWith(Refusing)
    ledger = run(
        build_fleet(agents=2), grpc_endpoint="g", http_endpoint=None, traces=4, exporter_factory=capture
    )
    assert ledger.failed_exports > 0
    assert ledger.total_spans() == ledger.spans_created


def test_a_slow_exporter_holds_the_loop_back_instead_of_losing_spans(monkeypatch) -> None:
    import muster.simulate as simulate_module

    # A queue of 300 would overflow many times over without the run loop waiting for the exporter.
    monkeypatch.setattr(simulate_module, "MAX_QUEUE", 300)
    monkeypatch.setattr(simulate_module, "BATCH_SIZE", 50)
    capture = CaptureWith(Slow)
    ledger = run(
        build_fleet(agents=2), grpc_endpoint="g", http_endpoint=None, traces=300, exporter_factory=capture
    )
    assert ledger.total_spans() == ledger.spans_created == len(capture.all_spans()) > 3_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"grpc_endpoint": None, "http_endpoint": None, "traces": 1}, "endpoint"),
        ({"grpc_endpoint": "g", "http_endpoint": None}, "nothing would end"),
        ({"grpc_endpoint": "g", "http_endpoint": None, "traces": 1, "rate": 0}, "rate"),
        ({"grpc_endpoint": "g", "http_endpoint": None, "traces": 1, "backfill_days": -1}, "backfill_days"),
    ],
)
def test_bad_arguments_say_what_to_do(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run(build_fleet(agents=1), **kwargs)


# ---------------------------------------------------------------------------------------------
# The real OTLP exporters, against capture servers that decode what arrives
# ---------------------------------------------------------------------------------------------


class Received:
    """Totals decoded from OTLP requests, by service.name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: Counter[str] = Counter()
        self.input_tokens: Counter[str] = Counter()
        self.output_tokens: Counter[str] = Counter()
        self.points: Counter[str] = Counter()
        self.records: Counter[str] = Counter()
        self.gzipped = 0

    @staticmethod
    def _service(resource) -> str:
        return next(kv.value.string_value for kv in resource.attributes if kv.key == "service.name")

    def traces(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            for rs in request.resource_spans:
                service = self._service(rs.resource)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans[service] += 1
                        attrs = {
                            kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes
                        }
                        tokens = model_call_tokens(attrs)
                        if tokens is not None:
                            self.input_tokens[service] += tokens[0]
                            self.output_tokens[service] += tokens[1]

    def metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self.lock:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        data = getattr(metric, metric.WhichOneof("data"))
                        self.points[self._service(rm.resource)] += len(data.data_points)

    def logs(self, request: logs_service_pb2.ExportLogsServiceRequest) -> None:
        with self.lock:
            for rl in request.resource_logs:
                self.records[self._service(rl.resource)] += sum(len(sl.log_records) for sl in rl.scope_logs)

    def matches(self, ledger: Ledger) -> None:
        assert +self.spans == +ledger.spans_by_service
        assert +self.input_tokens == +ledger.input_tokens_by_service
        assert +self.output_tokens == +ledger.output_tokens_by_service
        assert +self.points == +ledger.metric_points_by_service
        assert +self.records == +ledger.log_records_by_service


@pytest.fixture
def http_server():
    received = Received()
    parsers = {
        "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, received.traces),
        "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest, received.metrics),
        "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, received.logs),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
                received.gzipped += 1
            message, sink = parsers[self.path]
            sink(message.FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def grpc_server():
    received = Received()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            received.traces(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request, context):
            received.metrics(request)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    class Logs(logs_service_pb2_grpc.LogsServiceServicer):
        def Export(self, request, context):
            received.logs(request)
            return logs_service_pb2.ExportLogsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", received
    server.stop(grace=None)


def test_real_http_exporters_deliver_what_the_ledger_says(http_server) -> None:
    endpoint, received = http_server
    ledger = run(build_fleet(agents=12), grpc_endpoint=None, http_endpoint=endpoint + "/v1/traces", traces=60)
    assert ledger.failed_exports == 0
    received.matches(ledger)
    assert received.points and received.records
    assert received.gzipped > 0  # some agents compress, as real deployments do


def test_real_grpc_and_http_exporters_together(grpc_server, http_server) -> None:
    grpc_endpoint, via_grpc = grpc_server
    http_endpoint, via_http = http_server
    ledger = run(build_fleet(agents=12), grpc_endpoint=grpc_endpoint, http_endpoint=http_endpoint, traces=60)
    assert ledger.failed_exports == 0
    assert set(via_grpc.spans) and set(via_http.spans) and not set(via_grpc.spans) & set(via_http.spans)
    combined = Received()
    for part in (via_grpc, via_http):
        combined.spans += part.spans
        combined.input_tokens += part.input_tokens
        combined.output_tokens += part.output_tokens
        combined.points += part.points
        combined.records += part.records
    combined.matches(ledger)


# ---------------------------------------------------------------------------------------------
# The demo enterprise, OTLP/JSON, activity windows and the CLI's backfill argument
# ---------------------------------------------------------------------------------------------


def test_demo_fleet_is_an_enterprise_over_every_convention_and_transport() -> None:
    from muster.fleet import UNREGISTERED, demo_fleet

    fleet = demo_fleet(seed=3)
    assert len(fleet) == 60 and len({a.service for a in fleet}) == 60
    assert len({a.namespace for a in fleet}) == 12
    assert {a.convention for a in fleet} == {
        "otel_genai",
        "otel_genai_legacy",
        "openinference",
        "openllmetry",
        "openlit",
    }
    assert {a.transport for a in fleet} == {"grpc", "http", "http_json"}
    assert len(UNREGISTERED) == 10
    # the seed varies hosts and versions only, so one registry fits every seed
    other = demo_fleet(seed=4)
    assert [a.service for a in other] == [a.service for a in fleet]
    assert [a.host for a in other] != [a.host for a in fleet]
    assert demo_fleet(seed=3) == fleet


def test_demo_registry_registers_all_but_the_shadow_agents() -> None:
    from pathlib import Path

    from muster.fleet import UNREGISTERED, demo_fleet
    from registry.loader import load_paths

    registry = load_paths([Path(__file__).parent.parent / "data" / "demo"])
    registered = {s.service.name for a in registry.agents.values() for s in a.spec.match if s.service}
    fleet = {a.service for a in demo_fleet()}
    assert registered == fleet - {a.service for a in UNREGISTERED}
    assert len(registry.departments) == 12 and len(registry.agents) == 50


def test_otlp_json_has_hex_ids_and_integer_enums() -> None:
    import json

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from muster.fleet_otlp_json import otlp_json

    _, capture = simulate(agents=6, traces=3)
    spans = capture.all_spans()
    body = json.loads(otlp_json(encode_spans(spans)))
    wire = [s for rs in body["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert {s["traceId"] for s in wire} == {f"{s.context.trace_id:032x}" for s in spans}
    assert {s["spanId"] for s in wire} == {f"{s.context.span_id:016x}" for s in spans}
    assert all(isinstance(s["kind"], int) for s in wire)


def test_agents_run_only_in_their_active_window_and_planted_loops_are_recent() -> None:
    fleet = build_fleet(seed=7, agents=4)
    fleet[1] = dataclasses.replace(fleet[1], active_days=(20.0, 12.0))
    fleet[2] = dataclasses.replace(fleet[2], loops_hours_ago=(3.0,))
    capture = Capture()
    run(fleet, grpc_endpoint="g", http_endpoint=None, traces=200, backfill_days=30, exporter_factory=capture)
    now = time.time_ns()
    roots = {s.context.trace_id: s for s in capture.all_spans() if s.parent is None}
    windowed = [s for s in roots.values() if s.resource.attributes["service.name"] == fleet[1].service]
    assert windowed
    assert all(12 * 86_400e9 <= now - s.start_time <= 20 * 86_400e9 for s in windowed)
    loops = [s for s in capture.spans[fleet[2].service].get_finished_spans() if s.parent is None]
    chats = Counter(s.context.trace_id for s in capture.spans[fleet[2].service].get_finished_spans())
    (loop,) = [s for s in loops if chats[s.context.trace_id] > 300]
    assert 3 * 3_600e9 <= now - loop.start_time < 4 * 3_600e9
    # a live run leaves out an agent that stopped in the past
    live = Capture()
    run(fleet, grpc_endpoint="g", http_endpoint=None, traces=20, exporter_factory=live)
    assert not live.spans[fleet[1].service].get_finished_spans()


@pytest.mark.parametrize(
    "fleet, backfill, traces, expected",
    [
        ("demo", "35d", None, (35, 35 * 120)),
        ("demo", "30", 500, (30, 500)),
        ("basic", None, 10, (0, 10)),
    ],
)
def test_backfill_takes_days_with_or_without_a_d(fleet, backfill, traces, expected) -> None:
    from muster.fleet_cli import backfill_plan

    assert backfill_plan(fleet, backfill, traces) == expected


def test_backfill_refuses_what_is_not_days() -> None:
    from muster.fleet_cli import backfill_plan

    with pytest.raises(ValueError, match="35d"):
        backfill_plan("demo", "5w", None)
    with pytest.raises(ValueError, match="demo, basic"):
        backfill_plan("huge", None, None)
