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
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from openpool.duplicates import find_duplicates
from openpool.errors import CommitConflict
from openpool.money import payable
from openpool.partitions import Partition
from openpool.payments import BROADCAST, OPEN, SIGNED, payout_log, settle
from openpool.payments import current as every_record
from openpool.payouts.chain import Chain
from openpool.payouts.checks import (
    PayoutRefused,
    plan_limits,
    require_fresh,
    require_solvent,
    require_within_limits,
)
from openpool.payouts.keys import HotWallet
from openpool.payouts.ledger import Ledger
from openpool.payouts.models import validate_plan
from openpool.payouts.plan import Limits, PlanRefused
from openpool.payouts.reconcile import require_ledger_covers_chain
from openpool.payouts.recover import recover
from openpool.payouts.sending import (
    RunReport,
    broadcast,
    deep_enough,
    settle_receipts,
    wait_receipts,
)
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.tables import BALANCES, read_table

__all__ = ["PayoutRefused", "RunReport", "execute", "recover"]

log = logging.getLogger(__name__)
DEFAULT_PLAN_MAX_AGE = timedelta(hours=24)  # PLAN_MAX_AGE_SECONDS' default
GAS_MARGIN = (12, 10)  # estimate x 1.2: Arbitrum transfers need more than 21,000


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
    snaps: dict[str, Snapshot | None] = {}
    for part_key in sorted({k[0] for k in asked}):
        try:
            part = Partition.parse(part_key)
        except ValueError as exc:
            raise PlanRefused(f"plan names an invalid partition: {exc}; nothing sent") from None
        snap = snaps[part_key] = SnapshotStore(ledger.snaps.store, part).latest()
        for b in read_table(snap, "balances", BALANCES).to_pylist():
            key = (part_key, b["eth_address"])
            owed[key] = payable(int(b["worker_earnings_wei"]), settled.get(key))
    # A repeated event ID ingested since the plan was made holds its workers back here too.
    parts = [Partition.parse(k) for k in snaps]
    held = find_duplicates(ledger.snaps.store, parts, pinned=snaps).blocked()
    for (part_key, addr), ids in sorted(held.items()):
        if (part_key, addr) in asked:
            raise PlanRefused(
                f"plan pays {addr} in {part_key}, held back by unresolved repeated event "
                f"ID(s) {', '.join(ids)} (openpool duplicates); refused, nothing sent"
            )
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
    limits: Limits,
    now: datetime,
) -> int:
    """Sign every unrecorded payment and commit them as ``signed``; returns how many.

    Every check runs again on each base it tries to commit on (see :mod:`.checks`)."""
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
        require_ledger_covers_chain(ledger, chain)  # a lost ledger would pay again
        refuse_unbacked(todo, ledger, base)  # on the base this commit will claim
        records = every_record(payout_log(ledger.snaps.store, pinned={ledger.wallet: base}))
        require_within_limits(plan, todo, limits, records, now)
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


def execute(
    plan: dict[str, Any],
    plan_hash: str,
    ledger: Ledger,
    chain: Chain,
    wallet: HotWallet,
    max_gas_price_wei: int,
    receipt_timeout: float = 120.0,
    run_id: str | None = None,
    *,
    limits: Limits | None = None,
    max_plan_age: timedelta = DEFAULT_PLAN_MAX_AGE,
    approved_at: datetime | None = None,
    now: datetime | None = None,
    confirmations: int = 1,
) -> RunReport:
    """Pay the plan (see the module docstring); safe to run again or concurrently.

    ``limits``: the executor's current settings (default: those the plan was built
    under), re-checked against the ledger as it is when signing; a plan made, or approved
    (``approved_at``), more than ``max_plan_age`` ago is refused."""
    run_id = run_id or f"execute-{uuid.uuid4().hex[:12]}"
    report = RunReport(plan_hash)
    plan = validate_plan(plan).model_dump()  # its structure, before anything else
    now = now or datetime.now(UTC)
    require_fresh(plan, plan_hash, max_plan_age, now, approved_at)
    limits = limits or plan_limits(plan)
    if plan["wallet"].lower() != wallet.address.lower():
        raise PlanRefused("the plan was made for another hot wallet")
    if plan["chain_id"] != chain.chain_id():
        raise PlanRefused(f"the plan is for chain {plan['chain_id']}, the node is another")
    require_ledger_covers_chain(ledger, chain)
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
        report.signed = _sign_all(
            plan, plan_hash, ledger, chain, wallet, max_fee, tip, gas, run_id, limits, now
        )
    ids = {p["payment_id"] for p in plan["payments"]}
    current = [r for pid, r in ledger.payments().items() if pid in ids]
    to_send = [r for r in current if r["status"] == SIGNED]
    sent = broadcast(chain, to_send, report)
    if sent:
        ledger.transition([{**r, "status": BROADCAST} for r in sent], run_id, (SIGNED,))
    report.broadcast = len(sent)
    open_rows = [
        r for r in ledger.payments().values() if r["payment_id"] in ids and r["status"] in OPEN
    ]
    receipts = wait_receipts(chain, open_rows, receipt_timeout)
    head = chain.block_number() if confirmations > 1 and receipts else None
    receipts = deep_enough(receipts, head, confirmations)  # the rest: recover, later
    confirmed, failed = settle_receipts(ledger, open_rows, receipts, run_id)
    report.confirmed, report.failed = confirmed, report.failed + failed
    report.pending = len(open_rows) - len(receipts)
    log.info("payout run %s: %s", plan_hash[:12], report.as_dict())
    return report
