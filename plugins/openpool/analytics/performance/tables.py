"""The two worker_performance tables (transcode, AI): their schemas, rows and ranks.

:func:`performance` runs one :class:`~.onepass.Pass` for every window asked for and turns
each window's tallies into rows.

Transcode: response time in ms (the wire's ms are stored as ns), real-time factor =
duration ÷ response time (higher is faster; p50 and p10, the worst decile), compute units
per second; ranked by p50 real-time factor, best = 1. AI: latency in seconds (the wire's
ns), ranked within each (pipeline, model) by p50 latency, lowest = 1; an AI job counts for
the worker it was credited to (``ai_credits``), and not at all before it is credited.
Jobs with a missing, zero or negative response time (or duration) are excluded from the
speed figures and counted in ``excluded_jobs``; they still count in ``jobs`` and
``fees_wei``. A group with timed jobs but no compute units has a null compute-units p50.

A rank is earned: a worker (AI: worker x pipeline x model) with fewer than
``min_timed_jobs`` timed jobs in the window is *unranked* (``ranked`` false, ``rank`` and
``percentile`` null) and takes no place from the others, so three lucky jobs never top a
worker measured over thousands. Windows are ``(end - length, end]`` in event time, ``end``
the partition's watermark.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpool.analytics.performance.onepass import Pass, Window
from openpool.analytics.performance.quantiles import percentile_of_rank, ranks
from openpool.errors import CacheMiss
from openpool.money import WEI
from openpool.snapshots import Snapshot

log = logging.getLogger(__name__)

# Default of ``OPENPOOL_RANK_MIN_TIMED_JOBS`` (config.py): timed jobs a rank needs.
MIN_TIMED_JOBS = 20
WINDOWS: dict[str, timedelta | None] = {
    "all": None,
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
# Quantiles per value kept: output column -> q.
_TC_QS = {
    "rt": {"response_ms_p50": 0.5, "response_ms_p90": 0.9, "response_ms_p99": 0.99},
    "rtf": {"rtf_p50": 0.5, "rtf_p10": 0.1},
    "cu": {"compute_units_per_s_p50": 0.5},
}
_AI_QS = {
    "lat": {"latency_s_p50": 0.5, "latency_s_p90": 0.9, "latency_s_p99": 0.99},
    "cu": {"compute_units_per_s_p50": 0.5},
}


@dataclass
class Performance:
    transcode: pa.Table
    ai: pa.Table
    as_of: datetime | None


def as_of_of(snap: Snapshot | None) -> datetime | None:
    mark = snap.manifest.properties.get("watermark") if snap else None
    return datetime.fromisoformat(mark) if mark else None


def performance(
    snap: Snapshot,
    windows: tuple[str, ...] = tuple(WINDOWS),
    as_of: datetime | None = None,
    min_timed_jobs: int = MIN_TIMED_JOBS,
) -> Performance:
    """Both performance tables for ``windows`` (rows carry their window's name); a group
    with fewer than ``min_timed_jobs`` timed jobs in a window is unranked."""
    as_of = as_of or as_of_of(snap)
    if as_of is None:  # nothing ingested yet
        return Performance(TRANSCODE.empty_table(), AI.empty_table(), None)
    end = int(as_of.timestamp())
    spans: dict[str, Window] = {}
    for w in windows:
        length = WINDOWS[w]
        spans[w] = (None if length is None else end - int(length.total_seconds()), end)
    run = Pass(snap, spans)
    try:
        run.run()
    except CacheMiss as exc:  # a stored day share went missing or bad: recompute, store again
        log.warning("day share unusable (%s); reading the whole ledger", exc)
        run = Pass(snap, spans, read_shares=False)
        run.run()
    return Performance(
        pa.concat_tables([transcode_table(run, w, min_timed_jobs) for w in windows]),
        pa.concat_tables([ai_table(run, w, min_timed_jobs) for w in windows]),
        as_of,
    )


def _enough(out: pa.Table, min_timed_jobs: int) -> np.ndarray:
    """Rows with enough timed jobs to be ranked."""
    timed = out["timed_jobs"].to_numpy(zero_copy_only=False)
    return np.asarray(timed >= min_timed_jobs, dtype=bool)


def _mark(out: pa.Table, rank: np.ndarray, pct: np.ndarray, window: str) -> pa.Table:
    has = rank > 0
    out = out.append_column("rank", pa.array(rank, mask=~has))
    out = out.append_column("ranked", pa.array(has, pa.bool_()))
    out = out.append_column("percentile", pa.array(pct, mask=~has))
    return out.append_column("window", pa.array([window] * out.num_rows, pa.string()))


def transcode_table(run: Pass, window: str, min_timed_jobs: int = MIN_TIMED_JOBS) -> pa.Table:
    """One window's transcode rows: per worker, ranked by p50 real-time factor (best = 1)."""
    s = run.tc[window].finish(_TC_QS)
    names = [run.group_names("transcode", g)[0] for g in s["g"].to_pylist()]
    out = s.append_column("eth_address", pa.array(names, pa.string()))
    out = out.rename_columns({"rt_n": "timed_jobs"}).sort_by("eth_address")
    p50 = out["rtf_p50"].to_numpy(zero_copy_only=False).astype(np.float64)
    has = ~np.isnan(p50) & _enough(out, min_timed_jobs)
    rank = np.full(out.num_rows, -1, dtype=np.int64)
    pct = np.full(out.num_rows, np.nan)
    if has.any():
        rank[has] = ranks(p50[has], descending=True)
        pct[has] = percentile_of_rank(rank[has], int(has.sum()))
    return _mark(out, rank, pct, window).select(TRANSCODE.names).cast(TRANSCODE)


def ai_table(run: Pass, window: str, min_timed_jobs: int = MIN_TIMED_JOBS) -> pa.Table:
    """One window's AI rows: per worker x pipeline x model, ranked by p50 latency within
    each (pipeline, model), lowest = 1."""
    s = run.ai[window].finish(_AI_QS)
    groups = [run.group_names("ai", g) for g in s["g"].to_pylist()]
    out = s.rename_columns({"lat_n": "timed_jobs"})
    for i, name in enumerate(("eth_address", "pipeline", "model_id")):
        out = out.append_column(name, pa.array([g[i] for g in groups], pa.string()))
    out = out.sort_by(
        [("pipeline", "ascending"), ("model_id", "ascending"), ("eth_address", "ascending")]
    )
    p50 = out["latency_s_p50"].to_numpy(zero_copy_only=False).astype(np.float64)
    rank = np.full(out.num_rows, -1, dtype=np.int64)
    pct = np.full(out.num_rows, np.nan)
    model = pc.binary_join_element_wise(
        pc.fill_null(out["pipeline"], ""), pc.fill_null(out["model_id"], ""), "\x1f"
    ).to_numpy(zero_copy_only=False)
    enough = _enough(out, min_timed_jobs)
    for m in np.unique(model):
        sel = (model == m) & ~np.isnan(p50) & enough
        if sel.any():
            rank[sel] = ranks(p50[sel], descending=False)
            pct[sel] = percentile_of_rank(rank[sel], int(sel.sum()))
    return _mark(out, rank, pct, window).select(AI.names).cast(AI)


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
        ("rank", pa.int64()),  # null when unranked
        ("ranked", pa.bool_()),  # False: fewer timed jobs than the minimum (or none)
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
        ("rank", pa.int64()),  # null when unranked
        ("ranked", pa.bool_()),  # False: fewer timed jobs than the minimum (or none)
        ("percentile", pa.float64()),
    ]
)
