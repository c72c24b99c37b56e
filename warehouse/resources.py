"""Resource attributes stored once per resource: the key of a resource's text, and what the writer knows.

Rows of `spans`, `metric_points` and `log_records` carry `resource_id`, a content key of their
resource's attributes JSON, and the text lives once in `resources` (migration 009). The key is the
first 8 bytes of the text's MD5 digest, big-endian — the same value SQL computes as
`('0x' || md5(text)[1:16])::UBIGINT`, which the migration used for existing rows. It is not a
security boundary: 64 bits make an accidental collision ~10^-8 likely even with a million
resources, and the writer checks every key it has not itself stored, so a collision fails the
write instead of pointing rows at another resource's text.
"""

from __future__ import annotations

import hashlib

import duckdb
import pyarrow as pa

from warehouse.errors import WarehouseError

COLUMN = "resource_attributes"
KEY = "resource_id"
# Keys the writer remembers as stored (~150 bytes each). A fleet has a resource per process
# (service.instance.id), so restarts add new ones; past the limit the memory starts afresh and
# the next commits insert-or-ignore the resources they use again.
REMEMBERED = 100_000

Unseen = dict[int, tuple[bytes, str]]  # key → (full digest, text) of resources not known stored


def resource_key(text: str) -> tuple[int, bytes]:
    """The key of a resource's attributes text, and its full MD5 digest (to tell a collision)."""
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big"), digest


class KnownResources:
    """The resource keys known to be stored, with their digests; the writer thread's alone."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self._stored: dict[int, bytes] = {}
        self._limit = limit

    def keyed(self, rows: pa.Table, unseen: Unseen) -> pa.Table:
        """`rows` with `resource_id` in place of `resource_attributes`; resources not known to be
        stored are added to `unseen`. Tables without the column pass through."""
        index = rows.schema.get_field_index(COLUMN)
        if index < 0:
            return rows
        keys = [self._keys_of(chunk, unseen) for chunk in rows.column(index).chunks]
        return rows.set_column(index, KEY, pa.chunked_array(keys, pa.uint64()))

    def _keys_of(self, chunk: pa.Array, unseen: Unseen) -> pa.Array:
        # Texts repeat on every row of a resource: key the dictionary's few values, then take.
        if not pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_encode()
        keys = [None if text is None else self._key(text, unseen) for text in chunk.dictionary.to_pylist()]
        return pa.array(keys, pa.uint64()).take(chunk.indices)

    def _key(self, text: str, unseen: Unseen) -> int:
        key, digest = resource_key(text)
        known = self._stored.get(key) or unseen.get(key, (None,))[0]
        if known is None:
            unseen[key] = (digest, text)
        elif known != digest:
            raise WarehouseError(f"two resources share the key {key}; the data was not stored")
        return key

    def store(self, con: duckdb.DuckDBPyConnection, unseen: Unseen) -> None:
        """Insert the `unseen` resources (in the caller's transaction), refusing a key collision."""
        if not unseen:
            return
        table = pa.table(
            {
                KEY: pa.array(list(unseen), pa.uint64()),
                COLUMN: pa.array([text for _, text in unseen.values()], pa.string()),
            }
        )
        con.register("incoming_resources", table)
        try:
            con.execute(
                "INSERT OR IGNORE INTO resources"
                " SELECT resource_id, resource_attributes FROM incoming_resources"
            )
            clashes = con.execute(
                "SELECT count(*) FROM incoming_resources i JOIN resources r USING (resource_id)"
                " WHERE r.resource_attributes <> i.resource_attributes"
            ).fetchall()[0][0]
        finally:
            con.unregister("incoming_resources")
        if clashes:
            raise WarehouseError(
                f"{clashes} resource(s) share a key with another resource; the data was not stored"
            )

    def remember(self, unseen: Unseen) -> None:
        """Record `unseen` as stored, once their transaction has committed."""
        if len(self._stored) + len(unseen) > self._limit:
            self._stored.clear()
        self._stored.update((key, digest) for key, (digest, _) in unseen.items())
