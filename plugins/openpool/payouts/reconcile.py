"""The chain judges the ledger: every nonce the hot wallet used must have a ledger record.

A ledger that was deleted, or restored from an older copy, does not know payments the chain
shows were made; planning from it (or re-executing a plan whose records it lost) would pay
them again. So planning, executing and recovering first compare the wallet's transaction
count on the chain with the nonces the ledger knows, and refuse everything, naming the
gap, until :func:`reconcile` has rebuilt the missing records from the chain (the wallet's
transactions from the ledger's last known block, matched to saved plans by recipient and
amount) and a person has confirmed them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from openpool.errors import LedgerBehindChain, OpenPoolError
from openpool.payments import CONFIRMED, FAILED, INVESTIGATE
from openpool.payouts.chain import Chain
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import load_plan
from openpool.snapshots import Snapshot
from openpool.storage import ObjectStore


def _spans(nonces: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``nonces 0-2, 5``."""
    parts: list[str] = []
    start = prev = nonces[0]
    for n in [*nonces[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ("nonce " if len(nonces) == 1 else "nonces ") + ", ".join(parts)


def unknown_nonces(ledger: Ledger, chain: Chain) -> tuple[list[int], int, Snapshot | None]:
    """(nonces the chain shows used that the ledger has no record of, nonces used, the
    ledger snapshot read). The chain is read first: every record is committed before its
    transaction is broadcast, so a rival executor acting in between is never a gap."""
    used = max(chain.nonce(ledger.wallet, "latest"), chain.nonce(ledger.wallet, "pending"))
    snap = ledger.latest()
    known = {int(n) for n in ledger.log(snap).column("nonce").to_pylist() if n is not None}
    return [n for n in range(used) if n not in known], used, snap


def require_ledger_covers_chain(ledger: Ledger, chain: Chain) -> None:
    """Refuse (:class:`LedgerBehindChain`) unless every used nonce has a ledger record."""
    missing, used, snap = unknown_nonces(ledger, chain)
    if missing:
        raise LedgerBehindChain(
            f"the hot wallet's ledger is behind the chain: the chain shows {used} "
            f"transaction(s) sent by {ledger.wallet}, the ledger (version "
            f"{snap.version if snap else 0}) has no record of {_spans(missing)} -- a lost or "
            "rolled-back ledger, or a send from this wallet outside OpenPool. Nothing planned "
            "or sent; run `openpool payouts reconcile` to see what the chain shows, then "
            "`openpool payouts reconcile --i-confirm` to record it"
        )


def _plans(state: ObjectStore) -> list[tuple[str, dict[str, Any]]]:
    """Every saved plan whose content still hashes to its name, oldest first."""
    out = []
    for info in state.list("plans/"):
        name = info.key.rsplit("/", 1)[-1]
        if not name.endswith(".json"):
            continue
        try:
            plan = load_plan(state, name[: -len(".json")])
        except (OpenPoolError, json.JSONDecodeError):
            continue  # a tampered or unreadable plan matches nothing
        out.append((name[: -len(".json")], plan))
    return sorted(out, key=lambda hp: (str(hp[1].get("created_at")), hp[0]))


def _scan(
    chain: Chain, wallet: str, missing: set[int], start: int
) -> tuple[dict[int, dict[str, Any]], tuple[int, int]]:
    found: dict[int, dict[str, Any]] = {}
    last = chain.block_number()
    for number in range(start, last + 1):
        for tx in chain.sent_in_block(number, wallet):
            if tx["nonce"] in missing:
                found[tx["nonce"]] = tx
        if len(found) == len(missing):
            break
    return found, (start, last)


def reconcile(
    state: ObjectStore,
    ledger: Ledger,
    chain: Chain,
    confirm: bool = False,
    from_block: int | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """What the chain shows that the ledger lost, matched to saved plans; recorded only
    with ``confirm`` (a person looked at it). Returns the findings."""
    missing, used, base = unknown_nonces(ledger, chain)
    log = ledger.log(base).to_pylist()
    report: dict[str, Any] = {
        "wallet": ledger.wallet,
        "chain_nonce": used,
        "missing_nonces": missing,
        "matched": [],
        "unmatched": [],
        "not_found": [],
        "recorded": False,
    }
    if not missing:
        return report
    if from_block is None:  # the last block the ledger knows below the first gap
        from_block = max(
            (
                int(r["block_number"])
                for r in log
                if r["block_number"] is not None and (r["nonce"] or 0) < missing[0]
            ),
            default=0,
        )
    found, scanned = _scan(chain, ledger.wallet, set(missing), from_block)
    report["scanned_blocks"] = list(scanned)
    report["not_found"] = [n for n in missing if n not in found]
    rows = _match(state, {r["payment_id"] for r in log}, found, chain)
    report["matched"] = [_brief(r) for r in rows if r["status"] != INVESTIGATE]
    report["unmatched"] = [_brief(r) for r in rows if r["status"] == INVESTIGATE]
    if confirm and rows:
        ledger.adopt(rows, run_id or f"reconcile-{uuid.uuid4().hex[:12]}")
        report["recorded"] = True
    return report


def _match(
    state: ObjectStore, recorded: set[str], found: dict[int, dict[str, Any]], chain: Chain
) -> list[dict[str, Any]]:
    """Ledger rows for ``found``: a plan payment of the same recipient and amount (each
    used once, oldest plan first), else ``needs_investigation`` (its recipient blocked)."""
    free: dict[tuple[str, int], list[tuple[str, dict[str, Any]]]] = {}
    for plan_hash, plan in _plans(state):
        for p in plan.get("payments", []):
            if p["payment_id"] not in recorded:
                key = (str(p["eth_address"]).lower(), int(p["amount_wei"]))
                free.setdefault(key, []).append((plan_hash, p))
    rows = []
    for nonce in sorted(found):
        tx = found[nonce]
        rc = chain.receipt(tx["tx_hash"])
        status = CONFIRMED if rc is not None and rc.status == 1 else FAILED
        candidates = free.get((str(tx["to"]).lower(), tx["value"])) or []
        base = {
            "nonce": nonce,
            "tx_hash": tx["tx_hash"],
            "raw_tx": None,
            "max_fee_per_gas": tx["max_fee_per_gas"],
            "gas": tx["gas"],
            "block_number": tx["block_number"],
            "amount_wei": tx["value"],
        }
        if candidates:
            plan_hash, p = candidates.pop(0)
            note = f"reconciled from the chain (block {tx['block_number']})"
            rows.append(
                {
                    **base,
                    "payment_id": p["payment_id"],
                    "plan_hash": plan_hash,
                    "partition": p["partition"],
                    "eth_address": p["eth_address"],
                    "status": status,
                    "note": note,
                }
            )
        else:
            rows.append(
                {
                    **base,
                    "payment_id": f"chain-{tx['tx_hash'][2:34]}",
                    "plan_hash": "",
                    "partition": "",
                    "eth_address": tx["to"] or "",
                    "status": INVESTIGATE,
                    "note": "sent by this wallet, matches no saved plan: investigate",
                }
            )
    return rows


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("nonce", "tx_hash", "payment_id", "plan_hash", "partition", "eth_address")
    return {**{k: r[k] for k in keys}, "amount_wei": int(r["amount_wei"]), "status": r["status"]}
