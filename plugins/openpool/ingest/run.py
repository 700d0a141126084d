"""One ingest: discover files, read, validate, dedup, accrue, correlate, commit.

Every table an ingest changes goes into ONE snapshot commit, so a crash anywhere before
the commit leaves the previous snapshot untouched and a rerun redoes the same work. The
batch is applied by a pure function of (base snapshot, file bytes), which is what lets
``commit_with_retry`` rebase it onto a concurrent writer's newer snapshot.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

import pyarrow as pa
import pyarrow.compute as pc

from openpool.errors import ObjectNotFound
from openpool.ingest import accrue as acc
from openpool.ingest import connections as conn
from openpool.ingest.dedup import ID_INDEX, dedup, hour_slice
from openpool.ingest.discovery import INGESTED, Candidate, list_partition, pending_files
from openpool.ingest.money import wei_sum
from openpool.ingest.reader import read_file
from openpool.ingest.schema import EVENTS, QUARANTINED, REJECTED
from openpool.ingest.tickets import tickets_from
from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore, Transaction, commit_with_retry
from openpool.storage import ObjectStore

log = logging.getLogger(__name__)

COUNTERS = (
    "files_ingested",
    "files_quarantined",
    "events_read",
    "events_accepted",
    "events_duplicate",
    "events_rejected",
)


@dataclass
class Counts:
    files_ingested: int = 0
    files_quarantined: int = 0
    events_read: int = 0
    events_accepted: int = 0
    events_duplicate: int = 0
    events_rejected: int = 0

    def add(self, other: Counts) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class IngestReport:
    partition: str
    counts: Counts = field(default_factory=Counts)
    snapshot_version: int = 0
    batches: int = 0

    def summary(self) -> dict[str, int]:
        return {**asdict(self.counts), "snapshot_version": self.snapshot_version}


def read_table(base: Snapshot | None, name: str, schema: pa.Schema) -> pa.Table:
    """A table of ``base``, or empty with ``schema`` when it has none yet."""
    if base is None or not base.has_table(name):
        return schema.empty_table()
    return base.read(name, schema=schema)


def _with_version(table: pa.Table, column: str, version: int) -> pa.Table:
    idx = table.schema.get_field_index(column)
    return table.set_column(idx, column, pa.array([version] * table.num_rows, pa.int64()))


def apply_batch(
    base: Snapshot | None,
    txn: Transaction,
    partition: Partition,
    files: list[tuple[Candidate, bytes]],
    rate: Fraction,
    ttl: timedelta,
    quarantine: Callable[[Candidate, bytes], str],
) -> Counts:
    """Stage one batch's changes in ``txn``; returns this batch's counts."""
    version = (base.version if base else 0) + 1
    counts = Counts()
    ingested = read_table(base, "ingested_files", INGESTED)
    done = set(
        zip(
            ingested.column("source_key").to_pylist(),
            ingested.column("etag").to_pylist(),
            strict=True,
        )
    )
    files = [(c, b) for c, b in files if (c.key, c.etag) not in done]  # a rebase may find them done

    events_parts, rejected_parts, quarantined_rows, ingested_rows = [], [], [], []
    for cand, data in files:
        result = read_file(data, cand.key, partition.node_type, partition.region)
        if result.quarantine_reason is not None:
            qkey = quarantine(cand, data)
            quarantined_rows.append(
                {
                    "source_key": cand.key,
                    "etag": cand.etag,
                    "size": cand.size,
                    "reason": result.quarantine_reason,
                    "quarantine_key": qkey,
                    "quarantined_at_version": version,
                }
            )
            ingested_rows.append((cand, "quarantined", 0))
            counts.files_quarantined += 1
            continue
        n = result.events.num_rows + result.rejected.num_rows
        events_parts.append(result.events)
        rejected_parts.append(result.rejected)
        ingested_rows.append((cand, "ingested", n))
        counts.files_ingested += 1
        counts.events_read += n

    batch = pa.concat_tables([EVENTS.empty_table(), *events_parts]).cast(EVENTS)
    slices = sorted(set(hour_slice(batch).to_pylist())) if batch.num_rows else []
    has_index = base is not None and base.has_table("event_ids")
    known_by_slice = {
        s: base.read("event_ids", slices=[s], schema=ID_INDEX)
        if has_index
        else ID_INDEX.empty_table()
        for s in slices
    }
    known = pa.concat_tables([ID_INDEX.empty_table(), *known_by_slice.values()])
    d = dedup(batch, known)
    fresh = d.fresh
    rejected = pa.concat_tables([REJECTED.empty_table(), *rejected_parts, d.conflicts]).cast(
        REJECTED
    )
    counts.events_accepted = fresh.num_rows
    counts.events_duplicate = d.duplicates
    counts.events_rejected = rejected.num_rows
    assert counts.events_read == counts.events_accepted + counts.events_duplicate + (
        counts.events_rejected
    ), "event counts do not reconcile"

    # ID index: merge this batch's fresh IDs into the hour slices they fall in.
    if fresh.num_rows:
        fresh_slices = hour_slice(fresh)
        ids = fresh.select(["event_id", "content_sha256"]).append_column("_slice", fresh_slices)
        for s in sorted(set(fresh_slices.to_pylist())):
            old = known_by_slice[s]
            new = ids.filter(pc.equal(ids.column("_slice"), s)).drop_columns(["_slice"])
            txn.replace_slice("event_ids", s, pa.concat_tables([old, new.cast(ID_INDEX)]))
        dates = pc.strftime(fresh.column("event_time"), format="%Y-%m-%d")
        for day in sorted(set(dates.to_pylist())):
            txn.append("events", fresh.filter(pc.equal(dates, day)), slice_=day)
    elif base is None or not base.has_table("events"):
        txn.append("events", EVENTS.empty_table())

    # Money: transcode jobs name their worker; AI jobs are matched by requestID.
    props = dict(base.manifest.properties) if base else {}
    prev_mark = props.get("watermark")
    mark = conn.watermark(fresh, datetime.fromisoformat(prev_mark) if prev_mark else None)
    ai = acc.correlate_ai(
        fresh,
        read_table(base, "ai_requests", acc.AI_REQUESTS),
        read_table(base, "pending_ai", acc.PENDING_AI),
        mark,
        ttl,
    )
    credits = pa.concat_tables([acc.transcode_credits(fresh), ai.credited])
    balances = acc.accrue(read_table(base, "balances", acc.BALANCES), credits, rate)
    connections = conn.apply_connections(read_table(base, "connections", conn.CONNECTIONS), fresh)
    workers = conn.update_workers(read_table(base, "workers", conn.WORKERS), fresh, connections)

    txn.replace("balances", balances)
    txn.replace("ai_requests", ai.requests)
    txn.replace("pending_ai", ai.pending)
    txn.replace("connections", connections)
    txn.replace("workers", workers)
    txn.append("unattributed", ai.unattributed)
    txn.append("tickets", tickets_from(fresh))
    txn.append("rejected_events", _with_version(rejected, "rejected_at_version", version))
    txn.append("quarantined_files", pa.Table.from_pylist(quarantined_rows, schema=QUARANTINED))
    txn.append(
        "ingested_files",
        pa.Table.from_pylist(
            [
                {
                    "source_key": c.key,
                    "etag": c.etag,
                    "size": c.size,
                    "status": st,
                    "events_read": n,
                    "snapshot_version": version,
                }
                for c, st, n in ingested_rows
            ],
            schema=INGESTED,
        ),
    )
    for name in COUNTERS:
        props[name] = int(props.get(name, 0)) + getattr(counts, name)
    props["unattributed_fees_wei"] = str(
        int(props.get("unattributed_fees_wei", "0")) + wei_sum(ai.unattributed.column("fees_wei"))
    )
    props["pending_ai_jobs"] = ai.pending.num_rows
    props["watermark"] = mark.isoformat() if mark else None
    txn.set_properties(**props)
    return counts


def quarantine_copier(
    state: ObjectStore, partition: Partition
) -> Callable[[Candidate, bytes], str]:
    """Copy an unparseable file under the partition's quarantine prefix (idempotent)."""

    def copy(cand: Candidate, data: bytes) -> str:
        key = f"{partition.path}/quarantine/{cand.etag}/{cand.key}"
        state.put(key, data)
        return key

    return copy


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
) -> IngestReport:
    """Ingest every file of ``partition`` in ``events`` not yet ingested, batch by batch.

    Each batch (at most ``max_files`` files, oldest first) is one snapshot commit. With
    ``start``/``end`` only keys whose time falls in ``[start, end)`` are considered (a
    replay of the archive, or a backfill of an interval).
    """
    run_id = run_id or f"ingest-{uuid.uuid4().hex[:12]}"
    snaps = SnapshotStore(state, partition)
    report = IngestReport(str(partition))
    copy = quarantine_copier(state, partition)
    listing = list_partition(events, partition)
    while True:
        base = snaps.latest()
        todo = pending_files(listing, read_table(base, "ingested_files", INGESTED), start, end)
        if not todo:
            report.snapshot_version = base.version if base else 0
            return report
        files = []
        for c in todo[:max_files]:
            try:
                files.append((c, events.get(c.key)))
            except ObjectNotFound:  # expired or deleted since the listing: not ours to count
                log.warning("%s vanished before it was read; skipping", events.url(c.key))
                listing = [i for i in listing if i.key != c.key]
        if not files:
            continue
        batch_counts: list[Counts] = []

        def build(
            b: Snapshot | None,
            txn: Transaction,
            out: list[Counts] = batch_counts,
            batch: list = files,
        ) -> None:
            out.clear()
            out.append(apply_batch(b, txn, partition, batch, rate, ttl, copy))

        snap = commit_with_retry(snaps, build, run_id=f"{run_id}-{report.batches}")
        report.counts.add(batch_counts[-1])
        report.batches += 1
        report.snapshot_version = snap.version
        log.info("%s: committed v%d (%s)", partition, snap.version, batch_counts[-1])
        if progress is not None:
            progress(report)
