"""What the CLI, the DAG tasks and the demo report of a partition: status and balances.

One function per report, shared, so ``openpool status`` and the demo's table cannot drift.
"""

from __future__ import annotations

from typing import Any

from openpool.snapshots import Snapshot
from openpool.tables import BALANCES, read_table


def balance_rows(snap: Snapshot | None) -> list[dict[str, Any]]:
    """Per-worker money as exact ints: fees, commission, earnings, paid, payable, jobs.

    Paid and in flight are every wallet's ledger in the snapshot's store (openpool.payments).
    """
    from openpool.money import payable
    from openpool.payments import settled_in

    table = read_table(snap, "balances", BALANCES)
    settled = settled_in(snap.snapshots.store, str(snap.snapshots.partition)) if snap else {}
    rows = []
    for r in table.to_pylist():
        earnings = int(r["worker_earnings_wei"])
        s = settled.get(r["eth_address"])
        paid = s.paid_wei if s else 0
        in_flight = s.in_flight_wei if s else 0
        rows.append(
            {
                "eth_address": r["eth_address"],
                "total_fees_wei": int(r["total_fees_wei"]),
                "pool_commission_wei": int(r["pool_commission_wei"]),
                "worker_earnings_wei": earnings,
                "paid_wei": paid,
                "in_flight_wei": in_flight,
                "payable_wei": payable(earnings, s),
                "job_count": int(r["job_count"]),
                "first_job_at": r["first_job_at"].isoformat() if r["first_job_at"] else None,
                "last_job_at": r["last_job_at"].isoformat() if r["last_job_at"] else None,
            }
        )
    return rows


def status_row(snap: Snapshot | None) -> dict[str, Any]:
    """A partition's counters at ``snap`` (its manifest's properties), as ints."""
    props = snap.manifest.properties if snap else {}
    return {
        "snapshot_version": snap.version if snap else 0,
        "created_at": snap.manifest.created_at if snap else None,
        "files_ingested": int(props.get("files_ingested", 0)),
        "files_quarantined": int(props.get("files_quarantined", 0)),
        "events_read": int(props.get("events_read", 0)),
        "events_accepted": int(props.get("events_accepted", 0)),
        "events_duplicate": int(props.get("events_duplicate", 0)),
        "events_rejected": int(props.get("events_rejected", 0)),
        "unattributed_fees_wei": int(props.get("unattributed_fees_wei", "0")),
        "pending_ai_jobs": int(props.get("pending_ai_jobs", 0)),
        "watermark": props.get("watermark"),
        "workers": snap.manifest.rows("balances") if snap else 0,
    }
