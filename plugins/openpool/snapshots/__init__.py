"""Versioned Parquet snapshots of each partition's state, committed atomically.

Layout under the state root, per partition (``{region}/{node_type}/``)::

    manifests/00000000000000000042.json   one immutable manifest per version
    data/<table>/<version>-<random>.parquet immutable data files named by manifests
    _latest.json                          a hint to the newest version (never trusted alone)
"""

from openpool.snapshots.gc import GcReport, collect_garbage
from openpool.snapshots.manifest import DataFile, Manifest
from openpool.snapshots.store import (
    Snapshot,
    SnapshotStore,
    Transaction,
    commit_with_retry,
    utc_now,
)

__all__ = [
    "DataFile",
    "GcReport",
    "Manifest",
    "Snapshot",
    "SnapshotStore",
    "Transaction",
    "collect_garbage",
    "commit_with_retry",
    "utc_now",
]
