"""One partition's analytics refresh: performance, summary, JSON exports, Athena tables.

A pure function of one snapshot version, so a retry or a late rerun rewrites the same
outputs; exports are single PUTs (readers see the old or the new file, never half).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

import pyarrow as pa

from openpool.analytics.exports import dumps, performance_json, summary_json
from openpool.analytics.performance import MIN_TIMED_JOBS, Performance, performance
from openpool.analytics.publish import DEFAULT_RATE, derived_tables, publish
from openpool.analytics.summary import Summary, worker_summary
from openpool.partitions import Partition
from openpool.payments import payout_log
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import ObjectStore
from openpool.tables import CONNECTIONS, read_table


@dataclass
class Refreshed:
    snapshot_version: int
    summary: Summary
    performance: Performance

    def report(self) -> dict[str, int | None]:
        return {
            "snapshot_version": self.snapshot_version,
            "workers": self.summary.aggregates["workers"],
            "active_workers": self.summary.aggregates["active_workers"],
            "transcode_rows": self.performance.transcode.num_rows,
            "ai_rows": self.performance.ai.num_rows,
        }


def export_keys(partition: Partition) -> tuple[str, str]:
    return (
        f"{partition.path}/worker_summary.json",
        f"{partition.path}/worker_performance.json",
    )


def refresh(
    partition: Partition,
    state: ObjectStore,
    metrics: ObjectStore,
    threshold_wei: int,
    snap: Snapshot | None = None,
    now: datetime | None = None,
    payouts: pa.Table | None = None,
    min_timed_jobs: int = MIN_TIMED_JOBS,
    commission_rate: Fraction = DEFAULT_RATE,
) -> Refreshed:
    """Compute and export the partition's analytics at ``snap`` (default: the latest).

    ``payouts``: the partition's payout-ledger rows; by default every wallet's ledger.
    ``min_timed_jobs``: timed jobs a worker needs to be ranked (``OPENPOOL_RANK_MIN_TIMED_JOBS``);
    ``commission_rate``: ``POOL_COMMISSION_RATE``, for the published statements.
    """
    snap = snap or SnapshotStore(state, partition).latest()
    if payouts is None:
        payouts = payout_log(state, str(partition))
    now = now or datetime.now(UTC)
    summ = worker_summary(snap, partition, threshold_wei, payouts)
    perf = performance(snap, min_timed_jobs=min_timed_jobs) if snap else Performance(*_empty())
    summary_key, perf_key = export_keys(partition)
    metrics.put(
        summary_key,
        dumps(summary_json(summ, partition, now, read_table(snap, "connections", CONNECTIONS))),
    )
    metrics.put(perf_key, dumps(performance_json(perf, partition, now)))
    if snap is not None:  # Athena sees this version's tables, all at once (see publish.py)
        tables = derived_tables(
            summ.table(), perf.transcode, perf.ai, snap, payouts, commission_rate
        )
        publish(state, partition, snap, tables)
    return Refreshed(snap.version if snap else 0, summ, perf)


def _empty() -> tuple:
    from openpool.analytics.performance import AI, TRANSCODE

    return TRANSCODE.empty_table(), AI.empty_table(), None
