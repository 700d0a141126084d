"""Reading the ledger's jobs for performance: checked files, few columns, strings as codes.

"All time" is exact, so a refresh reads every job of the partition; this keeps that read
lean. Each data file is checked against its manifest entry (size and SHA-256, as every
snapshot read is), then only the needed columns are decoded, string columns as Parquet
dictionaries turned into small integer codes (no per-row strings). Which worker each AI
job was credited to is found by :mod:`.credits`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from openpool.errors import CorruptDataFile, MissingDataFile, ObjectNotFound
from openpool.snapshots import DataFile, Snapshot
from openpool.snapshots.parquet import arrow_reader

DAY = 86_400
_EPOCH = date(1970, 1, 1)
_SECONDS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass
class Checked:
    """A data file whose bytes matched its manifest entry, ready to decode."""

    uri: str
    parquet: pq.ParquetFile
    names: list[str]  # its columns

    def read(self, columns: list[str]) -> pa.Table:
        """The ``columns`` the file has (a missing one is left out: null to readers)."""
        try:
            return self.parquet.read(
                columns=[c for c in columns if c in self.names], use_threads=False
            )
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise CorruptDataFile(self.uri, f"not a readable Parquet file: {exc}") from None


def open_checked(snap: Snapshot, f: DataFile, dictionary: Iterable[str] = ()) -> Checked:
    """One data file, after the manifest's size/hash check (columns in ``dictionary`` are
    read dictionary-encoded, as Parquet stores them)."""
    store = snap.snapshots.store
    key = snap.snapshots.prefix + f.path
    uri = store.url(key)
    try:
        data = store.get(key)
    except ObjectNotFound:
        raise MissingDataFile(uri, snap.version) from None
    if len(data) != f.size:
        raise CorruptDataFile(uri, f"size is {len(data)} bytes, manifest says {f.size}")
    if hashlib.sha256(data).hexdigest() != f.sha256:
        raise CorruptDataFile(uri, "SHA-256 does not match the manifest")
    try:
        pf = pq.ParquetFile(arrow_reader(data), read_dictionary=list(dictionary))
        return Checked(uri, pf, pf.schema_arrow.names)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptDataFile(uri, f"not a readable Parquet file: {exc}") from None


def read_checked(
    snap: Snapshot, f: DataFile, columns: list[str], dictionary: Iterable[str] = ()
) -> pa.Table:
    """``columns`` of one data file (those it has), after the manifest's size/hash check."""
    return open_checked(snap, f, dictionary).read(columns)


def constant(f: Checked, name: str) -> str | None:
    """The one string column ``name`` holds in every row, by the file's statistics.

    ``None`` when the statistics do not prove it (absent, nulls, two values, or long
    values a writer might have truncated).
    """
    md = f.parquet.metadata
    if name not in f.names or md.num_rows == 0:
        return None
    j = f.names.index(name)
    value = None
    for i in range(md.num_row_groups):
        col = md.row_group(i).column(j)
        st = col.statistics
        if (
            col.path_in_schema != name
            or st is None
            or not st.has_min_max
            or not st.has_null_count
            or st.null_count != 0
            or st.min != st.max
            or not isinstance(st.min, str)
            or len(st.min) > 32
            or (value is not None and st.min != value)
        ):
            return None
        value = st.min
    return value


def no_nulls(f: Checked, name: str) -> bool:
    """Whether the file's statistics show column ``name`` to have no nulls."""
    md = f.parquet.metadata
    if name not in f.names:
        return False
    j = f.names.index(name)
    for i in range(md.num_row_groups):
        st = md.row_group(i).column(j).statistics
        if st is None or not st.has_null_count or st.null_count != 0:
            return False
    return True


def stat_seconds(f: DataFile) -> tuple[int, int] | None:
    """The file's event-time range from its manifest entry, in epoch seconds, if recorded."""
    lo, hi = f.stats.get("min_event_time"), f.stats.get("max_event_time")
    if not isinstance(lo, str) or not isinstance(hi, str):
        return None
    try:
        return int(datetime.fromisoformat(lo).timestamp()), int(
            datetime.fromisoformat(hi).timestamp()
        )
    except ValueError:
        return None


class Codes:
    """Small integer codes for the distinct values of string columns (``None`` included)."""

    def __init__(self) -> None:
        self.values: list[str | None] = []
        self._index: dict[str | None, int] = {}

    def code(self, value: str | None) -> int:
        c = self._index.get(value)
        if c is None:
            c = self._index[value] = len(self.values)
            self.values.append(value)
        return c

    def of(self, table: pa.Table, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """The code of every row of column ``name`` (all ``None`` when the table lacks it);
        ``rows``: only those rows' codes (positions), in that order."""
        n = table.num_rows if rows is None else len(rows)
        if name not in table.column_names:
            return np.full(n, self.code(None), dtype=np.int64)
        col = table.column(name)
        if not pa.types.is_dictionary(col.type):
            col = pc.dictionary_encode(col)
        col = col.unify_dictionaries()  # one dictionary for every chunk
        if col.num_chunks == 0:
            return np.empty(0, dtype=np.int64)
        dictionary = col.chunks[0].dictionary
        mapping = np.array(
            [self.code(v) for v in dictionary.to_pylist()] + [self.code(None)], dtype=np.int64
        )
        idx = pa.chunked_array([c.indices for c in col.chunks], col.type.index_type)
        idx = pc.fill_null(idx.combine_chunks(), len(dictionary))
        at = idx.to_numpy(zero_copy_only=False)
        return mapping[at if rows is None else at[rows]]


def seconds(table: pa.Table, name: str = "event_time") -> np.ndarray:
    """A timestamp column as integer seconds since the epoch (nulls: after every window)."""
    col = table.column(name).combine_chunks()
    raw = pc.fill_null(col.cast(pa.int64()), np.iinfo(np.int64).max).to_numpy()
    return raw // _SECONDS[col.type.unit] if col.type.unit != "s" else raw


def ints(
    table: pa.Table, name: str, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """An integer column as (values with nulls as 0, validity); ``rows``: only those rows
    (positions), in that order."""
    n = table.num_rows if rows is None else len(rows)
    if name not in table.column_names:
        return np.zeros(n, np.int64), np.zeros(n, bool)
    col = table.column(name).combine_chunks()
    if col.type != pa.int64() or len(col) == 0:
        valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
        values = pc.fill_null(col, 0).to_numpy().astype(np.int64, copy=False)
        return (values, valid) if rows is None else (values[rows], valid[rows])
    # int64 (every integer column the ledger has): its buffers as they are, no copies
    values = np.frombuffer(col.buffers()[1], np.int64, count=len(col), offset=col.offset * 8)
    values = values.copy() if rows is None else values[rows]
    if col.null_count == 0:
        return values, np.ones(n, bool)
    bits = np.frombuffer(col.buffers()[0], np.uint8)
    valid = np.unpackbits(bits, count=col.offset + len(col), bitorder="little")[col.offset :]
    valid = valid.view(bool) if rows is None else valid.view(bool)[rows]
    values[~valid] = 0  # a null's slot may hold anything
    return values, valid


def day_of(label: str | None) -> int | None:
    """Days since the epoch of a ``YYYY-MM-DD`` slice label; ``None`` for other labels."""
    if label is None:
        return None
    try:
        return (date.fromisoformat(label) - _EPOCH).days
    except ValueError:
        return None
