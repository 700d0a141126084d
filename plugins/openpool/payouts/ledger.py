"""The payout ledger: one snapshot chain per hot wallet, every payment state change in it.

The nonce sequence is sender-wide, so the ledger is too: one exclusive-create commit both
claims the next nonce and records the ``signed`` transaction (raw bytes included) before
anything is broadcast. Two executors can therefore never reuse a nonce or sign one payment
twice, and a crash after the commit leaves bytes that ``recover`` can rebroadcast as they
are. A partition's payable amount is earnings - paid - in-flight from this ledger.

The ``payouts`` table is append-only: a payment's status is its latest row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openpool.ingest.schema import TS, WEI
from openpool.partitions import WalletKey
from openpool.snapshots import Snapshot, SnapshotStore, Transaction, commit_with_retry
from openpool.storage import ObjectStore

PAYOUTS = pa.schema(
    [
        ("payment_id", pa.string()),
        ("plan_hash", pa.string()),
        ("partition", pa.string()),
        ("eth_address", pa.string()),
        ("amount_wei", WEI),
        ("status", pa.string()),
        ("nonce", pa.int64()),
        ("tx_hash", pa.string()),
        ("raw_tx", pa.string()),
        ("max_fee_per_gas", WEI),
        ("gas", pa.int64()),
        ("block_number", pa.int64()),
        ("note", pa.string()),
        ("recorded_at", TS),
    ]
)
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


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Ledger:
    """The payout records of one hot wallet in the state store."""

    def __init__(self, state: ObjectStore, wallet: str) -> None:
        self.snaps = SnapshotStore(state, WalletKey(wallet))  # type: ignore[arg-type]
        self.wallet = wallet

    def latest(self) -> Snapshot | None:
        return self.snaps.latest()

    @staticmethod
    def log(snap: Snapshot | None) -> pa.Table:
        if snap is None or not snap.has_table("payouts"):
            return PAYOUTS.empty_table()
        return snap.read("payouts", schema=PAYOUTS)

    @staticmethod
    def current(log: pa.Table) -> dict[str, dict[str, Any]]:
        """Each payment's latest row (the log is in commit order)."""
        out: dict[str, dict[str, Any]] = {}
        for row in log.to_pylist():
            out[row["payment_id"]] = row
        return out

    def payments(self) -> dict[str, dict[str, Any]]:
        return self.current(self.log(self.latest()))

    @staticmethod
    def next_nonce(snap: Snapshot | None) -> int:
        return int(snap.manifest.properties.get("next_nonce", 0)) if snap else 0

    def try_commit(
        self, base: Snapshot | None, rows: list[dict[str, Any]], run_id: str, next_nonce: int
    ) -> Snapshot:
        """Commit ``rows`` on exactly ``base``; raises CommitConflict if the ledger moved."""
        txn = self.snaps.begin(base, run_id)
        stamped = [{**r, "recorded_at": r.get("recorded_at") or _now()} for r in rows]
        txn.append("payouts", pa.Table.from_pylist(stamped, schema=PAYOUTS))
        props = dict(base.manifest.properties) if base else {}
        props["next_nonce"] = next_nonce
        txn.set_properties(**props)
        return txn.commit()

    def transition(
        self, rows: list[dict[str, Any]], run_id: str, allowed_from: tuple[str, ...]
    ) -> list[dict[str, Any]]:
        """Record rows whose payment is (on the committed base) still in ``allowed_from``.

        Two executors or a recover racing an execute can both observe one receipt; only
        the first records it. Returns the rows actually recorded.
        """
        kept: list[dict[str, Any]] = []

        def build(base: Snapshot | None, txn: Transaction) -> None:
            current = self.current(self.log(base))
            kept[:] = [
                {**r, "recorded_at": _now()}
                for r in rows
                if r["payment_id"] in current and current[r["payment_id"]]["status"] in allowed_from
            ]
            txn.append("payouts", pa.Table.from_pylist(kept, schema=PAYOUTS))
            txn.set_properties(**(dict(base.manifest.properties) if base else {}))

        if rows:
            commit_with_retry(self.snaps, build, run_id=run_id)
        return kept

    def append(
        self,
        rows: list[dict[str, Any]],
        run_id: str,
        check: Any = None,
        next_nonce: int | None = None,
    ) -> Snapshot:
        """Commit ``rows``; ``check(base)`` may raise to refuse on the rebased state."""

        def build(base: Snapshot | None, txn: Transaction) -> None:
            if check is not None:
                check(base)
            stamped = [{**r, "recorded_at": r.get("recorded_at") or _now()} for r in rows]
            txn.append("payouts", pa.Table.from_pylist(stamped, schema=PAYOUTS))
            props = dict(base.manifest.properties) if base else {}
            if next_nonce is not None:
                props["next_nonce"] = max(next_nonce, self.next_nonce(base))
            txn.set_properties(**props)

        return commit_with_retry(self.snaps, build, run_id=run_id)


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


def payout_log(state: ObjectStore, settings: Any, partition: str | None = None) -> pa.Table:
    """The payout log of the configured wallet (one partition's rows if given)."""
    addr = wallet_address(settings)
    if addr is None:
        return PAYOUTS.empty_table()
    log = Ledger.log(Ledger(state, addr).latest())
    return partition_payouts(log, partition) if partition is not None else log
