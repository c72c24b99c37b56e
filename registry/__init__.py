"""The agent registry: the system of record for agents, departments, policies and budgets.

Platform teams keep the registry as YAML next to their code (`load_paths` reads it, reporting every
problem by file, line and field); `plan_changes` diffs it against what is stored and `export_yaml`
writes it back. `match_identities` tells the jobs which registered agent each observed identity
belongs to. The SQL that stores all this lives in `warehouse.registry_store`.
"""

from registry.errors import ApplyFailed, NotFound, PlanOutdated, Problem, RegistryError, ValidationFailed
from registry.export import export_yaml
from registry.loader import YAML_SUFFIXES, load_paths, load_texts, parse_entity, read_sources
from registry.matching import (
    IDENTITY_COLUMNS,
    RESULT_COLUMNS,
    MatchedBy,
    MatchStatus,
    match_identities,
    selector_table,
)
from registry.model import (
    API_VERSION,
    KINDS,
    Agent,
    AgentSpec,
    Budget,
    BudgetPeriod,
    BudgetScope,
    BudgetSpec,
    Department,
    DepartmentSpec,
    Entity,
    Lifecycle,
    Metadata,
    Policy,
    PolicySpec,
    Registry,
    RiskTier,
    Selector,
    SelectorKey,
    ServiceSelector,
    Thresholds,
    document_data,
)
from registry.plan import (
    Action,
    Change,
    FieldChange,
    Plan,
    diff_documents,
    entity_change,
    plan_changes,
    render_plan,
)
from registry.validate import registry_problems, validate_registry

__all__ = [
    "API_VERSION",
    "IDENTITY_COLUMNS",
    "KINDS",
    "RESULT_COLUMNS",
    "YAML_SUFFIXES",
    "Action",
    "Agent",
    "AgentSpec",
    "ApplyFailed",
    "Budget",
    "BudgetPeriod",
    "BudgetScope",
    "BudgetSpec",
    "Change",
    "Department",
    "DepartmentSpec",
    "Entity",
    "FieldChange",
    "Lifecycle",
    "MatchStatus",
    "MatchedBy",
    "Metadata",
    "NotFound",
    "Plan",
    "PlanOutdated",
    "Policy",
    "PolicySpec",
    "Problem",
    "Registry",
    "RegistryError",
    "RiskTier",
    "Selector",
    "SelectorKey",
    "ServiceSelector",
    "Thresholds",
    "ValidationFailed",
    "diff_documents",
    "document_data",
    "entity_change",
    "export_yaml",
    "load_paths",
    "load_texts",
    "match_identities",
    "parse_entity",
    "plan_changes",
    "read_sources",
    "registry_problems",
    "render_plan",
    "selector_table",
    "validate_registry",
]
