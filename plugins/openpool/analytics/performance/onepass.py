"""One pass over the ledger's date slices, oldest first, feeding every window asked for.

Each day's ledger files (only the columns needed, see :mod:`.scan`) become compact
numeric arrays, grouped once, and go to each window whose time range holds them
(:mod:`.tally`). A day that only "all time" needs, and whose files all lie before
``as_of``, is taken from its stored share when one exists for exactly these inputs
(:mod:`.daycache`), and otherwise stored after it is read. The next day's files (or share)
are fetched, checked and decoded in a background thread while the current day is
computed; shares are written by another.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from openpool.analytics.performance import daycache
from openpool.analytics.performance.credits import Credits
from openpool.analytics.performance.scan import (
    DAY,
    Codes,
    constant,
    day_of,
    ints,
    no_nulls,
    open_checked,
    seconds,
    stat_seconds,
)
from openpool.analytics.performance.share import Group, Share
from openpool.analytics.performance.tally import Grouped, Money, Tally, share_of
from openpool.errors import CacheMiss
from openpool.money import WEI
from openpool.snapshots import DataFile, Snapshot
from openpool.tables import TS

_AI_COLUMNS = ["event_id", "pipeline", "model_id"]
_DICTIONARY = ["event_type", "node_type", "eth_address", "pipeline", "model_id"]
BITS = 21  # per code in an AI group key: (worker, pipeline, model) packed in one int64
Window = tuple[int | None, int]  # (start exclusive or None, end inclusive), epoch seconds


@dataclass
class Unit:
    """One day's ledger files (day ``None``: files outside date slices)."""

    day: int | None
    files: list[DataFile]
    fed: list[str]  # windows this day feeds
    key: str | None = None  # its share's input key, if its share may be stored


def _holds(window: Window, span: tuple[int, int]) -> bool:
    start, end = window
    return span[1] <= end and (start is None or span[0] > start)


def _window_masks(t: np.ndarray, windows: dict[str, Window], names: list[str]) -> dict:
    """Per window, which rows fall in it (``None``: every row does)."""
    out: dict[str, np.ndarray | None] = {}
    for w in names:
        start, end = windows[w]
        keep = t <= end
        if start is not None:
            keep &= t > start
        out[w] = None if keep.all() else keep
    return out


class Pass:
    """The pass for ``windows`` (name -> time range) over ``snap``'s ledger.

    ``read_shares``/``write_shares``: whether stored day shares may be used / are stored.
    """

    def __init__(
        self,
        snap: Snapshot,
        windows: dict[str, Window],
        read_shares: bool = True,
        write_shares: bool = True,
    ) -> None:
        self.snap, self.windows = snap, windows
        self.read_shares, self.write_shares = read_shares, write_shares
        self.partition = snap.snapshots.partition
        self.store = snap.snapshots.store
        self.workers, self.pipelines, self.models = Codes(), Codes(), Codes()
        self.kinds, self.nodes = Codes(), Codes()
        self.tc = {w: Tally() for w in windows}
        self.ai = {w: Tally() for w in windows}
        self.with_ai = snap.has_table("ai_credits") and snap.manifest.rows("ai_credits") > 0

    # -- planning -------------------------------------------------------------------------
    def units(self) -> list[Unit]:
        """Every day some window needs, oldest first (files outside date slices first)."""
        by_day: dict[int | None, list[DataFile]] = {}
        for f in self.snap.files("events"):
            by_day.setdefault(day_of(f.slice), []).append(f)
        credit_spans = [(stat_seconds(f), f) for f in self.snap.files("ai_credits")]
        out = []
        for day in sorted(by_day, key=lambda d: -1 << 62 if d is None else d):
            fed = []
            for w, (start, end) in self.windows.items():
                if start is None or (day is not None and start // DAY <= day <= end // DAY):
                    fed.append(w)
            if not fed:
                continue
            unit = Unit(day, by_day[day], fed)
            if day is not None and fed == ["all"] and self.windows["all"][0] is None:
                spans = [stat_seconds(f) for f in unit.files]
                if all(s is not None and s[1] <= self.windows["all"][1] for s in spans):
                    credits = [
                        f for s, f in credit_spans if s is None or s[0] // DAY <= day <= s[1] // DAY
                    ]
                    unit.key = daycache.input_key(self.partition, day, unit.files, credits)
            out.append(unit)
        return out

    # -- the pass ---------------------------------------------------------------------------
    def run(self) -> None:
        units = self.units()
        stored = (
            daycache.present(self.store, self.partition)
            if any(u.key for u in units) and (self.read_shares or self.write_shares)
            else {}
        )
        hits = {
            u.day
            for u in units
            if self.read_shares and u.key and u.key in stored.get(u.day, set())  # type: ignore[arg-type]
        }
        credits = None
        if self.with_ai:
            days = [u.day for u in units if u.day not in hits]
            dated = None if None in days else [d for d in days if d is not None]
            credits = Credits(self.snap, dated, self.workers)

        def fetch(unit: Unit, due: list[DataFile]) -> tuple[str, Any]:
            if unit.day in hits:
                assert unit.day is not None and unit.key is not None
                return "share", daycache.load(self.store, self.partition, unit.day, unit.key)
            events = [self._read(f, unit.fed, credits is not None) for f in unit.files]
            return "ledger", (events, [(f, credits.read(f)) for f in due] if credits else [])

        ahead: deque[tuple[Unit, Future]] = deque()
        todo = iter(units)
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="openpool-scan") as pool,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="openpool-share") as writer,
        ):

            def submit() -> None:
                unit = next(todo, None)
                if unit is not None:
                    due = credits.due(unit.day) if credits and unit.day not in hits else []
                    ahead.append((unit, pool.submit(fetch, unit, due)))

            submit()
            while ahead:
                unit, job = ahead.popleft()
                kind, got = job.result()
                submit()
                if kind == "share":
                    if got is None:
                        raise CacheMiss(f"{self.partition} day {unit.day}")
                    self._merge(got)
                    continue
                tables, credit_files = got
                if credit_files:
                    assert credits is not None
                    credits.add(credit_files)
                tables = [t for t in tables if t.num_rows]
                coded: dict[str, Share[int]] = {"transcode": Share(), "ai": Share()}
                if tables:
                    day_table = pa.concat_tables(tables, promote_options="permissive")
                    del tables
                    coded.update(self._day(unit.day, day_table, unit.fed, credits))
                if unit.key and self.write_shares:
                    assert unit.day is not None
                    stale = stored.get(unit.day, set())
                    named = {k: s.keyed(partial(self.group_names, k)) for k, s in coded.items()}
                    writer.submit(  # its own thread: never delays the reads
                        daycache.save,
                        self.store,
                        self.partition,
                        unit.day,
                        unit.key,
                        named,
                        stale,
                    )

    def _read(self, f: DataFile, fed: list[str], with_ai: bool) -> pa.Table:
        """The columns of one ledger file this pass needs, and no more.

        A ``node_type`` the file's statistics show to be one value is not read (nor the
        other node type's columns), and neither is ``event_time`` when the manifest's range
        for the file lies inside every window it feeds: those columns are filled in.
        """
        checked = open_checked(self.snap, f, _DICTIONARY)
        n = checked.parquet.metadata.num_rows
        node = constant(checked, "node_type")
        cols = ["event_type", "fees_wei", "compute_units", "response_time_ns"]
        cols += ["node_type"] if node is None else []
        cols += ["eth_address", "duration_ms"] if node != "ai" else []
        cols += _AI_COLUMNS if with_ai and node != "transcode" else []
        span = stat_seconds(f)
        inside = (
            span is not None
            and no_nulls(checked, "event_time")
            and all(_holds(self.windows[w], span) for w in fed)
        )
        t = checked.read(cols if inside else [*cols, "event_time"])
        if node is not None:
            codes = pa.array(np.zeros(n, np.int32))
            t = t.append_column("node_type", pa.DictionaryArray.from_arrays(codes, [node]))
        if inside and span is not None:
            t = t.append_column("event_time", pa.array(np.full(n, span[1]), TS))
        return t

    def _day(
        self, day: int | None, t: pa.Table, fed: list[str], credits: Credits | None
    ) -> dict[str, Share[int]]:
        """One day's jobs (its files as one table) into every window it feeds; returns the
        day's share of "all time" per table (if "all" is fed)."""
        out: dict[str, Share[int]] = {}
        jobs = self.kinds.of(t, "event_type") == self.kinds.code("job-processed")
        if not jobs.any():
            return out
        node = self.nodes.of(t, "node_type")
        worker = self.workers.of(t, "eth_address")
        tc = jobs & (node == self.nodes.code("transcode")) & (worker != self.workers.code(None))
        if tc.any():
            out.update(self._transcode(_rows(t, np.flatnonzero(tc), worker), fed))
        ai = jobs & (node == self.nodes.code("ai"))
        if credits is None or not ai.any():
            return out
        at = np.flatnonzero(ai)  # the AI jobs' rows
        ids = t.column("event_id").combine_chunks().take(pa.array(at)).cast(pa.string())
        w = credits.lookup(day, ids)
        keep = w >= 0
        if not keep.all():  # only credited jobs count
            at, w = at[keep], w[keep]
        rows = _rows(t, at, worker)
        p = self.pipelines.of(t, "pipeline", at)
        m = self.models.of(t, "model_id", at)
        self._check_width()
        rows["g"] = (w << (2 * BITS)) | (p << BITS) | m
        n_p, n_m = len(self.pipelines.values), len(self.models.values)
        if len(self.workers.values) * n_p * n_m <= 1 << 16:  # small dense codes: no np.unique
            every = np.arange(len(self.workers.values) * n_p * n_m, dtype=np.int64)
            packed = ((every // (n_p * n_m)) << (2 * BITS)) | ((every // n_m % n_p) << BITS)
            rows["local"] = ((w * n_p + p) * n_m + m, packed | (every % n_m))
        out.update(self._ai(rows, fed))
        return out

    def _check_width(self) -> None:
        widest = max(len(self.workers.values), len(self.pipelines.values), len(self.models.values))
        if widest >= 1 << BITS:
            raise OverflowError("too many distinct workers, pipelines or models to pack")

    def _transcode(self, r: dict, fed: list[str]) -> dict[str, Share[int]]:
        valid = (r["rt"] > 0) & (r["dur"] > 0)
        rt_ns = r["rt"].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):  # rows not valid are not kept
            rt_ms = rt_ns / 1e6
            rtf = r["dur"].astype(np.float64) / rt_ms
            cu_s = r["cu"].astype(np.float64) / (rt_ns / 1e9)
        metrics = {"rt": (rt_ms, valid), "rtf": (rtf, valid), "cu": (cu_s, valid & r["cu_ok"])}
        shares = self._feed(self.tc, r, valid, metrics, fed)
        return {"transcode": shares[0]} if shares else {}

    def _ai(self, r: dict, fed: list[str]) -> dict[str, Share[int]]:
        valid = r["rt"] > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            lat = r["rt"].astype(np.float64) / 1e9
            cu_s = r["cu"].astype(np.float64) / lat
        metrics = {"lat": (lat, valid), "cu": (cu_s, valid & r["cu_ok"])}
        shares = self._feed(self.ai, r, valid, metrics, fed)
        return {"ai": shares[0]} if shares else {}

    def _feed(
        self,
        tallies: dict[str, Tally],
        r: dict,
        valid: np.ndarray,
        metrics: dict[str, tuple[np.ndarray, np.ndarray]],
        fed: list[str],
    ) -> list[Share[int]]:
        """Merge the rows into each fed window; returns [the "all" share] if "all" is fed."""
        grouped = Grouped.of(r["g"], r.get("local"))
        o = grouped.order
        money = Money.of(r["fees"], valid, o)
        ordered = {name: (v[o], ok[o]) for name, (v, ok) in metrics.items()}
        out = []
        for w, m in _window_masks(r["t"], self.windows, fed).items():
            share = share_of(grouped, money, ordered, None if m is None else m[o])
            tallies[w].merge(share)
            if w == "all":
                out.append(share)
        return out

    # -- stored shares: group codes <-> names ----------------------------------------------
    def group_names(self, kind: str, key: int) -> Group:
        if kind == "transcode":
            return (self.workers.values[key], None, None)
        mask = (1 << BITS) - 1
        return (
            self.workers.values[key >> (2 * BITS)],
            self.pipelines.values[(key >> BITS) & mask],
            self.models.values[key & mask],
        )

    def _group_key(self, kind: str, g: Group) -> int:
        if kind == "transcode":
            return self.workers.code(g[0])
        key = (
            (self.workers.code(g[0]) << (2 * BITS))
            | (self.pipelines.code(g[1]) << BITS)
            | self.models.code(g[2])
        )
        self._check_width()
        return key

    def _merge(self, shares: dict[str, Share[Group]]) -> None:
        for kind, s in shares.items():
            coded = s.keyed(partial(self._group_key, kind))
            (self.tc if kind == "transcode" else self.ai)["all"].merge(coded)


def _rows(t: pa.Table, at: np.ndarray, worker: np.ndarray) -> dict:
    """The compact columns of rows ``at`` (positions): time, worker code, fees, response,
    duration, units."""
    rt, _ = ints(t, "response_time_ns", at)
    dur, _ = ints(t, "duration_ms", at)
    cu, cu_ok = ints(t, "compute_units", at)
    fees = t.column("fees_wei").combine_chunks() if "fees_wei" in t.column_names else None
    return {
        "t": seconds(t)[at],
        "g": worker[at],
        "fees": fees.take(pa.array(at)) if fees is not None else pa.nulls(len(at), WEI),
        "rt": rt,
        "dur": dur,
        "cu": cu,
        "cu_ok": cu_ok,
    }
