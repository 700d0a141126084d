"""Versioned, atomically committed Parquet snapshots of one partition's state.

Commit protocol (optimistic, as in Iceberg):

1. A writer reads the latest version N (hint object, then probe N+1, N+2, ... until absent).
   A hinted manifest that is missing, or a gap in the chain, is :class:`CorruptState`:
   never read as an older version, never a number created twice.
2. It writes every new data file under a fresh unique name (never overwriting anything).
3. It creates manifest N+1 with an exclusive create (S3 ``If-None-Match: *``, local
   ``link(2)``). That single create is the commit: before it nothing is visible, after it
   everything is.
4. If N+1 is taken, the writer reads it: if it carries the writer's own commit id, an
   earlier attempt of this very request succeeded (a lost response); otherwise another
   writer won and :class:`CommitConflict` carries both versions so the caller can rebase.
5. It then rewrites the "latest" hint (best effort; readers never trust it alone).

Files of failed or abandoned commits are orphans that ``gc`` removes after a grace period.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from openpool.errors import (
    CommitConflict,
    CommitRetriesExhausted,
    CorruptManifest,
    CorruptState,
    MissingDataFile,
    ObjectExists,
    ObjectNotFound,
    SnapshotNotFound,
)
from openpool.partitions import StateKey
from openpool.snapshots import parquet
from openpool.snapshots.manifest import (
    DATA_DIR,
    LATEST_HINT,
    MANIFEST_DIR,
    DataFile,
    Manifest,
    manifest_name,
)
from openpool.storage import ObjectStore, unique_suffix

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class SnapshotStore:
    """The chain of snapshots of one partition, under ``{state root}/{region}/{node_type}/``."""

    def __init__(self, store: ObjectStore, partition: StateKey, clock: Clock = utc_now) -> None:
        self.store = store
        self.partition = partition
        self.clock = clock
        self.prefix = f"{partition.path}/"

    # -- keys -------------------------------------------------------------------------
    def _key(self, rel: str) -> str:
        return self.prefix + rel

    def url(self, rel: str) -> str:
        return self.store.url(self._key(rel))

    # -- finding versions ---------------------------------------------------------------
    def _hint(self) -> int | None:
        """The hinted version; ``None`` when there is no hint or it cannot be read."""
        try:
            raw = self.store.get(self._key(LATEST_HINT))
        except ObjectNotFound:
            return None
        try:
            value = json.loads(raw)["version"]
        except (ValueError, KeyError, TypeError):
            value = None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        log.warning("ignoring unreadable latest hint %s; listing manifests", self.url(LATEST_HINT))
        return None

    def latest_version(self) -> int:
        """Newest committed version (0 when the partition has none).

        Starts from the hint, checks that the hinted manifest exists, then probes forward
        one manifest at a time, and one past the first absent one (a gap): a few requests,
        independent of the length of history. The hint is only ever written after its
        version committed and manifests are never deleted, so a hinted manifest that is
        missing, or a gap, is damage (:class:`CorruptState`), never an older version --
        that would roll the state back and let the next commit reuse the lost number.
        Without a readable hint the manifests are listed and the chain checked whole.
        """
        n = self._hint()
        if n is None:
            return self._scan_latest()
        if n and not self.store.exists(self._key(manifest_name(n))):
            raise CorruptState(
                f"the latest hint names version {n}, whose manifest is missing "
                "(deleted, or restored from an older copy?)",
                [self.url(LATEST_HINT), self.url(manifest_name(n))],
            )
        while True:
            while self.store.exists(self._key(manifest_name(n + 1))):
                n += 1
            if not self.store.exists(self._key(manifest_name(n + 2))):
                return n
            # n + 2 is built on n + 1, so n + 1 existed first -- perhaps only since our probe
            # (two commits landing between the two requests). Still absent now: a real gap.
            if not self.store.exists(self._key(manifest_name(n + 1))):
                raise self._gap([n + 1])

    def _gap(self, missing: list[int]) -> CorruptState:
        shown = [self.url(manifest_name(v)) for v in missing[:5]]
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        return CorruptState(f"the version chain has a gap{more}; missing", shown)

    def _versions(self) -> list[int]:
        """Every committed version, listed; :class:`CorruptState` if the chain has a gap."""
        found = sorted(
            v
            for v in (_version_of(i.key) for i in self.store.list(self._key(MANIFEST_DIR + "/")))
            if v > 0
        )
        expected = set(range(1, (found[-1] if found else 0) + 1))
        missing = sorted(expected - set(found))
        if missing:
            raise self._gap(missing)
        return found

    def _scan_latest(self) -> int:
        found = self._versions()
        return found[-1] if found else 0

    def manifest(self, version: int) -> Manifest:
        """Manifest of ``version``; :class:`SnapshotNotFound` if it was never committed."""
        rel = manifest_name(version)
        try:
            raw = self.store.get(self._key(rel))
        except ObjectNotFound:
            raise SnapshotNotFound(f"{self.partition}: no version {version}") from None
        manifest = Manifest.from_bytes(raw, self.url(rel), expect_version=version)
        if manifest.partition != self.partition:
            raise CorruptManifest(self.url(rel), f"belongs to partition {manifest.partition}")
        return manifest

    def latest(self) -> Snapshot | None:
        """The newest snapshot, or ``None`` for a partition never committed to."""
        n = self.latest_version()
        return Snapshot(self, self.manifest(n)) if n else None

    def at(self, version: int) -> Snapshot:
        """Time travel: the snapshot exactly as ``version`` committed it."""
        return Snapshot(self, self.manifest(version))

    def history(self, limit: int | None = None) -> list[Manifest]:
        """Manifests newest first (this lists the manifest folder: for operators, not hot paths)."""
        versions = self._versions()[::-1]
        if limit is not None:
            versions = versions[:limit]
        return [self.manifest(v) for v in versions]

    # -- writing ------------------------------------------------------------------------
    def begin(self, base: Snapshot | None, run_id: str) -> Transaction:
        """Start a change on top of ``base`` (``None`` = the empty partition)."""
        return Transaction(self, base, run_id)

    def _write_data(self, table_name: str, table: pa.Table, version_hint: int) -> DataFile:
        data = parquet.encode(table)
        rel = f"{DATA_DIR}/{table_name}/{version_hint:020d}-{unique_suffix()}.parquet"
        try:
            self.store.put_if_absent(self._key(rel), data)
        except ObjectExists:
            # The name is fresh and random: a taken name means a retried request whose
            # first response was lost. Ours if it holds these very bytes.
            if self.store.get(self._key(rel)) != data:
                raise
        return DataFile(
            path=rel,
            rows=table.num_rows,
            size=len(data),
            sha256=parquet.sha256_hex(data),
            stats=parquet.file_stats(table),
        )

    def _publish(self, manifest: Manifest) -> None:
        rel = manifest_name(manifest.version)
        hint = self._hint()
        if hint is not None and hint >= manifest.version and not self.store.exists(self._key(rel)):
            # The hint names only committed versions: this number was committed once and
            # its manifest is gone. Creating it again would reuse the number.
            raise CorruptState(
                f"version {manifest.version} was committed (the latest hint names {hint}) "
                "but its manifest is missing; refusing to create it again",
                [self.url(LATEST_HINT), self.url(rel)],
            )
        try:
            self.store.put_if_absent(self._key(rel), manifest.to_bytes())
        except ObjectExists:
            # Ours (a retried request whose first response was lost) or another writer's?
            existing = self.manifest(manifest.version)
            if existing.commit_id != manifest.commit_id:
                raise CommitConflict(
                    str(self.partition), manifest.version, self.latest_version()
                ) from None
        self._write_hint(manifest.version)

    def _write_hint(self, version: int) -> None:
        try:
            self.store.put(self._key(LATEST_HINT), json.dumps({"version": version}).encode())
        except Exception as exc:  # the hint is an optimisation; a stale one is corrected
            log.warning("could not update latest hint to %d: %s", version, exc)


@dataclass(frozen=True)
class Snapshot:
    """A committed version: its manifest, and readers for its tables."""

    snapshots: SnapshotStore
    manifest: Manifest

    @property
    def version(self) -> int:
        return self.manifest.version

    def has_table(self, name: str) -> bool:
        return name in self.manifest.tables

    def files(self, name: str, slices: Iterable[str | None] | None = None) -> tuple[DataFile, ...]:
        """The table's files; with ``slices``, those of these slices (None = unsliced)."""
        files = self.manifest.tables.get(name, ())
        if slices is None:
            return files
        wanted = set(slices)
        return tuple(f for f in files if f.slice in wanted)

    def slices(self, name: str) -> set[str]:
        return {f.slice for f in self.manifest.tables.get(name, ()) if f.slice is not None}

    def read(
        self,
        name: str,
        slices: Iterable[str | None] | None = None,
        schema: pa.Schema | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """The table's rows (optionally only some slices, and only some columns).

        A table this version does not have is empty only if the caller supplies its
        schema; a file that is missing or damaged raises, naming the object.
        """
        files = self.files(name, slices)
        if not self.has_table(name) and schema is None:
            raise KeyError(f"{self.snapshots.partition} v{self.version} has no table {name!r}")
        if columns is not None and schema is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        tables = [self._read_file(f, columns) for f in files]
        if not tables:
            if schema is None:
                raise KeyError(f"{self.snapshots.partition} v{self.version}: {name!r} has no files")
            return schema.empty_table()
        if schema is not None:
            tables = [t.cast(schema) if t.schema != schema else t for t in tables]
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def iter_files(self, name: str) -> Iterator[pa.Table]:
        for f in self.files(name):
            yield self._read_file(f)

    def _read_file(self, f: DataFile, columns: list[str] | None = None) -> pa.Table:
        store = self.snapshots.store
        key = self.snapshots._key(f.path)
        try:
            data = store.get(key)
        except ObjectNotFound:
            raise MissingDataFile(store.url(key), self.version) from None
        return parquet.decode(data, store.url(key), size=f.size, sha256=f.sha256, columns=columns)


class Transaction:
    """Changes to be committed together as the next version.

    Data files are written as soon as a change is staged (so large tables do not stay in
    memory); none is visible until :meth:`commit` creates the manifest.
    """

    def __init__(self, snapshots: SnapshotStore, base: Snapshot | None, run_id: str) -> None:
        self.snapshots = snapshots
        self.base = base
        self.run_id = run_id
        self.commit_id = uuid.uuid4().hex
        self._tables: dict[str, list[DataFile]] = (
            {k: list(v) for k, v in base.manifest.tables.items()} if base else {}
        )
        self._properties: dict[str, Any] = dict(base.manifest.properties) if base else {}
        self._next = (base.version if base else 0) + 1
        self._done = False

    def _write_file(self, name: str, table: pa.Table, slice_: str | None) -> DataFile:
        f = self.snapshots._write_data(name, table, self._next)
        if slice_ is not None:
            f = DataFile(f.path, f.rows, f.size, f.sha256, slice_, f.stats)
        return f

    def replace(self, name: str, table: pa.Table) -> None:
        """The table becomes exactly ``table`` (an empty table keeps its schema)."""
        self._tables[name] = [self._write_file(name, table, None)]

    def append(self, name: str, table: pa.Table, slice_: str | None = None) -> None:
        """Add ``table``'s rows as one more file (skipped when empty)."""
        if table.num_rows == 0:
            self._tables.setdefault(name, [])
            return
        self._tables.setdefault(name, []).append(self._write_file(name, table, slice_))

    def replace_slice(self, name: str, slice_: str | None, table: pa.Table) -> None:
        """Replace every file of one slice of ``name`` (None: its unsliced files) with
        ``table`` (an empty one: drop them)."""
        kept = [f for f in self._tables.get(name, []) if f.slice != slice_]
        if table.num_rows:
            kept.append(self._write_file(name, table, slice_))
        self._tables[name] = kept

    def replace_file(
        self, name: str, old: DataFile, table: pa.Table, ingested_version: int | None = None
    ) -> None:
        """Replace one data file of ``name`` by ``table`` (same slice; none if empty).

        For corrections that remove a few rows: ``ingested_version`` keeps, in the new
        file's stats, which version first wrote those rows.
        """
        files = self._tables.get(name, [])
        if old not in files:
            raise KeyError(f"{name}: {old.path} is not a file of the base version")
        files = [f for f in files if f != old]
        if table.num_rows:
            f = self._write_file(name, table, old.slice)
            if ingested_version is not None:
                f = DataFile(
                    f.path, f.rows, f.size, f.sha256, f.slice,
                    {**f.stats, "ingested_version": ingested_version},
                )  # fmt: skip
            files.append(f)
        self._tables[name] = files

    def set_properties(self, **props: Any) -> None:
        """Small JSON-serialisable values carried in the manifest (e.g. counters)."""
        self._properties.update(props)

    def commit(self) -> Snapshot:
        """Publish the next version or raise :class:`CommitConflict`."""
        if self._done:
            raise RuntimeError("transaction already committed")
        manifest = Manifest(
            partition=self.snapshots.partition,
            version=self._next,
            parent_version=self.base.version if self.base else None,
            created_at=self.snapshots.clock().astimezone(UTC).isoformat(),
            run_id=self.run_id,
            commit_id=self.commit_id,
            tables={k: tuple(v) for k, v in self._tables.items()},
            properties=self._properties,
        )
        self.snapshots._publish(manifest)
        self._done = True
        return Snapshot(self.snapshots, manifest)


def commit_with_retry(
    snapshots: SnapshotStore,
    build: Callable[[Snapshot | None, Transaction], None],
    run_id: str,
    attempts: int = 10,
    base_delay: float = 0.02,
) -> Snapshot:
    """Read latest, apply ``build``, commit; on conflict rebase onto the new latest and retry.

    ``build`` must derive its changes only from the snapshot it is given, so that a retry
    on a newer base applies the change once, on top of everything already committed.
    """
    last: CommitConflict | None = None
    for attempt in range(attempts):
        base = snapshots.latest()
        txn = snapshots.begin(base, run_id)
        build(base, txn)
        try:
            return txn.commit()
        except CommitConflict as exc:
            last = exc
            log.info(
                "commit conflict on %s (attempt %d): %s", snapshots.partition, attempt + 1, exc
            )
            time.sleep(base_delay * (2 ** min(attempt, 6)) * (0.5 + random.random()))  # noqa: S311
    raise CommitRetriesExhausted(
        f"{snapshots.partition}: lost the commit race {attempts} times; last: {last}"
    )


def _version_of(key: str) -> int:
    name = key.rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0]
    return int(stem) if stem.isdigit() else 0
