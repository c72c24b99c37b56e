-- Resource attributes stored once per resource instead of on every row.
-- Every span, metric point and log record of a resource carried the same ~450-byte JSON text; it
-- was a fifth of what the writer wrote per span (WAL and checkpoint). Rows now carry `resource_id`,
-- the content key of that text: the first 8 bytes of its MD5 digest, big-endian, as an unsigned
-- integer (in SQL: ('0x' || md5(text)[1:16])::UBIGINT; in Python: warehouse.resources.resource_key).
-- A key is a pure function of the text, so no lookup is needed to write one; the writer inserts a
-- resource in the same transaction as the first rows that use it and checks that a key it did not
-- create holds the same text, so a collision fails the write instead of mixing up two resources.
-- Readers get the text back as `resource_attributes` with `LEFT JOIN resources USING (resource_id)`.
-- Retention deletes rows, never resources: a resource no row refers to stays (a few hundred bytes),
-- and the writer may rely on a key it has seen stored still being there.

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

ALTER TABLE spans ADD COLUMN resource_id UBIGINT;
UPDATE spans SET resource_id = ('0x' || md5(resource_attributes)[1:16])::UBIGINT;
ALTER TABLE spans DROP COLUMN resource_attributes;

ALTER TABLE metric_points ADD COLUMN resource_id UBIGINT;
UPDATE metric_points SET resource_id = ('0x' || md5(resource_attributes)[1:16])::UBIGINT;
ALTER TABLE metric_points DROP COLUMN resource_attributes;

ALTER TABLE log_records ADD COLUMN resource_id UBIGINT;
UPDATE log_records SET resource_id = ('0x' || md5(resource_attributes)[1:16])::UBIGINT;
ALTER TABLE log_records DROP COLUMN resource_attributes;
