"""Broadcasting recorded transactions and settling their receipts (execute and recover).

A send the node refuses (priced out, dropped and not re-admitted, under-gassed...) is never
an exception that stops the run: it is reported with the node's reason and the record stays
open, so every receipt that did arrive is still settled and nothing is marked ``failed``
without a mined receipt saying so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from openpool.payments import CONFIRMED, FAILED, OPEN
from openpool.payouts.chain import Chain, Receipt, SendRefused
from openpool.payouts.ledger import Ledger

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    plan_hash: str
    signed: int = 0
    broadcast: int = 0
    confirmed: int = 0
    failed: int = 0
    pending: int = 0
    investigate: list[str] = field(default_factory=list)
    # Payments left unsigned this run (e.g. an RPC error on the gas estimate), with why:
    # no record is written, so they are neither paid nor payable again until settled.
    not_signed: list[dict[str, str]] = field(default_factory=list)
    # Recorded sends the node would not take this run, with its reason (still open).
    refused: list[dict[str, Any]] = field(default_factory=list)
    # Stuck sends replaced this run (same nonce, raised fees), and those that could not be.
    replaced: list[dict[str, Any]] = field(default_factory=list)
    stuck: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def refuse(self, row: dict[str, Any], reason: str) -> None:
        self.refused.append(
            {
                "payment_id": row["payment_id"],
                "nonce": row["nonce"],
                "tx_hash": row["tx_hash"],
                "reason": reason[:300],
            }
        )
        log.error("node refused payment %s (nonce %s): %s", row["payment_id"], row["nonce"], reason)


def send(chain: Chain, row: dict[str, Any], report: RunReport) -> str | None:
    """Send a record's raw bytes: "sent", "known", "nonce_too_low", or None if refused."""
    try:
        return chain.send_raw(bytes.fromhex(row["raw_tx"]))
    except SendRefused as exc:
        report.refuse(row, exc.reason)
        return None


def broadcast(
    chain: Chain, rows: list[dict[str, Any]], report: RunReport | None = None
) -> list[dict[str, Any]]:
    """Send each recorded raw tx; returns rows now known to the node (for ``broadcast``)."""
    report = report or RunReport("broadcast")
    sent = []
    for r in rows:
        outcome = send(chain, r, report)
        if outcome is None:
            continue  # reported; the record stays open for recover
        if outcome == "nonce_too_low" and not chain.known(r["tx_hash"]):
            continue  # left to recover: mined already, or the nonce went elsewhere
        sent.append(r)
    return sent


def wait_receipts(
    chain: Chain, rows: list[dict[str, Any]], timeout: float, poll: float = 0.5
) -> dict[str, Any]:
    """Receipts of ``rows`` by payment id, polling all of them together until ``timeout``."""
    deadline = time.monotonic() + timeout
    waiting = {r["payment_id"]: r for r in rows}
    got: dict[str, Any] = {}
    while waiting:
        for pid, r in list(waiting.items()):
            rc = chain.receipt(r["tx_hash"])
            if rc is not None:
                got[pid] = rc
                del waiting[pid]
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(poll)
    return got


def deep_enough(receipts: dict[str, Receipt], head: int | None, confirmations: int) -> dict:
    """The receipts at least ``confirmations`` blocks deep (1: mined) under block ``head``."""
    if confirmations <= 1 or head is None:
        return dict(receipts)
    return {k: rc for k, rc in receipts.items() if head - rc.block_number + 1 >= confirmations}


def settle_receipts(
    ledger: Ledger,
    rows: list[dict[str, Any]],
    receipts: dict[str, Receipt],
    run_id: str,
    raw_of: dict[str, str | None] | None = None,
) -> tuple[int, int]:
    """Record mined receipts: status 1 confirmed, 0 failed; returns (confirmed, failed).

    A receipt may be of an earlier hash of the payment (the original mined, not its
    replacement): the record then takes that hash (and its bytes, from ``raw_of``), on
    condition that the record still carries the hash the caller saw."""
    out = []
    for r in rows:
        rc = receipts.get(r["payment_id"])
        if rc is not None:
            mined = rc.tx_hash or r["tx_hash"]
            status = CONFIRMED if rc.status == 1 else FAILED
            out.append(
                {
                    **r,
                    "status": status,
                    "tx_hash": mined,
                    "raw_tx": (raw_of or {}).get(mined, r["raw_tx"]),
                    "expect_tx_hash": r["tx_hash"],
                    "block_number": rc.block_number,
                    "recorded_at": None,
                    "note": None if rc.status == 1 else "reverted",
                }
            )
    done = ledger.transition(out, run_id, allowed_from=OPEN)
    return (
        sum(1 for r in done if r["status"] == CONFIRMED),
        sum(1 for r in done if r["status"] == FAILED),
    )
