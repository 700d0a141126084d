"""Worker connections: who is connected, since when, and when they were last seen.

Connection events are few (jobs dominate), so they are replayed in true order (event
time, then file, then position in file) with plain Python. Workers are never deleted: a
disconnected worker stays with ``active = false``.
"""

from __future__ import annotations

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


def apply_connections(connections: pa.Table, fresh: pa.Table) -> pa.Table:
    """Replay connection events onto the connection rows."""
    ev = fresh.filter(pc.is_in(fresh.column("event_type"), pa.array(_KINDS)))
    if ev.num_rows == 0:
        return connections.cast(CONNECTIONS)
    # Closed rows never change again: only the open ones go through Python (the table
    # keeps every connection ever made, so it grows with history).
    connections = connections.cast(CONNECTIONS)
    is_open = pc.is_null(connections.column("disconnected_at"))
    closed = connections.filter(pc.invert(is_open))
    rows = connections.filter(is_open).to_pylist()
    ev = ev.sort_by(
        [("event_time", "ascending"), ("source_key", "ascending"), ("source_index", "ascending")]
    )
    open_rows: dict[tuple[str, str], dict] = {
        (r["eth_address"], r["connection"]): r for r in rows if r["disconnected_at"] is None
    }
    for e in ev.select(["event_type", "event_time", "eth_address", "connection"]).to_pylist():
        kind, at = e["event_type"], e["event_time"]
        if kind == "orchestrator-reset":
            for key, r in list(open_rows.items()):
                if r["connected_at"] <= at:
                    r["disconnected_at"], r["close_reason"] = at, "orchestrator-reset"
                    del open_rows[key]
            continue
        key = (e["eth_address"], e["connection"])
        if kind == "worker-connected":
            if key not in open_rows:
                row = {
                    "eth_address": key[0],
                    "connection": key[1],
                    "connected_at": at,
                    "disconnected_at": None,
                    "close_reason": None,
                }
                rows.append(row)
                open_rows[key] = row
        elif key in open_rows and open_rows[key]["connected_at"] <= at:
            open_rows[key]["disconnected_at"] = at
            open_rows[key]["close_reason"] = "worker-disconnected"
            del open_rows[key]
    return pa.concat_tables([closed, pa.Table.from_pylist(rows, schema=CONNECTIONS)])


def update_workers(workers: pa.Table, fresh: pa.Table, connections: pa.Table) -> pa.Table:
    """First/last seen over every event naming a worker; connection count; active flag."""
    # The batch is reduced to one row per worker first (events without a worker form the
    # null group, dropped), so only those rows meet the previous table.
    seen = (
        fresh.select(["eth_address", "event_time"])
        .group_by("eth_address", use_threads=False)
        .aggregate([("event_time", "min"), ("event_time", "max")])
    )
    seen = seen.filter(pc.is_valid(seen.column("eth_address")))
    prev = workers.cast(WORKERS).select(["eth_address", "first_seen", "last_seen"])
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
    conn_count = connections.group_by("eth_address", use_threads=False).aggregate(
        [("connection", "count")]
    )
    open_conn = connections.filter(pc.is_null(connections.column("disconnected_at")))
    active = set(open_conn.column("eth_address").to_pylist())
    counts = dict(
        zip(
            conn_count.column("eth_address").to_pylist(),
            conn_count.column("connection_count").to_pylist(),
            strict=True,
        )
    )
    addrs = agg.column("eth_address").to_pylist()
    out = pa.table(
        {
            "eth_address": agg.column("eth_address"),
            "first_seen": agg.column("first_seen_min"),
            "last_seen": agg.column("last_seen_max"),
            "connection_count": pa.array([counts.get(a, 0) for a in addrs], pa.int64()),
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
