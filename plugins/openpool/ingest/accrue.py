"""Pure state transitions of an ingest: (previous tables, fresh events) -> new tables.

Nothing here reads a clock or does I/O: the TTL watermark comes in as an argument, so a
rerun of the same inputs gives the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpool.money import commission, subtract
from openpool.tables import AI_CREDITS, AI_REQUESTS, BALANCES, PENDING_AI, TS, UNATTRIBUTED


def _is(events: pa.Table, event_type: str) -> pa.Array:
    return pc.equal(events.column("event_type"), event_type)


@dataclass
class AiResult:
    credited: pa.Table  # AI_CREDITS: processed jobs matched to their worker
    requests: pa.Table  # AI_REQUESTS still within the TTL
    pending: pa.Table  # PENDING_AI still waiting for their job-received
    unattributed: pa.Table  # UNATTRIBUTED rows that expired in this step


def correlate_ai(
    fresh: pa.Table,
    requests: pa.Table,
    pending: pa.Table,
    watermark: datetime | None,
    ttl: timedelta,
) -> AiResult:
    """Credit AI ``job-processed`` events to the worker of the matching ``job-received``.

    A processed event whose received has not arrived waits in ``pending``; once it is
    older than ``ttl`` behind the partition's event-time watermark it becomes unattributed
    (the pool's), listed with its reason, never dropped.
    """
    received = fresh.select(["request_id", "eth_address", "event_time"]).filter(
        _is(fresh, "job-received")
    )
    all_requests = pa.concat_tables([requests.cast(AI_REQUESTS), received.cast(AI_REQUESTS)])
    # One worker per request: the earliest received wins (a re-sent request is ignored).
    all_requests = _first_by(all_requests, "request_id", "event_time")
    processed = fresh.select(PENDING_AI.names).filter(
        pc.and_(_is(fresh, "job-processed"), pc.equal(fresh.column("node_type"), "ai"))
    )
    waiting = pa.concat_tables([pending.cast(PENDING_AI), processed.cast(PENDING_AI)])
    joined = waiting.join(
        all_requests.select(["request_id", "eth_address"]),
        "request_id",
        join_type="left outer",
        use_threads=False,
    )
    matched = pc.is_valid(joined.column("eth_address"))
    credited = joined.filter(matched).select(AI_CREDITS.names).cast(AI_CREDITS)
    still = joined.filter(pc.invert(matched)).select(PENDING_AI.names).cast(PENDING_AI)
    if watermark is None:
        return AiResult(credited, all_requests, still, UNATTRIBUTED.empty_table())
    cutoff = pa.scalar(watermark - ttl, TS)
    expired = pc.less(still.column("event_time"), cutoff)
    gone = still.filter(expired)
    unattributed = gone.append_column(
        "reason",
        pa.array([f"no job-received within {ttl} of event time"] * gone.num_rows, pa.string()),
    )
    keep_req = pc.greater_equal(all_requests.column("event_time"), cutoff)
    return AiResult(
        credited,
        all_requests.filter(keep_req),
        still.filter(pc.invert(expired)),
        unattributed.cast(UNATTRIBUTED),
    )


def transcode_credits(fresh: pa.Table) -> pa.Table:
    """Transcode jobs name their worker directly."""
    jobs = fresh.select(AI_CREDITS.names).filter(
        pc.and_(_is(fresh, "job-processed"), pc.equal(fresh.column("node_type"), "transcode"))
    )
    return jobs.cast(AI_CREDITS)


def accrue(balances: pa.Table, credits: pa.Table, rate: Fraction) -> pa.Table:
    """Add credited jobs to the per-worker balances, with exact per-job commission."""
    if credits.num_rows == 0:
        return balances.cast(BALANCES)
    comm = commission(credits.column("fees_wei"), rate)
    earn = subtract(credits.column("fees_wei"), comm)
    delta = pa.table(
        {
            "eth_address": credits.column("eth_address"),
            "total_fees_wei": credits.column("fees_wei"),
            "pool_commission_wei": comm,
            "worker_earnings_wei": earn,
            "job_count": pa.array(np.ones(credits.num_rows, np.int64)),
            "first_job_at": credits.column("event_time"),
            "last_job_at": credits.column("event_time"),
        },
        schema=BALANCES,
    )
    both = pa.concat_tables([balances.cast(BALANCES), delta])
    agg = both.group_by("eth_address", use_threads=False).aggregate(
        [
            ("total_fees_wei", "sum"),
            ("pool_commission_wei", "sum"),
            ("worker_earnings_wei", "sum"),
            ("job_count", "sum"),
            ("first_job_at", "min"),
            ("last_job_at", "max"),
        ]
    )
    out = agg.rename_columns(
        [
            n.rsplit("_", 1)[0] if n.endswith(("_sum", "_min", "_max")) else n
            for n in agg.column_names
        ]
    )
    return out.select(BALANCES.names).cast(BALANCES).sort_by("eth_address")


def _first_by(table: pa.Table, key: str, order: str) -> pa.Table:
    if table.num_rows == 0:
        return table
    t = table.append_column("_i", pa.array(range(table.num_rows), pa.int64()))
    t = t.sort_by([(order, "ascending"), ("_i", "ascending")])
    t = t.append_column("_j", pa.array(range(t.num_rows), pa.int64()))
    firsts = t.group_by(key, use_threads=False).aggregate([("_j", "min")])
    return t.take(firsts.column("_j_min")).sort_by("_j").drop_columns(["_i", "_j"])
