-- Priced model calls and the state of the jobs that write them.
-- `priced_calls` holds one row per model call, rewritten by the cost job a whole trace at a time:
-- a trace touched by new spans has all its rows deleted and re-derived, so spans that arrive late
-- (a sub-agent's export, a retry) change the attribution without ever counting a call twice.
-- Cost is recomputed by jobs, never frozen at ingest (DESIGN "Decisions"), so every row says when
-- it was computed and from what price source.

CREATE TABLE priced_calls (
    trace_id                VARCHAR NOT NULL,
    span_id                 VARCHAR NOT NULL,
    start_time              TIMESTAMP_NS NOT NULL,
    day                     DATE NOT NULL,         -- UTC day of start_time: the grain of spend reports
    agent_id                VARCHAR,               -- the registered agent; NULL when unregistered or ambiguous
    match_status            VARCHAR NOT NULL,
    observed_identity       VARCHAR,
    department_id           VARCHAR,
    cost_centre             VARCHAR,
    provider                VARCHAR,               -- as the span named it (OTel canonical name)
    model                   VARCHAR,               -- the response model, else the request model
    priced_provider         VARCHAR,               -- what the price was looked up as (catalogue id)
    priced_model            VARCHAR,
    input_tokens            BIGINT,
    output_tokens           BIGINT,
    total_tokens            BIGINT,
    cache_read_tokens       BIGINT,
    cache_write_tokens      BIGINT,
    reasoning_tokens        BIGINT,
    cost_usd                DECIMAL(38, 12),       -- NULL when unpriced: never a silent $0
    price_source            VARCHAR NOT NULL,      -- catalogue, override, unpriced
    unpriced_reason         VARCHAR,
    reported_cost_mismatch  BOOLEAN NOT NULL,
    computed_at             TIMESTAMPTZ NOT NULL
);

-- One row per job: how far it has read (`watermark`: spans.ingest_seq) and how its last run went.
CREATE TABLE job_state (
    job                     VARCHAR PRIMARY KEY,
    watermark               BIGINT NOT NULL,
    last_run_at             TIMESTAMPTZ,
    last_duration_s         DOUBLE,
    last_error              VARCHAR                -- NULL after a successful run
);
