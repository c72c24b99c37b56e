-- Resource attributes stored once per resource instead of on every row, and span attributes
-- compressed with zstd. Both make the one writer cheaper per span (docs/benchmarks.md, Ingest).
--
-- Every span, metric point and log record of a resource carried the same ~450-byte JSON text.
-- Rows now carry `resource_id`, the content key of that text: the first 8 bytes of its MD5 digest,
-- big-endian, as an unsigned integer (in SQL: ('0x' || md5(text)[1:16])::UBIGINT; in Python:
-- warehouse.resources.resource_key). A key is a pure function of the text, so writing one needs no
-- lookup; the writer inserts a resource in the same transaction as the first rows that use it and
-- checks that a key it did not store itself holds the same text, so a collision fails the write
-- instead of mixing up two resources. Readers get the text back as `resource_attributes` with
-- `LEFT JOIN resources USING (resource_id)`. Retention deletes rows, never resources: one that no
-- row refers to stays (a few hundred bytes), and the writer relies on a key it stored staying.
--
-- `spans.attributes` (~600 bytes of JSON a span, most of what a span stores) is compressed with
-- zstd instead of DuckDB's default dictionary+FSST: the checkpoint that compresses it costs less
-- CPU and the file is ~3x smaller. DuckDB cannot change a column's compression in place, so
-- `spans` is rebuilt once here (with the new resource_id column in the same pass).

CREATE TABLE resources (
    resource_id         UBIGINT PRIMARY KEY,
    resource_attributes VARCHAR NOT NULL      -- JSON text, as the collector wrote it
);

INSERT INTO resources
SELECT DISTINCT ('0x' || md5(resource_attributes)[1:16])::UBIGINT, resource_attributes
FROM (
    SELECT resource_attributes FROM spans
    UNION SELECT resource_attributes FROM metric_points
    UNION SELECT resource_attributes FROM log_records
)
WHERE resource_attributes IS NOT NULL;

CREATE TABLE spans_rebuilt (
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
    -- lossless remainder (JSON text); attributes compressed with zstd (see above)
    attributes          VARCHAR USING COMPRESSION zstd,
    resource_id         UBIGINT,              -- resources.resource_id: the resource's attributes
    scope_attributes    VARCHAR,
    events              VARCHAR,
    links               VARCHAR,
    dropped_attributes_count UINTEGER,
    dropped_events_count     UINTEGER,
    dropped_links_count      UINTEGER,
    schema_url          VARCHAR,
    received_at         TIMESTAMPTZ NOT NULL,
    ingest_seq          BIGINT NOT NULL,
    credential_agent_id VARCHAR               -- 003_access
);

INSERT INTO spans_rebuilt BY NAME
SELECT * EXCLUDE (resource_attributes), ('0x' || md5(resource_attributes)[1:16])::UBIGINT AS resource_id
FROM spans;
DROP TABLE spans;
ALTER TABLE spans_rebuilt RENAME TO spans;

ALTER TABLE metric_points ADD COLUMN resource_id UBIGINT;
UPDATE metric_points SET resource_id = ('0x' || md5(resource_attributes)[1:16])::UBIGINT;
ALTER TABLE metric_points DROP COLUMN resource_attributes;

ALTER TABLE log_records ADD COLUMN resource_id UBIGINT;
UPDATE log_records SET resource_id = ('0x' || md5(resource_attributes)[1:16])::UBIGINT;
ALTER TABLE log_records DROP COLUMN resource_attributes;
