"""A separate writer process for the concurrency tests.

Usage: python -m tests.helpers.counter_writer STATE_URI NODE_TYPE REGION WRITER_ID COMMITS
Prints one JSON line: the versions this process committed.
"""

from __future__ import annotations

import json
import sys

import pyarrow as pa

from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore, Transaction, commit_with_retry
from openpool.storage import open_store


def increment(writer: str):
    def build(base: Snapshot | None, txn: Transaction) -> None:
        current = base.read("counter").column("value")[0].as_py() if base else 0
        txn.replace("counter", pa.table({"value": pa.array([current + 1], pa.int64())}))
        txn.set_properties(last_writer=writer)

    return build


def run(uri: str, node_type: str, region: str, writer: str, commits: int) -> list[int]:
    snaps = SnapshotStore(open_store(uri), Partition(node_type, region))
    versions = []
    for i in range(commits):
        snap = commit_with_retry(snaps, increment(writer), run_id=f"{writer}-{i}", attempts=200)
        versions.append(snap.version)
    return versions


if __name__ == "__main__":
    uri, node_type, region, writer, commits = sys.argv[1:6]
    print(json.dumps(run(uri, node_type, region, writer, int(commits))))
