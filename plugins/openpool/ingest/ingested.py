"""The ``ingested_files`` index (every file version ever read), sliced by the key's day.

Discovery compares a listing's (key, ETag) pairs with this index. Kept whole it grows by
a row per file forever and every run read all of it; sliced by the day its key names
(``YYYY-MM-DD``, or ``undated`` for a key without a time), a run reads only the days its
listed keys fall in, as the ID index is read only for its events' hours.

Older snapshots hold the index unsliced: such files are read beside the day slices (so an
old state reads correctly) and the next commit moves their rows into day slices.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import pyarrow as pa

from openpool.ingest.discovery import key_start
from openpool.ingest.slicing import many_files, split_by
from openpool.snapshots import Snapshot, Transaction
from openpool.tables import INGESTED

NAME = "ingested_files"
UNDATED = "undated"  # keys that name no time: a slice of their own
PAIR = ["source_key", "etag"]


def key_day(key: str) -> str:
    """The index slice of a key: the day of its key time, or :data:`UNDATED`."""
    start = key_start(key)
    return f"{start:%Y-%m-%d}" if start is not None else UNDATED


def key_days(keys: Iterable[str]) -> list[str]:
    """The distinct slices of ``keys``, sorted."""
    return sorted({key_day(k) for k in keys})


def day_of_each(keys: pa.Array | pa.ChunkedArray) -> pa.Array:
    return pa.array([key_day(k) for k in keys.to_pylist()], pa.string())


def _old_layout(base: Snapshot) -> bool:
    return bool(base.files(NAME, [None]))


def read_index(
    base: Snapshot | None, days: Iterable[str], columns: list[str] | None = PAIR
) -> pa.Table:
    """The index rows of the day slices ``days`` (and of any unsliced old-layout file)."""
    schema = INGESTED if columns is None else pa.schema([INGESTED.field(c) for c in columns])
    if base is None or not base.has_table(NAME):
        return schema.empty_table()
    wanted: list[str | None] = [*days, None]  # None: files from before the slicing
    return base.read(NAME, slices=wanted, schema=INGESTED, columns=columns)


def newest_key_time(base: Snapshot | None, until: datetime) -> datetime | None:
    """The newest key time at or before ``until`` the index holds, for a state that
    predates the discovery watermark; None when it holds no such key. ``until`` (the
    clock) keeps a key an orchestrator dated in the future from setting the watermark, as
    it cannot in a commit: the newest dated slices are read until one holds such a key."""
    if base is None or not base.has_table(NAME):
        return None
    days = sorted((s for s in base.slices(NAME) if s != UNDATED), reverse=True)
    for group in [[d] for d in days if d <= f"{until:%Y-%m-%d}"] or [[]]:  # [] = unsliced
        keys = read_index(base, group, ["source_key"]).column("source_key").to_pylist()
        times = [t for t in map(key_start, keys) if t is not None and t <= until]
        if times:
            return max(times)
    return None


def write_index(txn: Transaction, base: Snapshot | None, rows: pa.Table) -> None:
    """Add ``rows`` (INGESTED) to their day slices: appended as one small file per slice, a
    slice of :data:`~openpool.ingest.slicing.COMPACT_AFTER` files rewritten as one; an
    unsliced old layout is moved into day slices whole, in this same commit."""
    migrate = base is not None and _old_layout(base)
    if migrate:
        assert base is not None
        old = base.read(NAME, slices=[None], schema=INGESTED)
        rows = pa.concat_tables([old, rows.cast(INGESTED)])
        txn.replace_slice(NAME, None, INGESTED.empty_table())
    if rows.num_rows == 0:
        txn.append(NAME, INGESTED.empty_table())  # the table exists, with no rows yet
        return
    for day, part in split_by(rows, day_of_each(rows.column("source_key"))):
        if base is not None and (migrate or many_files(base, NAME, day)):
            known = base.read(NAME, slices=[day], schema=INGESTED)
            txn.replace_slice(NAME, day, pa.concat_tables([known, part.cast(INGESTED)]))
        else:
            txn.append(NAME, part, slice_=day)
