"""What a worker is owed: earnings - paid - in flight, over every hot wallet's ledger.

The formula itself is :func:`openpool.money.payable`; this module finds its inputs, so the
plan, execute, the summaries, ``openpool balances``, the dashboard, the JSON exports and the
Athena tables cannot disagree about it. Ledgers are
found, not configured: every wallet with a ledger under the state store's ``wallet/``
prefix counts, so the payments of a rotated-out hot wallet (or a reader started without
``HOT_WALLET_ADDRESS``) are never read as "paid 0" -- which would pay them again.

Only integer wei; no Airflow, no web3 (readers of analytics import this).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openpool.money import Settled
from openpool.payouts.ledger import CONFIRMED, IN_FLIGHT, PAYOUTS, Ledger
from openpool.snapshots import Snapshot
from openpool.storage import ObjectStore

WALLET_PREFIX = "wallet/"
# The payout log of several wallets: the ledger's columns plus the wallet that sent it.
WALLET_LOG = PAYOUTS.append(pa.field("wallet", pa.string()))


def wallets(state: ObjectStore) -> list[str]:
    """Every wallet address with a ledger in ``state``; one short listing per wallet (each
    listing starts past the previous wallet's objects, so history length does not matter)."""
    found: list[str] = []
    after: str | None = None
    while True:
        first = next(iter(state.list(WALLET_PREFIX, start_after=after)), None)
        if first is None:
            return found
        address = first.key[len(WALLET_PREFIX) :].split("/", 1)[0]
        found.append(address)
        after = f"{WALLET_PREFIX}{address}0"  # "0" sorts after "/": past all of its keys


def payout_log(
    state: ObjectStore,
    partition: str | None = None,
    pinned: Mapping[str, Snapshot | None] | None = None,
) -> pa.Table:
    """Every wallet's ledger rows (one partition's if given), with a ``wallet`` column.

    ``pinned`` reads a wallet at a given ledger snapshot instead of its latest (an executor
    checking payable on the very base it commits on); a pinned wallet counts even before
    its ledger has a first commit.
    """
    pinned = {w.lower(): s for w, s in (pinned or {}).items()}
    tables = []
    for wallet in sorted(set(wallets(state)) | set(pinned)):
        snap = pinned[wallet] if wallet in pinned else Ledger(state, wallet).latest()
        log = Ledger.log(snap)
        if partition is not None:
            log = log.filter(pc.equal(log.column("partition"), partition))
        tables.append(log.append_column("wallet", pa.array([wallet] * log.num_rows, pa.string())))
    return pa.concat_tables(tables) if tables else WALLET_LOG.empty_table()


def current(log: pa.Table) -> list[dict[str, Any]]:
    """Each payment's current record (the ledger's own rule, applied per wallet)."""
    if "wallet" not in log.column_names:
        return list(Ledger.current(log).values())
    out: list[dict[str, Any]] = []
    for wallet in sorted(set(log.column("wallet").to_pylist())):
        mine = log.filter(pc.equal(log.column("wallet"), wallet))
        out.extend(Ledger.current(mine).values())
    return out


def settle(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], Settled]:
    """Per (partition, worker address): paid, in flight, count and last payment, from
    payments' current records (see :func:`current`)."""
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        key = (r["partition"], r["eth_address"])
        a = acc.setdefault(key, {"paid": 0, "flight": 0, "count": 0, "last": None})
        if r["status"] == CONFIRMED:
            a["paid"] += int(r["amount_wei"])
            a["count"] += 1
            if a["last"] is None or (r["recorded_at"] and r["recorded_at"] > a["last"]):
                a["last"] = r["recorded_at"]
        elif r["status"] in IN_FLIGHT:
            a["flight"] += int(r["amount_wei"])
    return {k: Settled(a["paid"], a["flight"], a["count"], a["last"]) for k, a in acc.items()}


def settled_in(state: ObjectStore, partition: str) -> dict[str, Settled]:
    """Per worker address, one partition's payments over every wallet's ledger."""
    return {addr: s for (_, addr), s in settle(current(payout_log(state, partition))).items()}
