"""A partition's health, from its newest snapshot: freshness and what it set aside lately.

*Last file* is the newest key time among the files the partition ever ingested (the key
names its first event's time, so an orchestrator that stops writing stops it moving);
*last commit* is the newest manifest's time. The last day's quarantined files, rejected
events and events read are counted from the rows' own version columns, from the first
version committed within the day, found by a binary search over the (immutable)
manifests: a few reads, however long the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow.compute as pc

from openpool.ingest.discovery import key_start
from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import ObjectStore
from openpool.tables import INGESTED, QUARANTINED, REJECTED, read_table

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Health:
    partition: Partition
    version: int
    last_file_key: str | None
    last_file_at: datetime | None
    last_commit_at: datetime | None
    quarantined_day: int
    rejected_day: int
    read_day: int
    stale: bool

    @property
    def rejected_rate(self) -> float:
        """For display only; the alert compares exact integers."""
        return self.rejected_day / self.read_day if self.read_day else 0.0


def first_version_since(store: SnapshotStore, latest: int, cutoff: datetime) -> int:
    """The first version committed at or after ``cutoff`` (``latest + 1`` if none)."""
    lo, hi = 1, latest + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if datetime.fromisoformat(store.manifest(mid).created_at) >= cutoff:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _since(snap: Snapshot | None, name: str, column: str, first: int) -> int:
    schema = {"quarantined_files": QUARANTINED, "rejected_events": REJECTED}[name]
    if snap is None or not snap.has_table(name):
        return 0
    col = snap.read(name, schema=schema, columns=[column]).column(column)
    return int(pc.sum(pc.greater_equal(col, first)).as_py() or 0)


def partition_health(
    state: ObjectStore,
    part: Partition,
    snap: Snapshot | None,
    now: datetime,
    stale_after: timedelta,
) -> Health:
    """``part``'s health at ``now`` from ``snap`` (its newest snapshot, or None)."""
    if snap is None:
        return Health(part, 0, None, None, None, 0, 0, 0, True)
    files = read_table(snap, "ingested_files", INGESTED)
    keys = files.column("source_key").to_pylist()
    timed = [(t, k) for k in keys if (t := key_start(k)) is not None]
    last_at, last_key = max(timed) if timed else (None, None)
    first = first_version_since(SnapshotStore(state, part), snap.version, now - DAY)
    recent = pc.greater_equal(files.column("snapshot_version"), first)
    read = int(pc.sum(files.filter(recent).column("events_read")).as_py() or 0)
    return Health(
        partition=part,
        version=snap.version,
        last_file_key=last_key,
        last_file_at=last_at,
        last_commit_at=datetime.fromisoformat(snap.manifest.created_at),
        quarantined_day=_since(snap, "quarantined_files", "quarantined_at_version", first),
        rejected_day=_since(snap, "rejected_events", "rejected_at_version", first),
        read_day=read,
        stale=last_at is None or now - last_at > stale_after,
    )
