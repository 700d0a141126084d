"""Checks an executor makes on the very ledger base its signing commit claims.

Run inside the commit's retry loop: when another executor commits first, the commit
conflicts, the base is re-read and every check runs again on it, so two executors of
different plans can never both pass a check that only one of them could pass alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from openpool.errors import PayoutRefused, PlanRefused
from openpool.payments import CONFIRMED, IN_FLIGHT, OPEN
from openpool.payouts.chain import Chain
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import Limits
from openpool.snapshots import Snapshot


def in_flight_cost(ledger: Ledger, base: Snapshot | None, mined_nonce: int) -> int:
    """Worst-case wei the wallet still owes for open records not yet mined (amount plus
    gas x maxFeePerGas): the node's balance does not show them spent yet. An open record
    whose nonce is below the mined nonce is (or was replaced by) a mined transaction,
    whose cost the balance already shows."""
    total = 0
    for r in ledger.current(ledger.log(base)).values():
        if r["status"] in OPEN and r["nonce"] is not None and r["nonce"] >= mined_nonce:
            total += int(r["amount_wei"]) + int(r["gas"] or 0) * int(r["max_fee_per_gas"] or 0)
    return total


def require_solvent(
    todo: list[dict[str, Any]],
    gas: dict[str, int],
    max_fee: int,
    ledger: Ledger,
    base: Snapshot | None,
    chain: Chain,
    wallet: str,
) -> None:
    """Refuse unless the wallet covers ``todo`` (amounts + worst-case gas) on top of every
    payment already in flight on ``base``."""
    mined = chain.nonce(wallet, "latest")
    flight = in_flight_cost(ledger, base, mined)
    new = sum(int(p["amount_wei"]) + gas[p["payment_id"]] * max_fee for p in todo)
    have = chain.balance(wallet)
    if have < new + flight:
        raise PayoutRefused(
            f"insufficient hot wallet balance: need {new} wei (payments + worst-case gas) on "
            f"top of {flight} wei still in flight, have {have} wei, short by "
            f"{new + flight - have} wei; nothing sent"
        )


def plan_limits(plan: dict[str, Any]) -> Limits:
    """The limits a plan was built under (used when the executor is given none)."""
    lim = plan["limits"]
    return Limits(
        threshold_wei=int(lim["threshold_wei"]),
        max_payment_wei=int(lim["max_payment_wei"]),
        max_run_wei=int(lim["max_run_wei"]),
        min_interval=timedelta(seconds=int(lim["min_interval_s"])),
    )


def require_fresh(
    plan: dict[str, Any],
    plan_hash: str,
    max_age: timedelta,
    now: datetime,
    approved_at: datetime | None = None,
) -> None:
    """Refuse a plan, or an approval, older than the plan window: the balances, the
    ledger and the person's reasons may all have changed since."""
    created = datetime.fromisoformat(plan["created_at"])
    for what, when in (("made", created), ("approved", approved_at)):
        if when is not None and now - when > max_age:
            raise PlanRefused(
                f"plan {plan_hash[:12]}… was {what} at {when.isoformat()}, more than "
                f"PLAN_MAX_AGE_SECONDS ({int(max_age.total_seconds())} s) ago; refused, "
                "nothing sent: make and approve a new plan"
            )


def require_within_limits(
    plan: dict[str, Any],
    todo: list[dict[str, Any]],
    limits: Limits,
    records: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Re-check, when executing, every limit the planner applied: per payment, per run,
    the threshold, and the minimum interval against the ledger as it is now (``records``:
    every wallet's current payment records on the base being committed)."""
    for p in todo:
        amount, who = int(p["amount_wei"]), f"{p['eth_address']} in {p['partition']}"
        if amount > limits.max_payment_wei:
            raise PlanRefused(
                f"plan pays {who} {amount} wei, above MAX_PAYMENT_WEI "
                f"{limits.max_payment_wei}; refused, nothing sent"
            )
        if amount < limits.threshold_wei:
            raise PlanRefused(
                f"plan pays {who} {amount} wei, below PAYMENT_THRESHOLD_WEI "
                f"{limits.threshold_wei}; refused, nothing sent"
            )
    total = sum(int(p["amount_wei"]) for p in plan["payments"])
    if total > limits.max_run_wei:
        raise PlanRefused(
            f"plan pays {total} wei in one run, above MAX_RUN_WEI {limits.max_run_wei}; "
            "refused, nothing sent"
        )
    last: dict[tuple[str, str], datetime] = {}
    for r in records:
        if r["status"] in (CONFIRMED, *IN_FLIGHT) and r["recorded_at"] is not None:
            key = (r["partition"], r["eth_address"])
            last[key] = max(last.get(key, r["recorded_at"]), r["recorded_at"])
    for p in todo:
        when = last.get((p["partition"], p["eth_address"]))
        if when is not None and now - _aware(when) < limits.min_interval:
            raise PlanRefused(
                f"plan pays {p['eth_address']} in {p['partition']}, last paid at "
                f"{when.isoformat()}, within MIN_PAYOUT_INTERVAL_SECONDS "
                f"({int(limits.min_interval.total_seconds())} s); refused, nothing sent"
            )


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)
