"""Execute an approved plan exactly once, and recover whatever a crash left open.

Order per run: refuse a tampered or malformed plan; check gas price against the cap; sign
every payment not yet recorded and commit all ``signed`` records in ONE ledger commit
(claiming their nonces) before broadcasting anything -- on the base of that commit, the
payments must be backed by balances and the wallet must cover them plus everything still
in flight (:mod:`openpool.payouts.checks`; send nothing otherwise); broadcast the
recorded raw bytes; wait for all receipts concurrently; record ``confirmed`` / ``failed``.
A receipt timeout leaves ``broadcast`` for the next :func:`recover`; nothing is ever
re-signed for a payment that has a record. A payment whose gas estimate fails is not signed
this run and gets no record: only a mined receipt may make a payment ``failed`` (payable
again).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from openpool.errors import CommitConflict
from openpool.ingest.accrue import BALANCES
from openpool.ingest.batch import read_table
from openpool.partitions import Partition
from openpool.payouts.chain import Chain
from openpool.payouts.checks import PayoutRefused, require_solvent
from openpool.payouts.keys import HotWallet
from openpool.payouts.ledger import (
    BROADCAST,
    CONFIRMED,
    FAILED,
    INVESTIGATE,
    OPEN,
    SIGNED,
    Ledger,
)
from openpool.payouts.models import validate_plan
from openpool.payouts.payable import current as every_record
from openpool.payouts.payable import payable, payout_log, settle
from openpool.payouts.plan import PlanRefused
from openpool.snapshots import Snapshot, SnapshotStore

log = logging.getLogger(__name__)
GAS_MARGIN = (12, 10)  # estimate x 1.2: Arbitrum transfers need more than 21,000


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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _row(p: dict[str, Any], plan_hash: str, status: str, **kw: Any) -> dict[str, Any]:
    return {
        "payment_id": p["payment_id"],
        "plan_hash": plan_hash,
        "partition": p["partition"],
        "eth_address": p["eth_address"],
        "amount_wei": p["amount_wei"],
        "status": status,
        "nonce": p.get("nonce"),
        "tx_hash": p.get("tx_hash"),
        "raw_tx": p.get("raw_tx"),
        "max_fee_per_gas": p.get("max_fee_per_gas"),
        "gas": p.get("gas"),
        **kw,
    }


def fees(chain: Chain, cap_wei: int) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas) under the cap; refuses if the base fee is over it."""
    base = chain.base_fee()
    if base > cap_wei:
        raise PayoutRefused(
            f"gas price above the cap: base fee {base} wei > MAX_GAS_PRICE_WEI {cap_wei}; "
            "nothing sent"
        )
    tip = min(chain.priority_fee(), cap_wei - base)
    return min(2 * base + tip, cap_wei), tip


def refuse_unbacked(todo: list[dict[str, Any]], ledger: Ledger, base: Snapshot | None) -> None:
    """Refuse payments the balances do not back: to an address without a balance in the
    partition, or above its payable (earnings - paid - in flight: this wallet's ledger at
    ``base``, and every other wallet's ledger, so a rotated-out wallet's payments count).

    An approved plan is trusted for its hash, not for its arithmetic: a plan written by
    hand, or a replay of a paid plan under new payment ids, is refused before signing.
    """
    asked: dict[tuple[str, str], int] = {}
    for p in todo:
        key = (p["partition"], p["eth_address"])
        asked[key] = asked.get(key, 0) + int(p["amount_wei"])
    owed: dict[tuple[str, str], int] = {}
    settled = settle(every_record(payout_log(ledger.snaps.store, pinned={ledger.wallet: base})))
    for part_key in sorted({k[0] for k in asked}):
        try:
            part = Partition.parse(part_key)
        except ValueError as exc:
            raise PlanRefused(f"plan names an invalid partition: {exc}; nothing sent") from None
        snap = SnapshotStore(ledger.snaps.store, part).latest()
        for b in read_table(snap, "balances", BALANCES).to_pylist():
            key = (part_key, b["eth_address"])
            owed[key] = payable(int(b["worker_earnings_wei"]), settled.get(key))
    for (part_key, addr), amount in sorted(asked.items()):
        if (part_key, addr) not in owed:
            raise PlanRefused(
                f"plan pays {addr} in {part_key}, which has no balance there; refused, nothing sent"
            )
        if amount > owed[(part_key, addr)]:
            raise PlanRefused(
                f"plan pays {addr} {amount} wei in {part_key}, above its payable "
                f"{owed[(part_key, addr)]} wei; refused, nothing sent"
            )


def _sign_all(
    plan: dict[str, Any],
    plan_hash: str,
    ledger: Ledger,
    chain: Chain,
    wallet: HotWallet,
    max_fee: int,
    tip: int,
    gas: dict[str, int],
    run_id: str,
) -> int:
    """Sign every unrecorded payment and commit them as ``signed``; returns how many."""
    while True:
        base = ledger.latest()
        recorded = ledger.current(ledger.log(base))
        todo = [
            p
            for p in plan["payments"]
            if p["payment_id"] in gas and p["payment_id"] not in recorded
        ]
        if not todo:
            return 0
        refuse_unbacked(todo, ledger, base)  # on the base this commit will claim
        require_solvent(todo, gas, max_fee, ledger, base, chain, wallet.address)
        nonce = max(Ledger.next_nonce(base), chain.nonce(wallet.address, "pending"))
        rows = []
        for p in todo:
            tx = {
                "type": 2,
                "chainId": plan["chain_id"],
                "nonce": nonce,
                "to": p["eth_address"],
                "value": p["amount_wei"],
                "gas": gas[p["payment_id"]],
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
            raw, tx_hash = wallet.sign(tx)
            rows.append(
                _row(
                    {
                        **p,
                        "nonce": nonce,
                        "tx_hash": tx_hash,
                        "raw_tx": raw.hex(),
                        "max_fee_per_gas": max_fee,
                        "gas": tx["gas"],
                    },
                    plan_hash,
                    SIGNED,
                )
            )
            nonce += 1
        try:
            ledger.try_commit(base, rows, run_id, next_nonce=nonce)
            return len(rows)
        except CommitConflict:
            log.info("ledger moved while signing (another executor?); re-reading")


def broadcast(chain: Chain, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send each recorded raw tx; returns rows now known to the node (for ``broadcast``)."""
    sent = []
    for r in rows:
        outcome = chain.send_raw(bytes.fromhex(r["raw_tx"]))
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


def _settle(
    ledger: Ledger, rows: list[dict[str, Any]], receipts: dict[str, Any], run_id: str
) -> tuple[int, int]:
    out = []
    for r in rows:
        rc = receipts.get(r["payment_id"])
        if rc is not None:
            status = CONFIRMED if rc.status == 1 else FAILED
            out.append(
                {
                    **r,
                    "status": status,
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


def execute(
    plan: dict[str, Any],
    plan_hash: str,
    ledger: Ledger,
    chain: Chain,
    wallet: HotWallet,
    max_gas_price_wei: int,
    receipt_timeout: float = 120.0,
    run_id: str | None = None,
) -> RunReport:
    """Pay the plan (see the module docstring); safe to run again or concurrently."""
    run_id = run_id or f"execute-{uuid.uuid4().hex[:12]}"
    report = RunReport(plan_hash)
    plan = validate_plan(plan).model_dump()  # its structure, before anything else
    if plan["wallet"].lower() != wallet.address.lower():
        raise PlanRefused("the plan was made for another hot wallet")
    if plan["chain_id"] != chain.chain_id():
        raise PlanRefused(f"the plan is for chain {plan['chain_id']}, the node is another")
    recorded = ledger.payments()
    todo = [p for p in plan["payments"] if p["payment_id"] not in recorded]
    if todo:
        max_fee, tip = fees(chain, max_gas_price_wei)
        gas: dict[str, int] = {}
        for p in todo:
            try:
                est = chain.estimate_gas(wallet.address, p["eth_address"], p["amount_wei"])
            except Exception as exc:  # "not signed this time", never failed (payable again)
                reason = f"gas estimate failed: {type(exc).__name__}: {exc}"[:300]
                report.not_signed.append({"payment_id": p["payment_id"], "reason": reason})
                log.warning("payment %s not signed this run: %s", p["payment_id"], reason)
                continue
            gas[p["payment_id"]] = -(-est * GAS_MARGIN[0] // GAS_MARGIN[1])
        report.signed = _sign_all(plan, plan_hash, ledger, chain, wallet, max_fee, tip, gas, run_id)
    ids = {p["payment_id"] for p in plan["payments"]}
    current = [r for pid, r in ledger.payments().items() if pid in ids]
    to_send = [r for r in current if r["status"] == SIGNED]
    sent = broadcast(chain, to_send)
    if sent:
        ledger.transition([{**r, "status": BROADCAST} for r in sent], run_id, (SIGNED,))
    report.broadcast = len(sent)
    open_rows = [
        r for r in ledger.payments().values() if r["payment_id"] in ids and r["status"] in OPEN
    ]
    receipts = wait_receipts(chain, open_rows, receipt_timeout)
    confirmed, failed = _settle(ledger, open_rows, receipts, run_id)
    report.confirmed, report.failed = confirmed, report.failed + failed
    report.pending = len(open_rows) - len(receipts)
    log.info("payout run %s: %s", plan_hash[:12], report.as_dict())
    return report


def recover(
    ledger: Ledger, chain: Chain, wallet_address: str, run_id: str | None = None
) -> RunReport:
    """Resolve every ``signed``/``broadcast`` record by its tx hash (see module docstring)."""
    run_id = run_id or f"recover-{uuid.uuid4().hex[:12]}"
    report = RunReport("recover")
    open_rows = [r for r in ledger.payments().values() if r["status"] in OPEN]
    if not open_rows:
        return report
    mined_nonce = chain.nonce(wallet_address, "latest")
    receipts, rebroadcast, investigate = {}, [], []
    for r in open_rows:
        rc = chain.receipt(r["tx_hash"])
        if rc is not None:
            receipts[r["payment_id"]] = rc
        elif chain.known(r["tx_hash"]):
            if r["status"] == SIGNED:
                rebroadcast.append(r)  # it got out before the crash: record that
        elif r["nonce"] >= mined_nonce:
            if chain.send_raw(bytes.fromhex(r["raw_tx"])) != "nonce_too_low":
                rebroadcast.append(r)
        else:
            investigate.append(r)
    report.confirmed, report.failed = _settle(ledger, open_rows, receipts, run_id)
    if rebroadcast:
        ledger.transition([{**r, "status": BROADCAST} for r in rebroadcast], run_id, OPEN)
    if investigate:
        ledger.transition(
            [
                {
                    **r,
                    "status": INVESTIGATE,
                    "recorded_at": None,
                    "note": f"nonce {r['nonce']} was used by another transaction",
                }
                for r in investigate
            ],
            run_id,
            OPEN,
        )
        for r in investigate:
            log.error(
                "PAYMENT NEEDS INVESTIGATION: %s to %s (nonce %s): worker blocked",
                r["payment_id"],
                r["eth_address"],
                r["nonce"],
            )
    report.broadcast = len(rebroadcast)
    report.investigate = [r["payment_id"] for r in investigate]
    report.pending = len(open_rows) - len(receipts) - len(investigate)
    return report
