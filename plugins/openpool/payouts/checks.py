"""Checks an executor makes on the very ledger base its signing commit claims.

Run inside the commit's retry loop: when another executor commits first, the commit
conflicts, the base is re-read and every check runs again on it, so two executors of
different plans can never both pass a check that only one of them could pass alone.
"""

from __future__ import annotations

from typing import Any

from openpool.errors import OpenPoolError
from openpool.payouts.chain import Chain
from openpool.payouts.ledger import OPEN, Ledger
from openpool.snapshots import Snapshot


class PayoutRefused(OpenPoolError):
    """Nothing was sent: the run failed a check before the first broadcast."""


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
