"""Running per-group figures of one performance window, merged one day at a time.

Per group (a worker, or worker x pipeline x model): jobs, excluded jobs and fees as exact
Python integers, and every timed job's values, kept as the day arrays' slices. A day's
share is a :class:`~.share.Share`, so it can also come from the per-day cache
(:mod:`.daycache`) instead of the ledger; quantiles are taken only at the end, over every
value (exact).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpool.analytics.performance.quantiles import exact_quantiles
from openpool.analytics.performance.share import Share
from openpool.money import to_wei_array


@dataclass
class Grouped:
    """One day's rows of one table in group order, found once (a radix sort of dense codes)."""

    order: np.ndarray  # row positions, group by group
    dense: np.ndarray  # each ordered row's dense group code
    keys: np.ndarray  # dense code -> group key

    @classmethod
    def of(cls, g: np.ndarray, local: tuple[np.ndarray, np.ndarray] | None = None) -> Grouped:
        """Group the rows by key ``g``; ``local``: (dense code per row, key per code) if the
        caller has small codes at hand already."""
        if local is not None and len(local[1]) <= 1 << 16:
            dense, keys = local[0].astype(np.uint16), local[1]
        else:
            lo, hi = int(g.min()), int(g.max())
            if hi - lo < 1 << 16:  # transcode: worker codes are small already
                dense, keys = (g - lo).astype(np.uint16), np.arange(lo, hi + 1, dtype=np.int64)
            else:
                keys, inv = np.unique(g, return_inverse=True)
                dense = inv.astype(np.uint16 if len(keys) <= 1 << 16 else np.int64)
        order = np.argsort(dense, kind="stable")  # a radix sort for 16-bit codes
        return cls(order, dense[order], keys)


@dataclass
class Money:
    """One day's jobs of one table, in group order: not-timed flags and fees as exact limbs.

    Fees in [0, 2**64) (every real fee) are summed in numpy as two 32-bit limbs, exactly;
    anything else keeps the Arrow decimal column and Arrow's exact decimal sum.
    """

    excluded: np.ndarray  # int64 0/1
    limbs: tuple[np.ndarray, np.ndarray] | None  # (low, high) 32-bit halves, int64
    fees: pa.Array | None  # the decimal fees, only when limbs is None

    @classmethod
    def of(cls, fees: pa.Array, valid: np.ndarray, order: np.ndarray) -> Money:
        excluded = (~valid[order]).astype(np.int64)
        limbs = _wei_limbs(fees)
        if limbs is None:
            return cls(excluded, None, fees.take(pa.array(order)))
        return cls(excluded, (limbs[0][order], limbs[1][order]), None)


def _wei_limbs(fees: pa.Array) -> tuple[np.ndarray, np.ndarray] | None:
    """Each fee's two 32-bit halves (nulls as 0); ``None`` unless all are in [0, 2**64)."""
    n = len(fees)
    if fees.buffers()[1] is None:
        return np.zeros(n, np.int64), np.zeros(n, np.int64)
    words = np.frombuffer(fees.buffers()[1], "<u8", count=2 * n, offset=fees.offset * 16)
    low, high = words[0::2], words[1::2]  # decimal128: little-endian two's complement
    if fees.null_count:
        ok = pc.is_valid(fees).to_numpy(zero_copy_only=False)
        low, high = np.where(ok, low, 0), np.where(ok, high, 0)
    if high.any():
        return None
    return (low & 0xFFFFFFFF).astype(np.int64), (low >> 32).astype(np.int64)


def share_of(
    grouped: Grouped,
    money: Money,
    values: dict[str, tuple[np.ndarray, np.ndarray]],
    inside: np.ndarray | None,
) -> Share[int]:
    """The share of one day's rows in a window (``inside``, in group order; ``None``: all).

    ``values``: per name, every row's value and whether it counts, in group order.
    """
    d = grouped.dense if inside is None else grouped.dense[inside]
    if len(d) == 0:
        return Share()

    def pick(a: np.ndarray) -> np.ndarray:
        return a if inside is None else a[inside]

    starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
    share: Share[int] = Share(
        groups=grouped.keys[d[starts]].tolist(),
        jobs=np.diff(np.r_[starts, len(d)]).tolist(),
        excluded=np.add.reduceat(pick(money.excluded), starts).tolist(),
    )
    if money.limbs is not None:
        low = np.add.reduceat(pick(money.limbs[0]), starts).tolist()
        high = np.add.reduceat(pick(money.limbs[1]), starts).tolist()
        share.fees = [(h << 32) + lo for lo, h in zip(low, high, strict=True)]
    else:
        assert money.fees is not None
        f = money.fees if inside is None else money.fees.filter(pa.array(inside))
        agg = pa.table({"d": d, "f": f}).group_by("d", use_threads=False)
        agg = agg.aggregate([("f", "sum")])
        sums = dict(zip(agg["d"].to_pylist(), agg["f_sum"].to_pylist(), strict=True))
        share.fees = [int(sums[int(d[s])] or 0) for s in starts.tolist()]
    for name, (v, ok) in values.items():
        sel = ok if inside is None else ok & inside
        if sel.all():  # the usual case: every row's value counts
            dv = grouped.dense
        else:
            at = np.flatnonzero(sel)  # positions: a faster gather than a boolean mask
            v, dv = v[at], grouped.dense[at]
        per = share.values[name] = {}
        if len(dv) == 0:
            continue
        vstarts = np.flatnonzero(np.r_[True, dv[1:] != dv[:-1]])
        vends = np.r_[vstarts[1:], len(dv)]
        for s, e in zip(vstarts.tolist(), vends.tolist(), strict=True):
            per[int(grouped.keys[dv[s]])] = v[s:e]
    return share


class Tally:
    """One window of one table: the merged :class:`~.share.Share` of every day it covers."""

    def __init__(self) -> None:
        self.money: dict[int, list[int]] = {}  # group -> [jobs, excluded, fees wei]
        self.values: dict[str, dict[int, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))

    def merge(self, share: Share[int]) -> None:
        for k, j, x, f in zip(share.groups, share.jobs, share.excluded, share.fees, strict=True):
            m = self.money.get(k)
            if m is None:
                self.money[k] = [j, x, f]
            else:
                m[0] += j
                m[1] += x
                m[2] += f
        for name, per in share.values.items():
            mine = self.values[name]
            for k, v in per.items():
                mine[k].append(v)

    def finish(self, qs: dict[str, dict[str, float]]) -> pa.Table:
        """``g``, jobs, excluded_jobs, fees_wei, ``<value>_n`` and each named quantile."""
        groups = list(self.money)
        rows = [self.money[g] for g in groups]
        cols: dict[str, pa.Array] = {
            "g": pa.array(groups, pa.int64()),
            "jobs": pa.array([r[0] for r in rows], pa.int64()),
            "excluded_jobs": pa.array([r[1] for r in rows], pa.int64()),
            "fees_wei": to_wei_array([r[2] for r in rows]),
        }
        for name, named in qs.items():
            per = self.values.get(name, {})
            n = np.zeros(len(groups), dtype=np.int64)
            out = np.full((len(groups), len(named)), np.nan)
            for i, g in enumerate(groups):
                parts = per.pop(g, None)
                if parts:
                    v = np.concatenate(parts) if len(parts) > 1 else parts[0]
                    parts = None  # the day slices can go once joined
                    n[i] = len(v)
                    out[i] = exact_quantiles(v, list(named.values()))
            cols[f"{name}_n"] = pa.array(n)  # 0 when every job was excluded: never null
            for j, col in enumerate(named):
                cols[col] = pa.array(out[:, j], mask=n == 0)
        return pa.table(cols)
