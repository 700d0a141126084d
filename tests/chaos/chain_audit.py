"""What a hot wallet sent, read from the chain alone: every block over raw JSON-RPC.

No ledger and no product code (not ``Chain.sent_in_block``, which ``reconcile`` uses): the
blocks are fetched with ``eth_getBlockByNumber`` and each of the wallet's transactions'
status with ``eth_getTransactionReceipt``. Blocks are scanned once per chain and kept
(the campaign's chains are shared by many pools); the scan starts again from block 0 if
the last block kept is no longer the chain's (a reorg, or another node on that port).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from openpool.payouts.chain import Chain


class Transfer(NamedTuple):
    tx_hash: str
    to: str  # lower case
    value: int
    block: int
    ok: bool  # receipt status 1


@dataclass
class _Scan:
    blocks: list[str] = field(default_factory=list)  # block hashes, by number
    sent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sender -> txs


_lock = threading.Lock()
_scans: dict[str, _Scan] = {}


def _rpc(chain: Chain, method: str, *params: Any) -> Any:
    return chain.rpc(method, list(params))


def _scan(chain: Chain, key: str) -> _Scan:
    scan = _scans.setdefault(key, _Scan())
    head = int(_rpc(chain, "eth_blockNumber"), 16)
    if scan.blocks:
        last = _rpc(chain, "eth_getBlockByNumber", hex(len(scan.blocks) - 1), False)
        if last is None or last["hash"] != scan.blocks[-1]:
            scan = _scans[key] = _Scan()
    for n in range(len(scan.blocks), head + 1):
        block = _rpc(chain, "eth_getBlockByNumber", hex(n), True)
        for tx in block["transactions"]:
            scan.sent.setdefault(tx["from"].lower(), []).append(tx)
        scan.blocks.append(block["hash"])
    return scan


def wallet_transfers(chain: Chain, rpc: str, wallet: str) -> list[Transfer]:
    """Every transaction ``wallet`` has had mined, with its receipt's status."""
    with _lock:
        txs = list(_scan(chain, rpc).sent.get(wallet.lower(), []))
    out = []
    for tx in txs:
        receipt = _rpc(chain, "eth_getTransactionReceipt", tx["hash"])
        out.append(
            Transfer(
                tx["hash"].lower(),
                (tx.get("to") or "").lower(),
                int(tx["value"], 16),
                int(tx["blockNumber"], 16),
                receipt is not None and int(receipt["status"], 16) == 1,
            )
        )
    return out
