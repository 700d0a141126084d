"""Comparing a partition's state after crashes with the state of a clean single run.

Two levels: *bytes* (every table's data files, in manifest order, have the same SHA-256,
and the manifest properties are equal: Parquet encoding is deterministic, so equal input
gives equal bytes) and *content* (each table's rows, order-normalised, version columns
optionally dropped: for runs whose commits may interleave differently, e.g. two writers
at once). Content is only computed when the bytes differ (equal bytes imply equal rows).
Content inequality is an invariant violation; byte identity is reported as a figure.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import ObjectStore
from tests.chaos.identity import stable_properties

VERSION_COLUMNS = {"rejected_at_version", "quarantined_at_version", "snapshot_version"}


def _canon(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value) if not isinstance(value, (int, str, bool, type(None))) else value


def table_digest(snap: Snapshot, name: str, drop_versions: bool) -> str:
    """SHA-256 over the table's rows as sorted canonical JSON lines."""
    if not snap.files(name):
        return "empty"
    table = snap.read(name)
    if drop_versions:
        table = table.drop_columns([c for c in table.column_names if c in VERSION_COLUMNS])
    rows = sorted(
        json.dumps({k: _canon(v) for k, v in r.items()}, sort_keys=True) for r in table.to_pylist()
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@dataclass
class State:
    """What a snapshot holds, reduced to comparable digests (content computed on demand)."""

    snap: Snapshot
    drop_versions: bool
    quarantine_copies: frozenset[str]
    _content: dict[str, str] | None = field(default=None, repr=False)
    _ids: Counter | None = field(default=None, repr=False)

    @property
    def version(self) -> int:
        return self.snap.version

    @property
    def properties(self) -> dict[str, Any]:
        return stable_properties(dict(self.snap.manifest.properties))

    @property
    def files(self) -> dict[str, tuple[tuple[str | None, int, str], ...]]:
        return {
            t: tuple((f.slice, f.rows, f.sha256) for f in fs)
            for t, fs in self.snap.manifest.tables.items()
        }

    @property
    def content(self) -> dict[str, str]:
        if self._content is None:
            self._content = {
                t: table_digest(self.snap, t, self.drop_versions) for t in self.snap.manifest.tables
            }
        return self._content

    def same_bytes(self, other: State) -> bool:
        return self.files == other.files and self.properties == other.properties

    def diff(self, other: State) -> list[str]:
        """Human-readable differences in content (empty when equal)."""
        out = []
        if self.quarantine_copies != other.quarantine_copies:
            out.append("quarantine copies differ")
        if self.files == other.files and not self.drop_versions and not other.drop_versions:
            tables_equal = True
        else:
            tables_equal = self.content == other.content
        if not tables_equal:
            out += [
                f"table {t}: {'missing' if t not in other.content else 'rows differ'}"
                for t in sorted(set(self.content) | set(other.content))
                if self.content.get(t) != other.content.get(t)
            ]
        mine, theirs = self.properties, other.properties
        for k in sorted(set(mine) | set(theirs)):
            if mine.get(k) != theirs.get(k):
                out.append(f"property {k}: {mine.get(k)} != {theirs.get(k)}")
        return out

    def event_ids(self) -> Counter:
        if not self.snap.has_table("events") or not self.snap.files("events"):
            return Counter()
        return Counter(
            self.snap.read("events", columns=["event_id"]).column("event_id").to_pylist()
        )

    def lost_and_duplicated(self, reference: State) -> tuple[int, int]:
        """Events of the reference missing here, and events here beyond the reference."""
        mine, ref = self.event_ids(), reference.event_ids()
        return sum((ref - mine).values()), sum((mine - ref).values())


def capture(
    store: ObjectStore,
    part: Partition,
    version: int | None = None,
    drop_versions: bool = False,
    copies: bool = True,
) -> State | None:
    """The state of ``part`` at ``version`` (default: latest); None if never committed.

    ``copies``: also list the quarantine copies (only meaningful for a finished run: a
    killed run may have copied a file aside whose batch it never committed).
    """
    snaps = SnapshotStore(store, part)
    snap = snaps.latest() if version is None else snaps.at(version)
    if snap is None:
        return None
    quarantine = (
        frozenset(i.key for i in store.list(f"{part.path}/quarantine/")) if copies else frozenset()
    )
    return State(snap, drop_versions, quarantine)
