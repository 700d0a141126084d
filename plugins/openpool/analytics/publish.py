"""Publishing a snapshot for Athena: only committed data, switched atomically per partition.

What is published, where, and the state recorded for each partition are in
:mod:`.published`; this module makes a snapshot what Athena sees.

* Tables the snapshot already holds are not copied: their symlinks name the snapshot's
  own data files, which are immutable and named only by committed manifests (``events``
  ← ``events``, ``worker_balances`` ← ``balances``, ``worker_connections`` ←
  ``connections``, ``rejected_events`` ← ``rejected_events``). Files of a failed commit
  or of superseded versions are therefore never listed.
* Derived tables (``worker_summary``, ``worker_performance``, ``payouts``, ``ai_credits``,
  ``worker_statements``) come from the
  caller as Arrow tables (:func:`derive` builds them), are conformed to their
  published schema (:data:`~.published.TABLES`) and written under ``published/<table>/``.
  Their names hold the snapshot version and a content hash, so republishing writes nothing
  new. A table with no rows is published as one empty Parquet file, so every table always
  has a schema.

Order of a publish: data files first, then the changed symlinks, then the state. A crash
at any point leaves every symlink naming a complete, committed set of files: the old one or
the new one. Versions never go backwards: a snapshot older than the published (or
half-published) version is skipped. Publishers of one partition are expected to run one at
a time (the DAG runs one at a time per partition); the version check makes a late retry of
an older run harmless, but the store offers no compare-and-swap to fence two truly
simultaneous publishers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import pyarrow as pa

from openpool.analytics.published import (
    PAYOUTS,
    PERFORMANCE,
    PREFIX,
    TABLES,
    PublishedState,
    partition_dir,
    read_state,
    state_key,
    symlink_key,
)
from openpool.errors import ObjectExists
from openpool.partitions import Partition
from openpool.snapshots import DataFile, Snapshot, parquet
from openpool.storage import ObjectStore

# Published table <- snapshot table whose files are referenced as they are.
FROM_SNAPSHOT: dict[str, str] = {
    "worker_balances": "balances",
    "worker_connections": "connections",
    "rejected_events": "rejected_events",
}
# Tables the caller supplies (see :func:`derive`); one not supplied is published empty.
DERIVED: tuple[str, ...] = (
    "worker_summary",
    "worker_performance",
    "payouts",
    "ai_credits",
    "worker_statements",
)

Clock = Callable[[], datetime]
DEFAULT_RATE = Fraction(1, 4)  # POOL_COMMISSION_RATE's default (config.py)


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
    commission_rate: Fraction = DEFAULT_RATE,
    min_timed_jobs: int | None = None,
) -> dict[str, pa.Table]:
    """The derived tables of ``snapshot``, as :func:`publish` wants them.

    ``payouts``: the partition's rows of the payout ledger (every status change), as
    ``worker_summary`` takes them; published as one row per payment.
    ``commission_rate``: ``POOL_COMMISSION_RATE``, for the statements' per-job commission.
    """
    from openpool.analytics.performance import MIN_TIMED_JOBS, performance
    from openpool.analytics.summary import worker_summary

    perf = performance(snapshot, min_timed_jobs=min_timed_jobs or MIN_TIMED_JOBS)
    return derived_tables(
        worker_summary(snapshot, partition, threshold_wei, payouts).table(),
        perf.transcode,
        perf.ai,
        snapshot,
        payouts,
        commission_rate,
    )


def derived_tables(
    summary: pa.Table,
    transcode: pa.Table,
    ai: pa.Table,
    snapshot: Snapshot,
    payouts: pa.Table | None,
    commission_rate: Fraction,
) -> dict[str, pa.Table]:
    """Every derived table from the summary and performance tables already computed."""
    from openpool.analytics.credited import ai_credit_rows
    from openpool.analytics.statement import daily_lines, published_lines
    from openpool.payments import current

    records = current(payouts) if payouts is not None and payouts.num_rows else []
    return {
        "worker_summary": summary,
        "worker_performance": pa.concat_tables(
            [conform(transcode, PERFORMANCE), conform(ai, PERFORMANCE)]
        ),
        "payouts": payments(payouts),
        "ai_credits": ai_credit_rows(snapshot),
        "worker_statements": published_lines(daily_lines(snapshot, commission_rate), records),
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


__all__ = [
    "DERIVED",
    "FROM_SNAPSHOT",
    "PublishReport",
    "conform",
    "derive",
    "payments",
    "publish",
]
