"""Published Parquet for Athena: only committed data, switched atomically per partition.

Athena reads the published tables through *symlink manifests*
(``SymlinkTextInputFormat``): text objects listing the full URIs of the Parquet files that
make up a partition. Rewriting one such object is a single PUT, so Athena sees either the
old list or the new one; the files a list names are complete before the list is written.

Layout under the state store (``OPENPOOL_STATE_URI``)::

    published/_symlinks/<table>/region=<r>/node_type=<t>/[date=<d>/]symlink.txt
    published/<table>/region=<r>/node_type=<t>/<version>-<sha256[:16]>.parquet
    published/_state/<region>/<node_type>.json

* ``symlink.txt`` lists, one per line, the URIs (``s3://...`` or ``file://...``) of the
  partition's visible files, and nothing else (Athena takes every line as a path).
  ``events`` has one per event date (``YYYY-MM-DD``, the snapshot's own date slices).
* Tables the snapshot already holds are not copied: their symlinks name the snapshot's
  own data files, which are immutable and named only by committed manifests (``events``
  ← ``events``, ``worker_balances`` ← ``balances``, ``worker_connections`` ←
  ``connections``, ``rejected_events`` ← ``rejected_events``). Files of a failed commit
  or of superseded versions are therefore never listed.
* Derived tables (``worker_summary``, ``worker_performance``, ``payouts``) come from the
  caller as Arrow tables (:func:`derive` builds them), are conformed to their
  published schema (:data:`TABLES`) and written under ``published/<table>/``. Their names
  hold the snapshot version and a content hash, so republishing writes nothing new. A table
  with no rows is published as one empty Parquet file, so every table always has a schema.
* ``_state`` records the snapshot version the symlinks show and a hash of each symlink's
  content. It is written last; before any symlink changes it is rewritten with
  ``in_progress`` set, so a publish that dies half-way is recognised and redone in full.

Order of a publish: data files first, then the changed symlinks, then the state. A crash
at any point leaves every symlink naming a complete, committed set of files: the old one or
the new one. Versions never go backwards: a snapshot older than the published (or
half-published) version is skipped. Publishers of one partition are expected to run one at
a time (the DAG runs one at a time per partition); the version check makes a late retry of
an older run harmless, but the store offers no compare-and-swap to fence two truly
simultaneous publishers.

Retention: :func:`collect_published` deletes superseded published files (unlisted, below
the published version, older than a grace period). Symlinks also name snapshot files of
the version they show, so the snapshot ``gc`` must keep that version's files; with its
default grace period that holds as long as publishing follows each commit within a day
(the DAG publishes right after each commit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from openpool.analytics.performance import AI as AI_PERFORMANCE
from openpool.analytics.performance import TRANSCODE as TRANSCODE_PERFORMANCE
from openpool.analytics.summary import SUMMARY
from openpool.errors import CorruptObject, ObjectExists, ObjectNotFound
from openpool.money import WEI
from openpool.partitions import Partition
from openpool.snapshots import DataFile, Snapshot, parquet
from openpool.storage import ObjectStore
from openpool.tables import BALANCES, CONNECTIONS, EVENTS, REJECTED, TS

PREFIX = "published"
SYMLINKS = f"{PREFIX}/_symlinks"
STATE = f"{PREFIX}/_state"
SYMLINK_NAME = "symlink.txt"
STATE_FORMAT = "openpool-published/1"

# Partition columns, in path order; they come from the path, not from the files.
PARTITION_KEYS: tuple[str, ...] = ("region", "node_type")
DATE_KEY = "date"


def _union(*schemas: pa.Schema) -> pa.Schema:
    """Fields of all ``schemas`` in first-seen order (a name must have one type)."""
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for f in schema:
            if f.name in fields and fields[f.name].type != f.type:
                raise TypeError(f"column {f.name!r} has two types")
            fields.setdefault(f.name, f)
    return pa.schema(list(fields.values()))


# One table for both node types, so Athena has one schema: AI rows leave the transcode
# speed columns null and vice versa.
PERFORMANCE = _union(AI_PERFORMANCE, TRANSCODE_PERFORMANCE)

# One row per payment, at its latest status (the payout ledger keeps every change).
PAYOUTS = pa.schema(
    [
        ("payment_id", pa.string()),
        ("eth_address", pa.string()),
        ("amount_wei", WEI),
        ("status", pa.string()),
        ("tx_hash", pa.string()),
        ("nonce", pa.int64()),
        ("planned_at", TS),
        ("confirmed_at", TS),
    ]
)

# Every published table and its schema (the DDL is generated from these).
TABLES: dict[str, pa.Schema] = {
    "events": EVENTS,
    "worker_balances": BALANCES,
    "worker_summary": SUMMARY,
    "worker_performance": PERFORMANCE,
    "worker_connections": CONNECTIONS,
    "payouts": PAYOUTS,
    "rejected_events": REJECTED,
}
# Published table <- snapshot table whose files are referenced as they are.
FROM_SNAPSHOT: dict[str, str] = {
    "worker_balances": "balances",
    "worker_connections": "connections",
    "rejected_events": "rejected_events",
}
# Tables the caller supplies (see :func:`derive`); one not supplied is published empty.
DERIVED: tuple[str, ...] = ("worker_summary", "worker_performance", "payouts")
DATED: frozenset[str] = frozenset({"events"})

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class PublishReport:
    """What one publish did; ``published`` is False when a newer version is visible."""

    partition: str
    snapshot_version: int
    visible_version: int
    published: bool
    data_files_written: int = 0
    symlinks_written: int = 0
    files: dict[str, int] = field(default_factory=dict)  # table -> files now listed
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows now visible


@dataclass(frozen=True)
class PublishedState:
    """Contents of ``published/_state/<region>/<node_type>.json``."""

    version: int
    commit_id: str | None
    published_at: str | None
    in_progress: int | None
    symlinks: dict[str, str]  # symlink.txt key -> sha256 of its content

    def to_bytes(self, partition: Partition) -> bytes:
        doc = {
            "format": STATE_FORMAT,
            "partition": partition.key,
            "version": self.version,
            "commit_id": self.commit_id,
            "published_at": self.published_at,
            "in_progress": self.in_progress,
            "symlinks": self.symlinks,
        }
        return json.dumps(doc, sort_keys=True, indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes, uri: str) -> PublishedState:
        try:
            doc = json.loads(data)
            if doc.get("format") != STATE_FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            version, in_progress = doc["version"], doc.get("in_progress")
            links = doc["symlinks"]
            if not isinstance(version, int) or isinstance(version, bool):
                raise ValueError("version is not an integer")
            if in_progress is not None and not isinstance(in_progress, int):
                raise ValueError("in_progress is not an integer")
            if not isinstance(links, dict) or not all(isinstance(v, str) for v in links.values()):
                raise ValueError("symlinks is not an object of hashes")
            return cls(version, doc.get("commit_id"), doc.get("published_at"), in_progress, links)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptObject(uri, str(exc)) from None


def state_key(partition: Partition) -> str:
    return f"{STATE}/{partition.region}/{partition.node_type}.json"


def partition_dir(table: str, partition: Partition, date: str | None = None) -> str:
    """``<table>/region=<r>/node_type=<t>/[date=<d>/]`` (Hive-style, as projection expects)."""
    rel = f"{table}/region={partition.region}/node_type={partition.node_type}/"
    return rel + (f"{DATE_KEY}={date}/" if date is not None else "")


def symlink_key(table: str, partition: Partition, date: str | None = None) -> str:
    return f"{SYMLINKS}/{partition_dir(table, partition, date)}{SYMLINK_NAME}"


def read_state(state: ObjectStore, partition: Partition) -> PublishedState | None:
    """The partition's published state; ``None`` if never published, raises if unreadable."""
    key = state_key(partition)
    try:
        raw = state.get(key)
    except ObjectNotFound:
        return None
    return PublishedState.from_bytes(raw, state.url(key))


def conform(table: pa.Table, schema: pa.Schema, name: str = "table") -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing ones null, types cast.

    A column the schema does not have is an error (it would vanish silently), and so is a
    float column where the schema has money (decimal): no float on any money path.
    """
    extra = [c for c in table.column_names if c not in schema.names]
    if extra:
        raise ValueError(f"{name}: columns not in the published schema: {extra}")
    cols = []
    for f in schema:
        if f.name not in table.column_names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        col = table.column(f.name)
        if pa.types.is_decimal(f.type) and pa.types.is_floating(col.type):
            raise TypeError(f"{name}.{f.name}: float given for a decimal money column")
        cols.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def derive(
    snapshot: Snapshot,
    partition: Partition,
    threshold_wei: int,
    payouts: pa.Table | None = None,
) -> dict[str, pa.Table]:
    """The derived tables of ``snapshot``, as :func:`publish` wants them.

    ``payouts``: the partition's rows of the payout ledger (every status change), as
    ``worker_summary`` takes them; published as one row per payment.
    """
    from openpool.analytics.performance import performance
    from openpool.analytics.summary import worker_summary

    perf = performance(snapshot)
    return {
        "worker_summary": worker_summary(snapshot, partition, threshold_wei, payouts).table(),
        "worker_performance": pa.concat_tables(
            [conform(perf.transcode, PERFORMANCE), conform(perf.ai, PERFORMANCE)]
        ),
        "payouts": payments(payouts),
    }


def payments(ledger: pa.Table | None) -> pa.Table:
    """One row per payment from payout-ledger rows (each status change is a row).

    The latest row gives the status, amount, nonce and transaction; ``planned_at`` is the
    first row's ``recorded_at`` and ``confirmed_at`` the confirming row's. Payments are
    few, so plain Python over rows; amounts stay exact (``Decimal``/``int``). A payment is
    its wallet's (``wallet`` column, several ledgers) and id: ids are unique per ledger only.
    """
    if ledger is None or ledger.num_rows == 0:
        return PAYOUTS.empty_table()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in ledger.to_pylist():
        key = (r.get("wallet") or "", r["payment_id"])
        p = rows.get(key)
        if p is None:
            p = rows[key] = {"planned_at": r.get("recorded_at"), "confirmed_at": None}
        p.update({k: r.get(k) for k in ("payment_id", "eth_address", "amount_wei", "status")})
        p.update({k: r[k] for k in ("tx_hash", "nonce") if r.get(k) is not None})
        if r["status"] == "confirmed":
            p["confirmed_at"] = r.get("recorded_at")
    out = [{k: p.get(k) for k in PAYOUTS.names} for _, p in sorted(rows.items())]
    return pa.Table.from_pylist(out, schema=PAYOUTS)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _content(uris: list[str]) -> bytes:
    return "".join(u + "\n" for u in sorted(uris)).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Plan:
    """Symlink contents to show, and the derived data files they need."""

    def __init__(self, state: ObjectStore, partition: Partition, version: int) -> None:
        self.state, self.partition, self.version = state, partition, version
        self.links: dict[str, list[str]] = {}
        self.rows: dict[str, int] = {}
        self.files: dict[str, int] = {}
        self.written = 0

    def show(self, table: str, uris: list[str], rows: int, date: str | None = None) -> None:
        self.links[symlink_key(table, self.partition, date)] = uris
        self.rows[table] = self.rows.get(table, 0) + rows
        self.files[table] = self.files.get(table, 0) + len(uris)

    def write(self, table: str, data: pa.Table) -> None:
        """Publish ``data`` as one new Parquet file (complete before anything names it)."""
        body = parquet.encode(data)
        key = (
            f"{PREFIX}/{partition_dir(table, self.partition)}"
            f"{self.version:020d}-{_sha(body)[:16]}.parquet"
        )
        try:
            self.state.put_if_absent(key, body)
            self.written += 1
        except ObjectExists:
            pass  # the name holds the content's hash: an earlier attempt wrote these bytes
        self.show(table, [self.state.url(key)], data.num_rows)


def _plan(
    state: ObjectStore, partition: Partition, snapshot: Snapshot, derived: dict[str, pa.Table]
) -> _Plan:
    plan = _Plan(state, partition, snapshot.version)
    snaps = snapshot.snapshots
    by_day: dict[str, list[DataFile]] = {}
    for f in snapshot.files("events"):
        if f.slice is not None:  # the ledger is always sliced by event date
            by_day.setdefault(f.slice, []).append(f)
    for day, files in sorted(by_day.items()):
        plan.show("events", [snaps.url(f.path) for f in files], sum(f.rows for f in files), day)
    for table, source in FROM_SNAPSHOT.items():
        held = snapshot.files(source)
        if held:
            plan.show(table, [snaps.url(f.path) for f in held], sum(f.rows for f in held))
        else:
            plan.write(table, TABLES[table].empty_table())
    for table in DERIVED:
        data = derived.get(table)
        plan.write(table, TABLES[table].empty_table() if data is None else data)
    return plan


def publish(
    state: ObjectStore,
    partition: Partition,
    snapshot: Snapshot,
    derived: dict[str, pa.Table] | None = None,
    clock: Clock = _utc_now,
) -> PublishReport:
    """Make ``snapshot`` (and the caller's derived tables) what Athena sees for ``partition``.

    ``derived`` maps table names of :data:`DERIVED` to Arrow tables (conformed to their
    published schema: missing columns null, unknown ones an error); one not given is
    published empty, so Athena never shows an older version's rows for it.
    Idempotent; never replaces a newer published version with an older one.
    """
    unknown = sorted(set(derived or {}) - set(DERIVED))
    if unknown:
        raise ValueError(f"not derived tables: {unknown} (expected some of {DERIVED})")
    given = {k: conform(v, TABLES[k], k) for k, v in (derived or {}).items()}
    if snapshot.snapshots.partition != partition:
        raise ValueError(f"snapshot of {snapshot.snapshots.partition} given for {partition}")
    if snapshot.snapshots.store.uri != state.uri:
        raise ValueError("the snapshot must come from the state store it is published in")

    prev = read_state(state, partition)
    floor = max(prev.version, prev.in_progress or 0) if prev else 0
    if snapshot.version < floor:
        return PublishReport(
            str(partition), snapshot.version, prev.version if prev else 0, published=False
        )

    # 1. Data files (derived tables, empty placeholders): complete before any symlink.
    plan = _plan(state, partition, snapshot, given)
    contents = {k: _content(v) for k, v in plan.links.items()}
    hashes = {k: _sha(v) for k, v in contents.items()}

    # 2. Symlinks whose content changes. The recorded hashes are trusted only after a
    # publish that finished; after a crash (in_progress set) every symlink is rewritten.
    trusted = prev.symlinks if prev is not None and prev.in_progress is None else {}
    changed = [k for k in contents if trusted.get(k) != hashes[k]]
    stale = sorted(set(prev.symlinks if prev else ()) - set(contents))
    skey = state_key(partition)
    if changed or stale:
        intent = prev or PublishedState(0, None, None, None, {})
        intent = PublishedState(
            intent.version,
            intent.commit_id,
            intent.published_at,
            snapshot.version,
            intent.symlinks,
        )
        state.put(skey, intent.to_bytes(partition))
        for k in changed:
            state.put(k, contents[k])
        for k in stale:  # a date partition that no longer exists: no rows
            state.delete(k)

    # 3. The state, last.
    if changed or stale or prev is None or prev.version != snapshot.version:
        done = PublishedState(
            snapshot.version,
            snapshot.manifest.commit_id,
            clock().astimezone(UTC).isoformat(),
            None,
            hashes,
        )
        state.put(skey, done.to_bytes(partition))
    return PublishReport(
        str(partition),
        snapshot.version,
        snapshot.version,
        published=True,
        data_files_written=plan.written,
        symlinks_written=len(changed),
        files=plan.files,
        rows=plan.rows,
    )


def collect_published(
    state: ObjectStore,
    partition: Partition,
    now: datetime,
    grace: timedelta = timedelta(hours=24),
    dry_run: bool = False,
) -> list[str]:
    """Delete the partition's superseded published data files; returns their keys.

    A file goes only if no symlink lists it, its version is below the published (or
    half-published) one, so no publish can name it again (versions never go back), and
    it is older than ``grace`` (a query that read an older symlink may still be reading
    it). Snapshot files named by symlinks are ``gc``'s, never touched here.
    """
    prev = read_state(state, partition)
    if prev is None:
        return []
    floor = max(prev.version, prev.in_progress or 0)
    listed: set[str] = set()
    for table in TABLES:
        listed.update(*visible_files(state, table, partition).values())
    gone = []
    for table in TABLES:
        for info in state.list(f"{PREFIX}/{partition_dir(table, partition)}"):
            name = info.key.rsplit("/", 1)[-1]
            version = name.split("-", 1)[0]
            if (
                name.endswith(".parquet")
                and version.isdigit()
                and int(version) < floor
                and state.url(info.key) not in listed
                and now - info.last_modified >= grace
            ):
                if not dry_run:
                    state.delete(info.key)
                gone.append(info.key)
    return gone


def visible_files(
    state: ObjectStore, table: str, partition: Partition | None = None
) -> dict[str, list[str]]:
    """Symlink key -> URIs it lists, for ``table`` (one partition, or all): what Athena reads."""
    out: dict[str, list[str]] = {}
    where = partition_dir(table, partition) if partition else f"{table}/"
    for info in state.list(f"{SYMLINKS}/{where}"):
        if info.key.endswith("/" + SYMLINK_NAME):
            out[info.key] = state.get(info.key).decode().splitlines()
    return out


def partition_columns(table: str) -> tuple[str, ...]:
    """Columns Athena takes from the path (``events`` also by date)."""
    return (*PARTITION_KEYS, DATE_KEY) if table in DATED else PARTITION_KEYS


def published_columns(table: str) -> list[tuple[str, pa.DataType]]:
    """Data columns Athena declares: the schema minus partition keys (``events`` files
    also carry ``node_type`` and ``region``; Hive forbids a column twice, and the path's
    value is the same)."""
    keys = partition_columns(table)
    return [(f.name, f.type) for f in TABLES[table] if f.name not in keys]


__all__ = [
    "DERIVED",
    "FROM_SNAPSHOT",
    "PERFORMANCE",
    "TABLES",
    "PublishReport",
    "PublishedState",
    "collect_published",
    "conform",
    "derive",
    "partition_columns",
    "payments",
    "publish",
    "published_columns",
    "read_state",
    "state_key",
    "symlink_key",
    "visible_files",
]
