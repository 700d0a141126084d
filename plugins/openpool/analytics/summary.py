"""worker_summary: per worker money, payouts, connections and status; pool-wide aggregates.

Per-worker rows are built first (exact ``int`` wei; worker counts are small) and every
aggregate is computed from those final rows, so the totals always equal the sum of what is
shown. Payable = earnings - paid - in flight, from :mod:`openpool.payments` over
every wallet's ledger. A pool-wide summary merges the partitions:
a worker active in two regions appears once, with the per-partition detail beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from openpool.money import NOTHING, WEI, Settled, payable
from openpool.partitions import Partition
from openpool.payments import current, payout_log, settle
from openpool.snapshots import Snapshot
from openpool.tables import BALANCES, TS, WALLET_LOG, WORKERS, read_table

PAYOUTS_EMPTY = WALLET_LOG.empty_table()

SUMMARY = pa.schema(
    [
        ("eth_address", pa.string()),
        ("total_fees_wei", WEI),
        ("pool_commission_wei", WEI),
        ("worker_earnings_wei", WEI),
        ("paid_wei", WEI),
        ("in_flight_wei", WEI),
        ("payable_wei", WEI),
        ("payment_count", pa.int64()),
        ("last_payout_at", TS),
        ("job_count", pa.int64()),
        ("connection_count", pa.int64()),
        ("active", pa.bool_()),
        ("last_seen", TS),
        ("payout_due", pa.bool_()),
    ]
)
MONEY = (
    "total_fees_wei",
    "pool_commission_wei",
    "worker_earnings_wei",
    "paid_wei",
    "in_flight_wei",
    "payable_wei",
)


@dataclass
class Summary:
    partition: Partition | None  # None: pool-wide
    workers: list[dict[str, Any]]
    aggregates: dict[str, Any]
    snapshot_version: int | None = None

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(
            [{k: r[k] for k in SUMMARY.names} for r in self.workers], schema=SUMMARY
        )


def _payouts(log: pa.Table, partition: str) -> dict[str, Settled]:
    """Per worker paid / in flight / count / last payout (the one payable module's reading)."""
    return {a: s for (p, a), s in settle(current(log)).items() if p == partition}


def _aggregates(rows: list[dict[str, Any]], props: Iterable[dict[str, Any]]) -> dict[str, Any]:
    props = list(props)
    agg: dict[str, Any] = {
        "workers": len(rows),
        "active_workers": sum(1 for r in rows if r["active"]),
        "payout_due_workers": sum(1 for r in rows if r["payout_due"]),
        "job_count": sum(r["job_count"] for r in rows),
    }
    for m in MONEY:
        agg[m] = sum(r[m] for r in rows)
    agg["unattributed_fees_wei"] = sum(int(p.get("unattributed_fees_wei", "0")) for p in props)
    agg["pending_ai_jobs"] = sum(int(p.get("pending_ai_jobs", 0)) for p in props)
    return agg


def worker_summary(
    snap: Snapshot | None,
    partition: Partition,
    threshold_wei: int,
    payouts: pa.Table | None = None,
) -> Summary:
    """The partition's summary at ``snap``.

    ``payouts``: its rows of the payout ledgers; by default every wallet's ledger in the
    snapshot's store (never "nothing paid" because no wallet was configured).
    """
    if payouts is None:
        payouts = payout_log(snap.snapshots.store, str(partition)) if snap else PAYOUTS_EMPTY
    balances = {r["eth_address"]: r for r in read_table(snap, "balances", BALANCES).to_pylist()}
    workers = {r["eth_address"]: r for r in read_table(snap, "workers", WORKERS).to_pylist()}
    paid_by = _payouts(payouts, str(partition))
    rows = []
    for addr in sorted(set(balances) | set(workers)):
        b, w = balances.get(addr, {}), workers.get(addr, {})
        p = paid_by.get(addr, NOTHING)
        earnings = int(b.get("worker_earnings_wei") or 0)
        owed = payable(earnings, p)
        rows.append(
            {
                "eth_address": addr,
                "total_fees_wei": int(b.get("total_fees_wei") or 0),
                "pool_commission_wei": int(b.get("pool_commission_wei") or 0),
                "worker_earnings_wei": earnings,
                "paid_wei": p.paid_wei,
                "in_flight_wei": p.in_flight_wei,
                "payable_wei": owed,
                "payment_count": p.payment_count,
                "last_payout_at": p.last_paid_at,
                "job_count": int(b.get("job_count") or 0),
                "connection_count": int(w.get("connection_count") or 0),
                "active": bool(w.get("active") or False),
                "last_seen": _latest(w.get("last_seen"), b.get("last_job_at")),
                "payout_due": owed >= threshold_wei,
            }
        )
    props = [snap.manifest.properties] if snap else []
    return Summary(partition, rows, _aggregates(rows, props), snap.version if snap else None)


def _latest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def pool_summary(parts: list[Summary], props: list[dict[str, Any]]) -> Summary:
    """One row per worker across partitions, with ``partitions`` holding each one's row."""
    merged: dict[str, dict[str, Any]] = {}
    for s in parts:
        for r in s.workers:
            m = merged.get(r["eth_address"])
            if m is None:
                m = merged[r["eth_address"]] = {**r, "partitions": {}}
                for k in (*MONEY, "payment_count", "job_count", "connection_count"):
                    m[k] = 0
                m["active"], m["last_seen"], m["last_payout_at"] = False, None, None
            for k in (*MONEY, "payment_count", "job_count", "connection_count"):
                m[k] += r[k]
            m["active"] = m["active"] or r["active"]
            m["last_seen"] = _latest(m["last_seen"], r["last_seen"])
            m["last_payout_at"] = _latest(m["last_payout_at"], r["last_payout_at"])
            m["payout_due"] = m.get("payout_due", False) or r["payout_due"]
            m["partitions"][str(s.partition)] = r
    rows = [merged[a] for a in sorted(merged)]
    return Summary(None, rows, _aggregates(rows, props))
