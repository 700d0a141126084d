"""Which part of a partition's bucket a run lists: the window after the watermark, or a sweep.

Listing the whole partition prefix costs a request per 1,000 keys the bucket has ever
kept, in every run and every sensor poke. Keys name their time and sort by it as text,
so a run lists only from ``discovery_mark - lookback`` on (S3 ``StartAfter``): a cost set
by the lookback and the upload rate, not by the bucket's age. ``discovery_mark`` is the
newest key time the partition has committed (capped at the wall clock of the ingest that
read it, so a key dated in the future cannot move it ahead), a manifest property: derived
from what was committed, it survives crashes and a retry lists exactly the same window.

Keys do not arrive strictly in order (late flushes, retried uploads). One late by less
than the lookback is in the window; one later than that is found by the **sweep**: a full
listing, compared with the ``ingested_files`` index of every day it lists, which runs
when the last one recorded in the snapshot is ``sweep_every`` old (or on demand). A sweep
is recorded (``discovery_sweep_at``, with how many files it listed and how many pending
ones the window would not have listed, ``discovery_sweep_missed``) by the commit that
takes the last of what it found; one that had to leave files for later runs is not, so
the next run sweeps again until nothing it found is left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from openpool.config import Settings
from openpool.ingest.discovery import Candidate, key_prefix, key_start, list_partition
from openpool.ingest.discovery import pending_files as _pending
from openpool.ingest.ingested import key_days, newest_key_time, read_index
from openpool.partitions import Partition
from openpool.snapshots import Snapshot
from openpool.storage import ObjectInfo, ObjectStore

MARK = "discovery_mark"
SWEEP_AT = "discovery_sweep_at"
SWEEP_LISTED = "discovery_sweep_listed"
SWEEP_MISSED = "discovery_sweep_missed"


@dataclass(frozen=True)
class Window:
    """How far before the watermark a run lists, and how often the whole bucket is swept."""

    lookback: timedelta = timedelta(hours=6)
    sweep_every: timedelta = timedelta(hours=24)

    @classmethod
    def of(cls, settings: Settings) -> Window:
        """From ``OPENPOOL_DISCOVERY_LOOKBACK_SECONDS`` and ``…_SWEEP_SECONDS``."""
        return cls(
            lookback=timedelta(seconds=settings.discovery_lookback_seconds),
            sweep_every=timedelta(seconds=settings.discovery_sweep_seconds),
        )


@dataclass(frozen=True)
class Sweep:
    """A full listing: when it started, what it listed, and how many pending files it found
    that the windowed listing would not have listed."""

    at: datetime
    listed: int
    missed: int

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "listed": self.listed, "missed": self.missed}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Sweep | None:
        if not d:
            return None
        return cls(datetime.fromisoformat(d["at"]), int(d["listed"]), int(d["missed"]))


@dataclass
class Found:
    """What one discovery listed and which of it was never ingested."""

    candidates: list[Candidate]
    listed: int
    since: datetime | None  # the window's first key time; None: the whole prefix was listed
    sweep: Sweep | None  # set when this was a sweep


def _time(base: Snapshot | None, name: str) -> datetime | None:
    value = base.manifest.properties.get(name) if base is not None else None
    return datetime.fromisoformat(value) if value else None


def window_start(base: Snapshot | None, window: Window) -> datetime | None:
    """The first key time a windowed listing holds; None while no watermark is recorded."""
    mark = _time(base, MARK)
    return mark - window.lookback if mark is not None else None


def sweep_due(base: Snapshot | None, now: datetime, window: Window) -> bool:
    """Whether a scheduled run must sweep: no sweep recorded yet (a new partition, or a
    state from before the watermark), or the last one is ``sweep_every`` old."""
    last = _time(base, SWEEP_AT)
    return last is None or now - last >= window.sweep_every


def pending(base: Snapshot | None, listing: list[ObjectInfo], **kw: Any) -> list[Candidate]:
    """The files of ``listing`` never ingested, reading only the index days they fall in."""
    days = key_days(i.key for i in listing if i.key.endswith(".json"))
    return _pending(listing, read_index(base, days), **kw)


def discover(
    store: ObjectStore,
    partition: Partition,
    base: Snapshot | None,
    window: Window,
    now: datetime | None = None,
    sweep: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
    replay: bool = False,
) -> Found:
    """The files of ``partition`` in ``store`` that ``base`` has not ingested, oldest first.

    A scheduled run lists the window (a sweep when due, or with ``sweep``); a replay
    (``replay``, e.g. of the archive, or ``start``/``end``) lists from ``start`` on (all of
    it without one) and keeps key times in ``[start, end)``. A replay never records a
    sweep: it lists another store, or part of one, so it proves nothing of the events'.
    """
    now = now or datetime.now(UTC)
    replay = replay or start is not None or end is not None
    since = window_start(base, window)
    swept = not replay and (sweep or sweep_due(base, now, window))
    # no watermark yet (no dated key committed): the whole prefix is the only window
    whole = swept or since is None
    listing = list_partition(store, partition, start if replay else None if whole else since)
    found = pending(base, listing, start=start, end=end)
    record = None
    if swept:
        edge = key_prefix(partition, since) if since is not None else None
        missed = sum(1 for c in found if edge is not None and c.key <= edge)
        record = Sweep(now, len(listing), missed)
    return Found(found, len(listing), None if whole or replay else since, record)


@dataclass(frozen=True)
class Poke:
    """What the sensor's trigger sees on one poke."""

    listed: int
    pending: int
    sweep_due: bool


def poke(store: ObjectStore, partition: Partition, base: Snapshot | None, window: Window) -> Poke:
    """The sensor's question, "is there anything for a run to do?", at a scheduled run's
    cost or less: the windowed listing, or none at all when a sweep is due (the run it
    wakes lists everything). A partition with no snapshot yet lists everything: it has no
    history to bound."""
    if base is not None and sweep_due(base, datetime.now(UTC), window):
        return Poke(0, 0, True)
    found = discover(store, partition, base, window)
    return Poke(found.listed, len(found.candidates), False)


def sweep_is_news(base: Snapshot | None, sweep: Sweep | None) -> bool:
    """Whether committing ``sweep`` records something ``base`` does not say yet (a sweep of
    a partition with no snapshot records nothing: it has nothing to prove)."""
    if base is None or sweep is None:
        return False
    last = _time(base, SWEEP_AT)
    return last is None or sweep.at > last


def committed_properties(
    base: Snapshot | None, files: pa.Table, clock: datetime | None, sweep: Sweep | None
) -> dict[str, Any]:
    """The manifest properties a commit of ``files`` (INGESTED rows) sets: the watermark
    moved to the newest key time committed (never back, never past ``clock``), and the
    sweep when it is newer than the recorded one."""
    # a state from before the watermark: its newest indexed key time, capped as below
    mark = _time(base, MARK) or newest_key_time(base, clock or datetime.now(UTC))
    times = [t for t in map(key_start, files.column("source_key").to_pylist()) if t is not None]
    if times:
        newest = min(max(times), clock) if clock is not None else max(times)
        mark = max(mark, newest) if mark is not None else newest
    out: dict[str, Any] = {MARK: mark.isoformat()} if mark is not None else {}
    if sweep is not None and (base is None or sweep_is_news(base, sweep)):
        out |= {
            SWEEP_AT: sweep.at.isoformat(),
            SWEEP_LISTED: sweep.listed,
            SWEEP_MISSED: sweep.missed,
        }
    return out
