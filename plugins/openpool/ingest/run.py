"""One ingest: discover files, then parse, dedup, accrue and commit them batch by batch.

Every table an ingest changes goes into ONE snapshot commit per batch, so a crash anywhere
before the commit leaves the previous snapshot untouched and a rerun redoes the same
work. The steps live in :mod:`openpool.ingest.batch` as pure functions of (base snapshot,
file bytes), which is what lets ``commit_with_retry`` rebase a batch onto a concurrent
writer's newer snapshot.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction

from openpool.ingest.batch import Counts, Parsed, apply_batch
from openpool.ingest.clock import DEFAULT_SKEW
from openpool.ingest.parallel import quarantine_copier, read_batches
from openpool.ingest.window import Sweep, Window, discover
from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore, Transaction, commit_with_retry
from openpool.storage import ObjectStore
from openpool.tables import EVENTS, INGESTED, QUARANTINED, REJECTED, read_table

log = logging.getLogger(__name__)

__all__ = ["Counts", "IngestReport", "commit_parsed", "ingest", "quarantine_copier", "read_table"]


@dataclass
class IngestReport:
    partition: str
    counts: Counts = field(default_factory=Counts)
    snapshot_version: int = 0
    batches: int = 0
    sweep: Sweep | None = None  # set when this run listed the whole partition
    # The processes that read the batches (this one on the serial path).
    parsed_in: set[int] = field(default_factory=set)

    def summary(self) -> dict[str, int]:
        return {**self.counts.as_dict(), "snapshot_version": self.snapshot_version}


def commit_parsed(
    snaps: SnapshotStore,
    parsed: Parsed,
    rate: Fraction,
    ttl: timedelta,
    run_id: str,
) -> tuple[Snapshot | None, Counts]:
    """Commit one parsed batch; rebases on conflict; a no-op when every file is already in.

    Returns the snapshot that holds the batch and the counts this call added (zero when an
    earlier attempt, e.g. a retried task, had already committed it).
    """
    out: list[Counts] = []

    def build(b: Snapshot | None, txn: Transaction) -> None:
        out.clear()
        out.append(apply_batch(b, txn, parsed, rate, ttl))

    latest = snaps.latest()
    if parsed.nothing_to_commit(latest):
        return latest, Counts()
    snap = commit_with_retry(snaps, build, run_id=run_id)
    return snap, out[-1]


def ingest(
    partition: Partition,
    events: ObjectStore,
    state: ObjectStore,
    rate: Fraction,
    ttl: timedelta = timedelta(hours=24),
    max_files: int = 250,
    run_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    progress: Callable[[IngestReport], None] | None = None,
    skew: timedelta = DEFAULT_SKEW,
    window: Window = Window(),  # noqa: B008 - frozen
    sweep: bool = False,
    workers: int = 1,
    replay: bool = False,
) -> IngestReport:
    """Ingest every file of ``partition`` in ``events`` not yet ingested, batch by batch.

    Each batch (at most ``max_files`` files, oldest first) is one snapshot commit. With
    ``start``/``end`` only keys whose time falls in ``[start, end)`` are considered (a
    replay of the archive, or a backfill of an interval). A scheduled run lists only the
    window after the watermark, or sweeps everything when one is due or ``sweep`` asks
    (:mod:`openpool.ingest.window`); the last batch's commit records the sweep. ``replay``
    (the CLI's ``--replay``: ``events`` is the archive) lists all of ``events`` and records
    no sweep.
    ``workers`` > 1 reads the batches in that many processes (:mod:`openpool.ingest.parallel`,
    stores reopened from their URIs) and still commits them one by one in this order: the
    same state as 1.
    """
    run_id = run_id or f"ingest-{uuid.uuid4().hex[:12]}"
    snaps = SnapshotStore(state, partition)
    report = IngestReport(str(partition))
    base = snaps.latest()
    report.snapshot_version = base.version if base else 0
    # Files committed meanwhile by another writer are dropped again by commit_parsed.
    found = discover(
        events, partition, base, window, sweep=sweep, start=start, end=end, replay=replay
    )
    todo, report.sweep = found.candidates, found.sweep
    unrecorded = found.sweep
    batches = [todo[i : i + max_files] for i in range(0, len(todo), max_files)]
    # closing: a failed commit stops the workers at once, not when the traceback is freed
    with closing(read_batches(partition, events, state, batches, skew, workers)) as read:
        for i, (parsed, pid) in enumerate(read):
            report.parsed_in.add(pid)
            if i == len(batches) - 1:  # the sweep's last files: their commit records it
                parsed, unrecorded = replace(parsed, sweep=unrecorded), None
            if parsed.files.num_rows == 0 and parsed.sweep is None:
                continue
            run = f"{run_id}-{report.batches}"
            snap, counts = commit_parsed(snaps, parsed, rate, ttl, run_id=run)
            report.counts.add(counts)
            report.snapshot_version = snap.version if snap else 0
            log.info("%s: committed v%d (%s)", partition, report.snapshot_version, counts)
            report.batches += 1
            if progress is not None:
                progress(report)
    if unrecorded is not None:  # a sweep that found nothing new is recorded all the same
        nothing = Parsed(
            EVENTS.empty_table(),
            REJECTED.empty_table(),
            QUARANTINED.empty_table(),
            INGESTED.empty_table(),
            sweep=unrecorded,
        )
        snap, _ = commit_parsed(snaps, nothing, rate, ttl, run_id=f"{run_id}-sweep")
        report.snapshot_version = snap.version if snap else report.snapshot_version
    return report
