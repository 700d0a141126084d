"""A worker's statement: earnings per day and partition, payments, and the balance carried.

Earnings come from the jobs credited to the worker (:func:`.credited.credited_jobs`), with
the commission computed per job exactly as ingest accrues it (``floor(fees x p / q)`` for
the rate ``p/q``, :func:`openpool.money.commission`), so a statement over all time equals
the worker's balances to the wei -- checked, and a mismatch is refused (it would mean the
balances were accrued at another rate). Payments are the confirmed ones of every wallet's
ledger (:mod:`openpool.payments`), each at the time of the block that mined it (the caller
reads block times from the chain). The balance carried is what the pool owes the worker:
earnings - confirmed payments, so ``opening + fees - commission - paid = closing`` exactly.
Payments still in flight are listed apart; they are not paid yet.

The period is whole UTC days ``[start, end]`` (both inclusive): a day's earnings belong to
the day of their jobs' event time, a payment to the day of its block.

:func:`daily_lines` is also what is published for Athena as ``worker_statements``
(:data:`WORKER_STATEMENTS`), with a partition's confirmed payments beside its days.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpool.analytics.credited import credited_jobs
from openpool.errors import StatementRefused
from openpool.money import WEI, commission, subtract
from openpool.payments import CONFIRMED, IN_FLIGHT
from openpool.snapshots import Snapshot
from openpool.tables import BALANCES, TS, read_table

# Per worker and UTC day of one partition: what the worker's jobs earned.
DAYS = pa.schema(
    [
        ("eth_address", pa.string()),
        ("day", pa.string()),  # YYYY-MM-DD, UTC, of the jobs' event time
        ("jobs", pa.int64()),
        ("fees_wei", WEI),
        ("commission_wei", WEI),
        ("earnings_wei", WEI),
    ]
)
# The published ``worker_statements``: a partition's day lines and its confirmed payments.
WORKER_STATEMENTS = pa.schema(
    [
        ("line", pa.string()),  # "earnings" (one worker-day) | "payment" (one confirmed payment)
        ("eth_address", pa.string()),
        ("day", pa.string()),  # the jobs' UTC day; for a payment the day it was confirmed
        ("jobs", pa.int64()),
        ("fees_wei", WEI),
        ("commission_wei", WEI),
        ("earnings_wei", WEI),
        ("paid_wei", WEI),
        ("payment_id", pa.string()),
        ("wallet", pa.string()),
        ("tx_hash", pa.string()),
        ("block_number", pa.int64()),
        ("confirmed_at", TS),  # when OpenPool recorded the receipt (the block's time is on chain)
    ]
)
_WIDE = pa.decimal256(76, 0)  # sums of many 38-digit amounts cannot wrap


def _day_sums(jobs: pa.Table, rate: Fraction) -> pa.Table:
    """One batch of credited jobs, summed per worker and UTC day (wide sums)."""
    comm = commission(jobs["fees_wei"], rate)
    t = pa.table(
        {
            "eth_address": jobs["eth_address"],
            "day": pc.strftime(jobs["event_time"], format="%Y-%m-%d"),
            "jobs": pa.array(np.ones(jobs.num_rows, np.int64)),
            "fees_wei": pc.cast(jobs["fees_wei"], _WIDE),
            "commission_wei": pc.cast(comm, _WIDE),
            "earnings_wei": pc.cast(subtract(jobs["fees_wei"], comm), _WIDE),
        }
    )
    return _regroup(t)


_SUMMED = ("jobs", "fees_wei", "commission_wei", "earnings_wei")


def _regroup(t: pa.Table) -> pa.Table:
    agg = t.group_by(["eth_address", "day"], use_threads=False).aggregate(
        [(c, "sum") for c in _SUMMED]
    )
    return agg.rename_columns([c.removesuffix("_sum") for c in agg.column_names])


def daily_lines(snap: Snapshot | None, rate: Fraction) -> pa.Table:
    """Per worker and day of ``snap``'s partition: jobs, fees, commission, earnings.

    Summed batch by batch (a ledger day, an ``ai_credits`` file), then across batches: an
    AI job credited late sits in a later file but still counts on its own day."""
    parts = [_day_sums(b, rate) for b in credited_jobs(snap) if b.num_rows]
    if not parts:
        return DAYS.empty_table()
    agg = _regroup(pa.concat_tables(parts))
    out = pa.table(
        {
            "eth_address": agg["eth_address"],
            "day": agg["day"],
            "jobs": agg["jobs"],
            # checked casts: a sum past 38 digits raises, it never wraps
            **{c: pc.cast(agg[c], WEI) for c in _SUMMED[1:]},
        },
        schema=DAYS,
    )
    return out.sort_by([("eth_address", "ascending"), ("day", "ascending")])


def published_lines(days: pa.Table, records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """``worker_statements`` rows of one partition: its day lines and confirmed payments
    (``records``: the partition's payments' current records, :func:`openpool.payments.current`)."""
    rows: list[dict[str, Any]] = [{"line": "earnings", **r} for r in days.to_pylist()]
    for r in records:
        if r["status"] != CONFIRMED:
            continue
        at = r.get("recorded_at")
        rows.append(
            {
                "line": "payment",
                "eth_address": r["eth_address"],
                "day": at.astimezone(UTC).date().isoformat() if at else None,
                "paid_wei": r["amount_wei"],
                "payment_id": r["payment_id"],
                "wallet": r.get("wallet"),
                "tx_hash": r.get("tx_hash"),
                "block_number": r.get("block_number"),
                "confirmed_at": at,
            }
        )
    return pa.Table.from_pylist(
        [{k: row.get(k) for k in WORKER_STATEMENTS.names} for row in rows], WORKER_STATEMENTS
    )


@dataclass
class Statement:
    """One worker's statement over ``[start, end]`` (UTC days; None: unbounded)."""

    worker: str
    start: date | None
    end: date | None
    rate: Fraction
    opening_wei: int
    closing_wei: int
    days: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    in_flight: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        def total(rows: list[dict[str, Any]], key: str) -> int:
            return sum(int(r[key]) for r in rows)

        return {
            "jobs": total(self.days, "jobs"),
            "fees_wei": total(self.days, "fees_wei"),
            "commission_wei": total(self.days, "commission_wei"),
            "earnings_wei": total(self.days, "earnings_wei"),
            "paid_wei": total(self.payments, "amount_wei"),
            "in_flight_wei": total(self.in_flight, "amount_wei"),
        }


def _midnight(d: date) -> datetime:
    return datetime.combine(d, time(), UTC)


def statement(
    worker: str,
    partitions: Mapping[str, Snapshot | None],
    records: Iterable[Mapping[str, Any]],
    block_time: Callable[[int], datetime],
    rate: Fraction,
    start: date | None = None,
    end: date | None = None,
) -> Statement:
    """``worker``'s statement over ``partitions`` (partition key -> latest snapshot).

    ``records``: every payment's current record (every wallet); ``block_time``: a block
    number's time on chain. Raises :class:`StatementRefused` for a worker nothing is known
    of, a period that ends before it starts, or earnings that do not equal the balances.
    """
    if start and end and end < start:
        raise StatementRefused(f"--to {end} is before --from {start}")
    who = worker.lower()
    lo = _midnight(start) if start else None
    hi = _midnight(end + timedelta(days=1)) if end else None
    earned_before = earned_to = 0
    days: list[dict[str, Any]] = []
    for key, snap in sorted(partitions.items()):
        mine = [r for r in daily_lines(snap, rate).to_pylist() if r["eth_address"].lower() == who]
        _reconcile(key, snap, who, mine)
        for r in mine:
            d = date.fromisoformat(r["day"])
            if start and d < start:
                earned_before += int(r["earnings_wei"])
            elif not (end and d > end):
                days.append({"day": r["day"], "partition": key, **_ints(r)})
            if not (end and d > end):
                earned_to += int(r["earnings_wei"])
    paid_before = paid_to = 0
    payments: list[dict[str, Any]] = []
    flight: list[dict[str, Any]] = []
    known = bool(days) or earned_before > 0
    for r in records:
        if str(r["eth_address"]).lower() != who:
            continue
        known = True
        row = {
            "partition": r["partition"],
            "payment_id": r["payment_id"],
            "wallet": r.get("wallet"),
            "amount_wei": int(r["amount_wei"]),
            "tx_hash": r.get("tx_hash"),
            "status": r["status"],
        }
        if r["status"] in IN_FLIGHT:
            flight.append(row)
        if r["status"] != CONFIRMED:
            continue
        if r.get("block_number") is None:
            raise StatementRefused(f"confirmed payment {r['payment_id']} has no block number")
        at = block_time(int(r["block_number"]))
        row.update(block_number=int(r["block_number"]), block_time=at)
        if lo and at < lo:
            paid_before += row["amount_wei"]
        elif not (hi and at >= hi):
            payments.append(row)
        if not (hi and at >= hi):
            paid_to += row["amount_wei"]
    if not known:
        raise StatementRefused(
            f"no earnings or payments for worker {worker} in any partition "
            f"({', '.join(sorted(partitions)) or 'none configured'})"
        )
    days.sort(key=lambda r: (r["day"], r["partition"]))
    payments.sort(key=lambda r: (r["block_time"], r["tx_hash"] or ""))
    out = Statement(
        worker, start, end, rate, earned_before - paid_before, earned_to - paid_to,
        days, payments, flight,
    )  # fmt: skip
    t = out.totals()
    carried = out.opening_wei + t["fees_wei"] - t["commission_wei"] - t["paid_wei"]
    if carried != out.closing_wei:  # every job's earnings are its fees less its commission
        raise StatementRefused(f"statement does not reconcile: {carried} != {out.closing_wei}")
    return out


def _ints(r: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(r[k]) for k in ("jobs", "fees_wei", "commission_wei", "earnings_wei")}


def _reconcile(key: str, snap: Snapshot | None, who: str, mine: list[dict[str, Any]]) -> None:
    """All-time day lines must equal the worker's balances in the partition, to the wei."""
    bal = read_table(snap, "balances", BALANCES).to_pylist()
    row = next((b for b in bal if b["eth_address"].lower() == who), None)
    got = tuple(sum(int(r[k]) for r in mine) for k in ("fees_wei", "commission_wei", "jobs"))
    want = (
        (int(row["total_fees_wei"]), int(row["pool_commission_wei"]), int(row["job_count"]))
        if row
        else (0, 0, 0)
    )
    if got != want:
        raise StatementRefused(
            f"{key}: the worker's jobs give fees, commission, jobs {got} but the balances "
            f"hold {want} (was POOL_COMMISSION_RATE changed since they were accrued?)"
        )


__all__ = ["DAYS", "WORKER_STATEMENTS", "Statement", "daily_lines", "published_lines", "statement"]
