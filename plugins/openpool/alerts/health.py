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

import pyarrow as pa
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


@dataclass(frozen=True)
class Facts:
    """What one committed version says about freshness and what was set aside: immutable,
    so a reader may keep it for as long as the version is the newest."""

    version: int
    last_file_key: str | None
    last_file_at: datetime | None
    last_commit_at: datetime
    ingested_at: pa.ChunkedArray  # per ingested file: the version that read it
    events_read: pa.ChunkedArray  # ... and how many events it held
    quarantined_at: pa.ChunkedArray  # per quarantined file: its version
    rejected_at: pa.ChunkedArray  # per rejected event: its version


def facts(snap: Snapshot) -> Facts:
    files = read_table(snap, "ingested_files", INGESTED)
    timed = [(t, k) for k in files.column("source_key").to_pylist() if (t := key_start(k))]
    last_at, last_key = max(timed) if timed else (None, None)
    quarantined = read_table(snap, "quarantined_files", QUARANTINED)
    rejected = (
        snap.read("rejected_events", schema=REJECTED, columns=["rejected_at_version"])
        if snap.has_table("rejected_events")
        else REJECTED.empty_table()
    )
    return Facts(
        version=snap.version,
        last_file_key=last_key,
        last_file_at=last_at,
        last_commit_at=datetime.fromisoformat(snap.manifest.created_at),
        ingested_at=files.column("snapshot_version"),
        events_read=files.column("events_read"),
        quarantined_at=quarantined.column("quarantined_at_version"),
        rejected_at=rejected.column("rejected_at_version"),
    )


Created = dict[tuple[str, str, int], datetime]


def first_version_since(
    store: SnapshotStore, latest: int, cutoff: datetime, created: Created | None = None
) -> int:
    """The first version committed at or after ``cutoff`` (``latest + 1`` if none), by a
    binary search over the manifests (``created``: their times, kept between calls)."""
    created = {} if created is None else created
    lo, hi = 1, latest + 1
    while lo < hi:
        mid = (lo + hi) // 2
        key = (store.store.uri, str(store.partition), mid)
        if key not in created:
            created[key] = datetime.fromisoformat(store.manifest(mid).created_at)
        if created[key] >= cutoff:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _count(versions: pa.ChunkedArray, first: int) -> int:
    return int(pc.sum(pc.greater_equal(versions, first)).as_py() or 0)


def partition_health(
    state: ObjectStore,
    part: Partition,
    snap: Snapshot | None,
    now: datetime,
    stale_after: timedelta,
    known: Facts | None = None,
    created: Created | None = None,
) -> Health:
    """``part``'s health at ``now`` from ``snap`` (its newest snapshot, or None);
    ``known``: the facts of that very version, when a reader kept them."""
    if snap is None:
        return Health(part, 0, None, None, None, 0, 0, 0, True)
    f = known if known is not None and known.version == snap.version else facts(snap)
    first = first_version_since(SnapshotStore(state, part), snap.version, now - DAY, created)
    recent = pc.greater_equal(f.ingested_at, first)
    return Health(
        partition=part,
        version=snap.version,
        last_file_key=f.last_file_key,
        last_file_at=f.last_file_at,
        last_commit_at=f.last_commit_at,
        quarantined_day=_count(f.quarantined_at, first),
        rejected_day=_count(f.rejected_at, first),
        read_day=int(pc.sum(pc.filter(f.events_read, recent)).as_py() or 0),
        stale=f.last_file_at is None or now - f.last_file_at > stale_after,
    )
