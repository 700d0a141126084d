"""How state tables are cut into snapshot slices, and when a slice is compacted.

A commit appends one small file per slice it touches; a slice that collected
:data:`COMPACT_AFTER` of them is rewritten as one, so a manifest (and every read of it)
stays the same size at any length of history.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpool.snapshots import Snapshot

# ingested_files gets one small file per commit; once a version has this many, the commit
# rewrites them as one, so reading it costs the same at any length of history.
COMPACT_AFTER = 16


def split_by(table: pa.Table, labels: pa.Array | pa.ChunkedArray) -> list[tuple[str, pa.Table]]:
    """``table``'s rows grouped by ``labels`` (one per row), in label order, each group in
    the table's order: one stable sort, so a batch spanning many slices costs linear time."""
    if table.num_rows == 0:
        return []
    enc = pc.dictionary_encode(labels)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks() if enc.num_chunks != 1 else enc.chunk(0)
    names = enc.dictionary.to_pylist()
    if len(names) == 1:
        return [(names[0], table)]
    codes = enc.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(names))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ordered = table.take(pa.array(order))
    return sorted(
        (names[i], ordered.slice(int(starts[i]), int(counts[i])))
        for i in range(len(names))
        if counts[i]
    )


def many_files(base: Snapshot | None, name: str, label: str) -> bool:
    """Whether a slice holds so many small files that this commit rewrites it as one (one
    file per commit would otherwise grow every manifest without end)."""
    return base is not None and len(base.files(name, [label])) >= COMPACT_AFTER


def compacted(
    base: Snapshot | None, name: str, label: str, new: pa.Table, schema: pa.Schema
) -> pa.Table:
    """``new``, preceded by the slice's rows when :func:`many_files` says to rewrite it."""
    if base is None or not many_files(base, name, label):
        return new
    return pa.concat_tables([base.read(name, slices=[label], schema=schema), new.cast(schema)])
