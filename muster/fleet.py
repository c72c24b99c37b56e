"""The demo enterprise: sixty agents in twelve departments, and the problems planted among them.

This module's one job is to say what the enterprise runs. `demo_fleet()` returns its agents as
`muster.simulate.AgentSpec`s, which `muster.simulate.run` drives; `data/demo/` is the registry
that goes with it (fifty registered agents; the ten shadow agents are simply absent from it), and
`PLANTED` names the agents behind each problem Muster's findings should report:

| planted case                  | agent or department             | rule                             |
|-------------------------------|---------------------------------|----------------------------------|
| a disallowed model            | sales-email-bot (gpt-4o)        | drift.model_not_allowed          |
| a disallowed tool             | it-helpdesk (run_shell_command) | drift.tool_not_allowed           |
| a prototype in production     | policy-wording-checker          | drift.prototype_in_production    |
| a retired agent still running | fnol-legacy-bot                 | sprawl.retired_agent_running     |
| a runaway loop                | pipeline-doctor                 | spend.runaway_agent              |
| a department over budget      | marketing                       | spend.budget_forecast            |
| a dormant registration        | quarterly-report-drafter        | sprawl.dormant_agent             |
| ten shadow agents             | UNREGISTERED (three new)        | sprawl.unregistered_agent        |

Every agent exports through the real SDK, over gRPC, HTTP protobuf or HTTP JSON, in one of the five
conventions Muster reads, with resource attributes and instrumentation scopes that show its
platform (OpenAI Agents SDK, LangGraph, CrewAI, Bedrock Agents, Semantic Kernel, LlamaIndex,
Google ADK or custom code). The department budgets in `data/demo/` are sized for the traffic of
`DEMO_TRACES_PER_DAY` over a backfill of `DEMO_BACKFILL_DAYS`: `muster simulate --backfill 35d`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace

from muster.simulate import MODELS, AgentSpec, Convention, Model, embedding_model, hosted

__all__ = ["DEMO_BACKFILL_DAYS", "DEMO_TRACES_PER_DAY", "PLANTED", "UNREGISTERED", "Planted", "demo_fleet"]

DEMO_TRACES_PER_DAY = 120  # the volume data/demo's budgets are sized for
# The dormant rule speaks only once Muster holds 30 days of telemetry, and budgets forecast from
# four weeks of daily spend: 35 days covers both with a margin.
DEMO_BACKFILL_DAYS = 35


@dataclass(frozen=True)
class Planted:
    """Which agent (service) or department carries each planted problem."""

    disallowed_model: tuple[str, str] = ("sales-email-bot", "gpt-4o")
    disallowed_tool: tuple[str, str] = ("it-helpdesk", "run_shell_command")
    prototype_in_production: str = "policy-wording-checker"
    retired_running: str = "fnol-legacy-bot"
    runaway: str = "pipeline-doctor"
    over_budget_department: str = "marketing"
    dormant: str = "quarterly-report-drafter"
    well_behaved: str = "claims-triage"  # registered, allowed everything it does: no drift


PLANTED = Planted()

# How each convention's instrumentations spell a vendor's provider (the collector normalises them).
_SPELLING: dict[Convention, dict[str, str]] = {
    "otel_genai": {
        "openai": "openai",
        "anthropic": "anthropic",
        "gemini": "gcp.gemini",
        "bedrock": "aws.bedrock",
        "azure": "azure.ai.openai",
    },
    "otel_genai_legacy": {
        "openai": "openai",
        "azure": "az.ai.openai",
        "anthropic": "anthropic",
        "bedrock": "aws.bedrock",
    },
    "openinference": {
        "openai": "openai",
        "anthropic": "anthropic",
        "gemini": "google",
        "bedrock": "aws",
        "azure": "azure",
    },
    "openllmetry": {"openai": "openai", "anthropic": "Anthropic", "bedrock": "AWS"},
    "openlit": {"openai": "openai", "anthropic": "anthropic", "bedrock": "aws.bedrock"},
}
_SERVERS = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "gemini": "generativelanguage.googleapis.com",
    "bedrock": "bedrock-runtime.us-east-1.amazonaws.com",
}
_AZURE_SERVER = "contoso-{department}.openai.azure.com"
_EMBEDDINGS = {
    "openai": ("text-embedding-3-small", 0.02),
    "azure": ("text-embedding-3-large", 0.13),
    "gemini": ("text-embedding-004", 0.0),
    "bedrock": ("amazon.titan-embed-text-v2:0", 0.02),
}

# Platform → scope of its agent/tool spans, by convention; model-call scopes follow the provider.
_FRAMEWORK: dict[str, dict[str, tuple[str, str]]] = {
    "openai-agents-sdk": {
        "": ("openai.agents", "0.6.1"),
        "openinference": ("openinference.instrumentation.openai_agents", "1.2.0"),
    },
    "langgraph": {
        "": ("langgraph", "0.6.4"),
        "openinference": ("openinference.instrumentation.langchain", "0.1.45"),
        "openllmetry": ("traceloop.sdk", "0.40.7"),
    },
    "crewai": {
        "": ("crewai", "0.193.2"),
        "openinference": ("openinference.instrumentation.crewai", "0.1.11"),
        "openlit": ("openlit.otel.tracing", "1.34.0"),
    },
    "bedrock-agents": {
        "": ("bedrock_agents", "2025.6.0"),
        "openllmetry": ("traceloop.sdk", "0.38.12"),
        "openlit": ("openlit.otel.tracing", "1.34.0"),
    },
    "semantic-kernel": {"": ("semantic_kernel", "1.18.0")},
    "llamaindex": {
        "": ("llama_index", "0.12.9"),
        "openinference": ("openinference.instrumentation.llama_index", "4.3.1"),
    },
    "google-adk": {"": ("google.adk", "1.12.0")},
    "custom": {
        "": ("custom", "1.0.0"),
        "openllmetry": ("traceloop.sdk", "0.40.7"),
        "openlit": ("openlit.otel.tracing", "1.34.0"),
    },
}
_MODEL_SCOPE: dict[Convention, dict[str, tuple[str, str]]] = {
    "otel_genai": {
        "openai": ("opentelemetry.instrumentation.openai_v2", "2.3b0"),
        "azure": ("opentelemetry.instrumentation.openai_v2", "2.3b0"),
        "self": ("opentelemetry.instrumentation.openai_v2", "2.3b0"),
        "anthropic": ("opentelemetry.instrumentation.anthropic", "0.1b0"),
        "gemini": ("opentelemetry.instrumentation.google_genai", "0.3b0"),
        "bedrock": ("opentelemetry.instrumentation.botocore", "0.57b0"),
    },
    "otel_genai_legacy": {"": ("opentelemetry.instrumentation.openai", "0.26.0")},
    "openinference": {
        "openai": ("openinference.instrumentation.openai", "0.1.30"),
        "anthropic": ("openinference.instrumentation.anthropic", "0.1.18"),
        "gemini": ("openinference.instrumentation.google_genai", "0.1.5"),
        "bedrock": ("openinference.instrumentation.bedrock", "0.1.22"),
    },
    "openllmetry": {
        "openai": ("opentelemetry.instrumentation.openai", "0.40.7"),
        "anthropic": ("opentelemetry.instrumentation.anthropic", "0.40.7"),
        "bedrock": ("opentelemetry.instrumentation.bedrock", "0.38.12"),
    },
    "openlit": {"": ("openlit.otel.tracing", "1.34.0")},
}
_CLOUD = {"azure": ("azure", "westeurope"), "gemini": ("gcp", "europe-west1")}
_SDK = {"semantic-kernel": ("dotnet", "1.9.0")}


def _agent(
    service: str,
    department: str,
    convention: Convention,
    platform: str,
    vendor: str,
    models: tuple[str, ...],
    tools: tuple[str, ...],
    *,
    subs: tuple[str, ...] = (),
    data_source: str = "",
    **changes: object,
) -> AgentSpec:
    """One agent application, its spelling, scopes and resource derived from convention and vendor."""
    server = _AZURE_SERVER.format(department=department) if vendor == "azure" else None
    spelled = [_model(name, convention, vendor, server) for name in models]
    embedding = None
    if data_source and vendor in _EMBEDDINGS:
        name, price = _EMBEDDINGS[vendor]
        provider = _SPELLING[convention].get(vendor, vendor)
        embedding = embedding_model(provider, name, server or _SERVERS.get(vendor, ""), price)
    frameworks = _FRAMEWORK[platform]
    scopes = _MODEL_SCOPE[convention]
    cloud = _CLOUD.get(vendor, ("aws", "us-east-1"))
    extra = (("cloud.provider", cloud[0]), ("cloud.region", cloud[1]))
    if platform == "bedrock-agents":
        extra += (("cloud.platform", "aws_lambda"), ("faas.name", service))
    spec = AgentSpec(
        service=service,
        namespace=department,
        convention=convention,
        supervisor=_actor(service, convention),
        sub_agents=tuple(_actor(sub, convention) for sub in subs),
        models=tuple(spelled),
        tools=tools,
        embedding=embedding,
        data_source=data_source,
        framework=frameworks.get(convention, frameworks[""]),
        instrumentation=scopes.get(vendor, scopes.get("", ("custom", "1.0.0"))),
        sdk=_SDK.get(platform, ("python", "1.38.0")),
        resource_extra=extra,
        legacy_environment_key=convention in ("otel_genai_legacy", "openlit", "openllmetry"),
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def _model(name: str, convention: Convention, vendor: str, server: str | None) -> Model:
    if vendor == "self":
        return MODELS[name]  # served by vLLM: the OpenAI instrumentation reports "openai"
    changes: dict[str, object] = {}
    if server:
        changes = {"server_address": server, "cache": "none"}
    if convention in ("openlit", "otel_genai_legacy") and MODELS[name].cache == "openai":
        changes["cache"] = "none"  # these instrumentations do not report cached tokens
    return hosted(MODELS[name], _SPELLING[convention][vendor], **changes)


def _actor(name: str, convention: Convention) -> str:
    """How a framework names an agent: `support_triage` in Traceloop workflows, `SupportTriage` elsewhere."""
    words = re.split(r"[-_ ]", name)
    return "_".join(words) if convention == "openllmetry" else "".join(w.capitalize() for w in words)


_4O, _MINI, _O4 = "gpt-4o", "gpt-4o-mini", "o4-mini"
_SONNET, _FLASH = "claude-sonnet-4-20250514", "gemini-2.0-flash"
_LLAMA, _QWEN = "meta.llama3-70b-instruct-v1:0", "Qwen/Qwen2.5-72B-Instruct"

# fmt: off
_REGISTERED: tuple[AgentSpec, ...] = (
    # Customer service
    _agent("support-copilot", "customer-service", "otel_genai", "openai-agents-sdk", "openai",
           (_4O, _MINI, _O4), ("lookup_order", "search_kb", "issue_refund", "create_ticket"),
           subs=("refund-agent", "knowledge-agent", "escalation-agent"), data_source="kb-support",
           main_agent=True, rollup_usage=True, metrics=True, logs=True, weight=3.0, transport="grpc",
           remote="returns-assistant"),
    _agent("returns-assistant", "customer-service", "openinference", "langgraph", "openai", (_MINI,),
           ("lookup_order", "create_return_label"), weight=1.5, transport="http_json"),
    _agent("chat-summariser", "customer-service", "openllmetry", "custom", "anthropic", (_SONNET,),
           ("fetch_transcript",), weight=1.0, transport="http"),
    _agent("voice-intent-router", "customer-service", "otel_genai_legacy", "semantic-kernel", "azure",
           (_MINI,), ("route_call", "lookup_customer"), weight=1.4, transport="grpc"),
    _agent("survey-analyser", "customer-service", "openlit", "crewai", "openai", (_MINI,),
           ("load_survey", "tag_theme"), subs=("theme-tagger",), weight=0.6, transport="http", gzip=True),
    # Claims
    _agent("claims-triage", "claims", "otel_genai", "langgraph", "anthropic", (_SONNET,),
           ("fetch_policy", "ocr_document", "score_fraud"), subs=("document-reader", "fraud-screen"),
           main_agent=True, logs=True, weight=1.5, transport="http"),
    _agent("fraud-signal-reviewer", "claims", "openinference", "crewai", "openai", (_4O,),
           ("fraud_score", "case_note"), weight=0.8, transport="http_json"),
    _agent("subrogation-assistant", "claims", "openllmetry", "bedrock-agents", "bedrock", (_LLAMA,),
           ("recovery_estimate",), data_source="claims-db", weight=0.7, transport="grpc"),
    _agent("claims-letter-writer", "claims", "otel_genai_legacy", "semantic-kernel", "azure", (_MINI,),
           ("render_template",), weight=1.0, transport="http"),
    _agent("fnol-legacy-bot", "claims", "otel_genai", "custom", "openai", (_MINI,),
           ("create_claim",), weight=0.5, transport="grpc"),
    # Underwriting
    _agent("risk-scorer", "underwriting", "otel_genai", "openai-agents-sdk", "openai", (_O4, _MINI),
           ("fetch_submission", "peer_benchmark"), subs=("exposure-analyst",), weight=1.2,
           transport="http_json"),
    _agent("submission-intake", "underwriting", "openlit", "crewai", "bedrock", (_LLAMA,),
           ("parse_submission", "check_sanctions"), weight=1.0, transport="grpc", logs=True),
    _agent("quote-explainer", "underwriting", "openinference", "llamaindex", "openai", (_MINI,),
           ("lookup_quote",), data_source="rating-manual", weight=0.8, transport="http"),
    _agent("policy-wording-checker", "underwriting", "otel_genai", "langgraph", "anthropic", (_SONNET,),
           ("compare_clause", "fetch_wording"), weight=0.6, transport="http_json"),
    # Finance
    _agent("invoice-agent", "finance", "openllmetry", "bedrock-agents", "bedrock", (_LLAMA,),
           ("erp_lookup", "match_purchase_order", "post_journal"), subs=("extractor", "approver"),
           data_source="vendor-contracts", weight=1.3, transport="http"),
    _agent("expense-auditor", "finance", "otel_genai", "custom", "openai", (_MINI,),
           ("fetch_expense", "flag_expense"), weight=1.0, transport="grpc"),
    _agent("close-assistant", "finance", "openinference", "langgraph", "gemini", (_FLASH,),
           ("trial_balance", "reconcile_account"), subs=("reconciler",), weight=0.7, transport="http_json"),
    _agent("treasury-forecaster", "finance", "otel_genai_legacy", "semantic-kernel", "azure", (_4O,),
           ("cash_positions", "fx_rates"), weight=0.5, transport="grpc"),
    _agent("quarterly-report-drafter", "finance", "otel_genai", "openai-agents-sdk", "openai", (_4O,),
           ("fetch_ledger",), weight=0.6, transport="http", active_days=(60.0, 33.0)),
    # People
    _agent("hr-policy-bot", "people", "openinference", "llamaindex", "openai", (_MINI,),
           ("lookup_policy", "open_hr_case"), data_source="hr-handbook", weight=1.0, transport="http"),
    _agent("recruiting-screener", "people", "otel_genai", "openai-agents-sdk", "openai", (_4O,),
           ("fetch_cv", "score_candidate"), weight=0.7, transport="grpc"),
    _agent("onboarding-buddy", "people", "openlit", "crewai", "openai", (_MINI,),
           ("provision_checklist",), weight=0.5, transport="http_json"),
    # Legal
    _agent("contract-review", "legal", "otel_genai_legacy", "semantic-kernel", "azure", (_4O,),
           ("fetch_contract", "compare_template"), subs=("clause-extractor", "risk-rater"),
           data_source="clause-library", weight=0.9, transport="http"),
    _agent("nda-drafter", "legal", "otel_genai", "langgraph", "anthropic", (_SONNET,),
           ("fetch_template",), weight=0.5, transport="grpc"),
    _agent("regulatory-watch", "legal", "openinference", "langgraph", "gemini", (_FLASH,),
           ("web_search", "read_url"), weight=0.6, transport="http_json"),
    # Marketing: heavy Claude use with long briefs, the department heading over its budget
    _agent("marketing-writer", "marketing", "openllmetry", "custom", "anthropic", (_SONNET,),
           ("asset_search", "schedule_post"), subs=("copywriter", "brand-checker"), weight=1.6,
           transport="http", gzip=True),
    _agent("campaign-planner", "marketing", "openlit", "crewai", "anthropic", (_SONNET,),
           ("audience_lookup", "budget_sheet"), subs=("strategist", "media-buyer"), weight=1.3,
           transport="grpc"),
    _agent("seo-auditor", "marketing", "otel_genai", "custom", "gemini", (_FLASH,),
           ("crawl_page", "keyword_stats"), weight=0.8, transport="http_json"),
    _agent("social-listener", "marketing", "openinference", "langgraph", "openai", (_MINI,),
           ("fetch_mentions",), weight=0.9, transport="http"),
    # Sales
    _agent("sales-email-bot", "sales", "openlit", "crewai", "openai", (_MINI, _4O),
           ("crm_search", "send_email"), subs=("lead-researcher",), metrics=True, weight=1.2,
           transport="http", gzip=True),
    _agent("deal-desk-assistant", "sales", "otel_genai", "openai-agents-sdk", "openai", (_4O,),
           ("price_book", "approval_matrix"), weight=0.8, transport="grpc"),
    _agent("lead-enricher", "sales", "openllmetry", "custom", "openai", (_MINI,),
           ("company_lookup", "crm_update"), weight=1.0, transport="http_json"),
    _agent("proposal-writer", "sales", "otel_genai_legacy", "semantic-kernel", "azure", (_4O,),
           ("fetch_case_study",), weight=0.6, transport="http"),
    # IT operations
    _agent("it-helpdesk", "it-operations", "otel_genai", "custom", "self", (_QWEN,),
           ("reset_password", "lookup_asset", "create_incident", "run_shell_command"), weight=1.2,
           transport="grpc"),
    _agent("incident-summariser", "it-operations", "openinference", "langgraph", "openai", (_MINI,),
           ("fetch_alerts", "post_status"), weight=0.8, transport="http_json"),
    _agent("change-risk-reviewer", "it-operations", "otel_genai", "bedrock-agents", "bedrock", (_LLAMA,),
           ("fetch_change", "blast_radius"), weight=0.6, transport="http"),
    _agent("access-request-bot", "it-operations", "openlit", "crewai", "bedrock", (_LLAMA,),
           ("check_entitlement", "grant_access"), weight=0.7, transport="grpc"),
    # Security
    _agent("phishing-triage", "security", "otel_genai", "langgraph", "anthropic", (_SONNET,),
           ("detonate_url", "lookup_sender"), subs=("url-analyst",), weight=0.9, transport="http_json"),
    _agent("vuln-explainer", "security", "openinference", "custom", "openai", (_4O,),
           ("fetch_cve",), weight=0.5, transport="http"),
    _agent("log-investigator", "security", "otel_genai_legacy", "semantic-kernel", "azure", (_MINI,),
           ("query_siem", "enrich_ip"), weight=0.8, transport="grpc"),
    # Data platform
    _agent("data-analyst", "data-platform", "otel_genai", "google-adk", "gemini", (_FLASH,),
           ("run_sql", "describe_table", "render_chart"), subs=("sql-writer", "chart-maker"),
           data_source="warehouse-catalog", metrics=True, weight=1.2, transport="http"),
    _agent("sql-copilot", "data-platform", "openlit", "crewai", "openai", (_4O,),
           ("run_sql", "explain_plan"), weight=0.9, transport="http_json"),
    _agent("catalog-curator", "data-platform", "openllmetry", "bedrock-agents", "bedrock", (_LLAMA,),
           ("list_tables", "tag_column"), weight=0.6, transport="grpc"),
    _agent("pipeline-doctor", "data-platform", "otel_genai", "custom", "openai", (_MINI,),
           ("rerun_task", "fetch_logs"), weight=0.8, transport="http", loop_share=0.01,
           loops_hours_ago=(2.0, 7.5)),
    _agent("dev-assistant", "data-platform", "otel_genai_legacy", "custom", "openai", (_4O, _MINI),
           ("read_file", "run_tests", "open_pull_request"), weight=1.0, transport="grpc",
           sdk=("java", "1.42.1")),
    # Research & innovation
    _agent("research-assistant", "research", "openinference", "langgraph", "gemini", (_FLASH,),
           ("web_search", "read_url"), subs=("web-searcher", "summariser"), data_source="market-notes",
           remote="data-analyst", weight=1.2, transport="http_json"),
    _agent("paper-digest", "research", "openllmetry", "custom", "anthropic", (_SONNET,),
           ("fetch_arxiv",), weight=0.5, transport="http"),
    _agent("lab-notebook", "research", "otel_genai", "openai-agents-sdk", "openai", (_O4,),
           ("run_notebook",), weight=0.5, transport="grpc", environment="staging"),
    _agent("patent-scout", "research", "openinference", "crewai", "openai", (_4O,),
           ("search_patents",), weight=0.4, transport="http_json"),
    _agent("esg-reporter", "research", "otel_genai", "custom", "gemini", (_FLASH,),
           ("fetch_emissions",), weight=0.4, transport="http"),
)

# Shadow agents: nobody registered them. Three appeared this week.
UNREGISTERED: tuple[AgentSpec, ...] = (
    _agent("slack-gpt-helper", "marketing", "openlit", "custom", "openai", (_MINI,), ("post_message",),
           weight=0.6, transport="http"),
    _agent("resume-screener-poc", "people", "otel_genai", "custom", "openai", (_4O,), ("fetch_cv",),
           weight=0.4, transport="grpc", environment="development"),
    _agent("competitor-price-scraper", "sales", "openinference", "langgraph", "gemini", (_FLASH,),
           ("read_url",), weight=0.5, transport="http_json"),
    _agent("ops-copilot-poc", "it-operations", "otel_genai", "custom", "self", (_QWEN,), ("lookup_asset",),
           weight=0.4, transport="http"),
    _agent("meeting-notes-ai", "customer-service", "openllmetry", "custom", "openai", (_MINI,),
           ("fetch_recording",), weight=0.5, transport="grpc"),
    _agent("contract-diff", "legal", "otel_genai_legacy", "custom", "openai", (_4O,), ("diff_documents",),
           weight=0.3, transport="http"),
    _agent("churn-explainer", "data-platform", "openllmetry", "langgraph", "anthropic", (_SONNET,),
           ("run_sql",), weight=0.3, transport="http_json"),
    _agent("kb-autotagger", "customer-service", "openlit", "crewai", "bedrock", (_LLAMA,), ("tag_article",),
           weight=0.5, transport="grpc", active_days=(6.0, 0.0)),
    _agent("sales-call-coach", "sales", "otel_genai", "openai-agents-sdk", "openai", (_MINI,),
           ("fetch_call",), weight=0.6, transport="http", active_days=(5.0, 0.0)),
    _agent("translation-helper", "marketing", "openinference", "custom", "openai", (_MINI,),
           ("glossary_lookup",), weight=0.4, transport="http_json", active_days=(4.0, 0.0)),
)
# fmt: on


def demo_fleet(seed: int = 7) -> list[AgentSpec]:
    """The sixty agents, the same for the same seed: the seed varies hosts and versions only, so the
    registry in data/demo matches every seed."""
    rng = random.Random(seed)
    return [_deployed(rng, agent) for agent in (*_REGISTERED, *UNREGISTERED)]


def _deployed(rng: random.Random, agent: AgentSpec) -> AgentSpec:
    return replace(
        agent,
        version=f"{rng.randint(1, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        host=f"ip-10-{rng.randint(0, 31)}-{rng.randint(0, 255)}-{rng.randint(1, 254)}.ec2.internal",
    )
