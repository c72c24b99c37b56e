"""Cheap, realistic GenAI OTLP trace export requests for load tests.

A handful of `ExportTraceServiceRequest` templates is built once: multi-agent traces
(`invoke_agent` → `chat` / `embeddings` / `execute_tool`, sub-agents beneath a supervisor) from
several services, each instrumented with a different convention (OTel GenAI current and legacy,
OpenInference, OpenLLMetry, OpenLIT), 12–20 attributes a span. Each template is serialized once,
and the byte offsets of every trace id, span id, parent span id and timestamp inside the bytes are
recorded. A request to send is then a copy of the template bytes with fresh random ids and shifted
timestamps written in with numpy — a few hundred microseconds for 1,000 spans — so the load
generator leaves the CPU to the server it shares the machine with.

Run it on its own to check the patched bytes and to print the generator's cost:

    python bench/genai_load.py [--spans-per-request 1000] [--requests 300]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import time
import zlib
from collections import Counter
from dataclasses import dataclass

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

# Wire-format tags (field number << 3 | wire type) of the Span fields patched in place, with the
# length byte of the fixed-size ids. Searching for tag + length + value, not the value alone,
# makes an accidental match elsewhere in the message impossible in practice.
_TRACE_ID_PREFIX = b"\x0a\x10"  # field 1, length-delimited, 16 bytes
_SPAN_ID_PREFIX = b"\x12\x08"  # field 2, length-delimited, 8 bytes
_PARENT_ID_PREFIX = b"\x22\x08"  # field 4, length-delimited, 8 bytes
_START_TIME_TAG = b"\x39"  # field 7, fixed64
_END_TIME_TAG = b"\x41"  # field 8, fixed64

AttrValue = str | int | float | bool | list[str]
Attrs = dict[str, AttrValue]


# --------------------------------------------------------------------------------------------
# What the fleet looks like: services, models, and how each convention names things
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One instrumented agent application and the convention its instrumentation speaks."""

    name: str
    namespace: str
    convention: str  # otel_genai, otel_genai_legacy, openinference, openllmetry, openlit
    provider: str  # the provider value as that convention spells it
    chat_models: tuple[tuple[str, str], ...]  # (request model, response model)
    embedding_model: str
    server_address: str
    agents: tuple[str, ...]  # supervisor first, then sub-agents
    tools: tuple[str, ...]
    scope: tuple[str, str]  # instrumentation scope name, version
    sdk_language: str = "python"


SERVICES: tuple[Service, ...] = (
    Service(
        name="support-copilot",
        namespace="customer-care",
        convention="otel_genai",
        provider="openai",
        chat_models=(("gpt-4o", "gpt-4o-2024-08-06"), ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")),
        embedding_model="text-embedding-3-small",
        server_address="api.openai.com",
        agents=("TriageAgent", "RefundAgent", "KnowledgeAgent", "EscalationAgent"),
        tools=("lookup_order", "search_kb", "issue_refund", "create_ticket"),
        scope=("openai-agents", "0.4.2"),
    ),
    Service(
        name="claims-triage",
        namespace="insurance-ops",
        convention="otel_genai_legacy",
        provider="anthropic",
        chat_models=(
            ("claude-sonnet-4-20250514", "claude-sonnet-4-20250514"),
            ("claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022"),
        ),
        embedding_model="voyage-3",
        server_address="api.anthropic.com",
        agents=("ClaimsSupervisor", "DocumentReader", "FraudScreen"),
        tools=("fetch_policy", "ocr_document", "score_fraud"),
        scope=("opentelemetry.instrumentation.anthropic", "0.40.7"),
    ),
    Service(
        name="research-assistant",
        namespace="strategy",
        convention="openinference",
        provider="google",
        chat_models=(("gemini-2.5-flash", "gemini-2.5-flash"), ("gemini-2.0-flash", "gemini-2.0-flash-001")),
        embedding_model="text-embedding-004",
        server_address="generativelanguage.googleapis.com",
        agents=("ResearchLead", "WebSearcher", "Summariser"),
        tools=("web_search", "read_url", "vector_lookup"),
        scope=("openinference.instrumentation.langchain", "0.1.45"),
    ),
    Service(
        name="invoice-agent",
        namespace="finance-automation",
        convention="openllmetry",
        provider="AWS",
        chat_models=(
            ("meta.llama3-1-70b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0"),
            ("meta.llama3-1-8b-instruct-v1:0", "meta.llama3-1-8b-instruct-v1:0"),
        ),
        embedding_model="amazon.titan-embed-text-v2:0",
        server_address="bedrock-runtime.us-east-1.amazonaws.com",
        agents=("invoice_workflow", "extractor", "approver"),
        tools=("erp_lookup", "match_purchase_order", "post_journal"),
        scope=("opentelemetry.instrumentation.bedrock", "0.38.12"),
    ),
    Service(
        name="sales-email-bot",
        namespace="revenue",
        convention="openlit",
        provider="openai",
        chat_models=(("gpt-4o-mini", "gpt-4o-mini-2024-07-18"), ("gpt-4o", "gpt-4o-2024-11-20")),
        embedding_model="text-embedding-3-large",
        server_address="api.openai.com",
        agents=("OutreachWriter", "LeadResearcher"),
        tools=("crm_search", "send_email"),
        scope=("openlit.otel.tracing", "1.34.0"),
        sdk_language="python",
    ),
)

# Rough list prices (USD per 1M input, output tokens), only for the OpenLIT `gen_ai.usage.cost`
# attribute: the point is a plausible number, not an exact bill.
_PRICES = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "text-embedding-3-large": (0.13, 0.0),
}


# --------------------------------------------------------------------------------------------
# Trace shapes
# --------------------------------------------------------------------------------------------


@dataclass
class SpanPlan:
    """One span of a planned trace, before a convention dresses it in attributes."""

    op: str  # invoke_agent, chat, embeddings, execute_tool, retrieval
    parent: int | None  # index of the parent inside the trace
    agent: str
    start_ns: int
    end_ns: int
    model: tuple[str, str] | None = None
    tool: str | None = None
    error: bool = False


def plan_trace(rng: random.Random, svc: Service, start_ns: int) -> list[SpanPlan]:
    """A supervisor agent that plans, delegates to 1–3 sub-agents (model calls, tools, lookups), answers."""
    spans: list[SpanPlan] = []
    clock = start_ns

    def add(op: str, parent: int | None, agent: str, dur_ms: float, **kw: object) -> int:
        nonlocal clock
        clock += rng.randint(200_000, 3_000_000)  # scheduling gap between sibling spans
        spans.append(SpanPlan(op, parent, agent, clock, clock + int(dur_ms * 1e6), **kw))  # type: ignore[arg-type]
        return len(spans) - 1

    supervisor = svc.agents[0]
    root = add("invoke_agent", None, supervisor, 0)
    add("chat", root, supervisor, rng.uniform(300, 2500), model=rng.choice(svc.chat_models))
    for sub in rng.sample(svc.agents[1:], k=min(len(svc.agents) - 1, rng.randint(1, 3))):
        agent_span = add("invoke_agent", root, sub, 0)
        if rng.random() < 0.4:
            add("embeddings", agent_span, sub, rng.uniform(30, 200))
            add("retrieval", agent_span, sub, rng.uniform(10, 120))
        for _ in range(rng.randint(1, 3)):
            add(
                "chat",
                agent_span,
                sub,
                rng.uniform(250, 4000),
                model=rng.choice(svc.chat_models),
                error=rng.random() < 0.02,
            )
            if rng.random() < 0.7:
                add(
                    "execute_tool",
                    agent_span,
                    sub,
                    rng.uniform(5, 800),
                    tool=rng.choice(svc.tools),
                    error=rng.random() < 0.03,
                )
        spans[agent_span].end_ns = clock + rng.randint(100_000, 1_000_000)
    add("chat", root, supervisor, rng.uniform(300, 2500), model=rng.choice(svc.chat_models))
    spans[root].end_ns = clock + rng.randint(100_000, 2_000_000)
    return spans


# --------------------------------------------------------------------------------------------
# Attributes, convention by convention
# --------------------------------------------------------------------------------------------


def _usage(rng: random.Random) -> tuple[int, int, int, int]:
    """Input, output, cache-read and reasoning token counts of one model call."""
    inp = rng.randint(300, 12_000)
    out = rng.randint(20, 1_500)
    return inp, out, rng.choice((0, 0, inp // 2, inp - inp % 1024)), rng.choice((0, 0, 0, out // 3))


def _app_attrs(rng: random.Random, svc: Service, conversation: str) -> Attrs:
    """What application code adds to every span besides the instrumentation's own attributes."""
    return {
        "app.tenant_id": f"tenant-{rng.randint(1, 40):03d}",
        "app.request_id": f"req-{rng.getrandbits(48):012x}",
        "app.feature": rng.choice(("chat", "batch", "api", "slack")),
        "session.id" if svc.convention == "openinference" else "app.conversation_id": conversation,
    }


def _finish_reason(rng: random.Random, provider: str) -> str:
    if provider == "anthropic":
        return "tool_use" if rng.random() < 0.4 else "end_turn"
    return "tool_calls" if rng.random() < 0.4 else "stop"


def otel_genai_attrs(rng: random.Random, svc: Service, sp: SpanPlan, conv: str, legacy: bool) -> Attrs:
    """OTel GenAI conventions: 1.37+ names, or ≤1.36 names (`gen_ai.system`, prompt/completion tokens)."""
    a: Attrs = {"gen_ai.operation.name": sp.op}
    a["gen_ai.system" if legacy else "gen_ai.provider.name"] = svc.provider
    if sp.op == "invoke_agent":
        a |= {
            "gen_ai.agent.name": sp.agent,
            "gen_ai.agent.id": f"asst_{zlib.crc32(sp.agent.encode()):08x}",
            "gen_ai.agent.description": f"{sp.agent} for {svc.name}",
            "gen_ai.agent.version": "2025.11.3",
            "gen_ai.request.model": svc.chat_models[0][0],
            "gen_ai.conversation.id": conv,
            "server.address": svc.server_address,
            "server.port": 443,
        }
        if not legacy:  # rolled-up usage on the agent span: must not be counted twice
            a |= {
                "gen_ai.usage.input_tokens": rng.randint(2_000, 40_000),
                "gen_ai.usage.output_tokens": rng.randint(200, 4_000),
            }
    elif sp.op in ("chat", "embeddings"):
        model = sp.model or (svc.embedding_model, svc.embedding_model)
        inp, out, cached, reasoning = _usage(rng)
        a |= {
            "gen_ai.request.model": model[0],
            "gen_ai.response.model": model[1],
            "server.address": svc.server_address,
            "server.port": 443,
            "gen_ai.conversation.id": conv,
        }
        if sp.op == "chat":
            id_prefix = "msg_" if svc.provider == "anthropic" else "chatcmpl-"
            a["gen_ai.response.id"] = f"{id_prefix}{rng.getrandbits(64):016x}"
        if legacy:
            a["gen_ai.usage.prompt_tokens"] = inp
            if sp.op == "chat":
                a["gen_ai.usage.completion_tokens"] = out
        else:
            a |= {"gen_ai.usage.input_tokens": inp, "gen_ai.usage.cache_read.input_tokens": cached}
            if sp.op == "chat":
                a |= {"gen_ai.usage.output_tokens": out, "gen_ai.usage.reasoning.output_tokens": reasoning}
        if sp.op == "chat":
            a |= {
                "gen_ai.request.temperature": rng.choice((0.0, 0.2, 0.7)),
                "gen_ai.request.max_tokens": 4096,
                "gen_ai.response.finish_reasons": [_finish_reason(rng, svc.provider)],
                "gen_ai.agent.name": sp.agent,
            }
    elif sp.op == "execute_tool":
        a |= {
            "gen_ai.tool.name": sp.tool or "",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": f"call_{rng.getrandbits(64):016x}",
            "gen_ai.tool.description": f"{sp.tool} tool",
            "gen_ai.agent.name": sp.agent,
            "gen_ai.conversation.id": conv,
            "code.function.name": f"tools.{sp.tool}",
        }
    else:  # retrieval
        a |= {
            "gen_ai.data_source.id": "kb-prod-eu",
            "gen_ai.request.top_k": 8,
            "gen_ai.conversation.id": conv,
            "db.system.name": "pgvector",
            "gen_ai.agent.name": sp.agent,
            "server.address": "pg-vector.internal",
            "server.port": 5432,
        }
    if sp.error:
        a["error.type"] = "RateLimitError" if sp.op == "chat" else "TimeoutError"
    return a


def openinference_attrs(rng: random.Random, svc: Service, sp: SpanPlan, conv: str) -> Attrs:
    """OpenInference (Arize Phoenix, LangChain/LlamaIndex instrumentors)."""
    kind = {
        "invoke_agent": "AGENT",
        "chat": "LLM",
        "embeddings": "EMBEDDING",
        "execute_tool": "TOOL",
        "retrieval": "RETRIEVER",
    }[sp.op]
    a: Attrs = {
        "openinference.span.kind": kind,
        "user.id": f"user-{rng.randint(1, 5000)}",
        "input.mime_type": "application/json",
        "output.mime_type": "application/json",
        "metadata": json.dumps({"ls_run_depth": 1 if sp.parent is None else 2, "thread": conv[:8]}),
    }
    if kind == "AGENT":
        a |= {
            "agent.name": sp.agent,
            "graph.node.id": sp.agent.lower(),
            "graph.node.name": sp.agent,
            "input.value": '{"question": "Summarise competitor pricing changes this quarter"}',
        }
    elif kind in ("LLM", "EMBEDDING"):
        inp, out, cached, _ = _usage(rng)
        if kind == "LLM":
            model = sp.model or svc.chat_models[0]
            a |= {
                "llm.model_name": model[0],
                "llm.provider": svc.provider,
                "llm.system": "vertexai",
                "llm.token_count.prompt": inp,
                "llm.token_count.completion": out,
                "llm.token_count.total": inp + out,
                "llm.token_count.prompt_details.cache_read": cached,
                "llm.invocation_parameters": '{"temperature": 0.3, "max_output_tokens": 2048}',
            }
        else:
            a |= {
                "embedding.model_name": svc.embedding_model,
                "llm.provider": svc.provider,
                "llm.token_count.prompt": inp,
                "llm.token_count.total": inp,
            }
    elif kind == "TOOL":
        a |= {
            "tool.name": sp.tool or "",
            "tool.id": f"call_{rng.getrandbits(40):010x}",
            "tool.description": f"{sp.tool} over the research corpus",
            "tool.parameters": '{"type": "object", "properties": {"q": {"type": "string"}}}',
        }
    else:
        a |= {"input.value": "competitor pricing Q3", "embedding.model_name": svc.embedding_model}
        for d in range(2):
            a |= {
                f"retrieval.documents.{d}.document.id": f"doc-{rng.randint(1, 10**6)}",
                f"retrieval.documents.{d}.document.score": round(rng.random(), 4),
            }
    return a


def openllmetry_attrs(rng: random.Random, svc: Service, sp: SpanPlan, conv: str) -> Attrs:
    """OpenLLMetry (Traceloop): `traceloop.*` entity spans around `gen_ai.*` legacy-named model spans."""
    a: Attrs = {
        "traceloop.workflow.name": svc.agents[0],
        "traceloop.association.properties.customer_id": f"cust-{rng.randint(1, 900)}",
        "traceloop.association.properties.conversation_id": conv,
    }
    if sp.op in ("chat", "embeddings"):
        model = sp.model or (svc.embedding_model, svc.embedding_model)
        inp, out, _, _ = _usage(rng)
        if sp.op == "embeddings":
            out = 0
        a |= {
            "gen_ai.system": svc.provider,
            "llm.request.type": "chat" if sp.op == "chat" else "embedding",
            "gen_ai.request.model": model[0],
            "gen_ai.response.model": model[1],
            "gen_ai.usage.prompt_tokens": inp,
            "gen_ai.usage.completion_tokens": out,
            "llm.usage.total_tokens": inp + out,
            "gen_ai.request.temperature": 0.1,
            "gen_ai.request.max_tokens": 2048,
            "llm.is_streaming": False,
            "traceloop.entity.path": f"{svc.agents[0]}.{sp.agent}",
        }
    else:
        kind = {
            "invoke_agent": "agent" if sp.parent is not None else "workflow",
            "execute_tool": "tool",
            "retrieval": "task",
        }[sp.op]
        name = sp.tool if sp.op == "execute_tool" else sp.agent
        a |= {
            "traceloop.span.kind": kind,
            "traceloop.entity.name": name or "",
            "traceloop.entity.version": "3",
            "traceloop.entity.path": f"{svc.agents[0]}.{name}",
            "traceloop.entity.input": '{"args": [], "kwargs": {"invoice_id": "INV-20931"}}',
            "traceloop.entity.output": '{"status": "ok"}',
            "traceloop.sdk.version": "0.38.12",
        }
    if sp.error:
        a["error.type"] = "ThrottlingException"
    return a


def openlit_attrs(rng: random.Random, svc: Service, sp: SpanPlan, conv: str) -> Attrs:
    """OpenLIT: OTel-style names plus `gen_ai.usage.cost` and `gen_ai.application_name`."""
    a: Attrs = {
        "gen_ai.operation.name": sp.op,
        "gen_ai.system": svc.provider,
        "gen_ai.application_name": svc.name,
        "gen_ai.environment": "production",
        "telemetry.sdk.name": "openlit",
        "gen_ai.conversation.id": conv,
    }
    if sp.op in ("chat", "embeddings"):
        model = sp.model or (svc.embedding_model, svc.embedding_model)
        inp, out, _, _ = _usage(rng)
        out = out if sp.op == "chat" else 0
        price_in, price_out = _PRICES.get(model[0], (1.0, 3.0))
        a |= {
            "gen_ai.request.model": model[0],
            "gen_ai.response.model": model[1],
            "gen_ai.usage.input_tokens": inp,
            "gen_ai.usage.output_tokens": out,
            "gen_ai.usage.total_tokens": inp + out,
            "gen_ai.usage.cost": round((inp * price_in + out * price_out) / 1e6, 6),
            "gen_ai.request.is_stream": False,
            "server.address": svc.server_address,
            "server.port": 443,
        }
    elif sp.op == "invoke_agent":
        a |= {
            "gen_ai.agent.name": sp.agent,
            "gen_ai.agent.id": f"agent-{sp.agent.lower()}",
            "gen_ai.request.model": svc.chat_models[0][0],
            "gen_ai.agent.description": sp.agent,
            "server.address": svc.server_address,
        }
    else:
        a |= {
            "gen_ai.tool.name": sp.tool or "kb",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": f"call_{rng.getrandbits(48):012x}",
            "gen_ai.agent.name": sp.agent,
        }
    return a


def span_attrs(rng: random.Random, svc: Service, sp: SpanPlan, conv: str) -> Attrs:
    """The attributes one convention's instrumentation would put on this span, plus the app's own."""
    if svc.convention == "otel_genai":
        a = otel_genai_attrs(rng, svc, sp, conv, legacy=False)
    elif svc.convention == "otel_genai_legacy":
        a = otel_genai_attrs(rng, svc, sp, conv, legacy=True)
    elif svc.convention == "openinference":
        a = openinference_attrs(rng, svc, sp, conv)
    elif svc.convention == "openllmetry":
        a = openllmetry_attrs(rng, svc, sp, conv)
    else:
        a = openlit_attrs(rng, svc, sp, conv)
    for key, value in _app_attrs(rng, svc, conv).items():
        if len(a) >= 20:
            break
        a.setdefault(key, value)
    return a


def span_name(svc: Service, sp: SpanPlan) -> str:
    """Span names as each family of instrumentations spells them."""
    target = {
        "invoke_agent": sp.agent,
        "execute_tool": sp.tool,
        "chat": sp.model[0] if sp.model else "",
        "embeddings": svc.embedding_model,
        "retrieval": "kb-prod-eu",
    }[sp.op]
    if svc.convention == "openinference":
        return {
            "invoke_agent": sp.agent,
            "chat": "ChatGoogleGenerativeAI",
            "embeddings": "GoogleEmbeddings",
            "execute_tool": sp.tool,
            "retrieval": "VectorStoreRetriever",
        }[sp.op] or sp.op
    if svc.convention == "openllmetry":
        return {
            "invoke_agent": f"{sp.agent}.agent" if sp.parent is not None else f"{sp.agent}.workflow",
            "chat": "bedrock.completion",
            "embeddings": "bedrock.embeddings",
            "execute_tool": f"{sp.tool}.tool",
            "retrieval": "lookup.task",
        }[sp.op]
    return f"{sp.op} {target}"


# --------------------------------------------------------------------------------------------
# Protobuf building
# --------------------------------------------------------------------------------------------


def any_value(value: AttrValue) -> AnyValue:
    """An OTLP AnyValue; bool before int because bool is an int in Python."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))
    return AnyValue(string_value=value)


def key_values(attrs: Attrs) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def resource_for(rng: random.Random, svc: Service, instance: int) -> Resource:
    """Resource attributes an SDK (and OpenLIT / OpenInference on top) put on every export."""
    attrs: Attrs = {
        "service.name": svc.name,
        "service.namespace": svc.namespace,
        "service.version": "1.14.2",
        "service.instance.id": f"{svc.name}-{instance:02d}-{rng.getrandbits(24):06x}",
        "host.name": f"ip-10-0-{rng.randint(0, 255)}-{rng.randint(1, 254)}",
        "deployment.environment.name": "production",
        "telemetry.sdk.language": svc.sdk_language,
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.38.0",
        "cloud.provider": "aws",
        "cloud.region": "eu-west-1",
        "k8s.namespace.name": svc.namespace,
    }
    if svc.convention == "openinference":
        attrs["openinference.project.name"] = svc.name
    if svc.convention == "otel_genai":
        attrs["gen_ai.main_agent.name"] = svc.agents[0]
    return Resource(attributes=key_values(attrs))


_KIND_OF_OP = {
    "invoke_agent": Span.SPAN_KIND_INTERNAL,
    "chat": Span.SPAN_KIND_CLIENT,
    "embeddings": Span.SPAN_KIND_CLIENT,
    "execute_tool": Span.SPAN_KIND_INTERNAL,
    "retrieval": Span.SPAN_KIND_CLIENT,
}


def build_trace_spans(rng: random.Random, svc: Service, start_ns: int, limit: int) -> list[Span]:
    """One planned trace as protobuf spans (at most `limit`), with random, distinct ids."""
    plan = plan_trace(rng, svc, start_ns)[:limit]
    trace_id = rng.randbytes(16)
    span_ids = [rng.randbytes(8) for _ in plan]
    conversation = f"conv_{rng.getrandbits(64):016x}"
    spans = []
    for i, sp in enumerate(plan):
        status = (
            Status(code=Status.STATUS_CODE_ERROR, message="upstream timed out")
            if sp.error
            else Status(code=Status.STATUS_CODE_UNSET)
        )
        spans.append(
            Span(
                trace_id=trace_id,
                span_id=span_ids[i],
                parent_span_id=span_ids[sp.parent] if sp.parent is not None else b"",
                name=span_name(svc, sp),
                kind=_KIND_OF_OP[sp.op],
                flags=0x101,
                start_time_unix_nano=sp.start_ns,
                end_time_unix_nano=sp.end_ns,
                attributes=key_values(span_attrs(rng, svc, sp, conversation)),
                status=status,
            )
        )
    return spans


def build_request(
    rng: random.Random, services: list[Service], n_spans: int, base_ns: int
) -> ExportTraceServiceRequest:
    """A request of exactly `n_spans` spans: whole traces, split evenly across the given services."""
    request = ExportTraceServiceRequest()
    per, extra = divmod(n_spans, len(services))
    share = [per + (1 if i < extra else 0) for i in range(len(services))]
    for svc, quota in zip(services, share, strict=True):
        scope_spans = ScopeSpans(
            scope=InstrumentationScope(name=svc.scope[0], version=svc.scope[1]),
            schema_url="https://opentelemetry.io/schemas/1.37.0",
        )
        start = base_ns
        while len(scope_spans.spans) < quota:
            trace = build_trace_spans(rng, svc, start, quota - len(scope_spans.spans))
            scope_spans.spans.extend(trace)
            start += rng.randint(1_000_000, 50_000_000)  # traces of one batch began over a few seconds
        request.resource_spans.append(
            ResourceSpans(resource=resource_for(rng, svc, rng.randint(0, 11)), scope_spans=[scope_spans])
        )
    return request


# --------------------------------------------------------------------------------------------
# Templates and fast patching
# --------------------------------------------------------------------------------------------


def _offsets_by_value(data: bytes, prefix: bytes, width: int) -> dict[bytes, list[int]]:
    """Offsets of the value bytes after every occurrence of `prefix`, grouped by value.

    A lookahead finds overlapping occurrences too, so a stray match inside other bytes cannot
    hide a real one; callers keep only the values they planted and check the counts.
    """
    found: dict[bytes, list[int]] = {}
    for m in re.finditer(b"(?=" + re.escape(prefix) + b"(.{%d}))" % width, data, re.DOTALL):
        found.setdefault(m.group(1), []).append(m.start(1))
    return found


def _expect(found: dict[bytes, list[int]], value: bytes, count: int) -> list[int]:
    """The offsets of one planted value; the count must match the message structure exactly."""
    offsets = found.get(value, [])
    if len(offsets) != count:
        raise ValueError(f"found {value.hex()} {len(offsets)} times in the template, expected {count}")
    return offsets


@dataclass
class Template:
    """A serialized request and where, inside its bytes, each id and timestamp byte lives.

    `id_dst[i]` is a byte position in the message; it receives `pool[id_src[i]]`, where `pool` is
    a fresh random block of `pool_len` bytes: 16 per trace and 8 per span. A span's id and its
    children's parent ids read the same pool bytes, so the trace tree survives the patch.
    `ts_pos` is an (n, 8) matrix of the byte positions of every fixed64 timestamp.
    """

    data: np.ndarray  # uint8 copy of the serialized request
    id_dst: np.ndarray
    id_src: np.ndarray
    ts_pos: np.ndarray
    pool_len: int
    spans: int
    traces: int
    latest_end_ns: int  # the last span's end: patched to "now", so every span has ended


def compile_template(request: ExportTraceServiceRequest) -> Template:
    """Serialize once and record the byte offsets of every id and timestamp for patching."""
    data = request.SerializeToString()
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    traces: dict[bytes, int] = {}
    for s in spans:
        traces.setdefault(s.trace_id, len(traces))
    spans_in_trace = Counter(s.trace_id for s in spans)
    children = Counter(s.parent_span_id for s in spans if s.parent_span_id)
    span_pool = {s.span_id: 16 * len(traces) + 8 * i for i, s in enumerate(spans)}
    trace_at = _offsets_by_value(data, _TRACE_ID_PREFIX, 16)
    span_at = _offsets_by_value(data, _SPAN_ID_PREFIX, 8)
    parent_at = _offsets_by_value(data, _PARENT_ID_PREFIX, 8)
    dst: list[int] = []
    src: list[int] = []
    for trace_id, t in traces.items():
        for off in _expect(trace_at, trace_id, spans_in_trace[trace_id]):
            dst.extend(range(off, off + 16))
            src.extend(range(16 * t, 16 * t + 16))
    for span_id, p in span_pool.items():
        offsets = _expect(span_at, span_id, 1) + _expect(parent_at, span_id, children[span_id])
        for off in offsets:
            dst.extend(range(off, off + 8))
            src.extend(range(p, p + 8))
    ts: list[int] = []
    for tag, values in (
        (_START_TIME_TAG, Counter(s.start_time_unix_nano for s in spans)),
        (_END_TIME_TAG, Counter(s.end_time_unix_nano for s in spans)),
    ):
        stamp_at = _offsets_by_value(data, tag, 8)
        for value, count in values.items():
            ts.extend(_expect(stamp_at, value.to_bytes(8, "little"), count))
    ts_pos = np.asarray(ts, dtype=np.intp)[:, None] + np.arange(8, dtype=np.intp)
    return Template(
        np.frombuffer(data, dtype=np.uint8).copy(),
        np.asarray(dst, dtype=np.intp),
        np.asarray(src, dtype=np.intp),
        ts_pos,
        16 * len(traces) + 8 * len(spans),
        len(spans),
        len(traces),
        max(s.end_time_unix_nano for s in spans),
    )


def build_templates(spans_per_request: int = 1000, seed: int = 7) -> list[Template]:
    """One template per service (a single SDK exporting) and two gateway-style mixed batches."""
    rng = random.Random(seed)
    base_ns = time.time_ns() - 3600 * 10**9  # in the past, so the patch only ever adds (uint64)
    groups = [[svc] for svc in SERVICES] + [list(SERVICES), list(SERVICES[::-1])]
    return [compile_template(build_request(rng, g, spans_per_request, base_ns)) for g in groups]


class RequestStream:
    """Endless fresh request bodies: template bytes with new random ids and current timestamps.

    Ids come from a per-stream numpy generator seeded from the OS, so streams in different
    processes never share ids; 128-bit trace ids make a collision across a run (~10^7 traces)
    about 10^-24 likely. Span ids only need to be unique within their trace (dedupe key is
    trace id + span id).
    """

    def __init__(self, templates: list[Template], start: int = 0) -> None:
        self._templates = templates
        self._order = itertools.cycle(range(len(templates)))
        for _ in range(start % len(templates)):
            next(self._order)
        self._rng = np.random.default_rng(int.from_bytes(os.urandom(16), "little"))
        self.last_template: Template | None = None

    def next_body(self) -> tuple[bytes, int]:
        """The next request body and how many spans it holds."""
        tpl = self._templates[next(self._order)]
        self.last_template = tpl
        return patch(tpl, self._rng, time.time_ns()), tpl.spans


def patch(tpl: Template, rng: np.random.Generator, now_ns: int) -> bytes:
    """A copy of the template bytes with fresh ids, and timestamps moved so the last span ends now."""
    buf = tpl.data.copy()
    pool = np.frombuffer(rng.bytes(tpl.pool_len), dtype=np.uint8)
    buf[tpl.id_dst] = pool[tpl.id_src]
    stamps = buf[tpl.ts_pos].view("<u8")  # (n, 1) little-endian fixed64 values
    stamps += np.uint64(max(0, now_ns - tpl.latest_end_ns))
    buf[tpl.ts_pos] = stamps.view(np.uint8).reshape(-1, 8)
    return buf.tobytes()


# --------------------------------------------------------------------------------------------
# Self-check and cost
# --------------------------------------------------------------------------------------------


def check_patched(templates: list[Template], n_requests: int) -> Counter:
    """Parse patched bodies and check ids are fresh, unique and still form the same trees."""
    stream = RequestStream(templates)
    seen: set[tuple[bytes, bytes]] = set()
    stats: Counter = Counter()
    for _ in range(n_requests):
        before = time.time_ns()
        body, n = stream.next_body()
        assert stream.last_template is not None
        original = ExportTraceServiceRequest.FromString(stream.last_template.data.tobytes())
        request = ExportTraceServiceRequest.FromString(body)
        got = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        old = [s for rs in original.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert len(got) == n == len(old)
        ids = {s.span_id: s.trace_id for s in got}
        for g, o in zip(got, old, strict=True):
            key = (g.trace_id, g.span_id)
            assert key not in seen, "duplicate (trace_id, span_id)"
            seen.add(key)
            assert g.trace_id != o.trace_id and g.span_id != o.span_id
            assert len(g.trace_id) == 16 and len(g.span_id) == 8
            assert bool(g.parent_span_id) == bool(o.parent_span_id)
            if g.parent_span_id:
                assert ids[g.parent_span_id] == g.trace_id, "parent link broken by the patch"
            shift = g.start_time_unix_nano - o.start_time_unix_nano
            assert shift >= before - stream.last_template.latest_end_ns
            assert g.end_time_unix_nano <= time.time_ns()
            assert (
                g.end_time_unix_nano - g.start_time_unix_nano == o.end_time_unix_nano - o.start_time_unix_nano
            )
            assert 12 <= len(g.attributes) <= 20, f"{g.name} has {len(g.attributes)} attributes"
            assert g.attributes == o.attributes and g.name == o.name
            stats[len(g.attributes)] += 1
    return stats


def patch_cost(templates: list[Template], n_requests: int) -> tuple[float, float]:
    """Client CPU seconds per request body and per span, as this thread sees it."""
    stream = RequestStream(templates)
    t0 = time.thread_time()
    spans = sum(stream.next_body()[1] for _ in range(n_requests))
    cpu = time.thread_time() - t0
    return cpu / n_requests, cpu / spans


def describe(templates: list[Template]) -> None:
    """Print the request shape: sizes, traces, conventions, models."""
    for i, tpl in enumerate(templates):
        req = ExportTraceServiceRequest.FromString(tpl.data.tobytes())
        services = [
            next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
            for rs in req.resource_spans
        ]
        print(
            f"  template {i}: {tpl.spans} spans in {tpl.traces} traces, {len(tpl.data) / 1024:.0f} KiB, "
            f"services {', '.join(services)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans-per-request", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300, help="bodies to patch for the cost figure")
    args = parser.parse_args(argv)
    t0 = time.process_time()
    templates = build_templates(args.spans_per_request)
    print(f"built {len(templates)} templates in {time.process_time() - t0:.2f} s CPU:")
    describe(templates)
    stats = check_patched(templates, 40)
    mean = sum(k * v for k, v in stats.items()) / stats.total()
    print(
        f"check: 40 patched requests parse, ids fresh and unique, trees intact — PASS; "
        f"attributes per span {min(stats)}–{max(stats)} (mean {mean:.1f})"
    )
    per_request, per_span = patch_cost(templates, args.requests)
    print(
        f"client CPU per request: {per_request * 1e3:.3f} ms ({per_span * 1e6:.2f} µs a span) "
        f"→ {1 / per_span / 1e6:.1f} M spans/s per core for body generation"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
