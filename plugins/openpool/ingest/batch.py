"""One batch of files, in the four steps the DAG runs as tasks: parse, dedup, accrue, stage.

Each step is a pure function of the base snapshot and the previous step's tables, so the
CLI can run them back to back in one process while the DAG runs them as separate tasks
with Parquet in between; and the commit can redo dedup and accrual against a newer base
(a rebase) when another writer committed first. Nothing here writes a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openpool.ingest import accrue as acc
from openpool.ingest import connections as conn
from openpool.ingest.clock import (
    DEFAULT_SKEW,
    bounded_watermark,
    check_times,
    key_window,
    no_window_reason,
)
from openpool.ingest.connection_state import connections_after, write_connections
from openpool.ingest.dedup import day_slice, dedup, hour_slice
from openpool.ingest.discovery import Candidate, file_ids
from openpool.ingest.ingested import key_days, read_index, write_index
from openpool.ingest.reader import read_file
from openpool.ingest.slicing import split_by
from openpool.ingest.tickets import tickets_from
from openpool.ingest.window import Sweep, committed_properties, sweep_is_news
from openpool.money import wei_sum
from openpool.partitions import Partition
from openpool.snapshots import Snapshot, Transaction
from openpool.tables import (
    AI_CREDITS,
    AI_REQUESTS,
    BALANCES,
    CONNECTION_LOG,
    CONNECTIONS,
    EVENTS,
    ID_INDEX,
    INGESTED,
    PENDING_AI,
    QUARANTINED,
    REJECTED,
    UNATTRIBUTED,
    WORKERS,
    read_table,
)

COUNTERS = (
    "files_ingested",
    "files_quarantined",
    "events_read",
    "events_accepted",
    "events_duplicate",
    "events_rejected",
)

# Tables an accrual replaces whole, and those it appends to.
REPLACED = {
    "balances": BALANCES,
    "ai_requests": AI_REQUESTS,
    "pending_ai": PENDING_AI,
    "workers": WORKERS,
}
# The connections an accrual leaves open (the table's ``open`` slice, replaced) and those
# it closed (appended to the ``closed`` slice); see :mod:`openpool.ingest.connections`.
CONNECTION_TABLES = {
    "connections": CONNECTIONS,
    "connections_closed": CONNECTIONS,
    "connection_events": CONNECTION_LOG,
}
# ai_credits keeps which worker each AI job was credited to (the ledger's AI job-processed
# events carry no address), for per-worker AI performance.
APPENDED = {"unattributed": UNATTRIBUTED, "tickets": None, "ai_credits": AI_CREDITS}


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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def with_version(table: pa.Table, column: str, version: int) -> pa.Table:
    idx = table.schema.get_field_index(column)
    return table.set_column(idx, column, pa.array([version] * table.num_rows, pa.int64()))


@dataclass
class Parsed:
    """What reading a batch of files gave: events, rejects, quarantined and per-file rows.

    Version columns (``snapshot_version`` etc.) are 0 until the commit stamps them.
    """

    events: pa.Table
    rejected: pa.Table
    quarantined: pa.Table
    files: pa.Table  # INGESTED rows, one per file read
    # The wall clock when the files were read: the partition clock never passes it.
    clock: datetime | None = None
    # Set when this batch takes the last files a sweep found: its commit records the sweep.
    sweep: Sweep | None = None

    def without_done(self, base: Snapshot | None) -> Parsed:
        """Drop files the base already ingested (a rebase, or a retried commit); reads
        only the ``ingested_files`` days of this batch's keys."""
        done = read_index(base, key_days(self.files.column("source_key").to_pylist()))
        if done.num_rows == 0:
            return self
        keys = file_ids(done.column("source_key"), done.column("etag"))
        mine = file_ids(self.files.column("source_key"), self.files.column("etag"))
        drop = pc.is_in(mine, value_set=keys)
        if not pc.any(drop).as_py():
            return self
        gone = self.files.filter(drop).column("source_key")

        def keep(t: pa.Table) -> pa.Table:
            return t.filter(pc.invert(pc.is_in(t.column("source_key"), value_set=gone)))

        return replace(
            self,
            events=keep(self.events),
            rejected=keep(self.rejected),
            quarantined=keep(self.quarantined),
            files=keep(self.files),
        )

    def nothing_to_commit(self, base: Snapshot | None) -> bool:
        """True when ``base`` has every file of the batch and any sweep it records."""
        return self.without_done(base).files.num_rows == 0 and not sweep_is_news(base, self.sweep)

    def counts(self) -> Counts:
        """File counts, and ``events_read``: the elements the reader found in the files (the
        per-file ``events_read`` column), not the rows of the event tables, so that
        :func:`batch_counts` can catch an event lost between the reader and the commit."""
        status = self.files.column("status")
        return Counts(
            files_ingested=pc.sum(pc.equal(status, "ingested")).as_py() or 0,
            files_quarantined=pc.sum(pc.equal(status, "quarantined")).as_py() or 0,
            events_read=pc.sum(self.files.column("events_read")).as_py() or 0,
        )


def parse_batch(
    partition: Partition,
    files: Iterable[tuple[Candidate, bytes]],
    quarantine: Callable[[Candidate, bytes], str],
    clock: datetime | None = None,
    skew: timedelta = DEFAULT_SKEW,
) -> Parsed:
    """Read and validate each file; unparseable ones are copied aside by ``quarantine``.

    Events dated outside their file's key window, or more than ``skew`` past ``clock``
    (the wall clock now, by default), are rejected with the reason; a file whose key names
    no window is quarantined. ``files`` may be a generator that fetches each file as it is
    needed, so that only one file's bytes are held at a time.
    """
    clock = clock or datetime.now(UTC).replace(microsecond=0)
    events, rejected, quarantined, rows = [], [], [], []
    for cand, data in files:
        window = key_window(cand.key)
        result = (
            read_file(data, cand.key, partition.node_type, partition.region)
            if window is not None
            else None
        )
        reason = no_window_reason(cand.key) if result is None else result.quarantine_reason
        if window is None or result is None or reason is not None:
            quarantined.append(
                {
                    "source_key": cand.key,
                    "etag": cand.etag,
                    "size": cand.size,
                    "reason": reason,
                    "quarantine_key": quarantine(cand, data),
                    "quarantined_at_version": 0,
                }
            )
            rows.append((cand, "quarantined", 0))
            continue
        kept, late = check_times(result.events, window, clock, skew)
        events.append(kept)
        rejected.append(pa.concat_tables([result.rejected, late]).sort_by("source_index"))
        rows.append((cand, "ingested", result.element_count))  # the decoder's count
    return Parsed(
        events=pa.concat_tables([EVENTS.empty_table(), *events]).cast(EVENTS),
        rejected=pa.concat_tables([REJECTED.empty_table(), *rejected]).cast(REJECTED),
        quarantined=pa.Table.from_pylist(quarantined, schema=QUARANTINED),
        files=pa.Table.from_pylist(
            [
                {
                    "source_key": c.key,
                    "etag": c.etag,
                    "size": c.size,
                    "status": st,
                    "events_read": n,
                    "snapshot_version": 0,
                }
                for c, st, n in rows
            ],
            schema=INGESTED,
        ),
        clock=clock,
    )


@dataclass
class Deduped:
    """The batch's never-seen events, and what dedup set aside, against one base version."""

    base_version: int
    fresh: pa.Table
    conflicts: pa.Table
    duplicates: int


def known_ids(base: Snapshot | None, slices: list[str]) -> dict[str, pa.Table]:
    """The ID index slices ``slices`` of ``base`` (empty where it has none)."""
    if base is None or not base.has_table("event_ids"):
        return {s: ID_INDEX.empty_table() for s in slices}
    return {s: base.read("event_ids", slices=[s], schema=ID_INDEX) for s in slices}


def dedup_batch(base: Snapshot | None, parsed: Parsed) -> Deduped:
    """Split the parsed events into fresh, duplicates and conflicts; reads only their hours."""
    batch = parsed.events
    slices = sorted(pc.unique(hour_slice(batch)).to_pylist()) if batch.num_rows else []
    known = pa.concat_tables([ID_INDEX.empty_table(), *known_ids(base, slices).values()])
    d = dedup(batch, known)
    return Deduped(base.version if base else 0, d.fresh, d.conflicts, d.duplicates)


@dataclass
class Accrued:
    """Every derived table after this batch, and the snapshot properties to set."""

    base_version: int
    tables: dict[str, pa.Table]
    properties: dict[str, Any] = field(default_factory=dict)
    # Closed-connection day slices this batch rewrites whole (a late event re-derived them);
    # closed rows of other days are appended to their day's slice.
    closed_days: list[str] = field(default_factory=list)


def accrue_batch(
    base: Snapshot | None,
    parsed: Parsed,
    deduped: Deduped,
    rate: Fraction,
    ttl: timedelta,
) -> Accrued:
    """Money, AI correlation, connections and counters for the fresh events."""
    fresh = deduped.fresh
    props = dict(base.manifest.properties) if base else {}
    prev_mark = props.get("watermark")
    mark = bounded_watermark(
        fresh, datetime.fromisoformat(prev_mark) if prev_mark else None, parsed.clock
    )
    ai = acc.correlate_ai(
        fresh,
        read_table(base, "ai_requests", AI_REQUESTS),
        read_table(base, "pending_ai", PENDING_AI),
        mark,
        ttl,
    )
    credits = pa.concat_tables([acc.transcode_credits(fresh), ai.credited])
    cx = connections_after(base, fresh, props)
    tables = {
        "balances": acc.accrue(read_table(base, "balances", BALANCES), credits, rate),
        "ai_requests": ai.requests,
        "pending_ai": ai.pending,
        "connections": cx.open,
        "connections_closed": cx.closed,
        "connection_events": cx.log,
        "workers": conn.update_workers(
            read_table(base, "workers", WORKERS), fresh, cx.open, cx.count_delta
        ),
        "unattributed": ai.unattributed,
        "tickets": tickets_from(fresh),
        "ai_credits": ai.credited,
    }
    counts = batch_counts(parsed, deduped)
    for name in COUNTERS:
        props[name] = int(props.get(name, 0)) + getattr(counts, name)
    props["unattributed_fees_wei"] = str(
        int(props.get("unattributed_fees_wei", "0")) + wei_sum(ai.unattributed.column("fees_wei"))
    )
    props["pending_ai_jobs"] = ai.pending.num_rows
    props["watermark"] = mark.isoformat() if mark else None
    if cx.clock is not None:
        props["connections_clock"] = cx.clock.isoformat()
    return Accrued(deduped.base_version, tables, props, cx.closed_days)


def batch_counts(parsed: Parsed, deduped: Deduped) -> Counts:
    """This batch's counts; raises unless read = accepted + duplicate + rejected.

    ``events_read`` comes from the reader's per-file counts and the other three from the
    tables after dedup, so the equation fails when an event went missing in between.
    """
    counts = parsed.counts()
    counts.events_accepted = deduped.fresh.num_rows
    counts.events_duplicate = deduped.duplicates
    counts.events_rejected = parsed.rejected.num_rows + deduped.conflicts.num_rows
    if counts.events_read != (
        counts.events_accepted + counts.events_duplicate + counts.events_rejected
    ):
        raise AssertionError(f"event counts do not reconcile: {counts}")
    return counts


def write_batch(
    base: Snapshot | None,
    txn: Transaction,
    parsed: Parsed,
    deduped: Deduped,
    accrued: Accrued,
) -> Counts:
    """Put one batch's changes into ``txn`` (all of them: one batch, one commit)."""
    version = (base.version if base else 0) + 1
    if deduped.base_version != version - 1 or accrued.base_version != version - 1:
        raise ValueError("dedup/accrual were computed against another base version")
    fresh = deduped.fresh
    if fresh.num_rows:
        ids = fresh.select(["event_id", "content_sha256"]).cast(ID_INDEX)
        hours = split_by(ids, hour_slice(fresh))
        known = known_ids(base, [h for h, _ in hours])
        for h, new in hours:
            txn.replace_slice("event_ids", h, pa.concat_tables([known[h], new]))
        # day_slice is what strftime("%Y-%m-%d") gives, without ~1.5 us a row
        for day, part in split_by(fresh, day_slice(fresh)):
            txn.append("events", part, slice_=day)
    elif base is None or not base.has_table("events"):
        txn.append("events", EVENTS.empty_table())

    write_connections(
        txn,
        base,
        accrued.tables["connections"],
        accrued.tables["connections_closed"],
        accrued.closed_days,
        accrued.tables["connection_events"],
    )
    for name in REPLACED:
        txn.replace(name, accrued.tables[name])
    for name in APPENDED:
        txn.append(name, accrued.tables[name])
    rejected = pa.concat_tables([parsed.rejected, deduped.conflicts]).cast(REJECTED)
    txn.append("rejected_events", with_version(rejected, "rejected_at_version", version))
    txn.append(
        "quarantined_files",
        with_version(parsed.quarantined, "quarantined_at_version", version),
    )
    write_index(txn, base, with_version(parsed.files, "snapshot_version", version))
    txn.set_properties(**accrued.properties)
    txn.set_properties(**committed_properties(base, parsed.files, parsed.clock, parsed.sweep))
    return batch_counts(parsed, deduped)


def apply_batch(
    base: Snapshot | None,
    txn: Transaction,
    parsed: Parsed,
    rate: Fraction,
    ttl: timedelta,
) -> Counts:
    """Dedup, accrue and stage ``parsed`` onto ``base`` in one go (files it already has drop)."""
    parsed = parsed.without_done(base)
    deduped = dedup_batch(base, parsed)
    return write_batch(base, txn, parsed, deduped, accrue_batch(base, parsed, deduped, rate, ttl))
