-- Who may read and change what: API tokens with a role and an optional scope, and per-agent
-- ingest credentials. Only SHA-256 digests of the secrets are stored; the secrets are shown once.

CREATE TABLE api_tokens (
    id              VARCHAR PRIMARY KEY,      -- public handle, e.g. tok_3fa9c2d1, for list and revoke
    name            VARCHAR,
    secret_sha256   VARCHAR NOT NULL UNIQUE,
    role            VARCHAR NOT NULL,         -- admin, platform, finance, owner, viewer
    department_id   VARCHAR,                  -- scope: only this department's data
    agent_id        VARCHAR,                  -- scope: only this agent's data (owner tokens)
    created_at      TIMESTAMPTZ NOT NULL,
    created_by      VARCHAR NOT NULL,
    revoked_at      TIMESTAMPTZ
);

CREATE TABLE ingest_credentials (
    id              VARCHAR PRIMARY KEY,      -- public handle, e.g. cred_51b0e7aa
    agent_id        VARCHAR NOT NULL,         -- every export sent with it is this agent's, for certain
    name            VARCHAR,
    secret_sha256   VARCHAR NOT NULL UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL,
    created_by      VARCHAR NOT NULL,
    revoked_at      TIMESTAMPTZ
);

-- The agent bound to the ingest credential an export was sent with (DESIGN: agent identity, 1).
ALTER TABLE spans ADD COLUMN credential_agent_id VARCHAR;
ALTER TABLE metric_points ADD COLUMN credential_agent_id VARCHAR;
ALTER TABLE log_records ADD COLUMN credential_agent_id VARCHAR;
