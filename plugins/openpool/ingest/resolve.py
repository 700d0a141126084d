"""Resolving the duplicate IDs the full-history check finds (:mod:`openpool.duplicates`).

A resolution resolves them the way ingest resolves a repeat it does see: the
occurrence committed first counts, every later one is set aside as a rejected conflict. Its
event leaves the ledger, its credit leaves the balances (the commission at the given rate,
as accrual computes it), its AI credit, pending, unattributed or ticket row goes; a
``job-received`` set aside gives its request's jobs to the earliest remaining one (or back
to pending); and the connections are re-derived from its time if it was a connection
event. Each resolution is recorded in ``duplicate_resolutions``, so the check never
reports it again while the ID stays in the index (a further copy is still found).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openpool.duplicates import (
    DuplicateReport,
    Occurrence,
    covering_files,
    credited_workers,
    ingested_version,
    locate,
    resolved_ids,
)
from openpool.errors import ResolveRefused
from openpool.ingest import connections as conn
from openpool.ingest.dedup import day_labels
from openpool.money import commission, subtract, to_wei_array, wei_sum
from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore, commit_with_retry
from openpool.storage import ObjectStore
from openpool.tables import (
    AI_CREDITS,
    AI_REQUESTS,
    BALANCES,
    CONNECTION_LOG,
    CONNECTIONS,
    EVENTS,
    PENDING_AI,
    REJECTED,
    RESOLUTIONS,
    TS,
    UNATTRIBUTED,
    WORKERS,
)

log = logging.getLogger(__name__)


def resolve_duplicates(
    state: ObjectStore,
    partitions: Iterable[Partition],
    report: DuplicateReport,
    rate: Fraction,
    run_id: str = "resolve-duplicates",
    ttl: timedelta = timedelta(hours=24),
) -> dict[str, int]:
    """Set aside every occurrence but the first of each reported ID; one commit per
    partition. Returns, per partition, how many occurrences were set aside."""
    by_part: dict[str, list[tuple[Occurrence, Occurrence, str]]] = {}
    for d in report.unresolved:
        kept = d.occurrences[0]
        for o in d.occurrences[1:]:
            if o.source_key is None:
                continue  # nothing in the ledger to set aside
            by_part.setdefault(o.partition, []).append((o, kept, d.event_id))
    done: dict[str, int] = {}
    for part in partitions:
        todo = by_part.get(str(part))
        if not todo:
            continue
        snaps = SnapshotStore(state, part)
        out: list[int] = []

        def build(base: Snapshot | None, txn: Any, todo: list = todo, out: list = out) -> None:
            out.clear()
            out.append(_set_aside(base, txn, todo, rate, ttl))

        commit_with_retry(snaps, build, run_id=run_id)
        if out and out[0]:
            done[str(part)] = out[0]
    return done


def _set_aside(
    base: Snapshot | None,
    txn: Any,
    todo: list[tuple[Occurrence, Occurrence, str]],
    rate: Fraction,
    ttl: timedelta,
) -> int:
    """Stage the corrections for ``todo`` onto ``txn``; the number of occurrences set aside."""
    if base is None:
        return 0
    already = resolved_ids(base)
    todo = [t for t in todo if (t[2], t[0].hour) not in already]
    if not todo:
        return 0
    version = base.version + 1
    wanted: dict[str, set[str]] = {}
    for o, _, eid in todo:
        wanted.setdefault(eid, set()).add(o.hour)
    rows = [
        r
        for r in locate(base, wanted)
        if any(
            r["event_id"] == eid
            and r["source_key"] == o.source_key
            and r["source_index"] == o.source_index
            for o, _, eid in todo
        )
    ]
    if not rows:
        return 0
    credited = credited_workers(base, rows)
    gone = {(r["source_key"], r["source_index"]) for r in rows}

    # 1. The ledger: each file holding a set-aside row is rewritten without it.
    files = {r["_file"].path: r["_file"] for r in rows}
    for f in files.values():
        t = base._read_file(f)
        keep = pc.invert(_row_in(t, gone))
        txn.replace_file("events", f, t.filter(keep), ingested_version=ingested_version(f))

    # 2. Money: the credit each set-aside job-processed made, reversed.
    adjust: list[tuple[str, int, datetime, int]] = []  # (worker, fees, job time, +1 / -1)
    ai_gone: list[tuple[str, datetime]] = []
    for r in rows:
        if r["event_type"] != "job-processed" or r["fees_wei"] is None:
            continue
        if r["node_type"] == "transcode":
            adjust.append((r["eth_address"], int(r["fees_wei"]), r["event_time"], -1))
        elif (r["event_id"], r["event_time"]) in credited:
            who = credited[(r["event_id"], r["event_time"])]
            adjust.append((who, int(r["fees_wei"]), r["event_time"], -1))
            ai_gone.append((r["event_id"], r["event_time"]))
        else:
            ai_gone.append((r["event_id"], r["event_time"]))
    # A job-received set aside: its request's jobs go to the earliest remaining one.
    recredit, requests = _remap_requests(
        base, [r for r in rows if r["event_type"] == "job-received"], gone, ttl
    )
    pending = base.read("pending_ai", schema=PENDING_AI)
    pending = pending.filter(pc.invert(_id_time_in(pending, ai_gone)))
    moved: dict[tuple[str, datetime], str | None] = {}  # AI credit -> new worker (None: pending)
    for job, old, new in recredit:
        adjust.append((old, int(job["fees_wei"]), job["event_time"], -1))
        if new is not None:
            adjust.append((new, int(job["fees_wei"]), job["event_time"], +1))
        else:
            pending = pa.concat_tables([pending, pa.Table.from_pylist([job], schema=PENDING_AI)])
        moved[(job["event_id"], job["event_time"])] = new
    if adjust:
        txn.replace("balances", _adjusted(base, adjust, rate))
    unattributed_fees = 0
    if ai_gone or moved:
        touched = ai_gone + list(moved)
        for name, schema in (("ai_credits", AI_CREDITS), ("unattributed", UNATTRIBUTED)):
            for f in covering_files(base, name, [t for _, t in touched]):
                t = base._read_file(f).cast(schema)
                hit = _id_time_in(t, ai_gone)
                re = _id_time_in(t, list(moved)) if name == "ai_credits" else None
                if not pc.any(hit).as_py() and not (re is not None and pc.any(re).as_py()):
                    continue
                if name == "unattributed":
                    unattributed_fees += wei_sum(t.filter(hit).column("fees_wei"))
                rows_out = [
                    c
                    for c in t.filter(pc.invert(hit)).to_pylist()
                    if moved.get((c["event_id"], c["event_time"]), "") is not None
                ]
                for c in rows_out:
                    if credited_to := moved.get((c["event_id"], c["event_time"])):
                        c["eth_address"] = credited_to
                txn.replace_file(name, f, pa.Table.from_pylist(rows_out, schema=schema))
    if ai_gone or moved:
        txn.replace("pending_ai", pending)
    if requests is not None:
        txn.replace("ai_requests", requests)
    tickets = [
        (r["event_id"], r["event_time"]) for r in rows if r["event_type"] == "ticket-redeemed"
    ]
    for f in covering_files(base, "tickets", [t for _, t in tickets]) if tickets else []:
        t = base._read_file(f)
        hit = _id_time_in(t, tickets)
        if pc.any(hit).as_py():
            txn.replace_file("tickets", f, t.filter(pc.invert(hit)))

    # 3. Connections: re-derived from the earliest set-aside connection event on.
    conn_rows = [r for r in rows if r["event_type"] in conn.KINDS]
    if conn_rows and not base.has_table("connection_events"):
        raise ResolveRefused(
            f"{base.snapshots.partition} v{base.version} predates the connection log: "
            "run one ingest of the partition first, then resolve"
        )
    if conn_rows:
        _rederive_without(base, txn, conn_rows)

    # 4. The rejection, the resolution and the counters.
    by_key = {(o.source_key, o.source_index): (o, kept, eid) for o, kept, eid in todo}
    rejected, resolutions = [], []
    for r in rows:
        o, kept, eid = by_key[(r["source_key"], r["source_index"])]
        rejected.append(
            {
                "source_key": r["source_key"],
                "source_index": r["source_index"],
                "event_id": eid,
                "event_type": r["event_type"],
                "reason": (
                    f"conflict: event ID already ingested in hour {kept.hour} of {kept.partition}"
                    " (found by the full-history duplicate check)"
                ),
                "raw_json": r["payload_json"],
                "rejected_at_version": version,
            }
        )
        resolutions.append(
            {
                "event_id": eid,
                "hour": o.hour,
                "source_key": r["source_key"],
                "source_index": r["source_index"],
                "kept_partition": kept.partition,
                "kept_hour": kept.hour,
                "resolved_at_version": version,
            }
        )
    txn.append("rejected_events", pa.Table.from_pylist(rejected, schema=REJECTED))
    txn.append("duplicate_resolutions", pa.Table.from_pylist(resolutions, schema=RESOLUTIONS))
    props = dict(base.manifest.properties)
    n = len(rows)
    txn.set_properties(
        events_accepted=int(props.get("events_accepted", 0)) - n,
        events_rejected=int(props.get("events_rejected", 0)) + n,
        unattributed_fees_wei=str(int(props.get("unattributed_fees_wei", "0")) - unattributed_fees),
        pending_ai_jobs=int(props.get("pending_ai_jobs", 0)),
    )
    if ai_gone or moved:
        txn.set_properties(pending_ai_jobs=pending.num_rows)
    return n


def _row_in(t: pa.Table, keys: set[tuple[str, int]]) -> pa.Array:
    joined = pc.binary_join_element_wise(
        t.column("source_key"), pc.cast(t.column("source_index"), pa.string()), "\n"
    )
    return pc.is_in(joined, value_set=pa.array([f"{k}\n{i}" for k, i in keys], pa.string()))


def _id_time_in(t: pa.Table, keys: list[tuple[str, datetime]]) -> pa.Array:
    if t.num_rows == 0:
        return pa.array([], pa.bool_())
    joined = pc.binary_join_element_wise(
        t.column("event_id"),
        pc.cast(pc.cast(pc.cast(t.column("event_time"), TS), pa.int64()), pa.string()),
        "\n",
    )
    want = [f"{e}\n{int(x.timestamp())}" for e, x in keys]
    return pc.is_in(joined, value_set=pa.array(want, pa.string()))


def _adjusted(
    base: Snapshot, entries: list[tuple[str, int, datetime, int]], rate: Fraction
) -> pa.Table:
    """Balances with jobs taken off (-1) or added (+1): fees, their exact commission at
    ``rate`` (as accrual computes it), one job each."""
    fees = to_wei_array([f for _, f, _, _ in entries])
    comm = commission(fees, rate).to_pylist()
    earn = subtract(fees, commission(fees, rate)).to_pylist()
    rows = {b["eth_address"]: b for b in base.read("balances", schema=BALANCES).to_pylist()}
    for (who, f, at, sign), c, e in zip(entries, comm, earn, strict=True):
        b = rows.setdefault(
            who,
            {
                "eth_address": who,
                "total_fees_wei": 0,
                "pool_commission_wei": 0,
                "worker_earnings_wei": 0,
                "job_count": 0,
                "first_job_at": at,
                "last_job_at": at,
            },
        )
        b["total_fees_wei"] = int(b["total_fees_wei"]) + sign * f
        b["pool_commission_wei"] = int(b["pool_commission_wei"]) + sign * int(c)
        b["worker_earnings_wei"] = int(b["worker_earnings_wei"]) + sign * int(e)
        b["job_count"] += sign
        if sign > 0:
            b["first_job_at"] = min(b["first_job_at"] or at, at)
            b["last_job_at"] = max(b["last_job_at"] or at, at)
    kept = [b for a, b in sorted(rows.items()) if b["job_count"] > 0 or int(b["total_fees_wei"])]
    return pa.Table.from_pylist(kept, schema=BALANCES)


def _remap_requests(
    base: Snapshot,
    received: list[dict[str, Any]],
    gone: set[tuple[str, int]],
    ttl: timedelta,
) -> tuple[list[tuple[dict[str, Any], str, str | None]], pa.Table | None]:
    """For job-received rows being set aside: ([(credited job, its worker, new worker or
    None)], the new ai_requests or None if unchanged).

    The request's worker becomes the earliest remaining job-received with its request ID
    (accrual's rule). Its jobs are searched in the ledger days within ``ttl`` plus a day of
    the set-aside events: a job is matched only while its request is within the
    time-to-live, so none lies further away.
    """
    if not received:
        return [], None
    rids = sorted({r["request_id"] for r in received if r["request_id"]})
    lo = min(r["event_time"] for r in received) - ttl - timedelta(days=1)
    hi = max(r["event_time"] for r in received) + ttl + timedelta(days=1)
    days = sorted(d for d in base.slices("events") if f"{lo:%Y-%m-%d}" <= d <= f"{hi:%Y-%m-%d}")
    near = base.read("events", slices=days, schema=EVENTS) if days else EVENTS.empty_table()
    near = near.filter(pc.is_in(near.column("request_id"), pa.array(rids, pa.string())))
    near = near.filter(pc.invert(_row_in(near, gone))) if near.num_rows else near
    winner: dict[str, str | None] = {rid: None for rid in rids}
    best: dict[str, tuple] = {}
    for r in near.to_pylist():
        if r["event_type"] != "job-received":
            continue
        key = (r["event_time"], r["source_key"], r["source_index"])
        if r["request_id"] not in best or key < best[r["request_id"]]:
            best[r["request_id"]] = key
            winner[r["request_id"]] = r["eth_address"]
    jobs = [r for r in near.to_pylist() if r["event_type"] == "job-processed"]
    credited = credited_workers(base, jobs)
    out = []
    for j in jobs:
        old = credited.get((j["event_id"], j["event_time"]))
        new = winner.get(j["request_id"])
        if old is not None and old != new:
            out.append(({k: j[k] for k in PENDING_AI.names}, old, new))
    requests = base.read("ai_requests", schema=AI_REQUESTS)
    hit = pc.is_in(requests.column("request_id"), pa.array(rids, pa.string()))
    if not pc.any(hit).as_py():
        return out, None
    kept = requests.filter(pc.invert(hit)).to_pylist()
    for r in requests.filter(hit).to_pylist():
        if winner.get(r["request_id"]):
            t = best[r["request_id"]][0]
            kept.append({**r, "eth_address": winner[r["request_id"]], "event_time": t})
    return out, pa.Table.from_pylist(kept, schema=AI_REQUESTS)


def _rederive_without(base: Snapshot, txn: Any, rows: list[dict[str, Any]]) -> None:
    """Re-derive the connections from the earliest of ``rows`` on, without ``rows``."""
    first = min(r["event_time"] for r in rows)
    since = pa.scalar(first, TS)
    day0 = f"{first:%Y-%m-%d}"
    gone = {(r["source_key"], r["source_index"]) for r in rows}
    log_days = sorted(s for s in base.slices("connection_events") if s >= day0)
    for d in log_days:
        t = base.read("connection_events", slices=[d], schema=CONNECTION_LOG)
        hit = _row_in(t, gone)
        if pc.any(hit).as_py():
            txn.replace_slice("connection_events", d, t.filter(pc.invert(hit)))
    logged = base.read("connection_events", slices=log_days, schema=CONNECTION_LOG)
    logged = logged.filter(pc.invert(_row_in(logged, gone)))
    logged = logged.filter(pc.greater_equal(logged.column("event_time"), since))
    days = sorted(
        s
        for s in base.slices("connections")
        if s.startswith(conn.CLOSED_PREFIX) and s[len(conn.CLOSED_PREFIX) :] >= day0
    )
    closed = base.read("connections", slices=days, schema=CONNECTIONS)
    after = pc.greater_equal(closed.column("disconnected_at"), since)
    open_rows = base.read("connections", slices=[conn.OPEN], schema=CONNECTIONS)
    r = conn.rederive(open_rows, closed.filter(after), logged, first)
    rows_out = pa.concat_tables([closed.filter(pc.invert(after)), r.change.closed])
    labels = day_labels(rows_out.column("disconnected_at")) if rows_out.num_rows else None
    new_days = set(labels.to_pylist()) if labels is not None else set()
    for d in sorted({s[len(conn.CLOSED_PREFIX) :] for s in days} | new_days):
        part = rows_out.filter(pc.equal(labels, d)) if labels is not None else rows_out
        txn.replace_slice("connections", conn.closed_slice(d), part)
    txn.replace_slice("connections", conn.OPEN, r.change.open)
    workers = base.read("workers", schema=WORKERS).to_pylist()
    active = set(r.change.open.column("eth_address").to_pylist())
    for w in workers:
        w["connection_count"] = (w["connection_count"] or 0) + r.count_delta.get(
            w["eth_address"], 0
        )
        w["active"] = w["eth_address"] in active
    txn.replace("workers", pa.Table.from_pylist(workers, schema=WORKERS))
