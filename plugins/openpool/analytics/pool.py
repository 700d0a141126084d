"""The pool-wide summary across partitions, as the summary DAG and the CLI build it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openpool.analytics.exports import dumps
from openpool.analytics.summary import Summary, pool_summary, worker_summary
from openpool.partitions import Partition
from openpool.payments import payout_log
from openpool.snapshots import SnapshotStore
from openpool.storage import ObjectStore

POOL_SUMMARY_KEY = "pool/worker_summary.json"


def build_pool_summary(
    partitions: list[Partition],
    state: ObjectStore,
    threshold_wei: int,
    payouts: pa.Table | None = None,
) -> tuple[Summary, dict[str, int]]:
    """The merged summary and the snapshot version of each partition it read.

    ``payouts``: payout-ledger rows; by default every wallet's ledger in ``state`` (read once).
    """
    if payouts is None:
        payouts = payout_log(state)
    parts, props, versions = [], [], {}
    for part in partitions:
        snap = SnapshotStore(state, part).latest()
        mine = payouts.filter(pc.equal(payouts.column("partition"), str(part)))
        parts.append(worker_summary(snap, part, threshold_wei, mine))
        props.append(snap.manifest.properties if snap else {})
        versions[str(part)] = snap.version if snap else 0
    return pool_summary(parts, props), versions


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def write_pool_summary(
    partitions: list[Partition],
    state: ObjectStore,
    metrics: ObjectStore,
    threshold_wei: int,
    payouts: pa.Table | None = None,
) -> dict[str, Any]:
    summary, versions = build_pool_summary(partitions, state, threshold_wei, payouts)
    now = datetime.now(UTC).isoformat()
    doc = {
        "export_timestamp": now,
        "data": {
            "timestamp": now,
            "snapshot_versions": versions,
            "workers": {r["eth_address"]: _jsonable(r) for r in summary.workers},
            "aggregates": summary.aggregates,
        },
    }
    metrics.put(POOL_SUMMARY_KEY, dumps(doc))
    return {"workers": summary.aggregates["workers"], "snapshot_versions": versions}
