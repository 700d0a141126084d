"""Which event files still need ingesting: keys, listings and the (key, ETag) comparison.

The set of keys already ingested (with ETag and size) lives in the snapshot, not in a
cursor: a late key that sorts before everything seen is still found, and a key
re-uploaded with different content (new ETag) is read again — event IDs then keep its
events from counting twice. Which part of the bucket a run lists (the window after the
key-time watermark, or a full sweep) is :mod:`openpool.ingest.window`'s decision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from openpool.partitions import Partition
from openpool.storage import ObjectInfo, ObjectStore

_KEY_RE = re.compile(
    r"^(?P<region>[a-z0-9-]+)/(?P<node>[a-z]+)/(?P=region)-(?P=node)-"
    r"(?P<start>\d{8}T\d{6}Z)_(?P<end>\d{8}T\d{6}Z)\.json$"
)


@dataclass(frozen=True)
class Candidate:
    key: str
    etag: str
    size: int
    start: datetime | None  # from the key; None when the key does not follow the scheme

    @property
    def sort_key(self) -> tuple[datetime, str]:
        return (self.start or datetime.max.replace(tzinfo=UTC), self.key)


def key_start(key: str) -> datetime | None:
    m = _KEY_RE.match(key)
    if not m:
        return None
    t = m["start"]
    try:  # int fields, not strptime: a sweep asks this of every key in the bucket
        return datetime(
            int(t[0:4]), int(t[4:6]), int(t[6:8]),
            int(t[9:11]), int(t[11:13]), int(t[13:15]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:  # the key's shape, not a time: read (and quarantined) like any other
        return None


def key_prefix(partition: Partition, t: datetime) -> str:
    """The key every file of ``partition`` whose key time is ``t`` starts with: a listing
    that starts after it (S3 ``StartAfter``) holds every key whose time is ``t`` or later,
    since the key's time is fixed-width and sorts as text."""
    stamp = t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{partition.path}/{partition.region}-{partition.node_type}-{stamp}"


def file_ids(keys: pa.Array | pa.ChunkedArray, etags: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One string per file version, to compare (key, ETag) pairs in Arrow: the key and the
    ETag joined by a newline (an ETag holds none, so the pair is recoverable)."""
    return pc.binary_join_element_wise(keys, etags, "\n")


def pending_files(
    listing: list[ObjectInfo],
    ingested: pa.Table,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Candidate]:
    """Listed files whose (key, ETag) was never ingested, oldest first by key time.

    ``start``/``end`` restrict to key times in ``[start, end)`` (replays, backfills).
    """
    # (key, ETag) pairs compared in Arrow: the ingested list holds every file of history.
    listed = [i for i in listing if i.key.endswith(".json")]
    pairs = file_ids(
        pa.array([i.key for i in listed], pa.string()),
        pa.array([i.etag for i in listed], pa.string()),
    )
    seen = file_ids(ingested.column("source_key"), ingested.column("etag"))
    done = pc.is_in(pairs, value_set=seen).to_numpy(zero_copy_only=False)
    out = []
    for info, was in zip(listed, done.tolist(), strict=True):
        if was:
            continue
        ts = key_start(info.key)
        if start is not None and (ts is None or ts < start):
            continue
        if end is not None and (ts is None or ts >= end):
            continue
        out.append(Candidate(info.key, info.etag, info.size, ts))
    return sorted(out, key=lambda c: c.sort_key)


def list_partition(
    store: ObjectStore, partition: Partition, since: datetime | None = None
) -> list[ObjectInfo]:
    """The partition's objects; with ``since``, only keys that sort at or after its key
    time (:func:`key_prefix`): a request per 1,000 of those, not per 1,000 in the bucket."""
    after = key_prefix(partition, since) if since is not None else None
    return list(store.list(partition.path + "/", start_after=after))
