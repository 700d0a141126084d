"""Exact grouped quantiles and ranks, vectorised (sort once, index by group offsets).

Quantiles interpolate linearly between order statistics (the definition numpy, pandas and
DuckDB's ``quantile_cont`` use by default), so analysts get the same numbers in SQL.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def grouped_quantiles(
    groups: pa.Table, values: pa.Array | pa.ChunkedArray, qs: dict[str, float]
) -> pa.Table:
    """Per distinct row of ``groups``: ``n`` and each named quantile of ``values``.

    Rows with a null value must be filtered out by the caller. Output is sorted by group.
    """
    keys = groups.column_names
    t = groups.append_column("_v", values)
    t = t.sort_by([*((k, "ascending") for k in keys), ("_v", "ascending")])
    if t.num_rows == 0:
        cols = {k: t.column(k) for k in keys}
        cols["n"] = pa.array([], pa.int64())
        cols.update({name: pa.array([], pa.float64()) for name in qs})
        return pa.table(cols)
    v = t.column("_v").to_numpy().astype(np.float64)
    # Group boundaries: where any key changes.
    change = np.zeros(t.num_rows, dtype=bool)
    change[0] = True
    for k in keys:
        col = t.column(k).combine_chunks()
        prev, cur = col.slice(0, t.num_rows - 1), col.slice(1)
        differs = pc.fill_null(pc.not_equal(prev, cur), True)
        both_null = pc.and_(pc.is_null(prev), pc.is_null(cur))
        differs = pc.and_(differs, pc.invert(both_null))
        change[1:] |= differs.to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(change)
    n = np.diff(np.append(starts, t.num_rows))
    out = {k: t.column(k).take(pa.array(starts)) for k in keys}
    out["n"] = pa.array(n, pa.int64())
    for name, q in qs.items():
        pos = q * (n - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        a, b = v[starts + lo], v[starts + hi]
        out[name] = pa.array(a + (b - a) * (pos - lo), pa.float64())
    return pa.table(out)


def ranks(values: np.ndarray, descending: bool) -> np.ndarray:
    """Competition ranks ("1224"): ties share the best rank; rank 1 is the best value."""
    key = -values if descending else values
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    idx = np.flatnonzero(first)
    run_rank = np.repeat(idx + 1, np.diff(np.append(idx, len(key))))
    out = np.empty(len(key), dtype=np.int64)
    out[order] = run_rank
    return out


def percentile_of_rank(rank: np.ndarray, n: int) -> np.ndarray:
    """100 for the best, 0 for the worst: the share of others a worker beats or ties above."""
    if n <= 1:
        return np.full(len(rank), 100.0)
    return 100.0 * (n - rank) / (n - 1)


def exact_quantiles(values: np.ndarray, qs: list[float]) -> np.ndarray:
    """Quantiles of one non-empty group, exactly as :func:`grouped_quantiles` computes them.

    The order statistics come from selection (``np.partition``: linear time, a copy), not
    a sort; the interpolation is the same expression, so the results are bit-identical.
    """
    n = len(values)
    pos = np.asarray(qs, dtype=np.float64) * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.ceil(pos).astype(np.int64)
    part = np.partition(values, np.unique(np.concatenate([lo, hi])))
    a, b = part[lo], part[hi]
    return a + (b - a) * (pos - lo)
