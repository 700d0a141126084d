"""A partition's long history for discovery's tests and bench: one-minute keys, ingested.

The keys are what an orchestrator flushing every minute leaves; the rows are what the
``ingested_files`` index holds once they were read (their events are not needed: these
files are listed, never read again).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa

from openpool.partitions import Partition
from openpool.tables import INGESTED

FMT = "%Y%m%dT%H%M%SZ"


def old_keys(partition: Partition, n: int, end: datetime) -> list[str]:
    """``n`` keys of one-minute files, the last one ending at ``end``."""
    lead = f"{partition.path}/{partition.region}-{partition.node_type}-"
    starts = (end - timedelta(minutes=n - i) for i in range(n))
    return [f"{lead}{s:{FMT}}_{s + timedelta(seconds=59):{FMT}}.json" for s in starts]


def ingested_rows(keys: list[str], etag: str, size: int = 2) -> pa.Table:
    """INGESTED rows saying each key (one ETag for all) was read, in version 1."""
    n = len(keys)
    return pa.table(
        {
            "source_key": keys,
            "etag": [etag] * n,
            "size": [size] * n,
            "status": ["ingested"] * n,
            "events_read": [0] * n,
            "snapshot_version": [1] * n,
        },
        schema=INGESTED,
    )
