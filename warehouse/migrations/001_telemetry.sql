-- Raw telemetry as received over OTLP, normalised into canonical columns.
-- Every attribute, event and link an agent sent is also kept as JSON, so nothing is lost.
-- JSON is held in VARCHAR columns: the collector writes it with a JSON encoder, and the JSON type
-- would parse every value again on insert (~10 % of ingest); DuckDB's JSON functions and the
-- ->> operator read VARCHAR all the same.
-- ingest_seq is the writer's commit sequence: jobs read incrementally from a watermark on it.

CREATE TABLE spans (
    trace_id            VARCHAR NOT NULL,     -- 32 lowercase hex characters
    span_id             VARCHAR NOT NULL,     -- 16 lowercase hex characters
    parent_span_id      VARCHAR,              -- NULL for a root span
    trace_state         VARCHAR,
    flags               UINTEGER,
    name                VARCHAR NOT NULL,
    kind                VARCHAR NOT NULL,     -- unspecified, internal, server, client, producer, consumer
    start_time          TIMESTAMP_NS NOT NULL,
    end_time            TIMESTAMP_NS NOT NULL,
    duration_ns         BIGINT NOT NULL,
    status_code         VARCHAR NOT NULL,     -- unset, ok, error
    status_message      VARCHAR,
    -- resource and scope
    service_name        VARCHAR,
    service_namespace   VARCHAR,
    service_version     VARCHAR,
    service_instance_id VARCHAR,
    host_name           VARCHAR,
    environment         VARCHAR,
    sdk_language        VARCHAR,
    scope_name          VARCHAR,
    scope_version       VARCHAR,
    -- GenAI canonical columns (see shared CONVENTIONS.md; first present attribute wins)
    convention          VARCHAR,              -- otel_genai, otel_genai_legacy, openinference, openllmetry, openlit
    operation           VARCHAR,
    provider            VARCHAR,
    request_model       VARCHAR,
    response_model      VARCHAR,
    input_tokens        BIGINT,
    output_tokens       BIGINT,
    total_tokens        BIGINT,
    cache_read_tokens   BIGINT,
    cache_write_tokens  BIGINT,
    reasoning_tokens    BIGINT,
    reported_cost_usd   DOUBLE,
    agent_id            VARCHAR,
    agent_name          VARCHAR,
    agent_version       VARCHAR,
    tool_name           VARCHAR,
    tool_type           VARCHAR,
    tool_call_id        VARCHAR,
    conversation_id     VARCHAR,
    user_id             VARCHAR,
    data_source_id      VARCHAR,
    workflow_name       VARCHAR,
    error_type          VARCHAR,
    server_address      VARCHAR,
    server_port         BIGINT,
    -- lossless remainder (JSON text)
    attributes          VARCHAR,
    resource_attributes VARCHAR,
    scope_attributes    VARCHAR,
    events              VARCHAR,
    links               VARCHAR,
    dropped_attributes_count UINTEGER,
    dropped_events_count     UINTEGER,
    dropped_links_count      UINTEGER,
    schema_url          VARCHAR,
    received_at         TIMESTAMPTZ NOT NULL,
    ingest_seq          BIGINT NOT NULL
);

CREATE TABLE metric_points (
    record_hash         VARCHAR NOT NULL,     -- digest of resource + scope + metric + point: retry dedupe key
    time                TIMESTAMP_NS NOT NULL,
    start_time          TIMESTAMP_NS,
    service_name        VARCHAR,
    service_namespace   VARCHAR,
    environment         VARCHAR,
    scope_name          VARCHAR,
    scope_version       VARCHAR,
    metric_name         VARCHAR NOT NULL,
    description         VARCHAR,
    unit                VARCHAR,
    metric_type         VARCHAR NOT NULL,     -- gauge, sum, histogram, exponential_histogram, summary
    temporality         VARCHAR,              -- delta, cumulative (sum and histograms)
    is_monotonic        BOOLEAN,
    value_double        DOUBLE,               -- gauge and sum points
    value_int           BIGINT,
    count               UBIGINT,              -- histogram, exponential histogram, summary
    sum                 DOUBLE,
    min                 DOUBLE,
    max                 DOUBLE,
    bucket_counts       UBIGINT[],
    explicit_bounds     DOUBLE[],
    exponential         VARCHAR,              -- scale, zero_count, positive/negative buckets
    quantiles           VARCHAR,              -- summary quantile values
    exemplars           VARCHAR,
    flags               UINTEGER,
    attributes          VARCHAR,
    resource_attributes VARCHAR,
    scope_attributes    VARCHAR,
    received_at         TIMESTAMPTZ NOT NULL,
    ingest_seq          BIGINT NOT NULL
);

CREATE TABLE log_records (
    record_hash         VARCHAR NOT NULL,     -- digest of resource + scope + record: retry dedupe key
    time                TIMESTAMP_NS NOT NULL, -- time_unix_nano, or observed time when that is unset
    observed_time       TIMESTAMP_NS,
    service_name        VARCHAR,
    service_namespace   VARCHAR,
    environment         VARCHAR,
    scope_name          VARCHAR,
    scope_version       VARCHAR,
    severity_number     INTEGER,
    severity_text       VARCHAR,
    event_name          VARCHAR,
    body                VARCHAR,              -- JSON text of the AnyValue
    trace_id            VARCHAR,
    span_id             VARCHAR,
    flags               UINTEGER,
    attributes          VARCHAR,
    resource_attributes VARCHAR,
    scope_attributes    VARCHAR,
    dropped_attributes_count UINTEGER,
    received_at         TIMESTAMPTZ NOT NULL,
    ingest_seq          BIGINT NOT NULL
);

-- Items refused at ingest (partial success), so `muster status` can show rejects and why.
CREATE TABLE ingest_rejects (
    received_at         TIMESTAMPTZ NOT NULL,
    signal              VARCHAR NOT NULL,     -- traces, metrics, logs
    service_name        VARCHAR,
    rejected            BIGINT NOT NULL,
    reason              VARCHAR NOT NULL,
    ingest_seq          BIGINT NOT NULL
);
