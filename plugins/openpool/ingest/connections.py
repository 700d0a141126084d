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

from openpool.ingest.schema import TS

CONNECTIONS = pa.schema(
    [
        ("eth_address", pa.string()),
        ("connection", pa.string()),
        ("connected_at", TS),
        ("disconnected_at", TS),
        ("close_reason", pa.string()),
    ]
)
WORKERS = pa.schema(
    [
        ("eth_address", pa.string()),
        ("first_seen", TS),
        ("last_seen", TS),
        ("connection_count", pa.int64()),
        ("active", pa.bool_()),
    ]
)
_KINDS = ("worker-connected", "worker-disconnected", "orchestrator-reset")
OPEN, CLOSED = "open", "closed"  # the slices of the connections table


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
    ev = fresh.filter(pc.is_in(fresh.column("event_type"), pa.array(_KINDS)))
    open_rows = open_rows.cast(CONNECTIONS)
    if ev.num_rows == 0:
        empty = CONNECTIONS.empty_table()
        return ConnectionChange(open_rows, empty, empty)
    rows = open_rows.to_pylist()
    known = len(rows)
    ev = ev.sort_by(
        [("event_time", "ascending"), ("source_key", "ascending"), ("source_index", "ascending")]
    )
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


def update_workers(
    workers: pa.Table, fresh: pa.Table, open_now: pa.Table, opened: pa.Table
) -> pa.Table:
    """First/last seen over every event naming a worker; connection count (the previous
    count plus the connections the batch ``opened``); active = holds a connection in
    ``open_now``."""
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
    new = opened.group_by("eth_address", use_threads=False).aggregate([("connection", "count")])
    active = set(open_now.column("eth_address").to_pylist())
    counts = dict(
        zip(
            workers.column("eth_address").to_pylist(),
            workers.column("connection_count").to_pylist(),
            strict=True,
        )
    )
    for addr, k in zip(
        new.column("eth_address").to_pylist(),
        new.column("connection_count").to_pylist(),
        strict=True,
    ):
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


def watermark(fresh: pa.Table, previous: datetime | None) -> datetime | None:
    """The newest event time seen in the partition so far."""
    if fresh.num_rows == 0:
        return previous
    mx = pc.max(fresh.column("event_time")).as_py()
    return mx if previous is None or mx > previous else previous
