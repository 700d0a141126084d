"""What Athena sees: the published tables' schemas, layout and per-partition state.

Athena reads the published tables through *symlink manifests*
(``SymlinkTextInputFormat``): text objects listing the full URIs of the Parquet files that
make up a partition. Rewriting one such object is a single PUT, so Athena sees either the
old list or the new one; the files a list names are complete before the list is written
(:mod:`.publish` writes them).

Layout under the state store (``OPENPOOL_STATE_URI``)::

    published/_symlinks/<table>/region=<r>/node_type=<t>/[date=<d>/]symlink.txt
    published/<table>/region=<r>/node_type=<t>/<version>-<sha256[:16]>.parquet
    published/_state/<region>/<node_type>.json

* ``symlink.txt`` lists, one per line, the URIs (``s3://...`` or ``file://...``) of the
  partition's visible files, and nothing else (Athena takes every line as a path).
  ``events`` has one per event date (``YYYY-MM-DD``, the snapshot's own date slices).
* ``published/<table>/`` holds the files of the tables a publish writes; their names hold
  the snapshot version and a content hash.
* ``_state`` (:class:`PublishedState`) records the snapshot version the symlinks show and
  a hash of each symlink's content. It is written last; before any symlink changes it is
  rewritten with ``in_progress`` set, so a publish that dies half-way is recognised and
  redone in full.

Retention: :func:`collect_published` deletes superseded published files (unlisted, below
the published version, older than a grace period). Symlinks also name snapshot files of
the version they show, so the snapshot ``gc`` must keep that version's files; with its
default grace period that holds as long as publishing follows each commit within a day
(the DAG publishes right after each commit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa

from openpool.analytics.credited import AI_CREDITED
from openpool.analytics.performance import AI as AI_PERFORMANCE
from openpool.analytics.performance import TRANSCODE as TRANSCODE_PERFORMANCE
from openpool.analytics.statement import WORKER_STATEMENTS
from openpool.analytics.summary import SUMMARY
from openpool.errors import CorruptObject, ObjectNotFound
from openpool.money import WEI
from openpool.partitions import Partition
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
    "ai_credits": AI_CREDITED,
    "worker_statements": WORKER_STATEMENTS,
}
DATED: frozenset[str] = frozenset({"events"})


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
    "DATED",
    "DATE_KEY",
    "PAYOUTS",
    "PERFORMANCE",
    "SYMLINKS",
    "TABLES",
    "PublishedState",
    "collect_published",
    "partition_columns",
    "partition_dir",
    "published_columns",
    "read_state",
    "state_key",
    "symlink_key",
    "visible_files",
]
