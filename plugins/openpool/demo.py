"""``make demo``: run the system end to end on embedded defaults.

Until ingest lands this exercises the snapshot store for every active partition on
generated balances: atomic commits, a lost race and its rebase, time travel, and gc.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from decimal import Decimal

import pyarrow as pa

from openpool.config import load_settings
from openpool.errors import CommitConflict
from openpool.snapshots import Snapshot, SnapshotStore, Transaction, collect, commit_with_retry
from openpool.snapshots.store import utc_now
from openpool.storage import open_store

WEI = pa.decimal128(38, 0)


def _balances(rng: random.Random, workers: int, base: pa.Table | None) -> pa.Table:
    prev = (
        {}
        if base is None
        else dict(
            zip(
                base.column("eth_address").to_pylist(),
                base.column("total_fees_wei").to_pylist(),
                strict=True,
            )
        )
    )
    addrs = [f"0x{rng.getrandbits(160):040x}" for _ in range(workers)] if not prev else list(prev)
    fees = [int(prev.get(a, 0)) + rng.randrange(10**15, 10**17) for a in addrs]
    return pa.table(
        {
            "eth_address": pa.array(addrs),
            "total_fees_wei": pa.array([Decimal(f) for f in fees], WEI),
        }
    )


def main() -> int:
    settings = load_settings()
    store = open_store(settings.state_uri)
    rng = random.Random(42)  # noqa: S311 - demo data, not secrets
    run = f"demo-{uuid.uuid4().hex[:8]}"
    print(f"OpenPool demo: state in {settings.state_uri}\n")
    for part in settings.partitions:
        snaps = SnapshotStore(store, part)
        t0 = time.perf_counter()
        for i in range(3):

            def build(base: Snapshot | None, txn: Transaction, i: int = i) -> None:
                prev = base.read("balances") if base and base.has_table("balances") else None
                txn.replace("balances", _balances(rng, 5, prev))
                txn.set_properties(demo_step=i)

            commit_with_retry(snaps, build, run_id=f"{run}-{i}")
        # Two writers race from the same base: exactly one wins.
        base = snaps.latest()
        a, b = snaps.begin(base, f"{run}-a"), snaps.begin(base, f"{run}-b")
        for txn in (a, b):
            txn.replace("balances", _balances(rng, 5, base.read("balances") if base else None))
        a.commit()
        try:
            b.commit()
            raced = "both committed (BUG)"
        except CommitConflict as exc:
            raced = (
                f"loser got CommitConflict(attempted={exc.attempted_version}, "
                f"current={exc.current_version})"
            )
        latest = snaps.latest()
        assert latest is not None
        total = sum(int(x) for x in latest.read("balances").column("total_fees_wei").to_pylist())
        first = snaps.at(max(1, latest.version - 3))
        report = collect(snaps, now=utc_now(), dry_run=True)
        print(
            f"{part.key:22s} v{latest.version:<4d} workers={latest.manifest.rows('balances')} "
            f"fees={total} wei (v{first.version}: "
            f"{sum(int(x) for x in first.read('balances').column('total_fees_wei').to_pylist())})"
            f"  race: {raced}; gc would delete {len(report.deleted)} file(s) "
            f"[{(time.perf_counter() - t0) * 1000:.0f} ms]"
        )
    print("\nInspect with: .venv/bin/openpool snapshots --node-type transcode --region us-west")
    return 0


if __name__ == "__main__":
    sys.exit(main())
