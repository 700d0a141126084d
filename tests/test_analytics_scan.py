"""The one-pass performance scan equals a plain whole-ledger computation, value for value.

The oracle below is the straightforward way: read the whole ``events`` table, filter each
window with Arrow, join AI jobs to ``ai_credits`` by event ID, and take quantiles with
:func:`grouped_quantiles` (a full sort). :func:`performance` reads day by day, skips
columns file statistics make unnecessary, matches IDs by hash and sums fees in limbs; its
tables must be *equal* to the oracle's (not approximately), on real ingested state that
spans days, with several files per day and AI jobs credited in a later batch.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from openpool.analytics.performance import (
    AI,
    MIN_TIMED_JOBS,
    TRANSCODE,
    WINDOWS,
    credits,
    daycache,
    performance,
    scan,
)
from openpool.analytics.performance.quantiles import (
    exact_quantiles,
    grouped_quantiles,
    percentile_of_rank,
    ranks,
)
from openpool.errors import CorruptDataFile, MissingDataFile
from openpool.ingest.run import ingest
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from openpool.tables import AI_CREDITS as CREDITS
from openpool.tables import EVENTS, TS
from openpool.traffic import Mess, generate, write

RATE = Fraction(1, 4)
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _state(tmp_path, part: Partition, days: float, batches: int):
    """``days`` of generated traffic, ingested in ``batches`` runs (late files included)."""
    files = generate(
        part,
        T0,
        timedelta(days=days),
        workers=6,
        events_per_second=0.05,
        flush_seconds=3600,
        seed=3,
        mess=Mess(split_ai_jobs=0.3, late_files=0.05, resets=1, invalid_events=0.01),
    )
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    per = -(-len(files) // batches)
    for k in range(batches):  # each run sees a few more hours of files
        write(files[k * per : (k + 1) * per], events)
        ingest(part, events, state, RATE, max_files=max(1, per // 3))
    return SnapshotStore(state, part).latest()


def _oracle(snap, window: str, as_of: datetime) -> tuple[pa.Table, pa.Table]:
    ev = snap.read("events", schema=EVENTS)
    keep = pc.and_(
        pc.equal(ev["event_type"], "job-processed"),
        pc.less_equal(ev["event_time"], pa.scalar(as_of, TS)),
    )
    if WINDOWS[window] is not None:
        keep = pc.and_(keep, pc.greater(ev["event_time"], pa.scalar(as_of - WINDOWS[window], TS)))
    jobs = ev.filter(keep)

    def positive(col):
        return pc.fill_null(pc.greater(col, 0), False)

    def summed(t, keys, valid):
        flagged = t.select([*keys, "fees_wei"]).append_column(
            "_x", pc.cast(pc.invert(valid), pa.int64())
        )
        agg = flagged.group_by(keys).aggregate(
            [("fees_wei", "sum"), ([], "count_all"), ("_x", "sum")]
        )
        return agg.rename_columns([*keys, "fees_wei", "jobs", "excluded_jobs"])

    def quantiles(t, keys, values, qs):
        q = grouped_quantiles(t.select(keys), values, qs)
        return {tuple(r[k] for k in keys): r for r in q.to_pylist()}

    # Transcode.
    tc = jobs.filter(
        pc.and_(pc.equal(jobs["node_type"], "transcode"), pc.is_valid(jobs["eth_address"]))
    )
    valid = pc.and_(positive(tc["response_time_ns"]), positive(tc["duration_ms"]))
    ok = tc.filter(valid)
    rt_ns = pc.cast(ok["response_time_ns"], pa.float64())
    rt_ms = pc.divide(rt_ns, 1e6)
    rt = quantiles(
        ok,
        ["eth_address"],
        rt_ms,
        {"response_ms_p50": 0.5, "response_ms_p90": 0.9, "response_ms_p99": 0.99},
    )
    rtf = quantiles(
        ok,
        ["eth_address"],
        pc.divide(pc.cast(ok["duration_ms"], pa.float64()), rt_ms),
        {"rtf_p50": 0.5, "rtf_p10": 0.1},
    )
    has = pc.is_valid(ok["compute_units"])
    cu = quantiles(
        ok.filter(has),
        ["eth_address"],
        pc.divide(pc.cast(ok["compute_units"], pa.float64()), pc.divide(rt_ns, 1e9)).filter(has),
        {"compute_units_per_s_p50": 0.5},
    )
    rows = []
    for r in summed(tc, ["eth_address"], valid).to_pylist():
        k = (r["eth_address"],)
        r.update(window=window, timed_jobs=rt[k]["n"] if k in rt else 0)
        for src, names in (
            (rt, ("response_ms_p50", "response_ms_p90", "response_ms_p99")),
            (rtf, ("rtf_p50", "rtf_p10")),
            (cu, ("compute_units_per_s_p50",)),
        ):
            for name in names:
                r[name] = src[k][name] if k in src else None
        rows.append(r)
    rows.sort(key=lambda r: r["eth_address"])
    _rank(rows, "rtf_p50", lambda r: "", descending=True)
    tc_table = pa.Table.from_pylist(rows, schema=TRANSCODE)

    # AI: each job counts for the worker it was credited to.
    credits = (
        snap.read("ai_credits", schema=CREDITS)
        if snap.has_table("ai_credits")
        else CREDITS.empty_table()
    )
    ai = jobs.filter(pc.equal(jobs["node_type"], "ai")).drop_columns(["eth_address"])
    ai = ai.join(credits.select(["event_id", "eth_address"]), "event_id", join_type="inner")
    keys = ["eth_address", "pipeline", "model_id"]
    valid = positive(ai["response_time_ns"])
    ok = ai.filter(valid)
    lat = pc.divide(pc.cast(ok["response_time_ns"], pa.float64()), 1e9)
    lq = quantiles(
        ok, keys, lat, {"latency_s_p50": 0.5, "latency_s_p90": 0.9, "latency_s_p99": 0.99}
    )
    has = pc.is_valid(ok["compute_units"])
    cq = quantiles(
        ok.filter(has),
        keys,
        pc.divide(pc.cast(ok["compute_units"], pa.float64()), lat).filter(has),
        {"compute_units_per_s_p50": 0.5},
    )
    rows = []
    for r in summed(ai, keys, valid).to_pylist():
        k = tuple(r[x] for x in keys)
        r.update(window=window, timed_jobs=lq[k]["n"] if k in lq else 0)
        for name in ("latency_s_p50", "latency_s_p90", "latency_s_p99"):
            r[name] = lq[k][name] if k in lq else None
        r["compute_units_per_s_p50"] = cq[k]["compute_units_per_s_p50"] if k in cq else None
        rows.append(r)
    rows.sort(key=lambda r: (r["pipeline"], r["model_id"], r["eth_address"]))
    _rank(rows, "latency_s_p50", lambda r: (r["pipeline"], r["model_id"]), descending=False)
    return tc_table, pa.Table.from_pylist(rows, schema=AI)


def _rank(rows, column, model, descending: bool) -> None:
    """Ranks among the rows with at least MIN_TIMED_JOBS timed jobs; the rest unranked."""
    for r in rows:
        r["rank"], r["percentile"], r["ranked"] = None, None, False
    for m in {model(r) for r in rows}:
        group = [
            r
            for r in rows
            if model(r) == m and r[column] is not None and r["timed_jobs"] >= MIN_TIMED_JOBS
        ]
        rk = ranks(np.array([r[column] for r in group], dtype=np.float64), descending)
        pct = percentile_of_rank(rk, len(group))
        for r, a, b in zip(group, rk.tolist(), pct.tolist(), strict=True):
            r["rank"], r["percentile"], r["ranked"] = a, b, True


@pytest.mark.slow
@pytest.mark.parametrize("node_type", ["transcode", "ai"])
def test_performance_equals_the_whole_ledger_oracle_in_every_window(tmp_path, node_type) -> None:
    part = Partition(node_type, "us-central")
    snap = _state(tmp_path, part, days=9.5, batches=4)
    assert len(snap.slices("events")) >= 9 and len(snap.files("events")) > len(
        snap.slices("events")
    )  # several files per day: the layout repeated runs leave
    perf = performance(snap)
    ranked_seen: set[bool] = set()
    for window in WINDOWS:
        want_tc, want_ai = _oracle(snap, window, perf.as_of)
        got_tc = perf.transcode.filter(pc.equal(perf.transcode["window"], window))
        got_ai = perf.ai.filter(pc.equal(perf.ai["window"], window))
        assert got_tc.to_pylist() == want_tc.to_pylist(), window
        assert got_ai.to_pylist() == want_ai.to_pylist(), window
        mine = got_ai if node_type == "ai" else got_tc
        assert mine.num_rows > 0
        ranked_seen |= set(mine.column("ranked").to_pylist())
    # The AI data holds workers on both sides of the minimum (its 24 h window), so the
    # ranking rule is exercised; the transcode workers all reach it.
    assert ranked_seen == ({True, False} if node_type == "ai" else {True})
    # A window asked for alone gives the same rows as in the full run.
    alone = performance(snap, ("24h",))
    assert (
        alone.transcode.to_pylist()
        == perf.transcode.filter(pc.equal(perf.transcode["window"], "24h")).to_pylist()
    )
    assert alone.ai.to_pylist() == perf.ai.filter(pc.equal(perf.ai["window"], "24h")).to_pylist()


@pytest.mark.slow
def test_an_earlier_as_of_cuts_every_window(tmp_path) -> None:
    snap = _state(tmp_path, Partition("ai", "us-central"), days=4, batches=2)
    as_of = T0 + timedelta(days=2, hours=5, minutes=17)
    perf = performance(snap, as_of=as_of)
    for window in WINDOWS:
        want_tc, want_ai = _oracle(snap, window, as_of)
        got_ai = perf.ai.filter(pc.equal(perf.ai["window"], window))
        assert got_ai.to_pylist() == want_ai.to_pylist(), window
        assert perf.transcode.filter(pc.equal(perf.transcode["window"], window)).num_rows == 0
        assert want_tc.num_rows == 0


def test_exact_quantiles_are_bit_identical_to_grouped_quantiles() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 10, 101, 1000):
        for values in (rng.random(n) * 1e3, rng.integers(0, 5, n).astype(np.float64)):
            qs = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]
            want = grouped_quantiles(
                pa.table({"g": [0] * n}), pa.array(values), {str(q): q for q in qs}
            ).to_pylist()[0]
            got = exact_quantiles(values.copy(), qs)
            assert got.tolist() == [want[str(q)] for q in qs]


def _ids(n: int, rng: np.random.Generator) -> list[str]:
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]


def test_match_finds_each_ids_code_and_nothing_else() -> None:
    rng = np.random.default_rng(1)
    ids = _ids(5000, rng)
    codes = rng.integers(0, 50, len(ids))
    probe = [*ids[::3], *_ids(700, rng), ids[7].upper(), ids[8][:-1] + "x"]
    rng.shuffle(probe)
    got = credits.match(pa.array(probe), pa.array(ids), codes)
    want = dict(zip(ids, codes.tolist(), strict=True))
    assert got.tolist() == [want.get(p, -1) for p in probe]


def test_match_is_exact_when_hashes_collide(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    ids = _ids(3000, rng)
    codes = np.arange(len(ids))
    probe = [*ids[::2], *_ids(500, rng)]
    # A hash with 16 values: almost every probe shares its hash with many entries.
    monkeypatch.setattr(credits, "_hash", lambda words: words[0] & np.uint64(0xF << 60))
    got = credits.match(pa.array(probe), pa.array(ids), codes)
    want = {v: i for i, v in enumerate(ids)}
    assert got.tolist() == [want.get(p, -1) for p in probe]


def test_match_of_ids_that_are_not_fixed_width_uses_the_exact_string_lookup() -> None:
    ids = ["a", "bb", "00000000-0000-4000-8000-000000000001", "ccc"]
    probe = ["bb", "zz", "ccc", "a", "00000000-0000-4000-8000-000000000001"]
    got = credits.match(pa.array(probe), pa.array(ids), np.array([10, 11, 12, 13]))
    assert got.tolist() == [11, -1, 13, 10, 12]
    assert credits.id_words(pa.array(ids)) is None


def test_fees_beyond_64_bits_are_summed_exactly(tmp_path) -> None:
    part = Partition("transcode", "us-west")
    big = 2**70 + 12345
    rows = []
    for i, fee in enumerate([big, big, 7, 2**64 - 1]):
        row = {n: None for n in EVENTS.names}
        row.update(
            event_id=str(uuid.UUID(int=i + 1, version=4)),
            event_time=T0 + timedelta(minutes=i),
            event_type="job-processed",
            node_type="transcode",
            region="us-west",
            eth_address="0x" + ("a" if i < 3 else "b") * 40,
            fees_wei=Decimal(fee),
            compute_units=10,
            duration_ms=2000,
            response_time_ns=500_000_000,
        )
        rows.append(row)
    snaps = SnapshotStore(LocalStore(tmp_path / "s"), part)
    txn = snaps.begin(None, "t")
    txn.append("events", pa.Table.from_pylist(rows[:2], schema=EVENTS), slice_="2026-10-01")
    txn.append("events", pa.Table.from_pylist(rows[2:], schema=EVENTS), slice_="2026-10-01")
    txn.set_properties(watermark=rows[-1]["event_time"].isoformat())
    perf = performance(txn.commit(), ("all",)).transcode.to_pylist()
    fees = {r["eth_address"]: int(r["fees_wei"]) for r in perf}
    assert fees == {"0x" + "a" * 40: 2 * big + 7, "0x" + "b" * 40: 2**64 - 1}


def test_a_damaged_or_missing_ledger_file_stops_the_refresh_naming_it(tmp_path) -> None:
    snap = _state(tmp_path, Partition("ai", "us-central"), days=2, batches=1)
    store = snap.snapshots.store
    victim = snap.files("events")[-1]
    key = snap.snapshots.prefix + victim.path
    good = store.get(key)
    (tmp_path / "state" / key).write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(CorruptDataFile, match=victim.path):
        performance(snap)
    (tmp_path / "state" / key).unlink()
    with pytest.raises(MissingDataFile, match=victim.path):
        performance(snap)
    credit = snap.files("ai_credits")[0]
    (tmp_path / "state" / key).write_bytes(good)
    ckey = snap.snapshots.prefix + credit.path
    (tmp_path / "state" / ckey).write_bytes(store.get(ckey)[:100])
    with pytest.raises(CorruptDataFile, match=credit.path):
        performance(snap)


def _rows_by_window(perf) -> dict:
    return {
        w: (
            perf.transcode.filter(pc.equal(perf.transcode["window"], w)).to_pylist(),
            perf.ai.filter(pc.equal(perf.ai["window"], w)).to_pylist(),
        )
        for w in WINDOWS
    }


def _assert_oracle(snap, perf) -> None:
    for window, (tc, ai) in _rows_by_window(perf).items():
        want_tc, want_ai = _oracle(snap, window, perf.as_of)
        assert tc == want_tc.to_pylist(), window
        assert ai == want_ai.to_pylist(), window


@pytest.mark.slow
def test_day_shares_are_used_and_give_the_ledgers_figures(tmp_path) -> None:
    part = Partition("ai", "us-central")
    snap = _state(tmp_path, part, days=12, batches=3)
    store = snap.snapshots.store
    cold = performance(snap)
    stored = daycache.present(store, part)
    assert len(stored) >= 3  # the days only "all time" needs, before the 7-day window
    warm = performance(snap)
    assert _rows_by_window(warm) == _rows_by_window(cold)
    _assert_oracle(snap, warm)
    # The warm run did not read the old days' ledger files: without one, it still runs.
    old_day = min(stored)
    victim = next(f for f in snap.files("events") if scan.day_of(f.slice) == old_day)
    ledger_file = tmp_path / "state" / (snap.snapshots.prefix + victim.path)
    kept = ledger_file.read_bytes()
    ledger_file.unlink()
    assert _rows_by_window(performance(snap)) == _rows_by_window(cold)
    ledger_file.write_bytes(kept)
    # A damaged share is never used: the day is read again and its share rewritten.
    (key,) = stored[old_day]
    share = tmp_path / "state" / daycache.object_key(part, old_day, key)
    share.write_bytes(share.read_bytes()[:-7] + b"garbage")
    assert _rows_by_window(performance(snap)) == _rows_by_window(cold)
    assert daycache.load(store, part, old_day, key) is not None


@pytest.mark.slow
def test_a_change_to_an_old_days_inputs_gives_it_a_new_share(tmp_path) -> None:
    part = Partition("ai", "us-central")
    snap = _state(tmp_path, part, days=12, batches=3)
    store = snap.snapshots.store
    performance(snap)
    stored = daycache.present(store, part)
    old_day = min(stored)
    day_start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=old_day)
    # A late job on that day, credited in a later batch: a new ledger file and credit file.
    job = {n: None for n in EVENTS.names}
    job.update(
        event_id=str(uuid.uuid4()),
        event_time=day_start + timedelta(hours=5),
        event_type="job-processed",
        node_type="ai",
        region="us-central",
        pipeline="text-to-image",
        model_id="late/model",
        fees_wei=Decimal(123456789),
        compute_units=1000,
        response_time_ns=700_000_000,
    )
    credit = {
        "event_id": job["event_id"],
        "eth_address": "0x" + "d" * 40,
        "event_time": job["event_time"],
        "fees_wei": job["fees_wei"],
    }
    txn = snap.snapshots.begin(snap, "late")
    txn.append("events", pa.Table.from_pylist([job], schema=EVENTS), slice_=f"{day_start:%Y-%m-%d}")
    txn.append("ai_credits", pa.Table.from_pylist([credit], schema=CREDITS))
    later = txn.commit()
    perf = performance(later)
    _assert_oracle(later, perf)
    rows = perf.ai.filter(pc.equal(perf.ai["model_id"], "late/model")).to_pylist()
    assert [(r["window"], r["eth_address"], r["jobs"]) for r in rows] == [
        ("all", "0x" + "d" * 40, 1)
    ]
    now = daycache.present(store, part)
    assert now[old_day] and now[old_day].isdisjoint(stored[old_day])  # the old share is gone
    assert all(now[d] == stored[d] for d in stored if d != old_day)
