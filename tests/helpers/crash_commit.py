"""Stage a commit's data files, then die by SIGKILL before the manifest is created.

Usage: python -m tests.helpers.crash_commit STATE_URI NODE_TYPE REGION
"""

from __future__ import annotations

import os
import signal
import sys

import pyarrow as pa

from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import open_store

if __name__ == "__main__":
    uri, node_type, region = sys.argv[1:4]
    snaps = SnapshotStore(open_store(uri), Partition(node_type, region))
    txn = snaps.begin(snaps.latest(), run_id="doomed")
    txn.replace("counter", pa.table({"value": pa.array([999], pa.int64())}))
    txn.append("ledger", pa.table({"value": pa.array([1, 2, 3], pa.int64())}))
    sys.stdout.write("staged\n")
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
