"""Simulate an enterprise fleet of AI agents exporting telemetry through the real OpenTelemetry SDK.

The module's one job: produce believable agent telemetry, over the same exporters real agents use,
and keep a `Ledger` of exactly what was handed to those exporters, so a test or an operator can
compare it with what the warehouse stored.

Each simulated agent is an application with its own `Resource` and its own `TracerProvider` (and,
for a few, `MeterProvider` and `LoggerProvider`), exporting over OTLP/gRPC or OTLP/HTTP protobuf.
Agents speak different conventions, as a real fleet does: current OTel GenAI, legacy OTel GenAI,
OpenInference, OpenLLMetry (Traceloop) and OpenLIT. A trace is one agent run: an `invoke_agent`
root (or its convention's equivalent) over model calls, tool calls, retrieval and sub-agents,
sometimes a sub-agent in another service, with occasional errors.

    fleet = build_fleet(seed=7, agents=12)          # or muster.fleet.demo_fleet(seed=7)
    ledger = run(fleet, grpc_endpoint="127.0.0.1:4317", http_endpoint="http://127.0.0.1:4318", traces=500)

Two fleets: `build_fleet` repeats twelve templates (the tests' small fleet), and `muster.fleet`
defines the demo enterprise — sixty agents in twelve departments, ten of them unregistered, with
planted problems that `data/demo/` (its registry) turns into findings. Agents may prefer a
transport (gRPC, HTTP protobuf, or HTTP JSON through `muster.fleet_otlp_json`), run only in a
window of the past (`active_days`), and get stuck in loops (`loop_share` live, `loops_hours_ago`
in a backfill); `muster.fleet_schedule` decides which agent runs when.

`muster simulate` is a thin wrapper over `run` (`muster.fleet_cli` reads its arguments):

    --fleet demo|basic  the demo enterprise (default) or the --agents templates
    --agents N          size of the basic fleet (default 12); beyond 12 templates repeat with a suffix
    --seed S            seed for the fleet and the traffic (default 7)
    --traces N          send exactly N traces, flush and stop
    --rate R            traces per second; with --duration SECONDS, or until Ctrl-C (a stop Event)
    --backfill 35d      history over the past 35 days (`35` works too; `--backfill-days` is the old
                        name), fewer at weekends and at night; without --traces, the fleet's daily
                        volume for every day (120 traces a day for the demo, which data/demo's
                        budgets are sized for)
    --grpc-endpoint     e.g. 127.0.0.1:4317 (default: the settings' OTLP gRPC port)
    --http-endpoint     e.g. http://127.0.0.1:4318 (a `/v1/traces` suffix is accepted too)
    --json              print `Ledger.as_dict()` instead of a table
    --ledger PATH       when the run ends (Ctrl-C and SIGTERM too, after the final flush), write
                        `Ledger.to_json()` there: the summary and every model call handed to the
                        exporters, added up per service, provider, models, UTC day and outcome

Agents without a transport of their own alternate between gRPC and HTTP when both endpoints are given.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import random
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from opentelemetry import trace as trace_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import Logger, LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode

from muster.fleet_schedule import Slot, past_start, schedule

__all__ = [
    "MODELS",
    "AgentSpec",
    "CallKey",
    "CallTotals",
    "Convention",
    "ExporterFactory",
    "Ledger",
    "Model",
    "OtlpExporters",
    "Transport",
    "build_fleet",
    "embedding_model",
    "hosted",
    "run",
    "signal_url",
]

Convention = Literal["otel_genai", "otel_genai_legacy", "openinference", "openllmetry", "openlit"]
Transport = Literal["grpc", "http", "http_json"]
StepKind = Literal["agent", "chat", "embeddings", "tool", "retrieval"]
Attrs = dict[str, str | int | float | bool | list[str]]

# Per-agent queue of the batch processors. The run loop keeps each agent's backlog under half of
# it, so the SDK never has to drop a span or log record and the ledger stays exact.
MAX_QUEUE = 65_536
BATCH_SIZE = 512
SCHEDULE_DELAY_MS = 200
METRIC_INTERVAL_MS = 10_000

# Bucket boundaries the OTel GenAI metric conventions recommend.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]
_DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]


# --------------------------------------------------------------------------------------------
# What the fleet is made of
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A model one agent calls, with the provider spelled the way that agent's convention spells it."""

    provider: str
    request: str
    response: str
    server_address: str
    input_tokens: tuple[int, int]  # typical prompt size, drawn log-uniformly
    output_tokens: tuple[int, int]
    ms_per_token: float  # decode speed, for believable span durations
    cache: Literal["none", "openai", "anthropic"] = "none"
    reasoning: bool = False
    server_port: int = 443
    family: str = ""  # OpenInference `llm.system`: the model family rather than the host
    price: tuple[float, float] = (0.0, 0.0)  # USD per 1M input, output tokens; OpenLIT reports cost


@dataclass(frozen=True)
class AgentSpec:
    """One agent application of the fleet: its identity, its convention, and what it calls."""

    service: str
    namespace: str
    convention: Convention
    supervisor: str  # the agent at the root of each trace
    sub_agents: tuple[str, ...]
    models: tuple[Model, ...]
    tools: tuple[str, ...]
    embedding: Model | None = None
    data_source: str = ""
    framework: tuple[str, str] = ("custom", "1.0.0")  # scope of agent, tool and retrieval spans
    instrumentation: tuple[str, str] = ("custom", "1.0.0")  # scope of model-call spans
    version: str = "1.0.0"
    environment: str = "production"
    legacy_environment_key: bool = False  # `deployment.environment` instead of `.name`
    sdk: tuple[str, str] = ("python", "1.38.0")  # telemetry.sdk.language, .version
    host: str = ""
    main_agent: bool = False  # sets resource `gen_ai.main_agent.id` / `.name`
    remote: str | None = None  # service of an agent this one sometimes delegates to over the network
    rollup_usage: bool = False  # agent spans repeat their children's usage, as some SDKs do
    cache_write_key: str = "gen_ai.usage.cache_creation.input_tokens"
    metrics: bool = False
    logs: bool = False
    gzip: bool = False
    weight: float = 1.0  # share of the fleet's traffic
    error_rate: float = 0.03
    transport: Transport | None = None  # the one it prefers; None: take turns with the rest of the fleet
    resource_extra: tuple[tuple[str, str], ...] = ()  # more resource attributes (platform, cloud, ...)
    # In a backfill, the agent runs only between these many days ago (oldest, newest): a retired
    # deployment, or one launched this week. A live run leaves out agents whose newest is in the past.
    active_days: tuple[float, float] | None = None
    loop_share: float = 0.0  # live runs: share of its traces stuck in a tool loop (a runaway)
    loops_hours_ago: tuple[float, ...] = ()  # backfills: hours ago at which such a loop ran

    def agent_id(self, agent: str) -> str:
        """A stable id for a named agent of this application (crc32, not hash(): that is salted)."""
        return f"asst_{zlib.crc32(f'{self.service}/{agent}'.encode()):08x}"


_OPENAI_API = "api.openai.com"
_ANTHROPIC_API = "api.anthropic.com"
_GEMINI_API = "generativelanguage.googleapis.com"
_BEDROCK_API = "bedrock-runtime.us-east-1.amazonaws.com"
_AZURE_LEGAL = "contoso-legal.openai.azure.com"

# The catalogue below is data: kept as aligned tables, which the formatter would explode.
# fmt: off

# Models as their vendors serve them; `_hosted` then says how an agent's instrumentation spells
# the provider. Columns: provider, request model, response model, server, input and output token
# ranges, ms per output token.
_GPT_4O = Model("", "gpt-4o", "gpt-4o-2024-08-06", _OPENAI_API, (800, 12_000), (40, 1_200), 12.0,
                cache="openai", family="openai", price=(2.5, 10.0))
_GPT_4O_MINI = Model("", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", _OPENAI_API, (300, 6_000), (20, 800), 7.0,
                     cache="openai", family="openai", price=(0.15, 0.6))
_O4_MINI = Model("", "o4-mini", "o4-mini-2025-04-16", _OPENAI_API, (500, 8_000), (300, 4_000), 6.0,
                 cache="openai", reasoning=True, family="openai", price=(1.1, 4.4))
_SONNET_4 = Model("", "claude-sonnet-4-20250514", "claude-sonnet-4-20250514", _ANTHROPIC_API,
                  (1_500, 40_000), (80, 2_000), 15.0, cache="anthropic", family="anthropic",
                  price=(3.0, 15.0))
_GEMINI_FLASH = Model("", "gemini-2.0-flash", "gemini-2.0-flash-001", _GEMINI_API, (1_000, 30_000),
                      (50, 1_500), 5.0, family="vertexai", price=(0.1, 0.4))
_LLAMA3_70B = Model("", "meta.llama3-70b-instruct-v1:0", "meta.llama3-70b-instruct-v1:0", _BEDROCK_API,
                    (300, 4_000), (50, 800), 10.0, family="meta", price=(2.65, 3.5))
# Self-hosted behind vLLM's OpenAI-compatible API: the OpenAI instrumentation reports "openai" and
# only `server.address` tells it apart; its price has to come from an override.
_QWEN_SELF_HOSTED = Model("openai", "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-72B-Instruct",
                          "vllm.it-ops.internal", (400, 6_000), (40, 900), 20.0, server_port=8000,
                          family="qwen")


def _hosted(model: Model, provider: str, **changes: object) -> Model:
    return dataclasses.replace(model, provider=provider, **changes)  # type: ignore[arg-type]


def _embedding(provider: str, name: str, server: str, price: float = 0.02) -> Model:
    return Model(provider, name, name, server, (20, 600), (0, 0), 0.0, family=provider, price=(price, 0.0))


# The catalogue, for fleets defined in other modules (`muster.fleet`): models by request name, and
# how to host one under an instrumentation's spelling of the provider.
MODELS: dict[str, Model] = {
    m.request: m
    for m in (_GPT_4O, _GPT_4O_MINI, _O4_MINI, _SONNET_4, _GEMINI_FLASH, _LLAMA3_70B, _QWEN_SELF_HOSTED)
}
hosted = _hosted
embedding_model = _embedding

# The fleet's templates. Conventions are interleaved so that any fleet of five or more agents
# covers all five.
_TEMPLATES: tuple[AgentSpec, ...] = (
    AgentSpec(
        service="support-copilot", namespace="customer-care", convention="otel_genai",
        supervisor="TriageAgent", sub_agents=("RefundAgent", "KnowledgeAgent", "EscalationAgent"),
        models=(_hosted(_GPT_4O, "openai"), _hosted(_GPT_4O_MINI, "openai"), _hosted(_O4_MINI, "openai")),
        tools=("lookup_order", "search_kb", "issue_refund", "create_ticket"),
        embedding=_embedding("openai", "text-embedding-3-small", _OPENAI_API), data_source="kb-support",
        framework=("openai.agents", "0.6.1"),
        instrumentation=("opentelemetry.instrumentation.openai_v2", "2.3b0"),
        main_agent=True, rollup_usage=True, metrics=True, logs=True, weight=3.0,
    ),
    AgentSpec(
        service="research-assistant", namespace="strategy", convention="openinference",
        supervisor="ResearchLead", sub_agents=("WebSearcher", "Summariser"),
        models=(_hosted(_GEMINI_FLASH, "google"),),
        tools=("web_search", "read_url"),
        embedding=_embedding("google", "text-embedding-004", _GEMINI_API, 0.0), data_source="market-notes",
        framework=("openinference.instrumentation.langchain", "0.1.45"),
        instrumentation=("openinference.instrumentation.langchain", "0.1.45"),
        remote="data-analyst", weight=1.5,
    ),
    AgentSpec(
        service="invoice-agent", namespace="finance-automation", convention="openllmetry",
        supervisor="invoice_processing", sub_agents=("extractor", "approver"),
        models=(_hosted(_LLAMA3_70B, "AWS"),),
        tools=("erp_lookup", "match_purchase_order", "post_journal"),
        embedding=_embedding("AWS", "amazon.titan-embed-text-v2:0", _BEDROCK_API),
        data_source="vendor-contracts",
        framework=("traceloop.sdk", "0.38.12"),
        instrumentation=("opentelemetry.instrumentation.bedrock", "0.38.12"),
        legacy_environment_key=True, weight=1.0,
    ),
    AgentSpec(
        service="sales-email-bot", namespace="revenue", convention="openlit",
        supervisor="OutreachWriter", sub_agents=("LeadResearcher",),
        models=(_hosted(_GPT_4O_MINI, "openai", cache="none"), _hosted(_GPT_4O, "openai", cache="none")),
        tools=("crm_search", "send_email"),
        framework=("openlit.otel.tracing", "1.34.0"), instrumentation=("openlit.otel.tracing", "1.34.0"),
        legacy_environment_key=True, metrics=True, gzip=True, weight=1.2,
    ),
    AgentSpec(
        service="contract-review", namespace="legal", convention="otel_genai_legacy",
        supervisor="ContractReviewer", sub_agents=("ClauseExtractor", "RiskScorer"),
        models=(_hosted(_GPT_4O, "az.ai.openai", server_address=_AZURE_LEGAL, cache="none"),),
        tools=("fetch_contract", "compare_template"),
        embedding=_embedding("az.ai.openai", "text-embedding-3-large", _AZURE_LEGAL, 0.13),
        data_source="clause-library",
        framework=("semantic_kernel", "1.18.0"),
        instrumentation=("opentelemetry.instrumentation.openai", "0.26.0"),
        sdk=("dotnet", "1.9.0"), legacy_environment_key=True, weight=0.8,
    ),
    AgentSpec(
        service="claims-triage", namespace="insurance-ops", convention="otel_genai",
        supervisor="ClaimsSupervisor", sub_agents=("DocumentReader", "FraudScreen"),
        models=(_hosted(_SONNET_4, "anthropic"),),
        tools=("fetch_policy", "ocr_document", "score_fraud"),
        framework=("langgraph", "0.6.4"),
        instrumentation=("opentelemetry.instrumentation.anthropic", "0.1b0"),
        main_agent=True, logs=True, weight=1.5, error_rate=0.05,
    ),
    AgentSpec(
        service="hr-policy-bot", namespace="people", convention="openinference",
        supervisor="PolicyAdvisor", sub_agents=(),
        models=(_hosted(_GPT_4O_MINI, "openai"),),
        tools=("lookup_policy", "open_hr_case"),
        embedding=_embedding("openai", "text-embedding-3-small", _OPENAI_API), data_source="hr-handbook",
        framework=("openinference.instrumentation.llama_index", "4.3.1"),
        instrumentation=("openinference.instrumentation.openai", "0.1.30"),
        sdk=("python", "1.36.0"), environment="staging", weight=0.7,
    ),
    AgentSpec(
        service="marketing-writer", namespace="marketing", convention="openllmetry",
        supervisor="campaign_builder", sub_agents=("copywriter", "brand_checker"),
        models=(_hosted(_SONNET_4, "Anthropic"),),
        tools=("asset_search", "schedule_post"),
        framework=("traceloop.sdk", "0.40.7"),
        instrumentation=("opentelemetry.instrumentation.anthropic", "0.40.7"),
        sdk=("nodejs", "1.30.1"), weight=0.6,
    ),
    AgentSpec(
        service="it-helpdesk", namespace="it-ops", convention="otel_genai",
        supervisor="HelpdeskAgent", sub_agents=(),
        models=(_QWEN_SELF_HOSTED,),
        tools=("reset_password", "lookup_asset", "create_incident"),
        framework=("custom", "2.4.0"), instrumentation=("opentelemetry.instrumentation.openai_v2", "2.3b0"),
        weight=1.0,
    ),
    AgentSpec(
        service="data-analyst", namespace="analytics", convention="otel_genai",
        supervisor="AnalystAgent", sub_agents=("SqlWriter", "ChartMaker"),
        models=(_hosted(_GEMINI_FLASH, "gcp.gemini"),),
        tools=("run_sql", "describe_table", "render_chart"),
        embedding=_embedding("gcp.gemini", "text-embedding-004", _GEMINI_API, 0.0),
        data_source="warehouse-catalog",
        framework=("google.adk", "1.12.0"),
        instrumentation=("opentelemetry.instrumentation.google_genai", "0.3b0"),
        legacy_environment_key=True, metrics=True, weight=1.0,
    ),
    AgentSpec(
        service="procurement-agent", namespace="procurement", convention="openlit",
        supervisor="ProcurementManager", sub_agents=("SupplierScout", "QuoteComparer"),
        models=(_hosted(_LLAMA3_70B, "aws.bedrock"),),
        tools=("supplier_lookup", "request_quote"),
        framework=("openlit.otel.tracing", "1.34.0"), instrumentation=("openlit.otel.tracing", "1.34.0"),
        environment="staging", logs=True, weight=0.5,
    ),
    AgentSpec(
        service="dev-assistant", namespace="engineering", convention="otel_genai_legacy",
        supervisor="CodeHelper", sub_agents=(),
        models=(_hosted(_GPT_4O, "openai", cache="none"), _hosted(_GPT_4O_MINI, "openai", cache="none")),
        tools=("read_file", "run_tests", "open_pull_request"),
        framework=("custom", "0.9.2"), instrumentation=("opentelemetry.instrumentation.openai", "0.24.0"),
        sdk=("java", "1.42.1"), gzip=True, weight=1.3, error_rate=0.06,
    ),
)
# fmt: on


def build_fleet(seed: int = 7, agents: int = 12) -> list[AgentSpec]:
    """A fleet of `agents` applications, the same for the same seed.

    The first twelve are the templates; more repeat them as `<service>-2`, `<service>-3`, …
    The seed varies host names, versions and traffic shares.
    """
    if agents < 1:
        raise ValueError(f"a fleet needs at least one agent, not {agents}")
    rng = random.Random(seed)
    fleet = [_instance(rng, _TEMPLATES[i % len(_TEMPLATES)], i // len(_TEMPLATES)) for i in range(agents)]
    services = {agent.service for agent in fleet}
    # A delegate outside the fleet would make traces whose spans the ledger cannot place.
    return [a if a.remote in services else dataclasses.replace(a, remote=None) for a in fleet]


def _instance(rng: random.Random, template: AgentSpec, copy: int) -> AgentSpec:
    suffix = f"-{copy + 1}" if copy else ""
    # Later deployments of an application run a newer GenAI instrumentation, which renamed the
    # cache-creation count; the fleet then carries both names.
    newer = copy % 2 == 1 and template.convention == "otel_genai"
    return dataclasses.replace(
        template,
        cache_write_key="gen_ai.usage.cache_write.input_tokens" if newer else template.cache_write_key,
        service=template.service + suffix,
        remote=template.remote + suffix if template.remote else None,
        version=f"{rng.randint(1, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        host=f"ip-10-{rng.randint(0, 31)}-{rng.randint(0, 255)}-{rng.randint(1, 254)}.ec2.internal",
        weight=round(template.weight * rng.uniform(0.6, 1.4), 3),
    )


def _resource_for(agent: AgentSpec) -> Resource:
    """The agent's resource. Built directly, not with `Resource.create`, so that the environment
    (OTEL_RESOURCE_ATTRIBUTES, detectors) cannot change what the ledger expects."""
    attrs: Attrs = {
        "service.name": agent.service,
        "service.namespace": agent.namespace,
        "service.version": agent.version,
        "service.instance.id": f"{agent.service}-{zlib.crc32(agent.host.encode()):08x}",
        "host.name": agent.host,
        "telemetry.sdk.name": "openlit" if agent.convention == "openlit" else "opentelemetry",
        "telemetry.sdk.language": agent.sdk[0],
        "telemetry.sdk.version": agent.sdk[1],
        "cloud.provider": "aws",
        "cloud.region": "us-east-1",
    }
    env_key = "deployment.environment" if agent.legacy_environment_key else "deployment.environment.name"
    attrs[env_key] = agent.environment
    if agent.main_agent:
        attrs["gen_ai.main_agent.id"] = agent.agent_id(agent.supervisor)
        attrs["gen_ai.main_agent.name"] = agent.supervisor
    if agent.convention == "openinference":
        attrs["openinference.project.name"] = agent.service
    attrs.update(agent.resource_extra)
    return Resource(attrs)


# --------------------------------------------------------------------------------------------
# Planning a trace: which spans, in what shape, with what usage and timing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """One model call's tokens, canonical: input includes cache reads and writes, output reasoning."""

    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass(slots=True)
class Step:
    """One span of a planned trace, before its agent's convention dresses it in attributes."""

    kind: StepKind
    agent: AgentSpec  # whose providers emit it
    actor: str  # the named agent (supervisor or sub-agent) it works for
    parent: int | None  # index of the parent step
    start: int  # ns after the trace's start
    end: int = 0
    model: Model | None = None
    usage: Usage | None = None
    rolled_up: Usage | None = None  # agent spans only: the sum of usage beneath them
    tool: str | None = None
    error: str | None = None  # `error.type`
    remote: bool = False  # an agent invoked over the network: a SERVER span of another service


_MS = 1_000_000  # nanoseconds


class _Planner:
    """Lays steps out on a clock: siblings run one after another and parents enclose children."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.steps: list[Step] = []
        self.clock = 0

    def open(self, kind: StepKind, agent: AgentSpec, actor: str, parent: int | None, **kw: object) -> int:
        self.clock += self.rng.randint(_MS // 10, 3 * _MS)  # scheduling gap before a span starts
        self.steps.append(Step(kind, agent, actor, parent, self.clock, **kw))  # type: ignore[arg-type]
        return len(self.steps) - 1

    def close(self, index: int, duration_ns: int = 0) -> None:
        self.clock += duration_ns or self.rng.randint(_MS // 10, _MS)
        self.steps[index].end = self.clock

    def leaf(
        self, kind: StepKind, agent: AgentSpec, actor: str, parent: int, duration_ns: int, **kw: object
    ) -> None:
        self.close(self.open(kind, agent, actor, parent, **kw), duration_ns)


def _plan_trace(rng: random.Random, agent: AgentSpec, remote: AgentSpec | None) -> list[Step]:
    """One agent run: the supervisor plans with a model, delegates (or works alone), then answers."""
    plan = _Planner(rng)
    root = plan.open("agent", agent, agent.supervisor, None)
    _model_call(plan, agent, agent.supervisor, root)
    if agent.sub_agents:
        for sub in rng.sample(agent.sub_agents, k=rng.randint(1, min(3, len(agent.sub_agents)))):
            child = plan.open("agent", agent, sub, root)
            _work(plan, agent, sub, child)
            plan.close(child)
    else:
        _work(plan, agent, agent.supervisor, root)
    if remote is not None and rng.random() < 0.35:
        child = plan.open("agent", remote, remote.supervisor, root, remote=True)
        _work(plan, remote, remote.supervisor, child)
        plan.close(child)
    _model_call(plan, agent, agent.supervisor, root)
    plan.close(root)
    _roll_up(plan.steps)
    return plan.steps


LOOP_ROUNDS = 150  # model calls of a run stuck in a loop: far beyond any agent's norm of a few


def _plan_loop(rng: random.Random, agent: AgentSpec) -> list[Step]:
    """A run stuck in a loop: the agent retries the same tool call again and again while its context
    grows with every failed result, until something outside stops it."""
    plan = _Planner(rng)
    root = plan.open("agent", agent, agent.supervisor, None)
    model, tool = agent.models[0], agent.tools[0]
    for turn in range(LOOP_ROUNDS):
        output = _log_uniform(rng, (model.output_tokens[0], 4 * model.output_tokens[0]))
        usage = Usage(_log_uniform(rng, model.input_tokens) + 300 * turn, output)
        took = int((rng.uniform(180, 900) + output * model.ms_per_token) * _MS)
        plan.leaf("chat", agent, agent.supervisor, root, took, model=model, usage=usage)
        error = "TimeoutError" if rng.random() < 0.8 else None
        plan.leaf("tool", agent, agent.supervisor, root, rng.randint(5, 900) * _MS, tool=tool, error=error)
    plan.close(root)
    _roll_up(plan.steps)
    return plan.steps


def _work(plan: _Planner, agent: AgentSpec, actor: str, parent: int) -> None:
    """An agent's turn: maybe look something up, then one to three rounds of model call and tool."""
    rng = plan.rng
    if agent.embedding is not None and rng.random() < 0.4:
        usage = Usage(_log_uniform(rng, agent.embedding.input_tokens), 0)
        took = rng.randint(30, 200) * _MS
        plan.leaf("embeddings", agent, actor, parent, took, model=agent.embedding, usage=usage)
        plan.leaf("retrieval", agent, actor, parent, rng.randint(10, 150) * _MS)
    for _ in range(rng.randint(1, 3)):
        _model_call(plan, agent, actor, parent)
        if rng.random() < 0.7:
            error = "TimeoutError" if rng.random() < agent.error_rate else None
            took = rng.randint(5, 900) * _MS
            plan.leaf("tool", agent, actor, parent, took, tool=rng.choice(agent.tools), error=error)


# What a failed model call reports as `error.type`, by provider family.
_MODEL_ERRORS = {
    "openai": ("openai.RateLimitError", "openai.APITimeoutError"),
    "anthropic": ("anthropic.RateLimitError", "anthropic.InternalServerError"),
    "vertexai": ("google.genai.errors.ClientError", "503"),
    "meta": ("ThrottlingException", "ModelTimeoutException"),
}


def _model_call(plan: _Planner, agent: AgentSpec, actor: str, parent: int) -> None:
    """A chat call; a failed one (no usage) is retried once, as client libraries do."""
    rng = plan.rng
    model = agent.models[0] if len(agent.models) == 1 or rng.random() < 0.6 else rng.choice(agent.models[1:])
    if rng.random() < agent.error_rate:
        error = rng.choice(_MODEL_ERRORS.get(model.family, ("500", "timeout")))
        plan.leaf("chat", agent, actor, parent, rng.randint(50, 3_000) * _MS, model=model, error=error)
    usage = _draw_usage(rng, model)
    duration_ms = rng.uniform(180, 900) + usage.output * model.ms_per_token
    plan.leaf("chat", agent, actor, parent, int(duration_ms * _MS), model=model, usage=usage)


def _draw_usage(rng: random.Random, model: Model) -> Usage:
    total_in = _log_uniform(rng, model.input_tokens)
    out = _log_uniform(rng, model.output_tokens)
    reasoning = int(out * rng.uniform(0.5, 0.85)) if model.reasoning else 0
    if model.cache == "anthropic":
        # Long system prompts and tool definitions are cached: mostly reads, sometimes a rewrite.
        cache_write = int(total_in * rng.uniform(0.3, 0.8)) if rng.random() < 0.15 else 0
        cache_read = 0 if cache_write else int(total_in * rng.uniform(0.5, 0.92))
        return Usage(total_in, out, cache_read, cache_write, reasoning)
    if model.cache == "openai" and total_in >= 1_024 and rng.random() < 0.6:
        # OpenAI caches the prompt prefix in steps of 128 tokens once it reaches 1,024.
        cached = 1_024 + 128 * rng.randint(0, (total_in - 1_024) // 128)
        return Usage(total_in, out, cached, 0, reasoning)
    return Usage(total_in, out, 0, 0, reasoning)


def _log_uniform(rng: random.Random, bounds: tuple[int, int]) -> int:
    low, high = bounds
    return int(low * (high / low) ** rng.random())


def _roll_up(steps: list[Step]) -> None:
    """Sum the usage beneath each agent step of agents that report it there (children follow parents)."""
    totals: dict[int, list[int]] = {}
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        own = totals.pop(index, [0, 0])
        if step.kind == "agent" and step.agent.rollup_usage:
            step.rolled_up = Usage(own[0], own[1])
        if step.usage is not None:
            own = [own[0] + step.usage.input, own[1] + step.usage.output]
        parent = step.parent
        # Usage rolls up within one application only: a remote agent reports its own.
        if parent is not None and steps[parent].agent.service == step.agent.service:
            into = totals.setdefault(parent, [0, 0])
            into[0] += own[0]
            into[1] += own[1]


# --------------------------------------------------------------------------------------------
# Dressing a step in its convention's span name and attributes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TraceInfo:
    """What every span of one trace shares: the conversation and the user."""

    conversation: str
    user: str


Dresser = Callable[[Step, _TraceInfo, random.Random], tuple[str, Attrs]]


def _dress_otel_genai(step: Step, info: _TraceInfo, rng: random.Random) -> tuple[str, Attrs]:
    """OTel GenAI 1.37+: `gen_ai.provider.name`, input/output tokens, cache tokens, agent ids."""
    agent = step.agent
    provider = agent.models[0].provider
    if step.kind == "agent":
        attrs: Attrs = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": provider,
            "gen_ai.agent.name": step.actor,
            "gen_ai.agent.id": agent.agent_id(step.actor),
            "gen_ai.agent.version": agent.version,
            "gen_ai.request.model": agent.models[0].request,
            "gen_ai.conversation.id": info.conversation,
        }
        if step.rolled_up is not None:
            attrs["gen_ai.usage.input_tokens"] = step.rolled_up.input
            attrs["gen_ai.usage.output_tokens"] = step.rolled_up.output
        return f"invoke_agent {step.actor}", attrs
    if step.kind in ("chat", "embeddings"):
        attrs = _otel_model_attrs(step, info, rng, "gen_ai.provider.name")
        usage = step.usage
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage.input
            if step.kind == "chat":
                attrs["gen_ai.usage.output_tokens"] = usage.output
            if step.model and step.model.cache != "none":
                attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read
            if step.model and step.model.cache == "anthropic":
                attrs[agent.cache_write_key] = usage.cache_write
            if usage.reasoning:
                attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning
        return f"{step.kind} {step.model.request if step.model else ''}", attrs
    return _otel_tool_or_retrieval(step, info, rng)


def _dress_otel_genai_legacy(step: Step, info: _TraceInfo, rng: random.Random) -> tuple[str, Attrs]:
    """OTel GenAI ≤1.26 model spans (`gen_ai.system`, prompt/completion tokens, no operation name),
    under agent and tool spans that the application's framework adds itself."""
    if step.kind == "agent":
        attrs: Attrs = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": step.actor,
            "gen_ai.system": step.agent.models[0].provider,
            "gen_ai.conversation.id": info.conversation,
        }
        return f"invoke_agent {step.actor}", attrs
    if step.kind in ("chat", "embeddings"):
        attrs = _otel_model_attrs(step, info, rng, "gen_ai.system", legacy=True)
        if step.usage is not None:
            attrs["gen_ai.usage.prompt_tokens"] = step.usage.input
            if step.kind == "chat":
                attrs["gen_ai.usage.completion_tokens"] = step.usage.output
        return f"{step.kind} {step.model.request if step.model else ''}", attrs
    return _otel_tool_or_retrieval(step, info, rng)


def _otel_model_attrs(
    step: Step, info: _TraceInfo, rng: random.Random, provider_key: str, legacy: bool = False
) -> Attrs:
    """Model-call attributes both generations share; `legacy` leaves out what ≤1.26 did not have."""
    model = step.model
    assert model is not None
    attrs: Attrs = {
        provider_key: model.provider,
        "gen_ai.request.model": model.request,
        "server.address": model.server_address,
        "server.port": model.server_port,
    }
    if not legacy:
        attrs["gen_ai.operation.name"] = step.kind
        attrs["gen_ai.conversation.id"] = info.conversation
    if step.error is not None:
        attrs["error.type"] = step.error
        return attrs
    attrs["gen_ai.response.model"] = model.response
    if step.kind == "chat":
        attrs["gen_ai.response.id"] = f"chatcmpl-{rng.getrandbits(96):024x}"
        attrs["gen_ai.request.temperature"] = rng.choice((0.0, 0.2, 0.7))
        attrs["gen_ai.request.max_tokens"] = 4_096
        attrs["gen_ai.response.finish_reasons"] = ["tool_calls" if rng.random() < 0.4 else "stop"]
    return attrs


def _otel_tool_or_retrieval(step: Step, info: _TraceInfo, rng: random.Random) -> tuple[str, Attrs]:
    if step.kind == "tool":
        attrs: Attrs = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": step.tool or "",
            "gen_ai.tool.type": "function",
            "gen_ai.tool.call.id": f"call_{rng.getrandbits(64):016x}",
            "gen_ai.conversation.id": info.conversation,
        }
        if step.error is not None:
            attrs["error.type"] = step.error
        return f"execute_tool {step.tool}", attrs
    attrs = {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.data_source.id": step.agent.data_source,
        "gen_ai.request.top_k": 8,
        "db.system.name": "pgvector",
        "gen_ai.conversation.id": info.conversation,
    }
    return f"retrieval {step.agent.data_source}", attrs


_OPENINFERENCE_KIND = {
    "agent": "AGENT",
    "chat": "LLM",
    "embeddings": "EMBEDDING",
    "tool": "TOOL",
    "retrieval": "RETRIEVER",
}
_OPENINFERENCE_CHAT_CLASS = {
    "openai": "ChatOpenAI",
    "google": "ChatGoogleGenerativeAI",
    "anthropic": "ChatAnthropic",
    "aws": "ChatBedrock",
}


def _dress_openinference(step: Step, info: _TraceInfo, rng: random.Random) -> tuple[str, Attrs]:
    """OpenInference (Arize Phoenix instrumentors): span kinds, `llm.*` token counts, `session.id`."""
    attrs: Attrs = {
        "openinference.span.kind": _OPENINFERENCE_KIND[step.kind],
        "session.id": info.conversation,
        "user.id": info.user,
    }
    if step.kind == "agent":
        attrs |= {
            "agent.name": step.actor,
            "graph.node.id": step.actor.lower(),
            "input.value": "Summarise what changed in competitor pricing this quarter",
            "input.mime_type": "text/plain",
        }
        return step.actor, attrs
    if step.kind == "chat":
        model = step.model
        assert model is not None
        attrs |= {
            "llm.model_name": model.response if step.error is None else model.request,
            "llm.provider": model.provider,
            "llm.system": model.family,
            "llm.invocation_parameters": json.dumps({"temperature": 0.3, "max_tokens": 2048}),
        }
        if step.usage is not None:
            attrs |= {
                "llm.token_count.prompt": step.usage.input,
                "llm.token_count.completion": step.usage.output,
                "llm.token_count.total": step.usage.input + step.usage.output,
            }
            if step.usage.cache_read:
                attrs["llm.token_count.prompt_details.cache_read"] = step.usage.cache_read
        return _OPENINFERENCE_CHAT_CLASS.get(model.provider, "ChatModel"), attrs
    if step.kind == "embeddings":
        model = step.model
        assert model is not None and step.usage is not None
        attrs |= {
            "embedding.model_name": model.request,
            "llm.provider": model.provider,
            "llm.token_count.prompt": step.usage.input,
            "llm.token_count.total": step.usage.input,
        }
        return "Embeddings", attrs
    if step.kind == "tool":
        attrs |= {
            "tool.name": step.tool or "",
            "tool.id": f"call_{rng.getrandbits(48):012x}",
            "tool.parameters": '{"type": "object", "properties": {"query": {"type": "string"}}}',
            "input.value": json.dumps({"query": "pricing"}),
        }
        return step.tool or "tool", attrs
    attrs["input.value"] = "competitor pricing"
    for rank in range(3):
        attrs[f"retrieval.documents.{rank}.document.id"] = (
            f"{step.agent.data_source}-{rng.randint(1, 99_999)}"
        )
        attrs[f"retrieval.documents.{rank}.document.score"] = round(0.9 - rank * 0.1 * rng.random(), 4)
    return "VectorStoreRetriever", attrs


_TRACELOOP_PREFIX = {"AWS": "bedrock", "Anthropic": "anthropic", "openai": "openai"}


def _dress_openllmetry(step: Step, info: _TraceInfo, rng: random.Random) -> tuple[str, Attrs]:
    """OpenLLMetry (Traceloop SDK): `traceloop.*` entity spans around legacy-named model spans."""
    agent = step.agent
    attrs: Attrs = {
        "traceloop.workflow.name": agent.supervisor,
        "traceloop.association.properties.conversation_id": info.conversation,
        "traceloop.association.properties.user_id": info.user,
    }
    if step.kind in ("chat", "embeddings"):
        model = step.model
        assert model is not None
        prefix = _TRACELOOP_PREFIX.get(model.provider, model.provider.lower())
        request_type = (
            "embedding" if step.kind == "embeddings" else "completion" if prefix == "bedrock" else "chat"
        )
        attrs |= {
            "gen_ai.system": model.provider,
            "llm.request.type": request_type,
            "gen_ai.request.model": model.request,
            "llm.is_streaming": False,
        }
        if step.error is not None:
            attrs["error.type"] = step.error
        if step.usage is not None:
            attrs |= {
                "gen_ai.response.model": model.response,
                "gen_ai.usage.prompt_tokens": step.usage.input,
                "gen_ai.usage.completion_tokens": step.usage.output,
                "llm.usage.total_tokens": step.usage.input + step.usage.output,
            }
            if model.cache == "anthropic":
                attrs["gen_ai.usage.cache_read_input_tokens"] = step.usage.cache_read
                attrs["gen_ai.usage.cache_creation_input_tokens"] = step.usage.cache_write
        return f"{prefix}.{'embeddings' if step.kind == 'embeddings' else request_type}", attrs
    kind = {"agent": "agent", "tool": "tool", "retrieval": "task"}[step.kind]
    name = (
        step.tool if step.kind == "tool" else "retrieve_context" if step.kind == "retrieval" else step.actor
    )
    attrs |= {
        "traceloop.span.kind": kind,
        "traceloop.entity.name": name or "",
        "traceloop.entity.version": 3 if kind == "agent" else 1,
        "traceloop.entity.input": json.dumps(
            {"args": [], "kwargs": {"ref": f"INV-{rng.randint(1, 99_999)}"}}
        ),
        "traceloop.entity.output": json.dumps({"status": "error" if step.error else "ok"}),
    }
    if step.error is not None:
        attrs["error.type"] = step.error
    return f"{name}.{kind}", attrs


def _dress_openlit(step: Step, info: _TraceInfo, rng: random.Random) -> tuple[str, Attrs]:
    """OpenLIT: OTel-style names with `gen_ai.system`, plus application, environment and cost."""
    agent = step.agent
    attrs: Attrs = {
        "gen_ai.application_name": agent.service,
        "gen_ai.environment": agent.environment,
        "gen_ai.conversation.id": info.conversation,
    }
    if step.kind == "agent":
        # OpenLIT names the agent framework, not a model provider, on agent spans.
        attrs |= {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.system": "crewai",
            "gen_ai.agent.name": step.actor,
            "gen_ai.agent.id": agent.agent_id(step.actor),
        }
        return f"invoke_agent {step.actor}", attrs
    if step.kind in ("chat", "embeddings"):
        model = step.model
        assert model is not None
        attrs |= {
            "gen_ai.operation.name": step.kind,
            "gen_ai.system": model.provider,
            "gen_ai.request.model": model.request,
            "server.address": model.server_address,
            "server.port": model.server_port,
            "gen_ai.request.is_stream": False,
        }
        if step.error is not None:
            attrs["error.type"] = step.error
        if step.usage is not None:
            usage = step.usage
            cost = (usage.input * model.price[0] + usage.output * model.price[1]) / 1e6
            attrs |= {
                "gen_ai.response.model": model.response,
                "gen_ai.usage.input_tokens": usage.input,
                "gen_ai.usage.output_tokens": usage.output,
                "gen_ai.usage.total_tokens": usage.input + usage.output,
                "gen_ai.usage.cost": round(cost, 8),
            }
        return f"{step.kind} {model.request}", attrs
    if step.kind == "tool":
        attrs |= {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": step.tool or "",
            "gen_ai.tool.call.id": f"call_{rng.getrandbits(48):012x}",
        }
        if step.error is not None:
            attrs["error.type"] = step.error
        return f"execute_tool {step.tool}", attrs
    attrs |= {
        "gen_ai.operation.name": "retrieval",
        "db.system.name": "chroma",
        "db.operation.name": "query",
        "db.collection.name": agent.data_source or "docs",
    }
    return f"query {agent.data_source or 'docs'}", attrs


_DRESSERS: dict[Convention, Dresser] = {
    "otel_genai": _dress_otel_genai,
    "otel_genai_legacy": _dress_otel_genai_legacy,
    "openinference": _dress_openinference,
    "openllmetry": _dress_openllmetry,
    "openlit": _dress_openlit,
}


def _reported_usage(step: Step) -> Usage | None:
    """A model call's usage as its span reports it, for the ledger: an instrumentation without an
    attribute for cache or reasoning tokens (see the dressers above) leaves them inside plain input
    and output, so the ledger must too — it says what was sent, not what the provider did."""
    usage, model, convention = step.usage, step.model, step.agent.convention
    if usage is None or model is None:
        return usage
    reads = {
        "otel_genai": model.cache != "none",
        "openinference": step.kind == "chat",
        "openllmetry": model.cache == "anthropic",
    }.get(convention, False)
    writes = model.cache == "anthropic" and convention in ("otel_genai", "openllmetry")
    reasoning = convention == "otel_genai" and step.kind == "chat"
    return Usage(
        usage.input,
        usage.output,
        usage.cache_read if reads else 0,
        usage.cache_write if writes else 0,
        usage.reasoning if reasoning else 0,
    )


_SPAN_KIND: dict[StepKind, SpanKind] = {
    "agent": SpanKind.INTERNAL,
    "chat": SpanKind.CLIENT,
    "embeddings": SpanKind.CLIENT,
    "tool": SpanKind.INTERNAL,
    "retrieval": SpanKind.CLIENT,
}


# --------------------------------------------------------------------------------------------
# Exporters: the real OTLP ones by default, wrapped to count what they are handed
# --------------------------------------------------------------------------------------------


class ExporterFactory(Protocol):
    """Makes each agent's exporters; `transport` is the one chosen for that agent."""

    def span_exporter(self, agent: AgentSpec, transport: Transport) -> SpanExporter: ...

    def metric_exporter(self, agent: AgentSpec, transport: Transport) -> MetricExporter: ...

    def log_exporter(self, agent: AgentSpec, transport: Transport) -> LogRecordExporter: ...


@dataclass(frozen=True)
class OtlpExporters:
    """The real OTLP exporters of the OpenTelemetry SDK: gRPC (insecure) or HTTP protobuf; and, as the
    SDK has none, Muster's own OTLP/JSON ones (`muster.fleet_otlp_json`) for `http_json`."""

    grpc_endpoint: str | None
    http_endpoint: str | None
    headers: dict[str, str] | None = None

    # Exporters are imported when first used: each transport drags in its own stack (grpcio,
    # requests), which a run over the other transport need not load.

    def span_exporter(self, agent: AgentSpec, transport: Transport) -> SpanExporter:
        if transport == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

            return Grpc(**self._grpc_args(agent))
        if transport == "http_json":
            from muster.fleet_otlp_json import JsonSpanExporter

            return JsonSpanExporter(**self._json_args(agent, "traces"))
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

        return Http(**self._http_args(agent, "traces"))

    def metric_exporter(self, agent: AgentSpec, transport: Transport) -> MetricExporter:
        if transport == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

            return Grpc(**self._grpc_args(agent))
        if transport == "http_json":
            from muster.fleet_otlp_json import JsonMetricExporter

            return JsonMetricExporter(**self._json_args(agent, "metrics"))
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

        return Http(**self._http_args(agent, "metrics"))

    def log_exporter(self, agent: AgentSpec, transport: Transport) -> LogRecordExporter:
        if transport == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Grpc

            return Grpc(**self._grpc_args(agent))
        if transport == "http_json":
            from muster.fleet_otlp_json import JsonLogExporter

            return JsonLogExporter(**self._json_args(agent, "logs"))
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as Http

        return Http(**self._http_args(agent, "logs"))

    def _grpc_args(self, agent: AgentSpec) -> dict:
        from grpc import Compression

        if self.grpc_endpoint is None:
            raise ValueError("no gRPC endpoint was given")
        compression = Compression.Gzip if agent.gzip else Compression.NoCompression
        return {
            "endpoint": self.grpc_endpoint,
            "insecure": True,
            "headers": self.headers,
            "compression": compression,
        }

    def _http_args(self, agent: AgentSpec, signal: str) -> dict:
        from opentelemetry.exporter.otlp.proto.http import Compression

        if self.http_endpoint is None:
            raise ValueError("no HTTP endpoint was given")
        compression = Compression.Gzip if agent.gzip else Compression.NoCompression
        return {
            "endpoint": signal_url(self.http_endpoint, signal),
            "headers": self.headers,
            "compression": compression,
        }

    def _json_args(self, agent: AgentSpec, signal: str) -> dict:
        if self.http_endpoint is None:
            raise ValueError("no HTTP endpoint was given")
        return {
            "endpoint": signal_url(self.http_endpoint, signal),
            "headers": self.headers,
            "gzip_body": agent.gzip,
        }


def signal_url(endpoint: str, signal: str) -> str:
    """`http://host:4318` or `http://host:4318/v1/traces` → that server's URL for `signal`."""
    base = endpoint.rstrip("/")
    for known in ("traces", "metrics", "logs"):
        base = base.removesuffix(f"/v1/{known}")
    return f"{base}/v1/{signal}"


_Result = TypeVar("_Result")


class _Tally:
    """Counts of what the exporters were handed, updated from the processors' export threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: Counter[str] = Counter()
        self.input_tokens: Counter[str] = Counter()
        self.output_tokens: Counter[str] = Counter()
        self.metric_points: Counter[str] = Counter()
        self.log_records: Counter[str] = Counter()
        self.failed_exports = 0
        # Model calls by span id, from when the span ends until its exporter takes it: the
        # ledger counts calls and tokens only for spans that really reached an exporter.
        self.pending_calls: dict[int, tuple[CallKey, Usage | None]] = {}
        self.calls: dict[CallKey, CallTotals] = {}

    def note_failure(self) -> None:
        with self.lock:
            self.failed_exports += 1


def _forward(tally: _Tally, export: Callable[[], _Result], success: _Result) -> _Result:
    """Hand a batch on to the real exporter; note a failure (result or exception): its items may be lost."""
    try:
        result = export()
    except Exception:
        tally.note_failure()
        raise
    if result is not success:
        tally.note_failure()
    return result


class _CountingSpanExporter(SpanExporter):
    """Counts the spans (and their model-call tokens) it is handed, then hands them on."""

    def __init__(self, inner: SpanExporter, service: str, tally: _Tally, backlog: _Backlog) -> None:
        self._inner, self._service, self._tally, self._backlog = inner, service, tally, backlog

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        tally = self._tally
        with tally.lock:
            tally.spans[self._service] += len(spans)
            for span in spans:
                call = tally.pending_calls.pop(span.context.span_id, None)
                if call is None:
                    continue
                key, usage = call
                tally.calls.setdefault(key, CallTotals()).add(usage)
                if usage is not None:
                    tally.input_tokens[self._service] += usage.input
                    tally.output_tokens[self._service] += usage.output
        self._backlog.spans_handed += len(spans)
        return _forward(tally, lambda: self._inner.export(spans), SpanExportResult.SUCCESS)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _CountingMetricExporter(MetricExporter):
    """Counts the data points it is handed, then hands them on."""

    def __init__(self, inner: MetricExporter, service: str, tally: _Tally) -> None:
        # The reader asks its exporter for these; pass the real exporter's preferences through.
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner, self._service, self._tally = inner, service, tally

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs
    ) -> MetricExportResult:
        points = sum(
            len(metric.data.data_points)
            for rm in metrics_data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        )
        with self._tally.lock:
            self._tally.metric_points[self._service] += points
        export = lambda: self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)  # noqa: E731
        return _forward(self._tally, export, MetricExportResult.SUCCESS)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis)


class _CountingLogExporter(LogRecordExporter):
    """Counts the log records it is handed, then hands them on."""

    def __init__(self, inner: LogRecordExporter, service: str, tally: _Tally, backlog: _Backlog) -> None:
        self._inner, self._service, self._tally, self._backlog = inner, service, tally, backlog

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        with self._tally.lock:
            self._tally.log_records[self._service] += len(batch)
        self._backlog.logs_handed += len(batch)
        return _forward(self._tally, lambda: self._inner.export(batch), LogRecordExportResult.SUCCESS)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


@dataclass
class _Backlog:
    """Spans and log records ended but not yet handed to the exporter: the batch queue's length.

    Each counter has a single writer (the run loop, or the processor's serialised export), so
    plain integers are enough."""

    spans_ended: int = 0
    spans_handed: int = 0
    logs_emitted: int = 0
    logs_handed: int = 0

    def size(self) -> int:
        return self.spans_ended - self.spans_handed + self.logs_emitted - self.logs_handed


# --------------------------------------------------------------------------------------------
# One agent's live SDK pipeline
# --------------------------------------------------------------------------------------------


class _GenAiInstruments:
    """The GenAI client metrics an instrumentation records for each model call."""

    def __init__(self, provider: MeterProvider, agent: AgentSpec) -> None:
        meter = provider.get_meter(*agent.instrumentation)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per model call",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Model call duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        # OpenLIT also reports what each call cost.
        self.cost = (
            meter.create_histogram("gen_ai.usage.cost", unit="USD", description="Cost per model call")
            if agent.convention == "openlit"
            else None
        )
        self.provider_key = "gen_ai.system" if agent.convention == "openlit" else "gen_ai.provider.name"

    def record(self, step: Step) -> None:
        model = step.model
        assert model is not None
        attrs: Attrs = {
            "gen_ai.operation.name": step.kind,
            self.provider_key: model.provider,
            "gen_ai.request.model": model.request,
            "server.address": model.server_address,
        }
        if step.error is not None:
            attrs["error.type"] = step.error
        else:
            attrs["gen_ai.response.model"] = model.response
        self.duration.record((step.end - step.start) / 1e9, attrs)
        usage = step.usage
        if usage is None:
            return
        self.tokens.record(usage.input, attrs | {"gen_ai.token.type": "input"})
        if step.kind == "chat":
            self.tokens.record(usage.output, attrs | {"gen_ai.token.type": "output"})
        if self.cost is not None:
            self.cost.record((usage.input * model.price[0] + usage.output * model.price[1]) / 1e6, attrs)


@dataclass
class _AgentPipeline:
    """An agent's providers, tracers and instruments for one run."""

    agent: AgentSpec
    transport: Transport
    tracer_provider: TracerProvider
    agent_tracer: trace_api.Tracer  # the framework's scope: agent, tool and retrieval spans
    model_tracer: trace_api.Tracer  # the instrumentation's scope: model calls
    dress: Dresser
    backlog: _Backlog
    meter_provider: MeterProvider | None = None
    instruments: _GenAiInstruments | None = None
    logger_provider: LoggerProvider | None = None
    logger: Logger | None = None

    def shutdown(self) -> None:
        """Flush first, then shut down, so every queued item reaches the exporter exactly once."""
        self.tracer_provider.force_flush()
        if self.logger_provider is not None:
            self.logger_provider.force_flush()
        self.tracer_provider.shutdown()
        if self.logger_provider is not None:
            self.logger_provider.shutdown()
        if self.meter_provider is not None:
            # Shutdown collects one last time; a force_flush before it would export the points twice.
            self.meter_provider.shutdown()


# The semantic-conventions version each OTel-based instrumentation declares on its scope.
_SCHEMA_URLS: dict[Convention, str] = {
    "otel_genai": "https://opentelemetry.io/schemas/1.37.0",
    "otel_genai_legacy": "https://opentelemetry.io/schemas/1.26.0",
}


def _start_pipeline(
    agent: AgentSpec, transport: Transport, factory: ExporterFactory, tally: _Tally, with_metrics: bool
) -> _AgentPipeline:
    resource = _resource_for(agent)
    backlog = _Backlog()
    tracer_provider = TracerProvider(resource=resource, sampler=ALWAYS_ON, shutdown_on_exit=False)
    span_exporter = _CountingSpanExporter(
        factory.span_exporter(agent, transport), agent.service, tally, backlog
    )
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            span_exporter,
            max_queue_size=MAX_QUEUE,
            schedule_delay_millis=SCHEDULE_DELAY_MS,
            max_export_batch_size=BATCH_SIZE,
        )
    )
    schema = _SCHEMA_URLS.get(agent.convention, "")
    pipeline = _AgentPipeline(
        agent=agent,
        transport=transport,
        tracer_provider=tracer_provider,
        agent_tracer=tracer_provider.get_tracer(*agent.framework, schema_url=schema),
        model_tracer=tracer_provider.get_tracer(*agent.instrumentation, schema_url=schema),
        dress=_DRESSERS[agent.convention],
        backlog=backlog,
    )
    if agent.metrics and with_metrics:
        exporter = _CountingMetricExporter(factory.metric_exporter(agent, transport), agent.service, tally)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=METRIC_INTERVAL_MS)
        pipeline.meter_provider = MeterProvider(
            resource=resource, metric_readers=[reader], shutdown_on_exit=False
        )
        pipeline.instruments = _GenAiInstruments(pipeline.meter_provider, agent)
    if agent.logs:
        log_exporter = _CountingLogExporter(
            factory.log_exporter(agent, transport), agent.service, tally, backlog
        )
        pipeline.logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        pipeline.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                log_exporter,
                max_queue_size=MAX_QUEUE,
                schedule_delay_millis=SCHEDULE_DELAY_MS,
                max_export_batch_size=BATCH_SIZE,
            )
        )
        pipeline.logger = pipeline.logger_provider.get_logger(*agent.framework)
    return pipeline


# --------------------------------------------------------------------------------------------
# Emitting a planned trace through the SDK
# --------------------------------------------------------------------------------------------

_EMPTY_CONTEXT = Context()  # roots must not pick up whatever span happens to be current


def _emit_trace(
    steps: list[Step], t0: int, pipelines: dict[str, _AgentPipeline], tally: _Tally, rng: random.Random
) -> None:
    """Start every planned span (parents first), then end them (children first) at their planned times."""
    info = _TraceInfo(
        conversation=f"conv_{rng.getrandbits(64):016x}", user=f"user-{rng.randint(1, 5_000):05d}"
    )
    spans: list[trace_api.Span] = []
    for step in steps:
        pipeline = pipelines[step.agent.service]
        name, attrs = pipeline.dress(step, info, rng)
        parent = _EMPTY_CONTEXT if step.parent is None else trace_api.set_span_in_context(spans[step.parent])
        tracer = pipeline.model_tracer if step.kind in ("chat", "embeddings") else pipeline.agent_tracer
        kind = SpanKind.SERVER if step.remote else _SPAN_KIND[step.kind]
        span = tracer.start_span(
            name, context=parent, kind=kind, attributes=attrs, start_time=t0 + step.start
        )
        spans.append(span)
    for step, span in zip(reversed(steps), reversed(spans), strict=True):
        pipeline = pipelines[step.agent.service]
        if step.model is not None:
            # Registered before end(): the exporter thread may take the span as soon as it ends.
            with tally.lock:
                tally.pending_calls[span.get_span_context().span_id] = (
                    _call_key(step, t0),
                    _reported_usage(step),
                )
        if step.error is not None:
            _fail(span, step, t0)
        span.end(end_time=t0 + step.end)
        pipeline.backlog.spans_ended += 1
        if pipeline.instruments is not None and step.model is not None:
            pipeline.instruments.record(step)
        if pipeline.logger is not None and (step.error is not None or step.parent is None or step.remote):
            _log_step(pipeline, step, span, t0, info)


def _call_key(step: Step, t0: int) -> CallKey:
    """The ledger's group for a model-call step: what an independent check needs to price it."""
    model = step.model
    assert model is not None
    started = dt.datetime.fromtimestamp((t0 + step.start) / 1e9, tz=dt.UTC)
    return CallKey(
        service=step.agent.service,
        provider=model.provider,
        request_model=model.request,
        # A failed call never heard from a model: no response model (and no usage).
        response_model=model.response if step.error is None else None,
        day=started.date().isoformat(),
        status="ok" if step.error is None else "error",
    )


def _fail(span: trace_api.Span, step: Step, t0: int) -> None:
    """What an instrumentation does when the call raises: an exception event, then ERROR status."""
    message = f"{step.error} while {step.kind} for {step.actor}"
    event = {"exception.type": step.error or "", "exception.message": message}
    span.add_event("exception", event, timestamp=t0 + step.end)
    span.set_status(Status(StatusCode.ERROR, message))


def _log_step(pipeline: _AgentPipeline, step: Step, span: trace_api.Span, t0: int, info: _TraceInfo) -> None:
    """An application log line: the end of an agent run, or a failure, correlated with its span."""
    failed = step.error is not None
    assert pipeline.logger is not None
    pipeline.logger.emit(
        timestamp=t0 + step.end,
        observed_timestamp=t0 + step.end,
        context=trace_api.set_span_in_context(span),
        severity_number=SeverityNumber.ERROR if failed else SeverityNumber.INFO,
        severity_text="ERROR" if failed else "INFO",
        body=f"{step.kind} failed: {step.error}" if failed else f"agent run finished: {step.actor}",
        attributes={"gen_ai.agent.name": step.actor, "gen_ai.conversation.id": info.conversation}
        | ({"error.type": step.error} if failed else {}),
    )
    pipeline.backlog.logs_emitted += 1


# --------------------------------------------------------------------------------------------
# Running the fleet
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallKey:
    """Which model calls the ledger adds up together: one service's calls of one model on one UTC
    day with one outcome. Provider and models are spelled as the agent's convention sent them."""

    service: str
    provider: str
    request_model: str
    response_model: str | None  # None: the call failed, no model answered
    day: str  # UTC date of the call's start, YYYY-MM-DD
    status: Literal["ok", "error"]


@dataclass(slots=True)
class CallTotals:
    """The calls of one `CallKey` and their tokens as the spans report them, canonical: input
    includes cache reads and writes, output includes reasoning. A failed call counts, without tokens."""

    calls: int = 0
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    max_input_tokens: int = 0  # the largest call: a sum priced at once is exact only below any price tier

    def add(self, usage: Usage | None) -> None:
        self.calls += 1
        if usage is None:
            return
        self.input_tokens += usage.input
        self.cache_read_tokens += usage.cache_read
        self.cache_write_tokens += usage.cache_write
        self.output_tokens += usage.output
        self.reasoning_tokens += usage.reasoning
        self.max_input_tokens = max(self.max_input_tokens, usage.input)


@dataclass
class Ledger:
    """What the simulator handed to its exporters, to compare with what the warehouse stored.

    Counted inside the exporters, so a span the SDK dropped is not in it (`spans_created` would then
    exceed `total_spans()`; the run loop waits rather than let that happen). Tokens are summed over
    model-call spans only (chat and embeddings), as canonical input (cached tokens included) and
    output (reasoning included); usage repeated on agent spans is not counted. Metric points are
    what the readers exported, every collection of a cumulative series included; a backfill sends
    none, as the SDK stamps points with the time of collection. `calls` holds every model call
    (chat and embeddings, failed ones too) by `CallKey`: enough to price the run independently.
    """

    spans_by_service: Counter[str] = field(default_factory=Counter)
    input_tokens_by_service: Counter[str] = field(default_factory=Counter)
    output_tokens_by_service: Counter[str] = field(default_factory=Counter)
    metric_points_by_service: Counter[str] = field(default_factory=Counter)
    log_records_by_service: Counter[str] = field(default_factory=Counter)
    traces: int = 0
    spans_created: int = 0  # equals total_spans() unless the SDK dropped spans
    failed_exports: int = 0  # export calls the exporter reported as failed: their items may be missing
    transports: dict[str, Transport] = field(default_factory=dict)  # service → transport it used
    calls: dict[CallKey, CallTotals] = field(default_factory=dict)

    def total_spans(self) -> int:
        return sum(self.spans_by_service.values())

    @property
    def metric_points(self) -> int:
        return sum(self.metric_points_by_service.values())

    @property
    def log_records(self) -> int:
        return sum(self.log_records_by_service.values())

    def as_dict(self) -> dict:
        """A JSON-ready summary, for `--json`."""
        services = sorted(
            set(self.spans_by_service) | set(self.metric_points_by_service) | set(self.log_records_by_service)
        )
        return {
            "traces": self.traces,
            "spans": self.total_spans(),
            "spans_created": self.spans_created,
            "metric_points": self.metric_points,
            "log_records": self.log_records,
            "failed_exports": self.failed_exports,
            "services": [
                {
                    "service_name": name,
                    "transport": self.transports.get(name),
                    "spans": self.spans_by_service[name],
                    "input_tokens": self.input_tokens_by_service[name],
                    "output_tokens": self.output_tokens_by_service[name],
                    "metric_points": self.metric_points_by_service[name],
                    "log_records": self.log_records_by_service[name],
                }
                for name in services
            ],
        }

    def to_json(self) -> dict:
        """`as_dict()` and the model calls, one entry per `CallKey` (sorted, so runs diff cleanly)."""
        ordered = sorted(self.calls.items(), key=lambda item: [v or "" for v in dataclasses.astuple(item[0])])
        calls = [dataclasses.asdict(key) | dataclasses.asdict(totals) for key, totals in ordered]
        return self.as_dict() | {"calls": calls}

    def write_json(self, path: Path) -> None:
        """Write `to_json()` to `path` whole: a reader never sees half a ledger."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        partial.replace(path)


def run(
    fleet: Sequence[AgentSpec],
    *,
    grpc_endpoint: str | None,
    http_endpoint: str | None,
    traces: int | None = None,
    rate: float | None = None,
    duration: float | None = None,
    backfill_days: int = 0,
    stop: threading.Event | None = None,
    seed: int = 7,
    exporter_factory: ExporterFactory | None = None,
) -> Ledger:
    """Send traces from `fleet`, flush and shut every provider down, and return the ledger.

    Ends after `traces` traces, after `duration` seconds, or when `stop` is set, whichever comes
    first; `rate` paces it in traces per second (unpaced without). The first len(fleet) traces visit
    every agent once, so a short run covers the whole fleet; after that traffic follows the agents'
    weights. With `exporter_factory` the endpoints only choose the transports it is asked for.
    """
    _check_run_arguments(fleet, grpc_endpoint, http_endpoint, traces, rate, duration, backfill_days, stop)
    transports: list[Transport] = [t for t, e in (("grpc", grpc_endpoint), ("http", http_endpoint)) if e]
    json_ok = http_endpoint is not None
    factory = exporter_factory or OtlpExporters(grpc_endpoint, http_endpoint)
    tally = _Tally()
    pipelines: dict[str, _AgentPipeline] = {}
    try:
        for i, agent in enumerate(fleet):
            transport = _transport_for(agent, transports[i % len(transports)], transports, json_ok)
            pipelines[agent.service] = _start_pipeline(
                agent, transport, factory, tally, with_metrics=backfill_days == 0
            )
        sent = _drive(list(fleet), pipelines, tally, seed, traces, rate, duration, backfill_days, stop)
    finally:
        _shut_down(list(pipelines.values()))
    return Ledger(
        spans_by_service=tally.spans,
        input_tokens_by_service=tally.input_tokens,
        output_tokens_by_service=tally.output_tokens,
        metric_points_by_service=tally.metric_points,
        log_records_by_service=tally.log_records,
        traces=sent,
        spans_created=sum(p.backlog.spans_ended for p in pipelines.values()),
        failed_exports=tally.failed_exports,
        transports={service: p.transport for service, p in pipelines.items()},
        calls=tally.calls,
    )


def _transport_for(agent: AgentSpec, turn: Transport, available: list[Transport], json_ok: bool) -> Transport:
    """The agent's own transport when its endpoint was given, else its turn in the rotation."""
    wanted = agent.transport
    if wanted in available or (wanted == "http_json" and json_ok):
        return wanted
    return turn


def _shut_down(pipelines: list[_AgentPipeline]) -> None:
    """Flush and stop every agent at once: with a slow or absent server, each may wait out its
    exporter's timeouts, and one after another that would add up to minutes."""
    if not pipelines:
        return
    with ThreadPoolExecutor(max_workers=len(pipelines), thread_name_prefix="simulate-shutdown") as pool:
        list(pool.map(_AgentPipeline.shutdown, pipelines))  # list(): re-raise the first failure


def _check_run_arguments(
    fleet: Sequence[AgentSpec],
    grpc_endpoint: str | None,
    http_endpoint: str | None,
    traces: int | None,
    rate: float | None,
    duration: float | None,
    backfill_days: int,
    stop: threading.Event | None,
) -> None:
    if not fleet:
        raise ValueError("the fleet is empty: build one with build_fleet(agents=N)")
    if len({agent.service for agent in fleet}) != len(fleet):
        raise ValueError("two agents of the fleet share a service name; the ledger could not tell them apart")
    if not grpc_endpoint and not http_endpoint:
        raise ValueError(
            "give a gRPC endpoint (e.g. 127.0.0.1:4317), an HTTP one (http://127.0.0.1:4318), or both"
        )
    if traces is not None and traces < 0:
        raise ValueError(f"traces must be 0 or more, not {traces}")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be positive traces per second, not {rate}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be positive seconds, not {duration}")
    if backfill_days < 0:
        raise ValueError(f"backfill_days must be 0 or more, not {backfill_days}")
    if traces is None and duration is None and stop is None:
        raise ValueError("nothing would end the run: give traces, duration or a stop event")


def _drive(
    fleet: list[AgentSpec],
    pipelines: dict[str, _AgentPipeline],
    tally: _Tally,
    seed: int,
    traces: int | None,
    rate: float | None,
    duration: float | None,
    backfill_days: int,
    stop: threading.Event | None,
) -> int:
    """The hot loop: plan, time-stamp and emit one trace after another. Returns how many it sent."""
    rng = random.Random(seed)
    # Timestamps draw from their own generator, so what a trace contains never depends on the clock.
    clock_rng = random.Random(seed ^ 0x5EED)
    by_service = {agent.service: agent for agent in fleet}
    slots = schedule(fleet, rng, backfill_days)
    started = time.monotonic()
    deadline = started + duration if duration is not None else math.inf
    stop = stop or threading.Event()
    sent = 0
    while (traces is None or sent < traces) and not stop.is_set() and time.monotonic() < deadline:
        if rate is not None and _wait(started + sent / rate, stop, deadline):
            break
        slot = next(slots)
        agent = slot.agent
        remote = by_service.get(agent.remote) if agent.remote and not slot.loop else None
        steps = _plan_loop(rng, agent) if slot.loop else _plan_trace(rng, agent, remote)
        t0 = _start_time(clock_rng, slot, time.time_ns(), steps[0].end, backfill_days)
        for service in {agent.service, remote.service} if remote else {agent.service}:
            _wait_for_backlog(pipelines[service].backlog, stop, deadline)
        _emit_trace(steps, t0, pipelines, tally, rng)
        sent += 1
    return sent


def _start_time(clock: random.Random, slot: Slot, now_ns: int, trace_ns: int, backfill_days: int) -> int:
    """When the trace starts: so that it ends now (live), at its planted moment, or drawn in its window."""
    if not backfill_days:
        return now_ns - trace_ns
    if slot.at_ns_ago is not None:
        return now_ns - max(slot.at_ns_ago, trace_ns)
    return past_start(clock, now_ns, slot.oldest_days, slot.newest_days, trace_ns)


def _wait(due: float, stop: threading.Event, deadline: float) -> bool:
    """Sleep until `due` (monotonic); True if the run should end instead."""
    delay = min(due, deadline) - time.monotonic()
    if delay > 0 and stop.wait(delay):
        return True
    return time.monotonic() >= deadline


def _wait_for_backlog(backlog: _Backlog, stop: threading.Event, deadline: float) -> None:
    """Hold the loop while an agent's batch queue is half full, so the SDK never drops anything."""
    while backlog.size() > MAX_QUEUE // 2 and time.monotonic() < deadline and not stop.wait(0.005):
        pass
