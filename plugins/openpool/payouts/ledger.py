"""The payout ledger: one snapshot chain per hot wallet, every payment state change in it.

The nonce sequence is sender-wide, so the ledger is too: one exclusive-create commit both
claims the next nonce and records the ``signed`` transaction (raw bytes included) before
anything is broadcast. Two executors can therefore never reuse a nonce or sign one payment
twice, and a crash after the commit leaves bytes that ``recover`` can rebroadcast as they
are. A partition's payable amount is earnings - paid - in-flight from this ledger.

The ``payouts`` table is append-only: a payment's status is its latest row. Rows are only
ever added by a commit that checks, on the committed base, that the payment has no record
yet (:meth:`Ledger.try_commit`) or that its record moves forward (:data:`FORWARD`), so a
racing writer can neither duplicate nor overwrite another's record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from openpool.errors import RecordConflict
from openpool.partitions import WalletKey
from openpool.payments import (
    FORWARD,
    SIGNED,
    latest_records,
    payment_log,
)
from openpool.snapshots import Snapshot, SnapshotStore, Transaction, commit_with_retry
from openpool.storage import ObjectStore
from openpool.tables import PAYOUTS


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Ledger:
    """The payout records of one hot wallet in the state store."""

    def __init__(self, state: ObjectStore, wallet: str) -> None:
        self.snaps = SnapshotStore(state, WalletKey(wallet))
        self.wallet = wallet

    def latest(self) -> Snapshot | None:
        return self.snaps.latest()

    # The ledger's reading rules live in openpool.payments (analytics reads them too).
    log = staticmethod(payment_log)
    current = staticmethod(latest_records)

    def payments(self) -> dict[str, dict[str, Any]]:
        return self.current(self.log(self.latest()))

    @staticmethod
    def next_nonce(snap: Snapshot | None) -> int:
        return int(snap.manifest.properties.get("next_nonce", 0)) if snap else 0

    def try_commit(
        self, base: Snapshot | None, rows: list[dict[str, Any]], run_id: str, next_nonce: int
    ) -> Snapshot:
        """Commit new ``signed`` records on exactly ``base`` (this is what claims their
        nonces); CommitConflict if the ledger moved, RecordConflict if a payment already
        has a record there or appears twice."""
        recorded = self.current(self.log(base))
        ids = [r["payment_id"] for r in rows]
        dup = sorted({i for i in ids if i in recorded or ids.count(i) > 1})
        if dup or any(r["status"] != SIGNED for r in rows):
            raise RecordConflict(f"payments already recorded or repeated: {', '.join(dup)}")
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
        """Record each row whose payment, on the committed base, is in ``allowed_from``,
        may move forward to the row's status (:data:`FORWARD`), and still carries the tx
        hash the writer saw (``expect_tx_hash``, default the row's own ``tx_hash``).

        Two executors or a recover racing an execute can both observe one receipt; only
        the first records it, and nobody's stale view overwrites a newer record. Returns
        the rows actually recorded.
        """
        kept: list[dict[str, Any]] = []

        def movable(r: dict[str, Any], current: dict[str, dict[str, Any]]) -> bool:
            cur = current.get(r["payment_id"])
            if cur is None or cur["status"] not in allowed_from:
                return False
            if r["status"] not in FORWARD.get(cur["status"], frozenset()):
                return False
            return cur["tx_hash"] == r.get("expect_tx_hash", r["tx_hash"])

        def build(base: Snapshot | None, txn: Transaction) -> None:
            current = self.current(self.log(base))
            kept.clear()
            for r in rows:
                if movable(r, current):
                    row = {k: v for k, v in r.items() if k != "expect_tx_hash"}
                    kept.append({**row, "recorded_at": _now()})
                    current[r["payment_id"]] = row  # a second row for it must follow this one
            txn.append("payouts", pa.Table.from_pylist(kept, schema=PAYOUTS))
            txn.set_properties(**(dict(base.manifest.properties) if base else {}))

        if rows:
            commit_with_retry(self.snaps, build, run_id=run_id)
        return kept

    def adopt(self, rows: list[dict[str, Any]], run_id: str) -> Snapshot:
        """Record transactions the chain shows this wallet sent and the ledger had lost
        (``openpool payouts reconcile``, once a person confirmed). Refused with
        RecordConflict if, on the committed base, a nonce or payment id already has one."""

        def build(base: Snapshot | None, txn: Transaction) -> None:
            log = self.log(base).to_pylist()
            nonces = {r["nonce"] for r in log}
            ids = {r["payment_id"] for r in log}
            clash = sorted(
                r["nonce"] for r in rows if r["nonce"] in nonces or r["payment_id"] in ids
            )
            if clash:
                raise RecordConflict(f"nonces {clash} already have records; nothing adopted")
            stamped = [{**r, "recorded_at": _now()} for r in rows]
            txn.append("payouts", pa.Table.from_pylist(stamped, schema=PAYOUTS))
            props = dict(base.manifest.properties) if base else {}
            props["next_nonce"] = max(self.next_nonce(base), *(int(r["nonce"]) + 1 for r in rows))
            txn.set_properties(**props)

        return commit_with_retry(self.snaps, build, run_id=run_id)
