"""Matching AI jobs to the workers they were credited to (``ai_credits``), by event ID.

AI jobs carry no worker: :class:`Credits` finds each job's worker in ``ai_credits``,
reading only the credit files whose event times reach the days being read (checked as
every ledger read is, see :mod:`.scan`), and :func:`match` pairs the jobs' event IDs with
the credits' exactly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpool.analytics.performance.scan import DAY, Codes, read_checked, seconds, stat_seconds
from openpool.snapshots import DataFile, Snapshot

_MIX = np.uint64(0x9E3779B97F4A7C15)


def id_words(ids: pa.Array) -> list[np.ndarray] | None:
    """Every string of ``ids`` as 64-bit words covering all its bytes (aligned copies).

    Only for strings of one width of at least 8 bytes (event IDs are 36-character UUIDs):
    two such strings are equal exactly when all their words are. ``None`` otherwise.
    """
    n = len(ids)
    if n == 0 or ids.null_count or ids.type != pa.string():
        return None
    offsets = np.frombuffer(ids.buffers()[1], np.int32, count=n + 1, offset=ids.offset * 4)
    width = int(offsets[1] - offsets[0])
    if width < 8 or not (np.diff(offsets) == width).all():
        return None
    data, first = ids.buffers()[2], int(offsets[0])
    starts = [*range(0, width - 7, 8), width - 8]  # the last word may overlap the one before
    views = (
        np.ndarray((n,), "<u8", buffer=data, offset=first + s, strides=(width,)) for s in starts
    )
    return [np.ascontiguousarray(v) for v in views]  # aligned: fast to gather from


def _hash(words: list[np.ndarray]) -> np.ndarray:
    h = np.zeros(len(words[0]), np.uint64)
    for w in words:
        h ^= w
        h *= _MIX  # wraps modulo 2**64
    return h


def _sorted_by_hash(words: list[np.ndarray], bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash prefix, position) of every row, in hash order: the low ``bits`` bits of each
    hash are replaced by the row's position, so a plain (fast) sort orders them."""
    low = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    keys = np.sort((_hash(words) & ~low) | np.arange(len(words[0]), dtype=np.uint64))
    return keys & ~low, (keys & low).astype(np.int64)


def match(probe: pa.Array, ids: pa.Array, codes: np.ndarray) -> np.ndarray:
    """For each ID in ``probe``, the code of the entry of ``ids`` with that ID, or -1.

    Fixed-width IDs (event IDs are UUIDs) are matched by a hash of their bytes, then each
    candidate's bytes are compared, so the result is exact; other IDs take Arrow's string
    lookup. Entries of ``ids`` are expected to be unique (the first one wins).
    """
    out = np.full(len(probe), -1, dtype=np.int64)
    if len(probe) == 0 or len(ids) == 0:
        return out
    wp, wc = id_words(probe), id_words(ids)
    if wp is None or wc is None or len(probe[0].as_py()) != len(ids[0].as_py()):
        idx = pc.fill_null(pc.index_in(probe, value_set=ids), -1).to_numpy(zero_copy_only=False)
        return np.where(idx >= 0, codes[np.maximum(idx, 0)], -1)
    if len(wp[0]) == len(wc[0]) and all(  # the credits in the jobs' own order: bytes equal
        np.array_equal(a, b) for a, b in zip(wp, wc, strict=True)
    ):
        hc = np.sort(_hash(wc))
        if not (hc[1:] == hc[:-1]).any():  # distinct hashes: distinct IDs, so none repeats
            return np.asarray(codes, dtype=np.int64).copy()
    return _match_sorted(wp, wc, codes, out)


def _match_sorted(
    wp: list[np.ndarray], wc: list[np.ndarray], codes: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """:func:`match` of fixed-width IDs: one sort of both sides' hashes brings each probe
    next to the entries sharing its hash prefix (entries first, in their order). A probe
    whose run holds one entry is settled by comparing their bytes (an ID equal to the
    probe's would share its hash, so would be in the run); the rare runs holding several
    entries (duplicates, prefix collisions) are settled by :func:`_match_searched`."""
    n_c, n_p = len(wc[0]), len(wp[0])
    total = n_c + n_p
    bits = total.bit_length()
    low = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    keys = np.concatenate([_hash(wc), _hash(wp)])
    keys &= ~low
    keys |= np.arange(total, dtype=np.uint64)  # entries at [0, n_c), probes after them
    keys.sort()
    pos = (keys & low).astype(np.int64)
    keys &= ~low  # hash prefixes
    head = np.empty(total, dtype=bool)  # first of its run of equal prefixes
    head[0] = True
    np.not_equal(keys[1:], keys[:-1], out=head[1:])
    run = np.maximum.accumulate(np.where(head, np.arange(total), 0))
    probes = np.flatnonzero(pos >= n_c)  # sorted positions of the probes
    first = run[probes]
    entry = pos[first]  # the run's first member: an entry if any is in the run
    has = entry < n_c
    probes, first, entry = probes[has], first[has], entry[has]
    nxt = np.minimum(first + 1, total - 1)
    more = (pos[nxt] < n_c) & (keys[nxt] == keys[first])  # the run holds 2+ entries
    rows = pos[probes] - n_c
    cand = np.zeros(n_p, dtype=np.int64)  # per probe, in its own order: the one entry
    cand[rows[~more]] = entry[~more]
    same = np.zeros(n_p, dtype=bool)
    same[rows[~more]] = True
    for a, b in zip(wp, wc, strict=True):  # every byte: exact
        same &= a == b[cand]  # entries near the probes' order: a near-sequential gather
    out[same] = np.asarray(codes)[cand[same]]
    if more.any():
        rest = rows[more]
        out[rest] = _match_searched([w[rest] for w in wp], wc, codes)
    return out


def _match_searched(wp: list[np.ndarray], wc: list[np.ndarray], codes: np.ndarray) -> np.ndarray:
    """:func:`match` of fixed-width IDs by a search of the sorted hashes, trying every
    entry that shares a probe's hash prefix in turn (the first equal one wins)."""
    out = np.full(len(wp[0]), -1, dtype=np.int64)
    bits = max(len(wp[0]), len(wc[0])).bit_length()
    hc, ic = _sorted_by_hash(wc, bits)
    hp, ip = _sorted_by_hash(wp, bits)
    left = np.searchsorted(hc, hp)  # sorted needles: a cache-friendly search
    todo = np.arange(len(hp))  # probes (in hash order) with candidates still to compare
    k = 0
    while len(todo):  # the k-th entry sharing the probe's hash prefix (almost always k = 0)
        at = left[todo] + k
        todo, at = todo[at < len(hc)], at[at < len(hc)]
        same_prefix = hc[at] == hp[todo]
        todo, at = todo[same_prefix], at[same_prefix]
        cand = ic[at]
        rows = ip[todo]
        same = np.ones(len(todo), dtype=bool)
        for a, b in zip(wp, wc, strict=True):  # every byte: exact
            same &= a[rows] == b[cand]
        found = rows[same]
        first = out[found] < 0
        out[found[first]] = codes[cand[same][first]]
        todo = todo[~same]
        k += 1
    return out


@dataclass
class _Bucket:
    ids: list[pa.Array]
    workers: list[np.ndarray]


class Credits:
    """The worker of each credited AI job, looked up one event day at a time.

    ``days``: the event days (since the epoch) that will be asked for, in ascending order;
    ``None`` means one lookup over every credit (ledger files outside date slices). A
    credit file is read when the first day its event-time range reaches is due (a file
    without that range at once), and split by event day; a day's rows go once used.
    Reading (:meth:`read`) touches no shared state, so it may run in another thread.
    """

    def __init__(self, snap: Snapshot, days: list[int] | None, workers: Codes) -> None:
        self.snap, self.workers = snap, workers
        self.days = None if days is None else set(days)
        self.buckets: dict[int | None, _Bucket] = {}
        spans = [(stat_seconds(f), f) for f in snap.files("ai_credits")]
        self.pending = deque(
            sorted(
                ((sp[0] // DAY, sp[1] // DAY, f) for sp, f in spans if sp is not None),
                key=lambda r: r[0],
            )
        )
        self.add([(f, self.read(f)) for sp, f in spans if days is None or sp is None])
        if days is None:
            self.pending.clear()

    def due(self, day: int | None) -> list[DataFile]:
        """The credit files to read before ``day`` is looked up (each named only once)."""
        out = []
        while day is not None and self.pending and self.pending[0][0] <= day:
            _, hi, f = self.pending.popleft()
            if hi >= day:  # a file ending before this day holds only earlier days
                out.append(f)
        return out

    def _one_day(self, f: DataFile) -> int | None:
        span = stat_seconds(f)
        if self.days is None or span is None or span[0] // DAY != span[1] // DAY:
            return None
        return span[0] // DAY

    def read(self, f: DataFile) -> pa.Table:
        """The columns of credit file ``f`` that matching needs."""
        one_day = self._one_day(f) is not None
        cols = ["event_id", "eth_address"] + ([] if one_day else ["event_time"])
        return read_checked(self.snap, f, cols, ["eth_address"])

    def add(self, loaded: list[tuple[DataFile, pa.Table]]) -> None:
        """Files' rows (as :meth:`read` gave them), filed by event day; the files of one
        day (the usual case) are filed together."""
        by_day: dict[int | None, list[pa.Table]] = {}
        for f, t in loaded:
            one = None if self.days is None else self._one_day(f)
            if self.days is None or one is not None:
                if self.days is None or one in self.days:
                    by_day.setdefault(one, []).append(t.select(["event_id", "eth_address"]))
                continue
            ids = t.column("event_id").combine_chunks().cast(pa.string())
            workers = self.workers.of(t, "eth_address")
            day = seconds(t) // DAY
            order = np.argsort(day, kind="stable")
            day = day[order]
            starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
            ends = np.r_[starts[1:], len(day)]
            for s, e in zip(starts, ends, strict=True):
                d = int(day[s])
                if d in self.days:
                    rows = pa.array(order[s:e])
                    self._put(d, ids.take(rows), workers[order[s:e]])
        for key, tables in by_day.items():
            t = pa.concat_tables(tables, promote_options="permissive")
            self._put(
                key,
                t.column("event_id").combine_chunks().cast(pa.string()),
                self.workers.of(t, "eth_address"),
            )

    def _put(self, day: int | None, ids: pa.Array, workers: np.ndarray) -> None:
        b = self.buckets.setdefault(day, _Bucket([], []))
        b.ids.append(ids)
        b.workers.append(workers)

    def lookup(self, day: int | None, probe: pa.Array) -> np.ndarray:
        """Worker code of each AI job of ``day`` in ``probe`` (its IDs); -1 if not credited.

        Every file :meth:`due` named for ``day`` must have been :meth:`add`-ed first.
        """
        b = self.buckets.pop(day, None) if day is not None else self.buckets.get(None)
        if b is None:
            return np.full(len(probe), -1, dtype=np.int64)
        ids = pa.concat_arrays(b.ids) if len(b.ids) != 1 else b.ids[0]
        return match(probe, ids, np.concatenate(b.workers))
