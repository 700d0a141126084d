"""worker_performance: exact per-worker speed and earnings, for all time, 24 h and 7 d.

Windows are of event time and end at ``as_of`` (default: the partition's latest event
time, so a refresh is reproducible from its snapshot). The 24 h and 7 d windows read only
the ledger's date slices they cover, so their cost does not grow with history; "all time"
is an exact columnar scan of the few columns it needs.

Transcode: response time in ms (the wire's ms are stored as ns), real-time factor =
duration ÷ response time (higher is faster; p50 and p10, the worst decile), compute units
per second; ranked by p50 real-time factor, best = 1. AI: latency in seconds (the wire's
ns), ranked within each (pipeline, model) by p50 latency, lowest = 1. Jobs with a
missing, zero or negative response time (or duration) are excluded from the speed figures
and counted in ``excluded_jobs``; they still count in ``jobs`` and ``fees_wei``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpool.analytics.quantiles import grouped_quantiles, percentile_of_rank, ranks
from openpool.ingest.accrue import CREDITS
from openpool.ingest.schema import EVENTS, TS, WEI
from openpool.snapshots import Snapshot

WINDOWS: dict[str, timedelta | None] = {
    "all": None,
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
_COLUMNS = [
    "event_id",
    "event_time",
    "event_type",
    "node_type",
    "eth_address",
    "pipeline",
    "model_id",
    "fees_wei",
    "compute_units",
    "duration_ms",
    "response_time_ns",
]


@dataclass
class Performance:
    transcode: pa.Table
    ai: pa.Table
    as_of: datetime | None


def as_of_of(snap: Snapshot | None) -> datetime | None:
    mark = snap.manifest.properties.get("watermark") if snap else None
    return datetime.fromisoformat(mark) if mark else None


def jobs_in_window(snap: Snapshot, window: timedelta | None, as_of: datetime) -> pa.Table:
    """``job-processed`` ledger rows with event time in ``(as_of - window, as_of]``."""
    slices = None
    if window is not None:
        first = (as_of - window).date()
        days = (as_of.date() - first).days
        wanted = {(first + timedelta(days=i)).isoformat() for i in range(days + 1)}
        slices = sorted(wanted & snap.slices("events"))
    events = snap.read("events", slices=slices, schema=EVENTS, columns=_COLUMNS)
    keep = pc.and_(
        pc.equal(events.column("event_type"), "job-processed"),
        pc.less_equal(events.column("event_time"), pa.scalar(as_of, TS)),
    )
    if window is not None:
        keep = pc.and_(keep, pc.greater(events.column("event_time"), pa.scalar(as_of - window, TS)))
    return events.filter(keep)


def _positive(col: pa.ChunkedArray) -> pa.Array:
    return pc.fill_null(pc.greater(col, 0), False)


def _money_and_jobs(jobs: pa.Table, keys: list[str], valid: pa.Array) -> pa.Table:
    flagged = jobs.select([*keys, "fees_wei"]).append_column(
        "_excluded", pc.cast(pc.invert(valid), pa.int64())
    )
    agg = flagged.group_by(keys, use_threads=False).aggregate(
        [("fees_wei", "sum"), ([], "count_all"), ("_excluded", "sum")]
    )
    return agg.rename_columns([*keys, "fees_wei", "jobs", "excluded_jobs"])


def _cu_p50(ok: pa.Table, cu_s: pa.ChunkedArray, keys: list[str]) -> pa.Table:
    """p50 compute units per second over the timed jobs that report compute units."""
    has = pc.is_valid(cu_s)
    return grouped_quantiles(
        ok.select(keys).filter(has), cu_s.filter(has), {"compute_units_per_s_p50": 0.5}
    ).drop_columns(["n"])


def transcode_table(jobs: pa.Table, window: str) -> pa.Table:
    jobs = jobs.filter(
        pc.and_(pc.equal(jobs.column("node_type"), "transcode"), pc.is_valid(jobs["eth_address"]))
    )
    valid = pc.and_(_positive(jobs["response_time_ns"]), _positive(jobs["duration_ms"]))
    base = _money_and_jobs(jobs, ["eth_address"], valid)
    ok = jobs.filter(valid)
    rt_ns = pc.cast(ok["response_time_ns"], pa.float64())
    rt_ms = pc.divide(rt_ns, 1e6)
    rtf = pc.divide(pc.cast(ok["duration_ms"], pa.float64()), rt_ms)
    cu_s = pc.divide(pc.cast(ok["compute_units"], pa.float64()), pc.divide(rt_ns, 1e9))
    g = ok.select(["eth_address"])
    rt = grouped_quantiles(
        g, rt_ms, {"response_ms_p50": 0.5, "response_ms_p90": 0.9, "response_ms_p99": 0.99}
    )
    rf = grouped_quantiles(g, rtf, {"rtf_p50": 0.5, "rtf_p10": 0.1}).drop_columns(["n"])
    cu = _cu_p50(ok, cu_s, ["eth_address"])
    speed = rt.rename_columns([*rt.column_names[:1], "timed_jobs", *rt.column_names[2:]])
    speed = speed.join(rf, "eth_address", use_threads=False).join(
        cu, "eth_address", use_threads=False
    )
    out = base.join(speed, "eth_address", join_type="left outer", use_threads=False)
    out = out.sort_by("eth_address")
    p50 = out["rtf_p50"].to_numpy(zero_copy_only=False).astype(np.float64)
    has = ~np.isnan(p50)
    rank = np.full(out.num_rows, -1, dtype=np.int64)
    pct = np.full(out.num_rows, np.nan)
    if has.any():
        rank[has] = ranks(p50[has], descending=True)
        pct[has] = percentile_of_rank(rank[has], int(has.sum()))
    out = out.append_column("rank", pa.array(rank, mask=~has))
    out = out.append_column("percentile", pa.array(pct, mask=~has))
    out = out.append_column("window", pa.array([window] * out.num_rows, pa.string()))
    return out.select(TRANSCODE.names).cast(TRANSCODE)


def ai_table(jobs: pa.Table, credits: pa.Table, window: str) -> pa.Table:
    jobs = jobs.filter(pc.equal(jobs.column("node_type"), "ai")).drop_columns(["eth_address"])
    jobs = jobs.join(
        credits.select(["event_id", "eth_address"]), "event_id", use_threads=False
    )  # inner: a job never credited to a worker has no worker to rate
    keys = ["eth_address", "pipeline", "model_id"]
    valid = _positive(jobs["response_time_ns"])
    base = _money_and_jobs(jobs, keys, valid)
    ok = jobs.filter(valid)
    lat = pc.divide(pc.cast(ok["response_time_ns"], pa.float64()), 1e9)
    cu_s = pc.divide(pc.cast(ok["compute_units"], pa.float64()), lat)
    g = ok.select(keys)
    lq = grouped_quantiles(
        g, lat, {"latency_s_p50": 0.5, "latency_s_p90": 0.9, "latency_s_p99": 0.99}
    )
    lq = lq.rename_columns([*keys, "timed_jobs", *lq.column_names[4:]])
    cq = _cu_p50(ok, cu_s, keys)
    out = base.join(
        lq.join(cq, keys, use_threads=False), keys, join_type="left outer", use_threads=False
    )
    out = out.sort_by(
        [("pipeline", "ascending"), ("model_id", "ascending"), ("eth_address", "ascending")]
    )
    p50 = out["latency_s_p50"].to_numpy(zero_copy_only=False).astype(np.float64)
    rank = np.full(out.num_rows, -1, dtype=np.int64)
    pct = np.full(out.num_rows, np.nan)
    model = pc.binary_join_element_wise(
        pc.fill_null(out["pipeline"], ""), pc.fill_null(out["model_id"], ""), "\x1f"
    ).to_numpy(zero_copy_only=False)
    for m in np.unique(model):
        sel = (model == m) & ~np.isnan(p50)
        if sel.any():
            rank[sel] = ranks(p50[sel], descending=False)
            pct[sel] = percentile_of_rank(rank[sel], int(sel.sum()))
    has = rank > 0
    out = out.append_column("rank", pa.array(rank, mask=~has))
    out = out.append_column("percentile", pa.array(pct, mask=~has))
    out = out.append_column("window", pa.array([window] * out.num_rows, pa.string()))
    return out.select(AI.names).cast(AI)


def performance(
    snap: Snapshot,
    windows: tuple[str, ...] = tuple(WINDOWS),
    as_of: datetime | None = None,
) -> Performance:
    """Both performance tables for ``windows`` (rows carry their window's name)."""
    as_of = as_of or as_of_of(snap)
    if as_of is None:  # nothing ingested yet
        return Performance(TRANSCODE.empty_table(), AI.empty_table(), None)
    credits = (
        snap.read("ai_credits", schema=CREDITS, columns=["event_id", "eth_address"])
        if snap.has_table("ai_credits")
        else CREDITS.empty_table().select(["event_id", "eth_address"])
    )
    tc, ai = [], []
    for name in windows:
        jobs = jobs_in_window(snap, WINDOWS[name], as_of)
        tc.append(transcode_table(jobs, name))
        ai.append(ai_table(jobs, credits, name))
    return Performance(pa.concat_tables(tc), pa.concat_tables(ai), as_of)


TRANSCODE = pa.schema(
    [
        ("window", pa.string()),
        ("eth_address", pa.string()),
        ("jobs", pa.int64()),
        ("timed_jobs", pa.int64()),
        ("excluded_jobs", pa.int64()),
        ("response_ms_p50", pa.float64()),
        ("response_ms_p90", pa.float64()),
        ("response_ms_p99", pa.float64()),
        ("rtf_p50", pa.float64()),
        ("rtf_p10", pa.float64()),
        ("compute_units_per_s_p50", pa.float64()),
        ("fees_wei", WEI),
        ("rank", pa.int64()),
        ("percentile", pa.float64()),
    ]
)
AI = pa.schema(
    [
        ("window", pa.string()),
        ("eth_address", pa.string()),
        ("pipeline", pa.string()),
        ("model_id", pa.string()),
        ("jobs", pa.int64()),
        ("timed_jobs", pa.int64()),
        ("excluded_jobs", pa.int64()),
        ("latency_s_p50", pa.float64()),
        ("latency_s_p90", pa.float64()),
        ("latency_s_p99", pa.float64()),
        ("compute_units_per_s_p50", pa.float64()),
        ("fees_wei", WEI),
        ("rank", pa.int64()),
        ("percentile", pa.float64()),
    ]
)
