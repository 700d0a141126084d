"""The ingest pipeline as separately retryable steps, for schedulers (the DAGs use these).

``parse → dedup → accrue → commit → archive``, each a plain function of the stores and a
run key. Steps hand data on through :class:`~openpool.ingest.staging.Staging` and return
only small JSON-able summaries. Only ``commit`` changes what anyone can see, and it is
safe to repeat: if this run's batch is already in the latest snapshot it does nothing,
and if another writer committed first it redoes dedup and accrual on the new base.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import pyarrow as pa

from openpool.errors import CommitConflict, ObjectNotFound, StorageError
from openpool.ingest.batch import (
    APPENDED,
    CONNECTION_TABLES,
    REPLACED,
    Accrued,
    Counts,
    Deduped,
    Parsed,
    accrue_batch,
    dedup_batch,
    parse_batch,
    write_batch,
)
from openpool.ingest.clock import DEFAULT_SKEW
from openpool.ingest.discovery import Candidate
from openpool.ingest.run import commit_parsed, quarantine_copier
from openpool.ingest.staging import Staging
from openpool.ingest.window import Sweep, Window, discover, pending
from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import ObjectInfo, ObjectStore
from openpool.tables import (
    AI_CREDITS,
    EVENTS,
    INGESTED,
    QUARANTINED,
    REJECTED,
    UNATTRIBUTED,
)

log = logging.getLogger(__name__)

_TABLE_SCHEMAS: dict[str, pa.Schema | None] = {
    **REPLACED,
    **CONNECTION_TABLES,
    "unattributed": UNATTRIBUTED,
    "tickets": None,
    "ai_credits": AI_CREDITS,
}


@dataclass
class StepEnv:
    """Where one partition's pipeline reads and writes, and its money settings."""

    partition: Partition
    events: ObjectStore
    state: ObjectStore
    archive: ObjectStore | None
    rate: Fraction
    ttl: timedelta = timedelta(hours=24)
    max_files: int = 250
    skew: timedelta = DEFAULT_SKEW  # how far past the wall clock an event may be dated
    window: Window = field(default_factory=Window)  # what a scheduled run lists

    @property
    def snapshots(self) -> SnapshotStore:
        return SnapshotStore(self.state, self.partition)

    def staging(self, run_key: str) -> Staging:
        return Staging(self.state, self.partition, run_key)


def has_new_files(env: StepEnv, listing: list[ObjectInfo]) -> bool:
    """True when ``listing`` holds a file whose (key, ETag) was never ingested."""
    return bool(pending(env.snapshots.latest(), listing))


def parse(
    env: StepEnv,
    run_key: str,
    start: datetime | None = None,
    end: datetime | None = None,
    sweep: bool = False,
) -> dict[str, Any]:
    """Read the files not yet ingested and stage them.

    A scheduled run (no interval) takes at most ``max_files`` files of the events
    location, oldest first; the next run takes the rest. A backfill or replay (``start``
    and/or ``end`` given) takes every file whose key time falls in ``[start, end)``, from
    the events location and from the archive, so that one run completes its interval.
    A scheduled run lists the window after the watermark, or sweeps the whole partition
    when one is due or ``sweep`` asks (:mod:`openpool.ingest.window`).
    """
    replay = start is not None or end is not None
    base = env.snapshots.latest()
    sources = [env.events] + ([env.archive] if replay and env.archive is not None else [])
    chosen: dict[tuple[str, str], tuple[Candidate, ObjectStore]] = {}
    found = [discover(s, env.partition, base, env.window, None, sweep, start, end) for s in sources]
    for store, f in zip(sources, found, strict=True):
        for cand in f.candidates:
            chosen.setdefault((cand.key, cand.etag), (cand, store))
    todo = sorted(chosen.values(), key=lambda cs: cs[0].sort_key)
    if not replay:
        todo = todo[: env.max_files]
    # a sweep is recorded by the commit that takes the last of what it found
    swept = found[0].sweep if len(todo) == len(chosen) else None
    files: list[tuple[Candidate, bytes]] = []
    from_archive: list[str] = []
    for cand, store in todo:
        try:
            files.append((cand, store.get(cand.key)))
        except ObjectNotFound:  # deleted since the listing: the next run lists again
            log.warning("%s vanished before it was read; left for the next run", cand.key)
            continue
        if store is not env.events:
            from_archive.append(cand.key)
    parsed = parse_batch(
        env.partition, files, quarantine_copier(env.state, env.partition), skew=env.skew
    )
    counts = parsed.counts()
    summary = {
        "files": parsed.files.num_rows,
        "files_quarantined": counts.files_quarantined,
        "events_read": counts.events_read,
        "from_archive": len(from_archive),
        "base_version": base.version if base else 0,
        "listed": found[0].listed,
        "sweep": found[0].sweep.as_dict() if found[0].sweep else None,
    }
    env.staging(run_key).write(
        "parse",
        {
            "events": parsed.events,
            "rejected": parsed.rejected,
            "quarantined": parsed.quarantined,
            "files": parsed.files,
        },
        {
            **summary,
            "from_archive_keys": from_archive,
            "clock": parsed.clock.isoformat() if parsed.clock else None,
            "sweep_record": swept.as_dict() if swept else None,
        },
    )
    log.info("%s parse: %s", env.partition, summary)
    return summary


def _parsed(staging: Staging) -> Parsed:
    meta = staging.meta("parse")
    clock = meta.get("clock")
    return Parsed(
        events=staging.read("parse", "events", EVENTS),
        rejected=staging.read("parse", "rejected", REJECTED),
        quarantined=staging.read("parse", "quarantined", QUARANTINED),
        files=staging.read("parse", "files", INGESTED),
        clock=datetime.fromisoformat(clock) if clock else None,
        sweep=Sweep.from_dict(meta.get("sweep_record")),
    )


def _base(env: StepEnv, version: int) -> Snapshot | None:
    return env.snapshots.at(version) if version else None


def dedup(env: StepEnv, run_key: str) -> dict[str, Any]:
    """Split the staged events against the latest snapshot's ID index (its hours only)."""
    staging = env.staging(run_key)
    base = env.snapshots.latest()
    parsed = _parsed(staging).without_done(base)
    d = dedup_batch(base, parsed)
    summary = {
        "base_version": d.base_version,
        "fresh": d.fresh.num_rows,
        "duplicates": d.duplicates,
        "conflicts": d.conflicts.num_rows,
    }
    staging.write("dedup", {"fresh": d.fresh, "conflicts": d.conflicts}, summary)
    log.info("%s dedup: %s", env.partition, summary)
    return summary


def _deduped(staging: Staging) -> Deduped:
    meta = staging.meta("dedup")
    return Deduped(
        base_version=meta["base_version"],
        fresh=staging.read("dedup", "fresh", EVENTS),
        conflicts=staging.read("dedup", "conflicts", REJECTED),
        duplicates=meta["duplicates"],
    )


def accrue(env: StepEnv, run_key: str) -> dict[str, Any]:
    """Balances, AI correlation and connections on the base dedup used."""
    staging = env.staging(run_key)
    deduped = _deduped(staging)
    base = _base(env, deduped.base_version)
    parsed = _parsed(staging).without_done(base)
    a = accrue_batch(base, parsed, deduped, env.rate, env.ttl)
    summary = {
        "base_version": a.base_version,
        "workers": a.tables["balances"].num_rows,
        "pending_ai_jobs": a.properties["pending_ai_jobs"],
        "unattributed_jobs": a.tables["unattributed"].num_rows,
    }
    staging.write(
        "accrue",
        a.tables,
        {**summary, "properties": a.properties, "closed_days": a.closed_days},
    )
    log.info("%s accrue: %s", env.partition, summary)
    return summary


def _accrued(staging: Staging) -> Accrued:
    meta = staging.meta("accrue")
    names = (*REPLACED, *CONNECTION_TABLES, *APPENDED)
    tables = {n: staging.read("accrue", n, _TABLE_SCHEMAS.get(n)) for n in names}
    return Accrued(
        meta["base_version"], tables, meta["properties"], list(meta.get("closed_days", []))
    )


def commit(env: StepEnv, run_key: str) -> dict[str, Any]:
    """Commit the staged batch as one snapshot; idempotent, rebases when it must."""
    staging = env.staging(run_key)
    snaps = env.snapshots
    latest = snaps.latest()
    # Decide from the file list alone: a retry after a commit that went in finds its
    # files in the snapshot (and the bulk of its staging already cleared).
    files_only = Parsed(
        EVENTS.empty_table(),
        REJECTED.empty_table(),
        QUARANTINED.empty_table(),
        staging.read("parse", "files", INGESTED),
        sweep=Sweep.from_dict(staging.meta("parse").get("sweep_record")),
    )
    if files_only.nothing_to_commit(latest):
        version = latest.version if latest else 0
        log.info("%s commit: nothing to commit (already in v%d)", env.partition, version)
        return {"snapshot_version": version, "committed": False, **Counts().as_dict()}
    parsed_all = _parsed(staging)
    pending = parsed_all.without_done(latest)
    deduped, accrued = _deduped(staging), _accrued(staging)
    current = latest.version if latest else 0
    if deduped.base_version == current and accrued.base_version == current:
        txn = snaps.begin(latest, run_id=run_key)
        counts = write_batch(latest, txn, pending, deduped, accrued)
        try:
            snap: Snapshot | None = txn.commit()
        except CommitConflict as exc:  # lost the race to another writer: recompute on its base
            log.warning("%s commit: %s; rebasing", env.partition, exc)
            snap, counts = commit_parsed(snaps, parsed_all, env.rate, env.ttl, run_key)
    else:
        log.info(
            "%s commit: base moved v%d → v%d; rebasing",
            env.partition,
            deduped.base_version,
            current,
        )
        snap, counts = commit_parsed(snaps, parsed_all, env.rate, env.ttl, run_key)
    version = snap.version if snap else 0
    staging.clear(keep=("parse/files",))  # archive still needs the file list
    log.info("%s commit: v%d %s", env.partition, version, counts)
    return {"snapshot_version": version, "committed": True, **counts.as_dict()}


def archive(env: StepEnv, run_key: str) -> dict[str, Any]:
    """Copy this run's files to the archive under the same key and verify each copy.

    A file re-uploaded since it was parsed is left alone: its new content is not what was
    ingested, and the next run ingests (and then archives) it.
    """
    staging = env.staging(run_key)
    if not staging.has("parse"):  # already archived and cleaned by an earlier try
        return {"archived": 0, "skipped": 0}
    if env.archive is None:
        staging.clear()
        return {"archived": 0, "skipped": 0}
    already = set(staging.meta("parse")["from_archive_keys"])
    files = staging.read("parse", "files", INGESTED).to_pylist()
    archived = skipped = 0
    for f in files:
        key = f["source_key"]
        if key in already:  # read from the archive: its copy is there
            continue
        try:
            head = env.events.head(key)
        except ObjectNotFound:
            head = None
        if head is None or head.etag != f["etag"]:
            skipped += 1
            log.warning("%s changed or vanished since it was read; not archived now", key)
            continue
        data = env.events.get(key)
        env.archive.put(key, data)
        copy = env.archive.get(key)
        if hashlib.sha256(copy).digest() != hashlib.sha256(data).digest():
            raise StorageError(f"archive copy of {key} does not match the original")
        archived += 1
    staging.clear()
    summary = {"archived": archived, "skipped": skipped}
    log.info("%s archive: %s", env.partition, summary)
    return summary
