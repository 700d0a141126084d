"""Parquet encoding for snapshot data files: bytes in, bytes out, checked on read.

Files are written whole into memory and stored as one object, so an object either holds
a complete file or does not exist. Each file's size and SHA-256 go into the manifest and
are checked on every read, so a damaged object is named, not half-read.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from openpool.errors import CorruptDataFile

# Columns whose min/max are recorded per file in the manifest (pruning, time-range reads).
STATS_COLUMNS: tuple[str, ...] = ("event_time",)
# Columns with (nearly) one value per row: random IDs, digests, raw texts. Dictionary
# encoding them is tried and abandoned page after page and their min/max statistics prune
# nothing, so both are skipped (other string columns keep both; readers, Athena among them,
# prune with them).
UNIQUE_COLUMNS: frozenset[str] = frozenset(
    {"event_id", "content_sha256", "payload_json", "raw_json", "request_id", "tx_hash", "raw_tx"}
)
# Many-valued strings whose min/max span nearly every file's whole range, so prune nothing,
# yet comparing them costs a noticeable share of a write. (Statistics of the partition
# columns stay: analytics skips reading a column they show to be constant.)
NO_STATS_COLUMNS: frozenset[str] = frozenset({"eth_address", "source_key"})
# Snappy, Athena's own default: writing the ledger is on the ingest's hot path, and zstd
# (level 1) spent about 45 % more time than Snappy on it for files about 20 % smaller.
CODEC = "snappy"
# Random hex digits (UUIDs, digests) hardly compress (Snappy has no entropy coding): they
# are stored uncompressed, which costs nothing in size and saves the attempt.
UNCOMPRESSED_COLUMNS: frozenset[str] = frozenset({"event_id", "content_sha256"})


def encode(table: pa.Table) -> bytes:
    """Serialise ``table`` to Parquet (Snappy), deterministic for equal input."""
    sink = io.BytesIO()  # getvalue() hands over its buffer without a copy
    names = table.column_names
    pq.write_table(
        table,
        sink,
        compression={c: "none" if c in UNCOMPRESSED_COLUMNS else CODEC for c in names},
        use_dictionary=[
            f.name
            for f in table.schema
            if f.name not in UNIQUE_COLUMNS and pa.types.is_string(f.type)
        ],
        write_statistics=[c for c in names if c not in UNIQUE_COLUMNS | NO_STATS_COLUMNS],
    )
    return sink.getvalue()


def arrow_reader(data: bytes) -> pa.BufferReader:
    """A reader over an Arrow-owned copy of ``data``, never over the Python bytes.

    A reader over Python bytes holds them through a buffer whose destructor takes the GIL.
    Arrow's decode threads drop their last reference to it after the read has returned;
    if the interpreter is exiting by then, that thread cannot take the GIL, Python ends it
    mid-destructor and the process aborts ("terminate called without an active
    exception", SIGABRT) after its work is done. One memcpy keeps every Arrow thread
    clear of Python objects.
    """
    sink = pa.BufferOutputStream()
    sink.write(data)
    return pa.BufferReader(sink.getvalue())


def decode(
    data: bytes,
    uri: str,
    size: int | None = None,
    sha256: str | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Parse Parquet bytes after checking them against the manifest's size and hash."""
    if size is not None and len(data) != size:
        raise CorruptDataFile(uri, f"size is {len(data)} bytes, manifest says {size}")
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise CorruptDataFile(uri, "SHA-256 does not match the manifest")
    try:
        # ParquetFile reads directly, without the dataset scanner's background threads
        # (which can outlive the call and abort the interpreter at exit).
        return pq.ParquetFile(arrow_reader(data)).read(columns=columns)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptDataFile(uri, f"not a readable Parquet file: {exc}") from None


def file_stats(table: pa.Table) -> dict[str, Any]:
    """Min/max of the stats columns present in ``table`` (ISO strings for timestamps)."""
    stats: dict[str, Any] = {}
    if table.num_rows == 0:
        return stats
    for name in STATS_COLUMNS:
        if name not in table.column_names:
            continue
        mm = pc.min_max(table.column(name))
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        if lo is None:
            continue
        stats[f"min_{name}"] = lo.isoformat() if hasattr(lo, "isoformat") else lo
        stats[f"max_{name}"] = hi.isoformat() if hasattr(hi, "isoformat") else hi
    return stats


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
