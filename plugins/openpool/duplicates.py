"""The full-history duplicate check: every event ID, over every hour of every partition.

An ingest checks its events' IDs against the ID index slices of the hours those events are
dated in, so its cost stays flat as history grows. An event that comes back dated in
another hour (the orchestrators never do that: a re-upload keeps its ``DT``; and an event
must lie inside its file's key window) is therefore not seen as a repeat by that ingest.
This check reads every slice of every partition's ID index at once, in DuckDB (spilling to
disk when history outgrows memory), and finds every ID held in two places. It runs in every
payout plan and every execute, on the snapshots whose balances they check: a worker that
such an event touched is not paid until the repeat is resolved.

Reading only (a payout plan, execute and the dashboard run it); the resolution that writes
is :func:`openpool.ingest.resolve.resolve_duplicates`.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.snapshots.manifest import DataFile
from openpool.storage import ObjectStore
from openpool.tables import RESOLUTIONS

_VERSION_RE = re.compile(r"/(\d{20})-[^/]*\.parquet$")


@dataclass(frozen=True)
class Occurrence:
    """One place an event ID is held: a partition's ID index slice and its ledger row."""

    partition: str
    hour: str
    event_type: str | None = None
    event_time: str | None = None
    source_key: str | None = None
    source_index: int | None = None
    worker: str | None = None  # whom it credited (AI jobs: through their job-received)
    fees_wei: int | None = None
    version: int | None = None  # the snapshot version that ingested it
    committed_at: str | None = None


@dataclass
class Duplicate:
    """An event ID held more than once; ``occurrences[0]`` (first committed) counts."""

    event_id: str
    occurrences: list[Occurrence]

    @property
    def workers(self) -> set[tuple[str, str]]:
        """(partition, worker) of every occurrence that names a worker."""
        return {(o.partition, o.worker) for o in self.occurrences if o.worker}


@dataclass
class DuplicateReport:
    """What one full-history check found."""

    unresolved: list[Duplicate] = field(default_factory=list)
    ids_checked: int = 0
    versions: dict[str, int] = field(default_factory=dict)  # partition -> version read

    def blocked(self) -> dict[tuple[str, str], list[str]]:
        """(partition, worker) -> the unresolved event IDs that touched it."""
        out: dict[tuple[str, str], list[str]] = {}
        for d in self.unresolved:
            for key in sorted(d.workers):
                out.setdefault(key, []).append(d.event_id)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ids_checked": self.ids_checked,
            "versions": self.versions,
            "unresolved": [
                {"event_id": d.event_id, "occurrences": [asdict(o) for o in d.occurrences]}
                for d in self.unresolved
            ],
        }


def ingested_version(f: DataFile) -> int:
    kept = f.stats.get("ingested_version") if f.stats else None
    if isinstance(kept, int):
        return kept
    m = _VERSION_RE.search("/" + f.path)
    return int(m.group(1)) if m else 0


def resolved_ids(snap: Snapshot) -> set[tuple[str, str]]:
    if not snap.has_table("duplicate_resolutions"):
        return set()
    t = snap.read("duplicate_resolutions", schema=RESOLUTIONS, columns=["event_id", "hour"])
    return set(zip(t.column("event_id").to_pylist(), t.column("hour").to_pylist(), strict=True))


def _repeated_ids(snaps: dict[str, Snapshot]) -> tuple[dict[str, list[tuple[str, str]]], int]:
    """(ID -> [(partition, hour)] for every ID held more than once, IDs checked)."""
    with tempfile.TemporaryDirectory(prefix="openpool-dups-") as tmp:
        db = duckdb.connect(f"{tmp}/ids.duckdb")
        try:
            db.execute(f"SET temp_directory = '{tmp}/spill'")
            db.execute("SET memory_limit = '2GB'")
            db.execute("SET threads = 1")
            db.execute("CREATE TABLE ids (partition VARCHAR, hour VARCHAR, event_id VARCHAR)")
            for part, snap in snaps.items():
                for f in snap.files("event_ids"):
                    t = snap._read_file(f, ["event_id"])
                    chunk = pa.table(  # noqa: F841 - read by DuckDB by name
                        {
                            "partition": pa.repeat(pa.scalar(part), t.num_rows),
                            "hour": pa.repeat(pa.scalar(f.slice or ""), t.num_rows),
                            "event_id": t.column("event_id"),
                        }
                    )
                    db.execute("INSERT INTO ids SELECT * FROM chunk")
            (checked,) = db.execute("SELECT count(*) FROM ids").fetchone() or (0,)
            rows = db.execute(
                """
                SELECT i.event_id, i.partition, i.hour FROM ids i
                JOIN (SELECT event_id FROM ids GROUP BY event_id HAVING count(*) > 1) d
                  USING (event_id)
                ORDER BY i.event_id, i.partition, i.hour
                """
            ).fetchall()
        finally:
            db.close()
    out: dict[str, list[tuple[str, str]]] = {}
    for eid, part, hour in rows:
        out.setdefault(eid, []).append((part, hour))
    return out, int(checked)


def hour_day(hour: str) -> str:
    return f"{hour[:4]}-{hour[4:6]}-{hour[6:8]}"


def locate(snap: Snapshot, wanted: dict[str, set[str]]) -> list[dict[str, Any]]:
    """Ledger rows (with their file and the version that ingested them) of ``wanted``
    (event ID -> hours), reading only the days those hours fall in."""
    days: dict[str, set[str]] = {}
    for eid, hours in wanted.items():
        for h in hours:
            days.setdefault(hour_day(h), set()).add(eid)
    found: list[dict[str, Any]] = []
    for day, ids in sorted(days.items()):
        for f in snap.files("events", [day]):
            t = snap._read_file(f)
            hit = t.filter(pc.is_in(t.column("event_id"), pa.array(sorted(ids), pa.string())))
            for r in hit.to_pylist():
                hour = f"{r['event_time']:%Y%m%d%H}"
                if hour in wanted.get(r["event_id"], ()):
                    found.append({**r, "_file": f, "_hour": hour, "_version": ingested_version(f)})
    return found


def credited_workers(snap: Snapshot, rows: list[dict[str, Any]]) -> dict[tuple[str, datetime], str]:
    """(event ID, time) -> worker of the AI job-processed rows' credits."""
    ai = [r for r in rows if r["event_type"] == "job-processed" and r["node_type"] == "ai"]
    if not ai or not snap.has_table("ai_credits"):
        return {}
    ids = pa.array(sorted({r["event_id"] for r in ai}), pa.string())
    out: dict[tuple[str, datetime], str] = {}
    for f in covering_files(snap, "ai_credits", [r["event_time"] for r in ai]):
        t = snap._read_file(f)
        t = t.filter(pc.is_in(t.column("event_id"), ids))
        for r in t.to_pylist():
            out[(r["event_id"], r["event_time"])] = r["eth_address"]
    return out


def covering_files(snap: Snapshot, name: str, times: list[datetime]) -> list[DataFile]:
    """Files of ``name`` whose event-time range (manifest stats) holds one of ``times``;
    a file without stats is always read."""
    out = []
    for f in snap.files(name):
        lo, hi = f.stats.get("min_event_time"), f.stats.get("max_event_time")
        if lo is None or hi is None:
            out.append(f)
            continue
        a, b = datetime.fromisoformat(lo), datetime.fromisoformat(hi)
        if any(a <= t <= b for t in times):
            out.append(f)
    return out


def find_duplicates(
    state: ObjectStore,
    partitions: Iterable[Partition],
    pinned: dict[str, Snapshot | None] | None = None,
) -> DuplicateReport:
    """Every event ID held more than once across ``partitions`` and not yet resolved.

    ``pinned`` (partition key -> snapshot) fixes the versions checked: a payout plan passes
    the very snapshots it pays from, so nothing committed between the check and the
    payment is paid unchecked.
    """
    snaps: dict[str, Snapshot] = {}
    for partition in partitions:
        key = str(partition)
        snap = pinned[key] if pinned and key in pinned else None
        if pinned is None or key not in pinned:
            snap = SnapshotStore(state, partition).latest()
        if snap is not None:
            snaps[key] = snap
    report = DuplicateReport(versions={k: s.version for k, s in snaps.items()})
    if not snaps:
        return report
    repeated, report.ids_checked = _repeated_ids(snaps)
    if not repeated:
        return report
    resolved = {k: resolved_ids(s) for k, s in snaps.items()}
    live: dict[str, list[tuple[str, str]]] = {}
    for eid, places in repeated.items():
        left = [(p, h) for p, h in places if (eid, h) not in resolved[p]]
        if len(left) > 1:
            live[eid] = left
    rows_by_part: dict[str, list[dict[str, Any]]] = {}
    for part, snap in snaps.items():
        wanted: dict[str, set[str]] = {}
        for eid, places in live.items():
            for p, h in places:
                if p == part:
                    wanted.setdefault(eid, set()).add(h)
        if wanted:
            rows_by_part[part] = locate(snap, wanted)
    committed: dict[tuple[str, int], str] = {}
    occurrences: dict[str, list[Occurrence]] = {}
    for part, rows in rows_by_part.items():
        snap = snaps[part]
        credited = credited_workers(snap, rows)
        for r in rows:
            v = r["_version"]
            if (part, v) not in committed:
                committed[(part, v)] = snap.snapshots.manifest(v).created_at if v else ""
            worker = r["eth_address"] or credited.get((r["event_id"], r["event_time"]))
            occurrences.setdefault(r["event_id"], []).append(
                Occurrence(
                    partition=part,
                    hour=r["_hour"],
                    event_type=r["event_type"],
                    event_time=r["event_time"].isoformat(),
                    source_key=r["source_key"],
                    source_index=r["source_index"],
                    worker=worker,
                    fees_wei=int(r["fees_wei"]) if r["fees_wei"] is not None else None,
                    version=v,
                    committed_at=committed[(part, v)],
                )
            )
    for eid in sorted(live):
        occ = occurrences.get(eid, [])
        # An index entry whose ledger row is gone is reported with what the index knows.
        seen = {(o.partition, o.hour) for o in occ}
        occ += [Occurrence(p, h) for p, h in live[eid] if (p, h) not in seen]
        report.unresolved.append(Duplicate(eid, first_committed(occ)))
    return report


def first_committed(occ: list[Occurrence]) -> list[Occurrence]:
    """Occurrences in commit order. Within one partition its versions say it (no host
    clock involved); across partitions the manifests' creation times do."""
    if len({o.partition for o in occ}) == 1:
        return sorted(occ, key=lambda o: (o.version is None, o.version or 0, o.hour))
    return sorted(occ, key=lambda o: (o.committed_at or "~", o.version or 0, o.partition, o.hour))
