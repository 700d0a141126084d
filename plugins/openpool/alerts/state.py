"""The record of sent alerts: one snapshot chain (``alerts/pool/`` in the state store).

Committed like every other state (an exclusive create of the next manifest; a racing
writer rebases), so a retry, a rerun or two evaluators at once never lose a record. A row
is *open* while its condition holds; :func:`apply` adds a row for each alert just sent
and closes the rows whose condition cleared, so the same key recurring is a new alert.
Closed rows are kept for :data:`KEEP_CLEARED` (what the page's "newest alert" reads).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from openpool.alerts.conditions import Condition
from openpool.partitions import AlertsKey
from openpool.snapshots import Snapshot, SnapshotStore, Transaction, commit_with_retry
from openpool.storage import ObjectStore
from openpool.tables import ALERTS, read_table

KEEP_CLEARED = timedelta(days=30)


def alert_store(state: ObjectStore) -> SnapshotStore:
    return SnapshotStore(state, AlertsKey())


def rows(snap: Snapshot | None) -> list[dict[str, Any]]:
    """Every recorded alert, oldest first."""
    return read_table(snap, "alerts", ALERTS).to_pylist()


def open_keys(snap: Snapshot | None) -> set[str]:
    return {r["key"] for r in rows(snap) if r["cleared_at"] is None}


def apply(
    base: list[dict[str, Any]],
    sent: Iterable[Condition],
    active: set[str],
    keep_kinds: set[str],
    now: datetime,
) -> list[dict[str, Any]]:
    """``base`` with a row opened for each alert ``sent`` (unless its key is open already:
    a racing evaluator recorded it first) and each open row closed whose key is no longer
    ``active`` -- except rows of ``keep_kinds``, which could not be evaluated."""
    out = []
    for r in base:
        cleared = r["cleared_at"] is None and r["key"] not in active
        if cleared and r["kind"] not in keep_kinds:
            r = {**r, "cleared_at": now}
        if r["cleared_at"] is not None and now - r["cleared_at"] > KEEP_CLEARED:
            continue
        out.append(r)
    still_open = {r["key"] for r in out if r["cleared_at"] is None}
    for c in sent:
        if c.key in still_open:
            continue
        still_open.add(c.key)
        out.append(
            {
                "key": c.key,
                "kind": c.kind,
                "partition": c.partition,
                "subject": c.subject,
                "text": c.text,
                "opened_at": now,
                "cleared_at": None,
            }
        )
    return out


def record(
    state: ObjectStore,
    sent: list[Condition],
    active: set[str],
    keep_kinds: set[str],
    now: datetime,
    run_id: str,
) -> Snapshot | None:
    """Commit the sent alerts and the cleared ones; nothing is written when nothing
    changed (an unchanged condition costs no commit)."""
    store = alert_store(state)

    def build(base: Snapshot | None, txn: Transaction) -> None:
        after = apply(rows(base), sent, active, keep_kinds, now)
        txn.replace("alerts", pa.Table.from_pylist(after, schema=ALERTS))

    base = store.latest()
    if apply(rows(base), sent, active, keep_kinds, now) == rows(base):
        return None
    return commit_with_retry(store, build, run_id)
