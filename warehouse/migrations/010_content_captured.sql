-- Whether a span carries prompt or response content, decided by the collector at ingest
-- (collector.normalise: _CONTENT_KEY, _CONTENT_EVENT), where each attribute key is decoded anyway.
-- The cost job used to decide it from the attributes' JSON text on every run: reading and searching
-- that text was about a third of its read (docs/benchmarks.md, Cost job).
--
-- Spans stored before this migration are decided here once, from their JSON text in orjson's
-- compact form: a content key where a key starts (after `{` or `,`, which an escaped quote inside a
-- string value cannot give), on the span or inside one of its events, or an event named as content.

ALTER TABLE spans ADD COLUMN content_captured BOOLEAN DEFAULT false;
ALTER TABLE spans ALTER COLUMN content_captured SET NOT NULL;

UPDATE spans SET content_captured = true
WHERE regexp_matches(
        attributes,
        '[{,]"(gen_ai\.(input|output)\.messages"|gen_ai\.system_instructions"|gen_ai\.(prompt|completion)(\.[0-9][^"]*)?"|llm\.(input|output)_messages[."]|(input|output)\.value"|traceloop\.entity\.(input|output)")'
    )
    OR regexp_matches(
        events,
        '"name":"(gen_ai\.content\.(prompt|completion)|gen_ai\.[a-z_]+\.message|gen_ai\.choice)"'
    )
    OR regexp_matches(
        events,
        '[{,]"(gen_ai\.(input|output)\.messages"|gen_ai\.system_instructions"|gen_ai\.(prompt|completion)(\.[0-9][^"]*)?"|llm\.(input|output)_messages[."]|(input|output)\.value"|traceloop\.entity\.(input|output)")'
    );
