"""The payout plan: who gets how much, written content-addressed so approval binds to it.

Payable = earnings - paid - in-flight (from the ledger). A worker is planned when payable
>= the threshold, it had no payout in the minimum interval, and it has no unresolved
payment (open or under investigation: such a worker is blocked everywhere). Each payment
is capped at ``MAX_PAYMENT_WEI``; the run at ``MAX_RUN_WEI``, largest balances first; the
rest waits for the next run. The plan file's SHA-256 is its name and its identity.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from openpool.duplicates import find_duplicates
from openpool.errors import CorruptObject, InvalidPlan, ObjectExists, PlanRefused
from openpool.money import payable as payable_wei
from openpool.partitions import Partition
from openpool.payments import CONFIRMED, IN_FLIGHT, INVESTIGATE, payout_log, settle
from openpool.payments import current as all_current
from openpool.payouts.ledger import Ledger
from openpool.payouts.models import validate_plan
from openpool.snapshots import SnapshotStore
from openpool.storage import ObjectStore
from openpool.tables import BALANCES, read_table


@dataclass(frozen=True)
class Limits:
    threshold_wei: int
    max_payment_wei: int
    max_run_wei: int
    min_interval: timedelta


def canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def plan_key(plan_hash: str) -> str:
    return f"plans/{plan_hash}.json"


def payment_id(partition: str, worker: str, basis: str) -> str:
    return hashlib.sha256(f"{partition}|{worker}|{basis}".encode()).hexdigest()[:32]


PASSED_OVER = (
    "nothing_payable",
    "below_threshold",
    "payment_in_flight_or_investigated",
    "held_by_repeated_event_id",
    "paid_within_min_interval",
)


def why_nothing(plan: dict[str, Any]) -> str:
    """One line saying why a plan pays nobody, with the settings that decided it."""
    lim, n = plan["limits"], plan.get("passed_over", {})
    from openpool.money import eth

    parts = [
        f"{n.get('nothing_payable', 0)} with nothing payable",
        f"{n.get('below_threshold', 0)} below PAYMENT_THRESHOLD_WEI "
        f"({eth(lim['threshold_wei'])} ETH)",
        f"{n.get('paid_within_min_interval', 0)} paid less than MIN_PAYOUT_INTERVAL_SECONDS "
        f"({lim['min_interval_s']} s) ago",
        f"{n.get('payment_in_flight_or_investigated', 0)} with a payment in flight or to "
        "investigate",
        f"{n.get('held_by_repeated_event_id', 0)} held back by a repeated event ID",
        f"{len(plan['deferred'])} deferred by MAX_RUN_WEI",
    ]
    return "nothing to pay: (partition, worker) pairs: " + ", ".join(parts)


def build_plan(
    partitions: list[Partition],
    state: ObjectStore,
    ledger: Ledger,
    limits: Limits,
    chain_id: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The plan document (not yet saved)."""
    now = now or datetime.now(UTC)
    lsnap = ledger.latest()
    # Every wallet's ledger (a rotated-out wallet's payments count), this one at lsnap.
    records = all_current(payout_log(state, pinned={ledger.wallet: lsnap}))
    settled = settle(records)
    last: dict[tuple[str, str], datetime] = {}
    blocked: set[str] = set()
    for r in records:
        key = (r["partition"], r["eth_address"])
        if r["status"] in IN_FLIGHT:
            blocked.add(r["eth_address"])
        if r["status"] == INVESTIGATE:
            blocked.add(r["eth_address"])
        if r["status"] in (CONFIRMED, *IN_FLIGHT):
            last[key] = max(last.get(key, r["recorded_at"]), r["recorded_at"])
    # An event ID held twice (the full-history check) holds back every worker it touched.
    # Checked on the very snapshots paid from: nothing committed meanwhile is paid unchecked.
    snaps = {str(part): SnapshotStore(state, part).latest() for part in partitions}
    held = find_duplicates(state, partitions, pinned=snaps).blocked()
    candidates, versions = [], {}
    passed = dict.fromkeys(PASSED_OVER, 0)  # why each (partition, worker) is not paid now
    for part in partitions:
        snap = snaps[str(part)]
        versions[str(part)] = snap.version if snap else 0
        for b in read_table(snap, "balances", BALANCES).to_pylist():
            key = (str(part), b["eth_address"])
            payable = payable_wei(int(b["worker_earnings_wei"]), settled.get(key))
            why = None
            if payable <= 0:
                why = "nothing_payable"
            elif payable < limits.threshold_wei:
                why = "below_threshold"
            elif b["eth_address"] in blocked:
                why = "payment_in_flight_or_investigated"
            elif key in held:
                why = "held_by_repeated_event_id"
            elif key in last and now - last[key] < limits.min_interval:
                why = "paid_within_min_interval"
            if why:
                passed[why] += 1
                continue
            candidates.append((payable, str(part), b["eth_address"]))
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    basis = f"ledger-v{lsnap.version if lsnap else 0}|" + ",".join(
        f"{k}={v}" for k, v in sorted(versions.items())
    )
    payments, deferred, total = [], [], 0
    for payable, part_key, addr in candidates:
        amount = min(payable, limits.max_payment_wei)
        if total + amount > limits.max_run_wei:
            deferred.append({"partition": part_key, "eth_address": addr, "payable_wei": payable})
            continue
        total += amount
        payments.append(
            {
                "payment_id": payment_id(part_key, addr, basis),
                "partition": part_key,
                "eth_address": addr,
                "amount_wei": amount,
            }
        )
    return {
        "format": 1,
        "created_at": now.isoformat(),
        "chain_id": chain_id,
        "wallet": ledger.wallet,
        "basis": basis,
        "limits": {
            "threshold_wei": limits.threshold_wei,
            "max_payment_wei": limits.max_payment_wei,
            "max_run_wei": limits.max_run_wei,
            "min_interval_s": int(limits.min_interval.total_seconds()),
        },
        "payments": payments,
        "passed_over": passed,
        "total_wei": total,
        "deferred": deferred,
        "held": [
            {
                "partition": p,
                "eth_address": a,
                "reason": "unresolved duplicate event ID(s) " + ", ".join(ids),
            }
            for (p, a), ids in sorted(held.items())
        ],
    }


def save_plan(state: ObjectStore, plan: dict[str, Any]) -> str:
    """Write the plan under its SHA-256 (idempotent); returns the hash."""
    data = canonical(plan)
    digest = hashlib.sha256(data).hexdigest()
    try:
        state.put_if_absent(plan_key(digest), data)
    except ObjectExists:
        pass  # the same content, by construction of the name
    return digest


def load_plan(state: ObjectStore, plan_hash: str) -> dict[str, Any]:
    """The plan named ``plan_hash``, refused unless its content still hashes to that name
    and has a plan's structure (:class:`InvalidPlan` naming the problem otherwise).

    The hash is of the stored bytes as they are (never re-serialised); the structure is
    that of :mod:`openpool.payouts.models`, the check ``execute`` makes, so every reader
    (the payout DAG, the CLI, the dashboard) gets a checked plan. Returned as stored.
    """
    data = state.get(plan_key(plan_hash))
    if hashlib.sha256(data).hexdigest() != plan_hash:
        raise PlanRefused(f"plan {plan_hash[:12]}…: content no longer matches its hash; refused")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CorruptObject(state.url(plan_key(plan_hash)), str(exc)) from None
    try:
        validate_plan(doc)
    except InvalidPlan as exc:
        raise InvalidPlan(f"plan {plan_hash[:12]}…: {exc}") from None
    return doc


TRANSFER_GAS = 21_000  # a plain ETH transfer; the estimate the approver sees


def describe(
    plan: dict[str, Any],
    plan_hash: str,
    wallet_balance_wei: int,
    max_fee_per_gas_wei: int | None = None,
    max_age: timedelta | None = None,
) -> dict[str, Any]:
    """What the approver sees: payments and workers, total, the ten largest with their
    partition, the wallet balance, the network fee at most, the plan's age and expiry."""
    from openpool.money import eth

    top = sorted(plan["payments"], key=lambda p: -p["amount_wei"])[:10]
    created = datetime.fromisoformat(plan["created_at"])
    fee = None
    if max_fee_per_gas_wei is not None:
        fee = eth(len(plan["payments"]) * TRANSFER_GAS * max_fee_per_gas_wei)
    return {
        "plan_hash": plan_hash,
        "payments": len(plan["payments"]),
        "workers": len({p["eth_address"].lower() for p in plan["payments"]}),
        "total_eth": eth(plan["total_wei"]),
        "largest": [
            {
                "eth_address": p["eth_address"],
                "partition": p["partition"],
                "eth": eth(p["amount_wei"]),
            }
            for p in top
        ],
        "wallet_balance_eth": eth(wallet_balance_wei),
        "network_fee_eth_at_most": fee,
        "created_at": created.isoformat(timespec="seconds"),
        "expires_at": (created + max_age).isoformat(timespec="seconds") if max_age else None,
        "deferred": len(plan["deferred"]),
        "held": len(plan.get("held", [])),
    }
