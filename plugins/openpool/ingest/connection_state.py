"""A batch's connections against the snapshot: what stays open, what closed, and when.

Connection events are replayed in true order (event time, file, position). A batch in
order is replayed onto the open connections; a late one re-derives every connection from
its earliest event on, reading only the day slices from then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openpool.ingest import connections as conn
from openpool.ingest.dedup import day_labels
from openpool.ingest.slicing import compacted, many_files, split_by
from openpool.snapshots import Snapshot, Transaction
from openpool.tables import CONNECTION_LOG, CONNECTIONS, EVENTS, TS


@dataclass
class ConnectionsAfter:
    """The connection tables after a batch (see :func:`connections_after`)."""

    open: pa.Table  # the ``open`` slice, whole
    closed: pa.Table  # closed rows to write, by the day they closed
    closed_days: list[str]  # days whose closed slice is replaced whole by ``closed``'s rows
    log: pa.Table  # connection events to append to ``connection_events``
    count_delta: dict[str, int]
    clock: datetime | None  # the newest connection event time applied


def connections_after(
    base: Snapshot | None, fresh: pa.Table, props: dict[str, Any]
) -> ConnectionsAfter:
    """Replay the batch's connection events in true order (event time, file, position).

    A batch whose connection events all come after every one applied so far is replayed
    onto the open connections. One that reaches back (a late file) re-derives every
    connection from its earliest event time ``T`` on: the open rows, the closed day
    slices from ``T``'s day and the logged connection events since ``T`` are read, and
    nothing older. The first commit of a state written before the log existed builds the
    log from the ledger and moves the old closed slice into day slices, once.
    """
    batch_log = conn.log_of(fresh)
    open_rows, legacy_closed = open_connections(base)
    migrate = (
        base is not None
        and base.has_table("connections")
        and not base.has_table("connection_events")
    )
    history = CONNECTION_LOG.empty_table()
    if migrate and base is not None:
        old = base.read("connections", slices=[conn.CLOSED], schema=CONNECTIONS)
        legacy_closed = pa.concat_tables([legacy_closed, old])
        history = conn.log_of(base.read("events", columns=CONNECTION_LOG.names, schema=EVENTS))
    clock_text = props.get("connections_clock")
    clock = datetime.fromisoformat(clock_text) if clock_text else None
    if history.num_rows:
        newest = pc.max(history.column("event_time")).as_py()
        clock = newest if clock is None or newest > clock else clock
    elif clock is None and base is not None and base.has_table("connections"):
        mark = props.get("watermark")  # no log, no clock: every connection is before it
        clock = datetime.fromisoformat(mark) if mark else None
    log_out = pa.concat_tables([history, batch_log])
    if batch_log.num_rows == 0:
        return ConnectionsAfter(open_rows, legacy_closed, [], log_out, {}, clock)
    first = pc.min(batch_log.column("event_time")).as_py()
    last = pc.max(batch_log.column("event_time")).as_py()
    new_clock = last if clock is None or last > clock else clock
    if clock is None or first > clock:  # in order: replay onto what is open
        change = conn.replay_connections(open_rows, batch_log)
        closed = pa.concat_tables([legacy_closed, change.closed])
        return ConnectionsAfter(
            change.open, closed, [], log_out, conn.opened_counts(change.opened), new_clock
        )
    # Late: re-derive from ``first`` on.
    since = pa.scalar(first, TS)
    day0 = f"{first:%Y-%m-%d}"
    days = sorted(
        s
        for s in (base.slices("connections") if base is not None else set())
        if s.startswith(conn.CLOSED_PREFIX) and s[len(conn.CLOSED_PREFIX) :] >= day0
    )
    closed_days_rows = (
        base.read("connections", slices=days, schema=CONNECTIONS)
        if base is not None and days
        else CONNECTIONS.empty_table()
    )
    closed_rows = pa.concat_tables([legacy_closed, closed_days_rows])
    after = pc.greater_equal(closed_rows.column("disconnected_at"), since)
    logged = history
    if not migrate and base is not None and base.has_table("connection_events"):
        log_days = sorted(s for s in base.slices("connection_events") if s >= day0)
        logged = base.read("connection_events", slices=log_days, schema=CONNECTION_LOG)
    logged = logged.filter(pc.greater_equal(logged.column("event_time"), since))
    r = conn.rederive(
        open_rows,
        closed_rows.filter(after),
        pa.concat_tables([logged, batch_log]),
        first,
    )
    closed = pa.concat_tables([closed_rows.filter(pc.invert(after)), r.change.closed])
    closed_days = [s[len(conn.CLOSED_PREFIX) :] for s in days]
    return ConnectionsAfter(r.change.open, closed, closed_days, log_out, r.count_delta, new_clock)


def open_connections(base: Snapshot | None) -> tuple[pa.Table, pa.Table]:
    """(open connections, closed rows still in unsliced files) of ``base``.

    Reads the ``open`` slice only; unsliced files (written before the table was split)
    are read whole, once: their closed rows move to the ``closed`` slice at this commit.
    """
    if base is None or not base.has_table("connections"):
        return CONNECTIONS.empty_table(), CONNECTIONS.empty_table()
    open_rows = base.read("connections", slices=[conn.OPEN], schema=CONNECTIONS)
    if not base.files("connections", [None]):
        return open_rows, CONNECTIONS.empty_table()
    unsliced = base.read("connections", slices=[None], schema=CONNECTIONS)
    still, closed = conn.split_open(unsliced)
    return pa.concat_tables([open_rows, still]), closed


def write_connections(
    txn: Transaction,
    base: Snapshot | None,
    open_rows: pa.Table,
    closed: pa.Table,
    closed_days: list[str],
    log: pa.Table,
) -> None:
    """Stage the connection tables: the ``open`` slice whole, ``closed`` rows into the day
    slices they closed on (rewriting ``closed_days`` whole, appending to the others), and
    ``log`` into ``connection_events`` by event day. Earlier layouts' slices are dropped."""
    by_day = dict(split_by(closed, day_labels(closed.column("disconnected_at"))))
    for day in sorted(set(by_day) | set(closed_days)):
        rows = by_day.get(day, CONNECTIONS.empty_table())
        label = conn.closed_slice(day)
        if day in closed_days:
            txn.replace_slice("connections", label, rows)
        elif many_files(base, "connections", label):
            rows = compacted(base, "connections", label, rows, CONNECTIONS)
            txn.replace_slice("connections", label, rows)
        else:
            txn.append("connections", rows, slice_=label)
    txn.replace_slice("connections", None, CONNECTIONS.empty_table())
    txn.replace_slice("connections", conn.CLOSED, CONNECTIONS.empty_table())
    txn.replace_slice("connections", conn.OPEN, open_rows)
    for day, part in split_by(log, day_labels(log.column("event_time"))):
        if many_files(base, "connection_events", day):
            both = compacted(base, "connection_events", day, part, CONNECTION_LOG)
            txn.replace_slice("connection_events", day, both)
        else:
            txn.append("connection_events", part, slice_=day)
    if base is None or not base.has_table("connection_events"):
        txn.append("connection_events", CONNECTION_LOG.empty_table())
