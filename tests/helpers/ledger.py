"""What the tests compare: balances read back from a snapshot, and the oracle's."""

from __future__ import annotations

from fractions import Fraction

from openpool.ingest.service import balance_rows
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import ObjectStore
from openpool.traffic import GeneratedFile
from tests.helpers.oracle import UNATTRIBUTED, oracle_balances

FIELDS = ("total_fees_wei", "pool_commission_wei", "worker_earnings_wei", "job_count")


def balances_of(state: ObjectStore, part: Partition) -> dict[str, dict[str, int]]:
    """Per-worker money and job counts in the partition's latest snapshot."""
    snap = SnapshotStore(state, part).latest()
    return {r["eth_address"]: {k: r[k] for k in FIELDS} for r in balance_rows(snap)}


def worker_oracle(files: list[GeneratedFile], rate: Fraction) -> dict[str, dict[str, int]]:
    """The plain oracle sum over unique valid events, without the pool's unattributed row."""
    oracle = oracle_balances(files, rate)
    oracle.pop(UNATTRIBUTED, None)
    return oracle
