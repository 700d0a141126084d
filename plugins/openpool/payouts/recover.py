"""Resolve whatever a crash, a timeout or the node left open, by each record's tx hash.

Every receipt is settled first, in one commit, before anything is sent: one send the node
refuses can then never leave mined payments unrecorded (nor, as the payout DAG's first
task, stop the run). Then, for what is not mined: known to the node, wait; unknown with its
nonce unused, rebroadcast the recorded bytes (never re-sign); nonce used by another
transaction, ``needs_investigation`` (the worker is blocked). Refused sends are reported
with the node's reason.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from openpool.payouts.chain import Chain
from openpool.payouts.ledger import BROADCAST, INVESTIGATE, OPEN, SIGNED, Ledger
from openpool.payouts.reconcile import require_ledger_covers_chain
from openpool.payouts.sending import RunReport, send, settle_receipts

log = logging.getLogger(__name__)


def recover(
    ledger: Ledger, chain: Chain, wallet_address: str, run_id: str | None = None
) -> RunReport:
    """Settle, then rebroadcast or flag, every ``signed``/``broadcast`` record."""
    run_id = run_id or f"recover-{uuid.uuid4().hex[:12]}"
    report = RunReport("recover")
    require_ledger_covers_chain(ledger, chain)  # the payout DAG's first task: stop it here
    open_rows = [r for r in ledger.payments().values() if r["status"] in OPEN]
    if not open_rows:
        return report
    mined_nonce = chain.nonce(wallet_address, "latest")
    receipts = {}
    for r in open_rows:
        rc = chain.receipt(r["tx_hash"])
        if rc is not None:
            receipts[r["payment_id"]] = rc
    report.confirmed, report.failed = settle_receipts(ledger, open_rows, receipts, run_id)
    rebroadcast: list[dict[str, Any]] = []
    investigate: list[dict[str, Any]] = []
    for r in (r for r in open_rows if r["payment_id"] not in receipts):
        if chain.known(r["tx_hash"]):
            if r["status"] == SIGNED:
                rebroadcast.append(r)  # it got out before the crash: record that
        elif r["nonce"] >= mined_nonce:
            outcome = send(chain, r, report)
            if outcome is not None and outcome != "nonce_too_low":
                rebroadcast.append(r)
        else:
            investigate.append(r)
    if rebroadcast:
        ledger.transition([{**r, "status": BROADCAST} for r in rebroadcast], run_id, OPEN)
    if investigate:
        _flag(ledger, investigate, run_id)
    report.broadcast = len(rebroadcast)
    report.investigate = [r["payment_id"] for r in investigate]
    report.pending = len(open_rows) - len(receipts) - len(investigate)
    return report


def _flag(ledger: Ledger, rows: list[dict[str, Any]], run_id: str) -> None:
    """Mark records whose nonce another transaction used; their workers are blocked."""
    ledger.transition(
        [
            {
                **r,
                "status": INVESTIGATE,
                "recorded_at": None,
                "note": f"nonce {r['nonce']} was used by another transaction",
            }
            for r in rows
        ],
        run_id,
        OPEN,
    )
    for r in rows:
        log.error(
            "PAYMENT NEEDS INVESTIGATION: %s to %s (nonce %s): worker blocked",
            r["payment_id"],
            r["eth_address"],
            r["nonce"],
        )
