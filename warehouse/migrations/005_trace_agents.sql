-- Agent activity per trace: one row per (trace, owning identity), what the inventory and the
-- findings rules read instead of scanning spans.
-- The owner of a span is the identity `analytics.attribution.owning_agents` bills it to (its agent
-- span's identity keys, else the span's own); the verdict is the registry's, as for priced calls.
-- The cost job rewrites a trace's rows here together with its priced_calls rows, in the same
-- transaction and with the same delete-then-insert, so the two tables always describe the same
-- derivation of a trace. Lists are sorted, hold no NULLs, and are empty (not NULL) when none.

CREATE TABLE trace_agents (
    trace_id            VARCHAR NOT NULL,
    day                 DATE NOT NULL,             -- UTC day of first_seen
    first_seen          TIMESTAMP_NS NOT NULL,     -- min start_time of the identity's spans in the trace
    last_seen           TIMESTAMP_NS NOT NULL,     -- max start_time
    agent_id            VARCHAR,                   -- the registered agent; NULL when unregistered or ambiguous
    match_status        VARCHAR NOT NULL,          -- registered, unregistered, ambiguous
    observed_identity   VARCHAR,                   -- the identity keys as readable text
    department_id       VARCHAR,
    cost_centre         VARCHAR,
    -- the identity keys as observed (registry.matching.IDENTITY_COLUMNS)
    credential_agent_id VARCHAR,
    gen_ai_agent_id     VARCHAR,
    main_agent_id       VARCHAR,
    agent_name          VARCHAR,
    service_namespace   VARCHAR,
    service_name        VARCHAR,
    environment         VARCHAR,
    -- activity
    spans               BIGINT NOT NULL,
    agent_spans         BIGINT NOT NULL,           -- invoke_agent spans
    model_calls         BIGINT NOT NULL,           -- as counted in priced_calls
    error_spans         BIGINT NOT NULL,           -- status error
    cost_usd            DECIMAL(38, 12),           -- sum of its priced calls; NULL when none is priced
    unpriced_calls      BIGINT NOT NULL,
    input_tokens        BIGINT NOT NULL,           -- of its model calls
    output_tokens       BIGINT NOT NULL,
    conversations       VARCHAR[] NOT NULL,        -- distinct conversation_id
    hosts               VARCHAR[] NOT NULL,        -- host_name
    services            VARCHAR[] NOT NULL,        -- "namespace/name", or "name"
    sdk_languages       VARCHAR[] NOT NULL,
    scopes              VARCHAR[] NOT NULL,        -- instrumentation scope names: they reveal the platform
    providers           VARCHAR[] NOT NULL,        -- of its model calls
    models              VARCHAR[] NOT NULL,        -- response model, else request model, of its model calls
    tools               VARCHAR[] NOT NULL,        -- tool_name of its spans
    data_sources        VARCHAR[] NOT NULL,        -- data_source_id
    endpoints           VARCHAR[] NOT NULL,        -- server_address of its model calls
    resource_keys       VARCHAR[] NOT NULL,        -- union of its resources' attribute keys
    content_captured    BOOLEAN NOT NULL,          -- any span carries prompt or response content
    sample_span_id      VARCHAR,                   -- its first agent span, else its first span
    computed_at         TIMESTAMPTZ NOT NULL
);

-- What the cost job's last successful run derived its results from: a digest of the registry's
-- documents and of the price overrides file. A different digest makes the next run a full one,
-- so a newly registered agent or a corrected price re-attributes and re-prices history.
ALTER TABLE job_state ADD COLUMN inputs_digest VARCHAR;
