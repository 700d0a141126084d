"""Replacing a stuck send: same nonce, fees raised, signed and recorded before it is sent.

A broadcast payment that is not mined after ``STUCK_AFTER_SECONDS`` (priced out by a base
fee that rose above its ``maxFeePerGas``, or dropped by the node) blocks its worker and
queues every later nonce behind it. It is replaced by the same transfer (same nonce,
recipient, amount and gas) with both fee fields raised by at least the replacement minimum
(+10 %) and ``maxFeePerGas`` at least twice the current base fee plus the tip, never above
``MAX_GAS_PRICE_WEI``. The replacement is committed to the ledger first (so a crash leaves
its bytes for ``recover``); whichever of the payment's hashes mines is then settled, and
since they share one nonce, at most one can.
"""

from __future__ import annotations

from typing import Any

import rlp
from web3 import Web3

from openpool.payments import BROADCAST
from openpool.payouts.chain import Chain
from openpool.payouts.keys import HotWallet
from openpool.payouts.ledger import Ledger
from openpool.payouts.sending import RunReport, send

BUMP = (11, 10)  # the replacement minimum nodes enforce: +10 % on both fee fields


def _up(value: int) -> int:
    return max(-(-value * BUMP[0] // BUMP[1]), value + 1)


def decode(raw_hex: str) -> dict[str, Any]:
    """The fields of signed EIP-1559 bytes (type 2) that a replacement keeps or raises."""
    raw = bytes.fromhex(raw_hex.removeprefix("0x"))
    if raw[:1] != b"\x02":
        raise ValueError("not an EIP-1559 transaction")
    f = [int.from_bytes(x, "big") if i != 5 else x for i, x in enumerate(rlp.decode(raw[1:])[:7])]
    return {
        "chainId": f[0],
        "nonce": f[1],
        "maxPriorityFeePerGas": f[2],
        "maxFeePerGas": f[3],
        "gas": f[4],
        "to": "0x" + bytes(f[5]).hex(),
        "value": f[6],
    }


def raised_fees(old_max: int, old_tip: int, base_fee: int, cap: int) -> tuple[int, int] | None:
    """(maxFeePerGas, tip) for a replacement, or None if it would exceed the cap."""
    tip = _up(old_tip)
    max_fee = min(max(_up(old_max), 2 * base_fee + tip), cap)
    if max_fee < _up(old_max) or max_fee < tip or max_fee < base_fee:
        return None
    return max_fee, tip


def replace_stuck(
    ledger: Ledger,
    chain: Chain,
    wallet: HotWallet,
    row: dict[str, Any],
    cap: int,
    report: RunReport,
    run_id: str,
) -> bool:
    """Sign, record, then send a replacement for ``row``; False if it cannot be replaced
    under the cap (reported in ``stuck``; the caller falls back to rebroadcasting)."""
    old = decode(row["raw_tx"])
    base_fee = chain.base_fee()
    fees = raised_fees(old["maxFeePerGas"], old["maxPriorityFeePerGas"], base_fee, cap)
    if fees is None:
        report.stuck.append(
            {
                "payment_id": row["payment_id"],
                "nonce": row["nonce"],
                "reason": f"a replacement would need maxFeePerGas above MAX_GAS_PRICE_WEI {cap} "
                f"(base fee {base_fee} wei); left as it is",
            }
        )
        return False
    tx = {**old, "type": 2, "maxFeePerGas": fees[0], "maxPriorityFeePerGas": fees[1]}
    tx["to"] = Web3.to_checksum_address(tx["to"])
    raw, tx_hash = wallet.sign(tx)
    new = {
        **row,
        "status": BROADCAST,
        "tx_hash": tx_hash,
        "raw_tx": raw.hex(),
        "max_fee_per_gas": fees[0],
        "expect_tx_hash": row["tx_hash"],
        "recorded_at": None,
        "note": f"replaces {row['tx_hash']} (stuck; fees raised)",
    }
    if not ledger.transition([new], run_id, (BROADCAST,)):
        return True  # another writer moved the record first: nothing to do here
    report.replaced.append(
        {
            "payment_id": row["payment_id"],
            "nonce": row["nonce"],
            "replaces": row["tx_hash"],
            "tx_hash": tx_hash,
            "max_fee_per_gas": fees[0],
            "max_priority_fee_per_gas": fees[1],
        }
    )
    send(chain, new, report)  # a refusal is reported; the record stays for recover
    return True
