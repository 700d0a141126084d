"""A writer killed between writing data files and creating the manifest."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore, collect_garbage
from openpool.storage import ObjectStore
from tests.services import REPO

PART = Partition("transcode", "oceania")


def test_crash_before_manifest_leaves_previous_snapshot_and_gc_collects_orphans(
    store: ObjectStore,
) -> None:
    snaps = SnapshotStore(store, PART)
    txn = snaps.begin(None, "good")
    txn.replace("counter", pa.table({"value": pa.array([1], pa.int64())}))
    good = txn.commit()

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.helpers.crash_commit",
            store.uri,
            PART.node_type,
            PART.region,
        ],
        cwd=REPO,
        capture_output=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]  # died by SIGKILL
    assert proc.stdout.decode().strip() == "staged"

    # The previous snapshot is still the latest, intact and readable.
    assert snaps.latest_version() == 1
    latest = snaps.latest()
    assert latest is not None and latest.manifest == good.manifest
    assert latest.read("counter").column("value").to_pylist() == [1]
    assert not latest.has_table("ledger")

    data = [i.key for i in store.list(snaps.prefix + "data/")]
    referenced = {snaps.prefix + f.path for fs in good.manifest.tables.values() for f in fs}
    orphans = sorted(set(data) - referenced)
    assert len(orphans) == 2  # the doomed counter and ledger files

    # Young orphans survive gc (a commit may still be in flight); old ones are collected.
    assert collect_garbage(snaps, now=datetime.now(UTC)).deleted == []
    report = collect_garbage(snaps, now=datetime.now(UTC) + timedelta(hours=25))
    assert sorted(snaps.prefix + p for p in report.deleted) == orphans
    assert latest.read("counter").column("value").to_pylist() == [1]

    # And the next writer simply commits version 2 on top.
    txn = snaps.begin(latest, "next")
    txn.replace("counter", pa.table({"value": pa.array([2], pa.int64())}))
    assert txn.commit().version == 2
