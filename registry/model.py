"""What a registry is made of: departments, agents, policies and budgets, as strict pydantic models.

Every entity is a document `{apiVersion: muster/v1, kind, metadata: {id, labels}, spec}`. Keys are
camelCase in YAML and JSON (`costCentre`) and snake_case in Python (`cost_centre`); unknown keys are
refused, so a typo is an error rather than a silently ignored setting.

An optional list left out (`allowedTools` absent) means "not declared, not restricted"; an empty
list (`allowedTools: []`) means "none allowed". The jobs that check drift rely on that difference.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

API_VERSION = "muster/v1"

_ID = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _checked_id(value: str) -> str:
    if not _ID.fullmatch(value):  # (`$` alone also matches before a final newline)
        raise ValueError(
            f"{value!r} is not a valid id: use lowercase letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit, at most 128 characters"
        )
    return value


def _checked_label_key(value: str) -> str:
    if not _LABEL_KEY.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid label key: use letters, digits, '.', '_', '-' and '/'")
    return value


def _checked_currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise ValueError(f"{value!r} is not a currency: use a three-letter ISO 4217 code such as USD or EUR")
    return value


def _checked_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _checked_percentages(values: list[float]) -> list[float]:
    if values != sorted(set(values)):
        raise ValueError("list each threshold once, in increasing order, e.g. [50, 80, 100]")
    return values


Id = Annotated[str, AfterValidator(_checked_id)]
LabelKey = Annotated[str, AfterValidator(_checked_label_key)]
Currency = Annotated[str, AfterValidator(_checked_currency)]
Text = Annotated[str, AfterValidator(_checked_text)]
Pattern = Text  # an fnmatch-style pattern such as "gpt-4o*" or "claude-*-sonnet*"


def matches_any(value: str, patterns: Iterable[str]) -> bool:
    """Whether `value` matches any `Pattern`, ignoring case (model names vary in case)."""
    lowered = value.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Percent = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]


class Lifecycle(StrEnum):
    PROTOTYPE = "prototype"
    PILOT = "pilot"
    PRODUCTION = "production"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


class RiskTier(StrEnum):
    UNASSESSED = "unassessed"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class BudgetPeriod(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"


class SelectorKey(StrEnum):
    """The identity key a selector matches, strongest first after the ingest credential."""

    AGENT_ID = "agent_id"  # gen_ai.agent.id on the span, then resource gen_ai.main_agent.id
    AGENT_NAME = "agent_name"  # gen_ai.agent.name, OpenInference agent.name, Traceloop entity name
    SERVICE = "service"  # resource service.namespace + service.name


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
    )


class Metadata(_Strict):
    id: Id
    labels: dict[LabelKey, str] = Field(default_factory=dict)


# Departments


class DepartmentSpec(_Strict):
    name: Text
    cost_centre: Text | None = None
    monthly_budget: Amount | None = None
    currency: Currency = "USD"
    finance_contact: Text | None = None  # a person or a shared mailbox


# Agents


class ServiceSelector(_Strict):
    """Resource `service.name`, and `service.namespace` when the agent sets one.

    Without `namespace` the selector matches only telemetry that carries no service.namespace,
    so that a namespace always tells two same-named services apart.
    """

    namespace: Text | None = None
    name: Text


class Selector(_Strict):
    """One observed identity that belongs to an agent: exactly one key, optionally one environment."""

    agent_id: Text | None = None
    agent_name: Text | None = None
    service: ServiceSelector | None = None
    environment: Text | None = None  # narrows the selector to telemetry from this environment

    @model_validator(mode="after")
    def _one_key(self) -> Selector:
        keys = {"agentId": self.agent_id, "agentName": self.agent_name, "service": self.service}
        present = [alias for alias, value in keys.items() if value is not None]
        if len(present) != 1:
            raise ValueError(
                "a selector names exactly one of agentId, agentName or service"
                + (f" (this one names {' and '.join(present)}: make one selector of each)" if present else "")
            )
        return self

    @property
    def key(self) -> SelectorKey:
        if self.agent_id is not None:
            return SelectorKey.AGENT_ID
        if self.agent_name is not None:
            return SelectorKey.AGENT_NAME
        return SelectorKey.SERVICE

    @property
    def value(self) -> str:
        """The observed value this selector matches (the service name for a service selector)."""
        return self.agent_id or self.agent_name or self.service.name  # type: ignore[union-attr]

    @property
    def namespace(self) -> str | None:
        return self.service.namespace if self.service else None


class AgentSpec(_Strict):
    name: Text  # display name
    description: str | None = None  # what it does and its intended purpose
    owner: Text  # the accountable person
    team: Text | None = None
    department: Id
    cost_centre: Text | None = None  # overrides the department's
    platform: Text | None = None  # openai-agents-sdk, langgraph, crewai, bedrock, custom, ...
    lifecycle: Lifecycle
    risk_tier: RiskTier = RiskTier.UNASSESSED
    environments: list[Text] | None = None
    allowed_providers: list[Pattern] | None = None
    allowed_models: list[Pattern] | None = None
    allowed_tools: list[Text] | None = None
    allowed_data_sources: list[Text] | None = None
    monthly_budget: Amount | None = None  # in the department's currency
    review_due: date | None = None
    aliases: list[Id] = Field(default_factory=list)  # former ids: renamed or merged agents
    match: list[Selector] = Field(default_factory=list)


# Policies


class PolicySpec(_Strict):
    """Rules for every agent (no `department`) or for one department's agents.

    A field left out says nothing: a department's policy overrides only what it sets.
    """

    department: Id | None = None
    description: str | None = None
    approved_providers: list[Pattern] | None = None
    approved_endpoints: list[Pattern] | None = (
        None  # LLM endpoints (server.address), e.g. "*.openai.azure.com"
    )
    forbidden_models: list[Pattern] | None = None
    required_resource_attributes: list[Text] | None = None
    max_cost_per_call: Amount | None = None
    currency: Currency = "USD"
    prototypes_may_serve_production: bool | None = None
    allow_content_capture: bool | None = None  # prompts and responses kept in telemetry


# Budgets


class BudgetScope(_Strict):
    """What a budget covers: every field given must hold (provider openai within cost centre X)."""

    department: Id | None = None
    cost_centre: Text | None = None
    agent: Id | None = None
    provider: Pattern | None = None
    model: Pattern | None = None

    @model_validator(mode="after")
    def _not_everything(self) -> BudgetScope:
        if all(value is None for value in self.model_dump().values()):
            raise ValueError(
                "a budget scope names at least one of department, costCentre, agent, provider, model"
            )
        return self


def _default_thresholds() -> list[float]:
    return [50, 80, 100]


class Thresholds(_Strict):
    """Percentages of the amount at which spend alerts fire."""

    actual: Annotated[list[Percent], AfterValidator(_checked_percentages)] = Field(
        default_factory=_default_thresholds
    )
    forecast: Annotated[list[Percent], AfterValidator(_checked_percentages)] = Field(
        default_factory=_default_thresholds
    )


class BudgetSpec(_Strict):
    scope: BudgetScope
    amount: Amount
    currency: Currency = "USD"
    period: BudgetPeriod = BudgetPeriod.MONTHLY
    thresholds: Thresholds = Field(default_factory=Thresholds)
    description: str | None = None


# Documents


class _Document(_Strict):
    api_version: Literal["muster/v1"] = API_VERSION
    metadata: Metadata

    KIND: ClassVar[str]

    @property
    def id(self) -> str:
        return self.metadata.id


class Department(_Document):
    KIND: ClassVar[str] = "Department"
    kind: Literal["Department"] = "Department"
    spec: DepartmentSpec


class Agent(_Document):
    KIND: ClassVar[str] = "Agent"
    kind: Literal["Agent"] = "Agent"
    spec: AgentSpec


class Policy(_Document):
    KIND: ClassVar[str] = "Policy"
    kind: Literal["Policy"] = "Policy"
    spec: PolicySpec


class Budget(_Document):
    KIND: ClassVar[str] = "Budget"
    kind: Literal["Budget"] = "Budget"
    spec: BudgetSpec


Entity = Department | Agent | Policy | Budget

# In dependency order: what agents and budgets refer to comes first (plans, exports, applies).
KINDS: dict[str, type[Entity]] = {model.KIND: model for model in (Department, Policy, Budget, Agent)}
_FIELD_OF_KIND = {"Department": "departments", "Policy": "policies", "Budget": "budgets", "Agent": "agents"}


@dataclass(frozen=True)
class Registry:
    """A whole registry, each kind keyed by id. Two registries are equal when every entity is."""

    departments: Mapping[str, Department] = field(default_factory=dict)
    policies: Mapping[str, Policy] = field(default_factory=dict)
    budgets: Mapping[str, Budget] = field(default_factory=dict)
    agents: Mapping[str, Agent] = field(default_factory=dict)

    __hash__ = None  # type: ignore[assignment]  # mappings inside: compare, never hash

    @classmethod
    def of(cls, entities: Iterable[Entity]) -> Registry:
        """A registry of these entities; a later entity with the same kind and id replaces an earlier."""
        by_kind: dict[str, dict[str, Entity]] = {kind: {} for kind in KINDS}
        for entity in entities:
            by_kind[entity.kind][entity.id] = entity
        return cls(**{_FIELD_OF_KIND[kind]: dict(sorted(found.items())) for kind, found in by_kind.items()})

    def of_kind(self, kind: str) -> Mapping[str, Entity]:
        return getattr(self, _FIELD_OF_KIND[kind])

    def entities(self) -> Iterator[Entity]:
        """Every entity, departments first and agents last, each kind by id."""
        for kind in KINDS:
            mapping = self.of_kind(kind)
            yield from (mapping[key] for key in sorted(mapping))

    def get(self, kind: str, entity_id: str) -> Entity | None:
        return self.of_kind(kind).get(entity_id)

    def alias_targets(self) -> dict[str, str]:
        """Every former agent id (alias) → the id of the agent that carries it now."""
        return {alias: agent.id for agent in self.agents.values() for alias in agent.spec.aliases}

    def resolve_agent_id(self, agent_id: str) -> str | None:
        """The current id for an agent id or a former one; None when neither is registered."""
        if agent_id in self.agents:
            return agent_id
        return self.alias_targets().get(agent_id)

    def __len__(self) -> int:
        return sum(len(self.of_kind(kind)) for kind in KINDS)


def parse_entity_data(data: Mapping[str, Any]) -> Entity:
    """An entity from already-parsed data with a known `kind` (raises pydantic's ValidationError).

    Only the camelCase keys of the documents are accepted, as in YAML files.
    """
    model = KINDS[data["kind"]]
    return model.model_validate(data, by_alias=True, by_name=False)


def document_data(entity: Entity) -> dict[str, Any]:
    """The JSON-ready document of an entity as the store keeps it: every field set, unset ones left out.

    Defaults other than "unset" are written out, so a later change of a default cannot silently
    change what was stored.
    """
    return entity.model_dump(mode="json", by_alias=True, exclude_none=True)
