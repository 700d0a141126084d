"""Resolve whatever a crash, a timeout or the node left open, by each record's tx hashes.

Every receipt is settled first, in one commit, before anything is sent: one send the node
refuses can then never leave mined payments unrecorded (nor, as the payout DAG's first
task, stop the run). A receipt of any hash the payment ever had counts (the original may
mine after its replacement was recorded), once it is ``confirmations`` blocks deep. Then,
for what is not mined: broadcast longer than ``stuck_after`` and a key at hand, replace it
(:mod:`.replace`); known to the node, wait; unknown with its nonce unused, rebroadcast the
recorded bytes (never re-sign); nonce used by another transaction, ``needs_investigation``
(the worker is blocked). Refused sends are reported with the node's reason.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from openpool.payments import BROADCAST, INVESTIGATE, OPEN, SIGNED
from openpool.payouts.chain import Chain, Receipt
from openpool.payouts.keys import HotWallet
from openpool.payouts.ledger import Ledger
from openpool.payouts.reconcile import require_ledger_covers_chain
from openpool.payouts.replace import replace_stuck
from openpool.payouts.sending import RunReport, deep_enough, send, settle_receipts

log = logging.getLogger(__name__)


def recover(
    ledger: Ledger,
    chain: Chain,
    wallet_address: str,
    run_id: str | None = None,
    *,
    wallet: HotWallet | None = None,
    max_gas_price_wei: int | None = None,
    stuck_after: timedelta | None = None,
    confirmations: int,  # CONFIRMATIONS: required, so no caller settles at depth 1 by default
    now: datetime | None = None,
) -> RunReport:
    """Settle, then replace, rebroadcast or flag, every ``signed``/``broadcast`` record.

    Stuck sends are replaced only with ``wallet``, ``max_gas_price_wei`` and
    ``stuck_after`` given (the payout DAG's key-less tasks only settle and rebroadcast)."""
    run_id = run_id or f"recover-{uuid.uuid4().hex[:12]}"
    report = RunReport("recover")
    require_ledger_covers_chain(ledger, chain)  # the payout DAG's first task: stop it here
    log_rows = ledger.log(ledger.latest()).to_pylist()
    current: dict[str, dict[str, Any]] = {}
    for r in log_rows:  # each payment's latest row, as Ledger.current
        current[r["payment_id"]] = r
    open_rows = [r for r in current.values() if r["status"] in OPEN]
    if not open_rows:
        return report
    hashes: dict[str, list[str]] = {}
    raw_of: dict[str, str | None] = {}
    for r in reversed(log_rows):  # newest first
        if r["tx_hash"] and r["tx_hash"] not in hashes.setdefault(r["payment_id"], []):
            hashes[r["payment_id"]].append(r["tx_hash"])
            raw_of[r["tx_hash"]] = r["raw_tx"]
    mined_nonce = chain.nonce(wallet_address, "latest")
    head = chain.block_number() if confirmations > 1 else None
    receipts: dict[str, Receipt] = {}
    for r in open_rows:
        for h in hashes.get(r["payment_id"], [r["tx_hash"]]):
            rc = chain.receipt(h)
            if rc is not None:
                receipts[r["payment_id"]] = rc
                break
    deep = deep_enough(receipts, head, confirmations)
    report.confirmed, report.failed = settle_receipts(ledger, open_rows, deep, run_id, raw_of)
    rebroadcast: list[dict[str, Any]] = []
    investigate: list[dict[str, Any]] = []
    now = now or datetime.now(UTC)
    can_replace = wallet is not None and max_gas_price_wei is not None and stuck_after is not None
    for r in (r for r in open_rows if r["payment_id"] not in receipts):
        stuck = (
            stuck_after is not None
            and r["status"] == BROADCAST
            and r["nonce"] >= mined_nonce
            and now - _aware(r["recorded_at"]) >= stuck_after
        )
        if stuck and not can_replace:
            report.stuck.append(
                {
                    "payment_id": r["payment_id"],
                    "nonce": r["nonce"],
                    "reason": "not mined after STUCK_AFTER_SECONDS; no key here to replace it "
                    "(run `openpool payouts recover` with HOT_WALLET_KEYSTORE set)",
                }
            )
        elif (
            stuck
            and wallet is not None  # can_replace, spelled out for the type checker
            and max_gas_price_wei is not None
            and replace_stuck(ledger, chain, wallet, r, max_gas_price_wei, report, run_id)
        ):
            continue
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
    report.pending = len(open_rows) - len(deep) - len(investigate)
    return report


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


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
