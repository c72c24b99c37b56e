-- The agent registry: departments, agents, policies and budgets, and the audit trail of every change.
-- Each entity's validated document is kept whole as JSON text (`document`, the source of truth, read
-- back by registry_store.load_registry); the other columns are copies of the fields that jobs and
-- queries filter and join on. Agent selectors and aliases get tables of their own so that jobs can
-- join telemetry to agents in SQL. No foreign keys: the registry checks references itself, across
-- the whole registry, before a change commits, and reports them as problems a person can fix.

CREATE TABLE departments (
    id                  VARCHAR PRIMARY KEY,
    name                VARCHAR NOT NULL,
    cost_centre         VARCHAR,
    monthly_budget      DOUBLE,
    currency            VARCHAR NOT NULL,
    finance_contact     VARCHAR,
    document            VARCHAR NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    updated_by          VARCHAR NOT NULL
);

CREATE TABLE agents (
    id                  VARCHAR PRIMARY KEY,  -- immutable; a rename is a new agent with the old id as alias
    name                VARCHAR NOT NULL,
    department_id       VARCHAR NOT NULL,
    owner               VARCHAR NOT NULL,
    team                VARCHAR,
    platform            VARCHAR,
    lifecycle           VARCHAR NOT NULL
        CHECK (lifecycle IN ('prototype', 'pilot', 'production', 'deprecated', 'retired')),
    risk_tier           VARCHAR NOT NULL,
    cost_centre         VARCHAR,              -- the agent's override; see agent_costing for the effective one
    monthly_budget      DOUBLE,               -- in the department's currency
    review_due          DATE,
    document            VARCHAR NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    updated_by          VARCHAR NOT NULL
);

-- One row per identity an agent claims. `implicit` rows are its own id and former ids (key_kind
-- agent_id), which every agent matches without a selector saying so.
CREATE TABLE agent_selectors (
    agent_id            VARCHAR NOT NULL,
    position            INTEGER,              -- index in spec.match; NULL for implicit rows
    key_kind            VARCHAR NOT NULL CHECK (key_kind IN ('agent_id', 'agent_name', 'service')),
    service_namespace   VARCHAR,              -- service selectors only
    key                 VARCHAR NOT NULL,     -- the agent id, agent name or service.name matched
    environment         VARCHAR,              -- NULL: every environment
    implicit            BOOLEAN NOT NULL
);

-- Former ids of renamed or merged agents → the agent that carries them now.
CREATE TABLE agent_aliases (
    alias               VARCHAR PRIMARY KEY,
    agent_id            VARCHAR NOT NULL
);

CREATE TABLE policies (
    id                  VARCHAR PRIMARY KEY,
    department_id       VARCHAR,              -- NULL: the organisation-wide policy
    document            VARCHAR NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    updated_by          VARCHAR NOT NULL
);

CREATE TABLE budgets (
    id                  VARCHAR PRIMARY KEY,
    amount              DOUBLE NOT NULL,
    currency            VARCHAR NOT NULL,
    period              VARCHAR NOT NULL,     -- monthly, quarterly, annual
    department_id       VARCHAR,              -- scope; every scope field given must hold
    cost_centre         VARCHAR,
    agent_id            VARCHAR,
    provider            VARCHAR,              -- fnmatch-style pattern
    model               VARCHAR,              -- fnmatch-style pattern
    document            VARCHAR NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    updated_by          VARCHAR NOT NULL
);

CREATE SEQUENCE registry_audit_seq;

-- Every change to the registry, written in the same transaction as the change itself.
CREATE TABLE registry_audit (
    seq                 BIGINT PRIMARY KEY DEFAULT nextval('registry_audit_seq'),
    changed_at          TIMESTAMPTZ NOT NULL,  -- `at` is a reserved word in DuckDB
    actor               VARCHAR NOT NULL,     -- who: a token's name, `local`, a CI job
    action              VARCHAR NOT NULL CHECK (action IN ('add', 'change', 'retire', 'remove')),
    kind                VARCHAR NOT NULL,     -- Department, Agent, Policy, Budget
    id                  VARCHAR NOT NULL,
    before              VARCHAR,              -- the document before (JSON); NULL when added
    after               VARCHAR,              -- the document after (JSON); NULL when removed
    change_id           VARCHAR NOT NULL      -- shared by every row of one apply or one edit
);

CREATE INDEX registry_audit_entity ON registry_audit (kind, id);

-- The cost centre and currency each agent's spend is booked to.
CREATE VIEW agent_costing AS
SELECT a.id AS agent_id, a.department_id, coalesce(a.cost_centre, d.cost_centre) AS cost_centre,
       d.currency, a.monthly_budget
FROM agents a LEFT JOIN departments d ON d.id = a.department_id;
