"""Worker connections: who is connected, since when, and when they were last seen.

Connection events are few (jobs dominate), so they are replayed in true order (event
time, then file, then position in file) with plain Python. Workers are never deleted: a
disconnected worker stays with ``active = false``.

The ``connections`` table keeps every connection ever made, so it grows with history; an
ingest reads and rewrites only its ``open`` slice and appends the rows it closes to the
``closed`` slice, so a run's cost does not grow with the table. (Unsliced files, as
versions before the split wrote them, are read whole once and rewritten in slices.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from openpool.tables import CONNECTION_LOG, CONNECTIONS, TS, WORKERS

KINDS = ("worker-connected", "worker-disconnected", "orchestrator-reset")
# Slices of the connections table: ``open``, and the closed rows by the day they closed
# (``closed-YYYY-MM-DD``), so a late event rewrites only the days after it. ``closed`` is
# the single closed slice of earlier versions, moved into day slices once.
OPEN, CLOSED = "open", "closed"
CLOSED_PREFIX = "closed-"
_ORDER = [("event_time", "ascending"), ("source_key", "ascending"), ("source_index", "ascending")]


def closed_slice(day: str) -> str:
    return f"{CLOSED_PREFIX}{day}"


def log_of(events: pa.Table) -> pa.Table:
    """The connection events of ``events`` in true order, as the CONNECTION_LOG keeps them."""
    ev = events.filter(pc.is_in(events.column("event_type"), pa.array(KINDS)))
    return ev.select(CONNECTION_LOG.names).cast(CONNECTION_LOG).sort_by(_ORDER)


@dataclass
class Rederived:
    """Connections after replaying, in true order, every connection event from ``since``."""

    change: ConnectionChange  # open after; closed at or after ``since``; opened since
    count_delta: dict[str, int]  # per worker: connections opened minus those undone


def rederive(
    open_rows: pa.Table,
    closed_since: pa.Table,
    log_since: pa.Table,
    since: datetime,
) -> Rederived:
    """Re-derive the connections from ``since`` on, as if every event had come in order.

    ``open_rows`` are the connections open now, ``closed_since`` those closed at or after
    ``since`` and ``log_since`` every connection event at or after ``since`` (history and
    batch). A connection made before ``since`` was open just before it unless it closed
    earlier; everything made at or after it is made again by the replay.
    """
    at = pa.scalar(since, TS)
    both = pa.concat_tables([open_rows.cast(CONNECTIONS), closed_since.cast(CONNECTIONS)])
    before = pc.less(both.column("connected_at"), at)
    undone = both.filter(pc.invert(before))
    state = both.filter(before)
    state = state.set_column(
        state.schema.get_field_index("disconnected_at"),
        "disconnected_at",
        pa.nulls(state.num_rows, TS),
    ).set_column(
        state.schema.get_field_index("close_reason"),
        "close_reason",
        pa.nulls(state.num_rows, pa.string()),
    )
    change = replay_connections(state, log_since)
    delta = opened_counts(change.opened)
    for a in undone.column("eth_address").to_pylist():
        delta[a] = delta.get(a, 0) - 1
    return Rederived(change, delta)


@dataclass
class ConnectionChange:
    """What one batch's connection events did to the open connections."""

    open: pa.Table  # every connection open after the batch
    closed: pa.Table  # connections the batch closed (open before, or opened and closed)
    opened: pa.Table  # connections the batch opened (open or closed now)


def split_open(connections: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(open rows, closed rows) of a connections table."""
    connections = connections.cast(CONNECTIONS)
    is_open = pc.is_null(connections.column("disconnected_at"))
    return connections.filter(is_open), connections.filter(pc.invert(is_open))


def apply_connections(connections: pa.Table, fresh: pa.Table) -> pa.Table:
    """Replay connection events onto a whole connections table (open and closed rows)."""
    open_rows, closed = split_open(connections)
    change = replay_connections(open_rows, fresh)
    return pa.concat_tables([closed, change.closed, change.open])


def replay_connections(open_rows: pa.Table, fresh: pa.Table) -> ConnectionChange:
    """Replay the batch's connection events onto the open connections."""
    ev = fresh.filter(pc.is_in(fresh.column("event_type"), pa.array(KINDS)))
    open_rows = open_rows.cast(CONNECTIONS)
    if ev.num_rows == 0:
        empty = CONNECTIONS.empty_table()
        return ConnectionChange(open_rows, empty, empty)
    rows = open_rows.to_pylist()
    known = len(rows)
    ev = ev.sort_by(_ORDER)
    by_key: dict[tuple[str, str], dict] = {
        (r["eth_address"], r["connection"]): r for r in rows if r["disconnected_at"] is None
    }
    for e in ev.select(["event_type", "event_time", "eth_address", "connection"]).to_pylist():
        kind, at = e["event_type"], e["event_time"]
        if kind == "orchestrator-reset":
            for key, r in list(by_key.items()):
                if r["connected_at"] <= at:
                    r["disconnected_at"], r["close_reason"] = at, "orchestrator-reset"
                    del by_key[key]
            continue
        key = (e["eth_address"], e["connection"])
        if kind == "worker-connected":
            if key not in by_key:
                row = {
                    "eth_address": key[0],
                    "connection": key[1],
                    "connected_at": at,
                    "disconnected_at": None,
                    "close_reason": None,
                }
                rows.append(row)
                by_key[key] = row
        elif key in by_key and by_key[key]["connected_at"] <= at:
            by_key[key]["disconnected_at"] = at
            by_key[key]["close_reason"] = "worker-disconnected"
            del by_key[key]
    after = pa.Table.from_pylist(rows, schema=CONNECTIONS)
    still, closed = split_open(after)
    return ConnectionChange(still, closed, after.slice(known))


def opened_counts(opened: pa.Table) -> dict[str, int]:
    """Connections opened per worker (the ``count_delta`` of an in-order batch)."""
    out: dict[str, int] = {}
    for a in opened.column("eth_address").to_pylist():
        out[a] = out.get(a, 0) + 1
    return out


def update_workers(
    workers: pa.Table, fresh: pa.Table, open_now: pa.Table, count_delta: dict[str, int]
) -> pa.Table:
    """First/last seen over every event naming a worker; connection count (the previous
    count plus ``count_delta``: connections opened, less any a late event undid); active =
    holds a connection in ``open_now``."""
    # The batch is reduced to one row per worker first (events without a worker form the
    # null group, dropped), so only those rows meet the previous table.
    seen = (
        fresh.select(["eth_address", "event_time"])
        .group_by("eth_address", use_threads=False)
        .aggregate([("event_time", "min"), ("event_time", "max")])
    )
    seen = seen.filter(pc.is_valid(seen.column("eth_address")))
    workers = workers.cast(WORKERS)
    prev = workers.select(["eth_address", "first_seen", "last_seen"])
    both = pa.concat_tables(
        [
            prev,
            pa.table(
                {
                    "eth_address": seen.column("eth_address"),
                    "first_seen": seen.column("event_time_min"),
                    "last_seen": seen.column("event_time_max"),
                }
            ).cast(prev.schema),
        ]
    )
    agg = both.group_by("eth_address", use_threads=False).aggregate(
        [("first_seen", "min"), ("last_seen", "max")]
    )
    active = set(open_now.column("eth_address").to_pylist())
    counts = dict(
        zip(
            workers.column("eth_address").to_pylist(),
            workers.column("connection_count").to_pylist(),
            strict=True,
        )
    )
    for addr, k in count_delta.items():
        counts[addr] = (counts.get(addr) or 0) + k
    addrs = agg.column("eth_address").to_pylist()
    out = pa.table(
        {
            "eth_address": agg.column("eth_address"),
            "first_seen": agg.column("first_seen_min"),
            "last_seen": agg.column("last_seen_max"),
            "connection_count": pa.array([counts.get(a) or 0 for a in addrs], pa.int64()),
            "active": pa.array([a in active for a in addrs], pa.bool_()),
        },
        schema=WORKERS,
    )
    return out.sort_by("eth_address")
