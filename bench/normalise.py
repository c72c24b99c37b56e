"""Micro-benchmark of `collector.normalise.normalise_traces`: µs per span and spans per second.

Builds one realistic OTLP trace request — 1,000 GenAI spans of mixed conventions (current and
older OTel GenAI, OpenInference, OpenLLMetry, OpenLIT, plus tool and plain HTTP spans), ~15
attributes each, one resource — and normalises it repeatedly, from the parsed message (what the
API takes) and from the serialized bytes (which skips a re-serialisation). The protobuf parse is
timed too, for scale, and so is the per-span path alone (the reference the column-wise decoder
matches; 1 span in 25 here has an exception event and takes it).

    python bench/normalise.py [--spans 1000] [--repeat 30] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector import normalise
from collector.normalise import normalise_traces

T0 = 1_760_000_000_000_000_000


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _otel_chat(rng: random.Random) -> dict[str, object]:
    model = rng.choice(["gpt-4o", "gpt-4o-mini", "o3-mini"])
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model + "-2024-08-06",
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):x}",
        "gen_ai.response.finish_reasons": "stop",
        "gen_ai.usage.input_tokens": rng.randint(50, 8000),
        "gen_ai.usage.output_tokens": rng.randint(10, 2000),
        "gen_ai.usage.cache_read.input_tokens": rng.randint(0, 40) * 64,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.agent.name": rng.choice(["support-bot", "triage", "billing"]),
        "gen_ai.conversation.id": f"conv_{rng.getrandbits(48):x}",
        "server.address": "api.openai.com",
        "server.port": 443,
        "user.id": f"u{rng.randint(1, 500)}",
    }


def _otel_legacy(rng: random.Random) -> dict[str, object]:
    return {
        "gen_ai.system": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4-turbo",
        "gen_ai.response.model": "gpt-4-turbo-2024-04-09",
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):x}",
        "gen_ai.usage.prompt_tokens": rng.randint(50, 8000),
        "gen_ai.usage.completion_tokens": rng.randint(10, 2000),
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.request.temperature": 0.7,
        "gen_ai.request.top_p": 1.0,
        "server.address": "api.openai.com",
        "server.port": 443,
        "http.status_code": 200,
        "llm.is_streaming": False,
        "session.id": f"s-{rng.getrandbits(32):x}",
    }


def _openinference(rng: random.Random) -> dict[str, object]:
    prompt = rng.randint(50, 8000)
    return {
        "openinference.span.kind": "LLM",
        "llm.provider": "anthropic",
        "llm.system": "anthropic",
        "llm.model_name": "claude-sonnet-4-5",
        "llm.token_count.prompt": prompt,
        "llm.token_count.completion": rng.randint(10, 2000),
        "llm.token_count.total": prompt + 100,
        "llm.token_count.prompt_details.cache_read": rng.randint(0, 20) * 128,
        "llm.invocation_parameters": '{"max_tokens": 1024, "temperature": 0.5}',
        "input.mime_type": "application/json",
        "output.mime_type": "application/json",
        "session.id": f"sess-{rng.getrandbits(40):x}",
        "user.id": f"user-{rng.randint(1, 300)}",
        "agent.name": "researcher",
        "metadata": '{"tenant": "acme"}',
    }


def _openllmetry(rng: random.Random) -> dict[str, object]:
    return {
        "llm.request.type": "chat",
        "gen_ai.system": "Anthropic",
        "gen_ai.request.model": "claude-3-5-haiku",
        "gen_ai.response.model": "claude-3-5-haiku-20241022",
        "gen_ai.usage.prompt_tokens": rng.randint(50, 4000),
        "gen_ai.usage.completion_tokens": rng.randint(10, 800),
        "llm.usage.total_tokens": rng.randint(100, 5000),
        "gen_ai.usage.cache_read_input_tokens": rng.randint(0, 10) * 256,
        "gen_ai.usage.cache_creation_input_tokens": 0,
        "traceloop.workflow.name": "ticket_flow",
        "traceloop.entity.path": "ticket_flow.classify",
        "traceloop.association.properties.user_id": f"u{rng.randint(1, 99)}",
        "llm.is_streaming": False,
        "gen_ai.request.temperature": 0.0,
        "llm.headers": "None",
    }


def _openlit(rng: random.Random) -> dict[str, object]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": rng.randint(50, 4000),
        "gen_ai.usage.output_tokens": rng.randint(10, 800),
        "gen_ai.usage.total_tokens": rng.randint(100, 5000),
        "gen_ai.usage.cost": rng.random() / 100,
        "gen_ai.application_name": "kb-assistant",
        "gen_ai.environment": "production",
        "gen_ai.endpoint": "openai.chat.completions",
        "gen_ai.request.is_stream": False,
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):x}",
        "server.address": "api.openai.com",
        "server.port": 443,
    }


def _tool(rng: random.Random) -> dict[str, object]:
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": rng.choice(["search_kb", "create_ticket", "lookup_order"]),
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": f"call_{rng.getrandbits(64):x}",
        "gen_ai.agent.name": "support-bot",
        "gen_ai.conversation.id": f"conv_{rng.getrandbits(48):x}",
        "gen_ai.tool.call.arguments": '{"query": "refund policy for order 1234"}',
        "code.function": "search_kb",
        "code.namespace": "agents.tools",
        "thread.id": rng.randint(1, 64),
        "thread.name": "worker",
        "db.system": "postgresql",
        "db.operation.name": "SELECT",
        "retries": 0,
        "cached": False,
    }


def _http(rng: random.Random) -> dict[str, object]:
    return {
        "http.request.method": "POST",
        "url.full": f"https://internal.example.com/api/v1/orders/{rng.randint(1, 99999)}",
        "url.scheme": "https",
        "server.address": "internal.example.com",
        "server.port": 443,
        "http.response.status_code": 200,
        "network.protocol.version": "1.1",
        "user_agent.original": "python-httpx/0.28.1",
        "http.request.body.size": rng.randint(100, 5000),
        "http.response.body.size": rng.randint(100, 50000),
        "client.address": "10.0.0.12",
        "network.peer.address": "10.0.3.4",
        "network.peer.port": 443,
        "http.route": "/api/v1/orders/{id}",
        "error.type": "",
    }


MIX: list[tuple[float, Callable[[random.Random], dict[str, object]]]] = [
    (0.35, _otel_chat),
    (0.10, _otel_legacy),
    (0.15, _openinference),
    (0.15, _openllmetry),
    (0.10, _openlit),
    (0.10, _tool),
    (0.05, _http),
]


def build_request(n_spans: int, seed: int = 7) -> ExportTraceServiceRequest:
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(
        [
            _kv("service.name", "support-agent"),
            _kv("service.namespace", "customer-care"),
            _kv("service.version", "2.4.1"),
            _kv("deployment.environment.name", "production"),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.version", "1.38.0"),
            _kv("host.name", "agent-7f9c"),
        ]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    ss.scope.version = "2.1b0"
    makers = [m for _, m in MIX]
    weights = [w for w, _ in MIX]
    trace_id = rng.randbytes(16)
    for i in range(n_spans):
        if i % 20 == 0:
            trace_id = rng.randbytes(16)
        span = ss.spans.add()
        span.trace_id = trace_id
        span.span_id = rng.randbytes(8)
        if i % 20:
            span.parent_span_id = rng.randbytes(8)
        span.name = "chat gpt-4o"
        span.kind = Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano = T0 + i * 1_000_000
        span.end_time_unix_nano = T0 + i * 1_000_000 + rng.randint(10_000_000, 9_000_000_000)
        span.attributes.extend(_kv(k, v) for k, v in rng.choices(makers, weights)[0](rng).items())
        if i % 25 == 0:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = "rate limited"
            event = span.events.add()
            event.name = "exception"
            event.time_unix_nano = span.end_time_unix_nano
            event.attributes.extend(
                [_kv("exception.type", "RateLimitError"), _kv("exception.message", "429")]
            )
    return request


def _best_of(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of normalise_traces")
    args = parser.parse_args()

    request = build_request(args.spans)
    body = request.SerializeToString()
    n = args.spans
    result = normalise_traces(request)
    assert result.table.num_rows == n and not result.rejects, result.error_message

    machine = platform.processor() or platform.machine()
    print(f"{machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}, protobuf upb")
    print(f"request: {n} spans, {len(body) / n:.0f} bytes/span, 1 resource, ~15 attributes/span")
    parse = _best_of(lambda: ExportTraceServiceRequest.FromString(body), args.repeat)
    from_message = _best_of(lambda: normalise_traces(request), args.repeat)
    from_bytes = _best_of(lambda: normalise_traces(body), args.repeat)
    span_by_span = _best_of(lambda: normalise._traces_span_by_span(body), args.repeat)
    for label, seconds in [
        ("protobuf parse (upb, for scale)", parse),
        ("normalise_traces(message)", from_message),
        ("normalise_traces(bytes)", from_bytes),
        ("  per-span path alone (reference)", span_by_span),
    ]:
        print(f"{label:34s} {seconds / n * 1e6:6.2f} µs/span  {n / seconds:>10,.0f} spans/s")

    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.repeat):
            normalise_traces(request)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
