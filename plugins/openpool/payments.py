"""Every hot wallet's payments, read: statuses, each payment's current record, paid per worker.

The write side is :class:`openpool.payouts.ledger.Ledger`; this is what everyone else reads
(the plan, execute, the summaries, ``openpool balances``, the dashboard, the exports), so
none of them can disagree about a payment's status or what a worker was paid. Ledgers are
found, not configured: every wallet with a ledger under the state store's ``wallet/``
prefix counts, so the payments of a rotated-out hot wallet (or a reader started without
``HOT_WALLET_ADDRESS``) are never read as "paid 0" -- which would pay them again. What is
payable from it is :func:`openpool.money.payable`.

Only integer wei; no Airflow, no web3.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openpool.money import Settled
from openpool.partitions import WalletKey
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import ObjectStore
from openpool.tables import PAYOUTS, WALLET_LOG

SIGNED, BROADCAST, CONFIRMED, FAILED, INVESTIGATE = (
    "signed",
    "broadcast",
    "confirmed",
    "failed",
    "needs_investigation",
)
OPEN = (SIGNED, BROADCAST)
# Amounts that may not be planned again: paid, on their way, or under investigation.
IN_FLIGHT = (SIGNED, BROADCAST, INVESTIGATE)
# The only moves a record may make (checked at commit, against the committed record):
# forward, as the chain decides. ``failed`` makes an amount payable again, so nothing but a
# mined receipt with status 0 may lead there; settled records never move again.
FORWARD: dict[str, frozenset[str]] = {
    SIGNED: frozenset({BROADCAST, CONFIRMED, FAILED, INVESTIGATE}),
    BROADCAST: frozenset({BROADCAST, CONFIRMED, FAILED, INVESTIGATE}),
    INVESTIGATE: frozenset(),
    CONFIRMED: frozenset(),
    FAILED: frozenset(),
}


def payment_log(snap: Snapshot | None) -> pa.Table:
    """A wallet ledger snapshot's ``payouts`` rows, in commit order (empty before the first)."""
    if snap is None or not snap.has_table("payouts"):
        return PAYOUTS.empty_table()
    return snap.read("payouts", schema=PAYOUTS)


def latest_records(log: pa.Table) -> dict[str, dict[str, Any]]:
    """Each payment's latest row (the log is in commit order): its current record."""
    out: dict[str, dict[str, Any]] = {}
    for row in log.to_pylist():
        out[row["payment_id"]] = row
    return out


def ledger_latest(state: ObjectStore, wallet: str) -> Snapshot | None:
    """The newest committed snapshot of ``wallet``'s ledger."""
    return SnapshotStore(state, WalletKey(wallet)).latest()


def partition_payouts(log: pa.Table, partition: str) -> pa.Table:
    """One partition's rows of the payout log (for its summary and its publication)."""
    return log.filter(pc.equal(log.column("partition"), partition))


def wallet_address(settings: Any) -> str | None:
    """The hot wallet's address: ``HOT_WALLET_ADDRESS``, else the keystore's public field."""
    if settings.hot_wallet_address:
        return str(settings.hot_wallet_address)
    if settings.hot_wallet_keystore:
        import json
        from pathlib import Path

        try:
            addr = json.loads(Path(settings.hot_wallet_keystore).read_text()).get("address")
        except (OSError, ValueError):
            return None
        return f"0x{addr}" if addr and not str(addr).startswith("0x") else addr
    return None


WALLET_PREFIX = "wallet/"


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
        snap = pinned[wallet] if wallet in pinned else ledger_latest(state, wallet)
        log = payment_log(snap)
        if partition is not None:
            log = log.filter(pc.equal(log.column("partition"), partition))
        tables.append(log.append_column("wallet", pa.array([wallet] * log.num_rows, pa.string())))
    return pa.concat_tables(tables) if tables else WALLET_LOG.empty_table()


def current(log: pa.Table) -> list[dict[str, Any]]:
    """Each payment's current record (the ledger's own rule, applied per wallet)."""
    if "wallet" not in log.column_names:
        return list(latest_records(log).values())
    out: list[dict[str, Any]] = []
    for wallet in sorted(set(log.column("wallet").to_pylist())):
        mine = log.filter(pc.equal(log.column("wallet"), wallet))
        out.extend(latest_records(mine).values())
    return out


def current_rows(log: pa.Table) -> pa.Table:
    """:func:`current` as a table: the last row of each (wallet, payment), in commit order."""
    keys = ["wallet", "payment_id"] if "wallet" in log.column_names else ["payment_id"]
    last = (
        log.select(keys)
        .append_column("_row", pa.array(range(log.num_rows), pa.int64()))
        .group_by(keys, use_threads=False)
        .aggregate([("_row", "max")])
        .column("_row_max")
    )
    return log.take(pc.take(last, pc.sort_indices(last)))


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
