"""Ingest at the edges (issue 14): every case here was a failure of the earlier code.

Each test writes event files in the spec's wire format by hand (keys, Go's indentation,
key order) and checks the outcome against a reference written out plainly in the test
from those raw events, never against the pipeline's own state.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from openpool.analytics.performance import performance
from openpool.ingest.run import ingest
from openpool.ingest.window import Window
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore, ObjectStore
from openpool.traffic import marshal_indent, object_key
from tests.helpers.ledger import balances_of


def find_duplicates(*a, **kw):
    from openpool.duplicates import find_duplicates

    return find_duplicates(*a, **kw)


def resolve_duplicates(*a, **kw):
    from openpool.ingest.resolve import resolve_duplicates

    return resolve_duplicates(*a, **{"rate": RATE, **kw})


RATE = Fraction(1, 4)
TC = Partition("transcode", "us-west")
AI = Partition("ai", "us-central")
W1 = "0xA4c123B1612dd272d1371C17149d439536b3216F"
W2 = "0xdAeeb975729fAE923D5A4fd12aAbFe228F219e9C"
T0 = datetime(2026, 10, 3, 10, 0, 0, tzinfo=UTC)


def dt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def ev(part: Partition, t: datetime, kind: str, payload: dict[str, Any], eid: str | None = None):
    return {
        "DT": dt(t),
        "EventType": kind,
        "ID": eid or str(uuid.uuid4()),
        "NodeType": part.node_type,
        "Payload": payload,
        "Region": part.region,
        "Version": 1,
    }


def job(part: Partition, t: datetime, worker: str, fees: int, eid: str | None = None, **kw):
    payload = {
        "computeUnits": 1000,
        "duration": 2000,
        "ethAddress": worker,
        "fees": fees,
        "pricePerComputeUnit": 1,
        "realTimeRatio": 1,
        "responseTime": 1000,
        **kw,
    }
    return ev(part, t, "job-processed", {k: v for k, v in payload.items() if v is not None}, eid)


def connected(part: Partition, t: datetime, worker: str, conn: str, kind="worker-connected"):
    return ev(part, t, kind, {"connection": conn, "ethAddress": worker})


def put_file(store: ObjectStore, part: Partition, events: list[dict], key: str | None = None):
    """One file as an orchestrator writes it: its key names its first and last DT."""
    key = key or object_key(part, events[0]["DT"], events[-1]["DT"])
    store.put(key, marshal_indent(events))
    return key


def run(events: ObjectStore, state: ObjectStore, part: Partition, **kw):
    return ingest(part, events, state, RATE, **kw)


def stores(tmp_path: Path) -> tuple[LocalStore, LocalStore]:
    return LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")


def expected_balance(fees: list[int]) -> dict[str, int]:
    """The spec's money rule written out: commission = floor(fees x 1/4) per job."""
    comm = sum(f // 4 for f in fees)
    return {
        "total_fees_wei": sum(fees),
        "pool_commission_wei": comm,
        "worker_earnings_wei": sum(fees) - comm,
        "job_count": len(fees),
    }


def rejected(state: ObjectStore, part: Partition) -> list[dict]:
    return SnapshotStore(state, part).latest().read("rejected_events").to_pylist()


# -- 1. an ID counted once whatever hour it returns with -----------------------------------


def test_an_id_returning_with_another_hour_is_found_blocked_and_credited_once(
    tmp_path: Path,
) -> None:
    events, state = stores(tmp_path)
    eid = str(uuid.uuid4())
    put_file(events, TC, [job(TC, T0, W1, 4_000_000_001, eid), job(TC, T0, W2, 8_000_000_000)])
    run(events, state, TC)
    # Four hours later another file carries the same ID, another hour, other content.
    later = T0 + timedelta(hours=4, minutes=5)
    put_file(events, TC, [job(TC, later, W1, 9_000_000_000, eid), job(TC, later, W2, 12)])
    run(events, state, TC)

    found = find_duplicates(state, [TC])
    assert [d.event_id for d in found.unresolved] == [eid]
    (dup,) = found.unresolved
    assert dup.workers == {(str(TC), W1)}
    assert sorted(o.hour for o in dup.occurrences) == ["2026100310", "2026100314"]

    resolved = resolve_duplicates(state, [TC], found)
    assert resolved == {str(TC): 1}
    assert balances_of(state, TC) == {
        W1: expected_balance([4_000_000_001]),
        W2: expected_balance([8_000_000_000, 12]),
    }
    reasons = [r["reason"] for r in rejected(state, TC) if r["event_id"] == eid]
    assert len(reasons) == 1 and "already ingested in hour 2026100310" in reasons[0]
    snap = SnapshotStore(state, TC).latest()
    ledger_ids = snap.read("events", columns=["event_id"]).column("event_id")
    assert pc.sum(pc.equal(ledger_ids, eid)).as_py() == 1
    assert snap.manifest.properties["events_accepted"] == 3
    assert snap.manifest.properties["events_rejected"] == 1
    jobs = {r["eth_address"]: r["jobs"] for r in performance(snap, ("all",)).transcode.to_pylist()}
    assert jobs == {W1: 1, W2: 2}  # analytics read the corrected ledger
    assert find_duplicates(state, [TC]).unresolved == []
    # Resolving again changes nothing; a third copy in yet another hour is found again.
    assert resolve_duplicates(state, [TC], find_duplicates(state, [TC])) == {}
    put_file(events, TC, [job(TC, T0 + timedelta(hours=9), W1, 5, eid)])
    run(events, state, TC)
    assert [d.event_id for d in find_duplicates(state, [TC]).unresolved] == [eid]


def test_a_payout_plan_never_pays_an_id_twice_whatever_its_hour(tmp_path: Path) -> None:
    """Before money leaves: a worker touched by an unresolved repeat is held back."""
    from openpool.payouts.ledger import Ledger
    from openpool.payouts.plan import Limits, build_plan

    events, state = stores(tmp_path)
    eid = str(uuid.uuid4())
    eth = 10**18
    put_file(events, TC, [job(TC, T0, W1, eth // 10, eid), job(TC, T0, W2, eth // 10)])
    run(events, state, TC)
    later = T0 + timedelta(hours=3)
    put_file(events, TC, [job(TC, later, W1, eth // 10, eid)])  # the same ID, another hour
    run(events, state, TC)
    limits = Limits(10**16, eth, 10 * eth, timedelta(hours=24))
    wallet = "0x" + "1" * 40
    plan = build_plan([TC], state, Ledger(state, wallet), limits, 42161)
    paid = {p["eth_address"]: p["amount_wei"] for p in plan["payments"]}
    assert paid == {W2: eth // 10 - eth // 40}  # W1 is not paid while the repeat stands
    assert [(h["eth_address"], eid in h["reason"]) for h in plan["held"]] == [(W1, True)]
    resolve_duplicates(state, [TC], find_duplicates(state, [TC]))
    plan = build_plan([TC], state, Ledger(state, wallet), limits, 42161)
    paid = {p["eth_address"]: p["amount_wei"] for p in plan["payments"]}
    assert paid == {W1: eth // 10 - eth // 40, W2: eth // 10 - eth // 40}  # once each


def test_an_ai_job_returning_in_another_hour_is_credited_once(tmp_path: Path) -> None:
    events, state = stores(tmp_path)
    eid = str(uuid.uuid4())
    rid = str(uuid.uuid4())
    recv = ev(AI, T0, "job-received", {"ethAddress": W1, "modelID": "m", "pipeline": "p",
                                        "requestID": rid})  # fmt: skip
    proc = ev(AI, T0 + timedelta(seconds=1), "job-processed",
              {"computeUnits": 5, "fees": 1_000_000, "modelID": "m", "pipeline": "p",
               "pricePerComputeUnit": 1, "requestID": rid, "responseTime": 10**9}, eid)  # fmt: skip
    put_file(events, AI, [recv, proc])
    run(events, state, AI)
    again = dict(proc, DT=dt(T0 + timedelta(hours=2)))
    again["Payload"] = dict(proc["Payload"], fees=3_000_000)
    put_file(events, AI, [again])
    run(events, state, AI)
    found = find_duplicates(state, [AI])
    assert [d.workers for d in found.unresolved] == [{(str(AI), W1)}]
    resolve_duplicates(state, [AI], found)
    assert balances_of(state, AI) == {W1: expected_balance([1_000_000])}
    credits = SnapshotStore(state, AI).latest().read("ai_credits").to_pylist()
    assert [c["event_id"] for c in credits] == [eid]


def test_a_repeated_job_received_dated_earlier_gives_the_job_back_to_its_worker(
    tmp_path: Path,
) -> None:
    """The copy of a job-received dated earlier, with another worker, took the request;
    once it is set aside, the job is the first received's worker's again."""
    events, state = stores(tmp_path)
    eid, rid = str(uuid.uuid4()), str(uuid.uuid4())
    recv = {"ethAddress": W1, "modelID": "m", "pipeline": "p", "requestID": rid}
    proc = {"computeUnits": 5, "fees": 1_000_000, "modelID": "m", "pipeline": "p",
            "pricePerComputeUnit": 1, "requestID": rid, "responseTime": 10**9}  # fmt: skip
    put_file(events, AI, [ev(AI, T0 + timedelta(hours=2), "job-received", recv, eid)])
    run(events, state, AI)
    copy = ev(AI, T0, "job-received", dict(recv, ethAddress=W2), eid)  # same ID, earlier, W2
    put_file(events, AI, [copy, ev(AI, T0 + timedelta(seconds=5), "job-processed", proc)])
    run(events, state, AI)
    found = find_duplicates(state, [AI])
    assert [o.worker for o in found.unresolved[0].occurrences] == [W1, W2]
    resolve_duplicates(state, [AI], found)
    assert balances_of(state, AI) == {W1: expected_balance([1_000_000])}
    snap = SnapshotStore(state, AI).latest()
    assert [c["eth_address"] for c in snap.read("ai_credits").to_pylist()] == [W1]
    reqs = snap.read("ai_requests").to_pylist()
    assert [(r["request_id"], r["eth_address"]) for r in reqs] == [(rid, W1)]


def test_the_check_reads_the_snapshots_it_is_given(tmp_path: Path) -> None:
    """A plan passes the snapshots it pays from; a later commit is not in that check."""
    events, state = stores(tmp_path)
    eid = str(uuid.uuid4())
    put_file(events, TC, [job(TC, T0, W1, 10, eid)])
    run(events, state, TC)
    v1 = SnapshotStore(state, TC).latest()
    put_file(events, TC, [job(TC, T0 + timedelta(hours=2), W1, 11, eid)])
    run(events, state, TC)
    pinned = find_duplicates(state, [TC], pinned={str(TC): v1})
    assert pinned.versions == {str(TC): 1} and pinned.unresolved == []
    assert find_duplicates(state, [TC]).versions == {str(TC): 2}


def test_a_duplicate_across_partitions_is_found(tmp_path: Path) -> None:
    events, state = stores(tmp_path)
    other = Partition("transcode", "eu-central")
    eid = str(uuid.uuid4())
    put_file(events, TC, [job(TC, T0, W1, 10**12, eid)])
    put_file(events, other, [job(other, T0 + timedelta(hours=1), W2, 10**12, eid)])
    run(events, state, TC)
    run(events, state, other)
    found = find_duplicates(state, [TC, other])
    assert [d.event_id for d in found.unresolved] == [eid]
    # The occurrence committed later (eu-central) is the one set aside.
    resolve_duplicates(state, [TC, other], found)
    assert balances_of(state, TC) == {W1: expected_balance([10**12])}
    assert balances_of(state, other) == {}


# -- 2. key window and clock --------------------------------------------------------------


def test_an_event_outside_its_files_key_window_is_rejected_with_the_reason(
    tmp_path: Path,
) -> None:
    events, state = stores(tmp_path)
    inside = job(TC, T0, W1, 100)
    outside = job(TC, T0 + timedelta(hours=3), W1, 200)
    key = object_key(TC, dt(T0), dt(T0 + timedelta(seconds=30)))
    put_file(events, TC, [inside, outside], key=key)
    report = run(events, state, TC)
    assert report.counts.events_accepted == 1 and report.counts.events_rejected == 1
    (r,) = rejected(state, TC)
    assert r["event_id"] == outside["ID"]
    assert r["reason"] == (
        "DT 2026-10-03T13:00:00Z is outside its file's key window "
        "[2026-10-03T10:00:00Z, 2026-10-03T10:00:30Z]"
    )
    assert balances_of(state, TC) == {W1: expected_balance([100])}


def test_a_file_whose_key_has_no_time_window_is_quarantined(tmp_path: Path) -> None:
    events, state = stores(tmp_path)
    put_file(events, TC, [job(TC, T0, W1, 100)], key=f"{TC.path}/upload.json")
    report = run(events, state, TC)
    assert report.counts.files_quarantined == 1 and report.counts.events_read == 0
    q = SnapshotStore(state, TC).latest().read("quarantined_files").to_pylist()
    assert "key does not name the file's time window" in q[0]["reason"]


def test_a_key_naming_an_impossible_time_is_quarantined_and_the_batch_goes_on(
    tmp_path: Path,
) -> None:
    events, state = stores(tmp_path)
    put_file(
        events,
        TC,
        [job(TC, T0, W1, 100)],
        key=f"{TC.path}/us-west-transcode-20261399T000000Z_20261399T000001Z.json",
    )
    put_file(events, TC, [job(TC, T0, W2, 200)])
    report = run(events, state, TC)
    assert report.counts.files_quarantined == 1 and report.counts.events_accepted == 1
    assert balances_of(state, TC) == {W2: expected_balance([200])}


def test_a_far_future_event_is_rejected_and_cannot_move_the_partition_clock(
    tmp_path: Path,
) -> None:
    events, state = stores(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    t = now - timedelta(hours=2)
    rid = str(uuid.uuid4())
    # An AI job whose job-received comes in a later file, and one connect a year ahead.
    proc = ev(AI, t, "job-processed",
              {"computeUnits": 5, "fees": 4_000_000, "modelID": "m", "pipeline": "p",
               "pricePerComputeUnit": 1, "requestID": rid, "responseTime": 10**9})  # fmt: skip
    put_file(events, AI, [proc, connected(AI, t, W2, "10.0.0.2:1")])
    ahead = now + timedelta(days=365)
    put_file(events, AI, [connected(AI, ahead, W1, "10.0.0.1:1")])
    report = run(events, state, AI)
    assert report.counts.events_rejected == 1
    (r,) = rejected(state, AI)
    assert r["reason"].startswith(f"DT {dt(ahead)} is more than 1:00:00 ahead of the ingest clock")
    snap = SnapshotStore(state, AI).latest()
    mark = datetime.fromisoformat(snap.manifest.properties["watermark"])
    assert mark <= now + timedelta(minutes=1)
    assert snap.manifest.properties["pending_ai_jobs"] == 1  # not written off
    perf = performance(snap)
    assert perf.as_of == mark
    # The job-received arrives: the worker is credited.
    recv = ev(AI, t + timedelta(seconds=2), "job-received",
              {"ethAddress": W1, "modelID": "m", "pipeline": "p", "requestID": rid})  # fmt: skip
    put_file(events, AI, [recv])
    run(events, state, AI)
    assert balances_of(state, AI) == {W1: expected_balance([4_000_000])}


def test_a_clock_already_pushed_a_year_ahead_is_brought_back(tmp_path: Path) -> None:
    """State written before the bound (one far-future event moved the watermark) heals at
    the next batch, so the windows and the AI time-to-live work again."""
    events, state = stores(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    put_file(events, TC, [job(TC, now - timedelta(hours=3), W1, 100)])
    run(events, state, TC)
    snaps = SnapshotStore(state, TC)
    txn = snaps.begin(snaps.latest(), "as-the-old-code-left-it")
    txn.set_properties(watermark=(now + timedelta(days=365)).isoformat())
    txn.commit()
    put_file(events, TC, [job(TC, now - timedelta(hours=2), W1, 100)])
    run(events, state, TC)
    mark = datetime.fromisoformat(snaps.latest().manifest.properties["watermark"])
    assert now - timedelta(hours=2) <= mark <= now + timedelta(minutes=5)
    jobs = {r["window"]: r["jobs"] for r in performance(snaps.latest()).transcode.to_pylist()}
    assert jobs == {"all": 2, "24h": 2, "7d": 2}


def test_an_event_within_the_skew_is_accepted_but_the_clock_stops_at_the_ingest_time(
    tmp_path: Path,
) -> None:
    events, state = stores(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    soon = now + timedelta(minutes=30)
    put_file(events, TC, [job(TC, soon, W1, 100)])
    report = run(events, state, TC)
    assert report.counts.events_accepted == 1
    snap = SnapshotStore(state, TC).latest()
    mark = datetime.fromisoformat(snap.manifest.properties["watermark"])
    assert now <= mark < soon


# -- 3. connections in event-time order ---------------------------------------------------


def test_a_late_connect_before_an_ingested_reset_is_closed_by_it(tmp_path: Path) -> None:
    events, state = stores(tmp_path)
    reset_at = T0 + timedelta(hours=1)
    put_file(events, TC, [connected(TC, T0, W1, "10.0.0.1:1")])
    put_file(events, TC, [ev(TC, reset_at, "orchestrator-reset", {})])
    run(events, state, TC)
    late = connected(TC, T0 + timedelta(minutes=30), W2, "10.0.0.2:1")
    put_file(events, TC, [late])
    run(events, state, TC)
    snap = SnapshotStore(state, TC).latest()
    conns = {r["connection"]: r for r in snap.read("connections").to_pylist()}
    assert conns["10.0.0.2:1"]["disconnected_at"] == reset_at
    assert conns["10.0.0.2:1"]["close_reason"] == "orchestrator-reset"
    assert conns["10.0.0.1:1"]["disconnected_at"] == reset_at
    workers = {r["eth_address"]: r for r in snap.read("workers").to_pylist()}
    assert workers[W2]["active"] is False and workers[W2]["connection_count"] == 1
    assert workers[W1]["active"] is False and workers[W1]["connection_count"] == 1


def reference_connections(all_events: list[dict]) -> list[tuple]:
    """The spec's meaning, replayed plainly in true order (DT, then file key, then index)."""
    ordered = sorted(all_events, key=lambda e: (e["DT"], e["_key"], e["_i"]))
    open_: dict[tuple[str, str], str] = {}
    rows: list[tuple] = []
    for e in ordered:
        p = e["Payload"]
        if e["EventType"] == "orchestrator-reset":
            for k, since in open_.items():
                rows.append((k[0], k[1], since, e["DT"], "orchestrator-reset"))
            open_.clear()
        elif e["EventType"] == "worker-connected":
            open_.setdefault((p["ethAddress"], p["connection"]), e["DT"])
        elif e["EventType"] == "worker-disconnected":
            k = (p["ethAddress"], p["connection"])
            if k in open_:
                rows.append((k[0], k[1], open_.pop(k), e["DT"], "worker-disconnected"))
    rows += [(k[0], k[1], since, None, None) for k, since in open_.items()]
    return sorted(rows, key=lambda r: tuple("" if x is None else x for x in r))


# Files up to two days apart arriving in any order: every run lists them all (a narrower
# window would leave the latest-arriving ones to the daily sweep, tests/test_discovery.py).
WIDE = Window(lookback=timedelta(days=30))


@pytest.mark.parametrize("seed", range(8))
def test_connections_equal_one_replay_in_event_time_order_whatever_the_arrival(
    tmp_path: Path, seed: int
) -> None:
    import random

    rng = random.Random(seed)
    files = []
    for f in range(10):
        # Files hours and days apart, and pairs of files that share seconds (ties that
        # only the file key and position order).
        start = T0 + timedelta(hours=11 * (f // 2), seconds=2 * (f % 2))
        evs = []
        for i in range(rng.randint(1, 5)):
            t = start + timedelta(seconds=2 * i)
            w, c = rng.choice([(W1, "10.0.0.1:1"), (W2, "10.0.0.2:1"), (W1, "10.0.0.3:1")])
            kind = rng.choice(["worker-connected"] * 3 + ["worker-disconnected"] * 2 + ["r"])
            evs.append(
                ev(TC, t, "orchestrator-reset", {}) if kind == "r" else connected(TC, t, w, c, kind)
            )
        files.append(evs)
    events, state = stores(tmp_path)
    order = list(range(len(files)))
    rng.shuffle(order)
    flat = []
    for n, i in enumerate(order):
        key = put_file(events, TC, files[i])
        flat += [dict(e, _key=key, _i=j) for j, e in enumerate(files[i])]
        if n % 3 == 2:
            run(events, state, TC, window=WIDE)
    run(events, state, TC, window=WIDE)
    snap = SnapshotStore(state, TC).latest()
    got = sorted(
        (
            r["eth_address"],
            r["connection"],
            dt(r["connected_at"]),
            dt(r["disconnected_at"]) if r["disconnected_at"] else None,
            r["close_reason"],
        )
        for r in snap.read("connections").to_pylist()
    )
    assert got == reference_connections(flat)
    workers = snap.read("workers").to_pylist()
    ref = reference_connections(flat)
    still = {r[0] for r in ref if r[3] is None}
    assert {w["eth_address"] for w in workers if w["active"]} == still
    made = {w: sum(1 for r in ref if r[0] == w) for w in (W1, W2)}
    assert {w["eth_address"]: w["connection_count"] for w in workers} == {
        w: n for w, n in made.items() if w in {x["eth_address"] for x in workers}
    }
    days = {s for s in snap.slices("connections") if s.startswith("closed-")}
    assert len(days) >= 2  # closed rows really are split by day


# -- 4. jobs without a response time -------------------------------------------------------


def test_a_job_without_response_time_is_paid_and_excluded_from_timing(tmp_path: Path) -> None:
    events, state = stores(tmp_path)
    put_file(
        events,
        TC,
        [
            job(TC, T0, W1, 1000, responseTime=None),  # the field absent
            job(TC, T0 + timedelta(seconds=1), W1, 3000, responseTime=0),
            job(TC, T0 + timedelta(seconds=2), W2, 5000),
        ],
    )
    report = run(events, state, TC)
    assert report.counts.events_accepted == 3 and report.counts.events_rejected == 0
    assert balances_of(state, TC) == {
        W1: expected_balance([1000, 3000]),
        W2: expected_balance([5000]),
    }
    rows = {
        r["eth_address"]: r
        for r in performance(SnapshotStore(state, TC).latest(), ("all",)).transcode.to_pylist()
    }
    assert rows[W1]["jobs"] == 2 and rows[W1]["excluded_jobs"] == 2
    assert rows[W1]["timed_jobs"] == 0  # never null
    assert rows[W2]["timed_jobs"] == 1 and rows[W2]["excluded_jobs"] == 0


def test_an_ai_job_without_response_time_is_paid_and_excluded(tmp_path: Path) -> None:
    events, state = stores(tmp_path)
    rid = str(uuid.uuid4())
    recv = {"ethAddress": W1, "modelID": "m", "pipeline": "p", "requestID": rid}
    proc = {"computeUnits": 5, "fees": 8000, "modelID": "m", "pipeline": "p",
            "pricePerComputeUnit": 1, "requestID": rid}  # fmt: skip
    put_file(events, AI, [ev(AI, T0, "job-received", recv), ev(AI, T0, "job-processed", proc)])
    run(events, state, AI)
    assert balances_of(state, AI) == {W1: expected_balance([8000])}
    (row,) = performance(SnapshotStore(state, AI).latest(), ("all",)).ai.to_pylist()
    assert row["jobs"] == 1 and row["excluded_jobs"] == 1 and row["timed_jobs"] == 0


# -- 5. a long backfill in one batch -------------------------------------------------------


def test_a_batch_spanning_many_hours_and_days_lands_in_its_slices(tmp_path: Path) -> None:
    events, state = stores(tmp_path)
    fees = []
    for h in range(0, 24 * 5, 7):  # five days, every seventh hour
        t = T0 + timedelta(hours=h)
        put_file(events, TC, [job(TC, t, W1, 10 + h)])
        fees.append(10 + h)
    run(events, state, TC, max_files=1000)
    snap = SnapshotStore(state, TC).latest()
    assert balances_of(state, TC) == {W1: expected_balance(fees)}
    days = {f.slice for f in snap.files("events")}
    assert days == {f"{T0 + timedelta(hours=h):%Y-%m-%d}" for h in range(0, 120, 7)}
    hours = {f.slice for f in snap.files("event_ids")}
    assert hours == {f"{T0 + timedelta(hours=h):%Y%m%d%H}" for h in range(0, 120, 7)}
    for f in snap.files("events"):
        t = snap.read("events", slices=[f.slice]).column("event_time")
        assert {f"{x:%Y-%m-%d}" for x in t.to_pylist()} == {f.slice}
    assert pa.types.is_timestamp(snap.read("events").schema.field("event_time").type)


def test_the_cli_lists_and_resolves_a_repeat_over_a_real_s3_server(s3_bucket: str) -> None:
    """`openpool ingest`, `duplicates` and `balances` as an operator runs them, on moto S3."""
    import json
    import os
    import subprocess
    import sys

    from openpool.storage import S3Store

    openpool = str(Path(sys.executable).with_name("openpool"))
    events = S3Store(f"s3://{s3_bucket}/events")
    eid = str(uuid.uuid4())
    put_file(events, TC, [job(TC, T0, W1, 4_000_000_001, eid)])
    env = dict(
        os.environ,
        OPENPOOL_EVENTS_URI=f"s3://{s3_bucket}/events",
        OPENPOOL_STATE_URI=f"s3://{s3_bucket}/state",
        OPENPOOL_PARTITIONS=str(TC),
    )
    part = ["--node-type", TC.node_type, "--region", TC.region]

    def cli(*argv: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [openpool, *argv], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode in ok, done.stderr
        return done

    cli("ingest", *part)
    later = T0 + timedelta(hours=6)
    put_file(events, TC, [job(TC, later, W2, 9), job(TC, later, W1, 7, eid)])
    cli("ingest", *part)
    listed = cli("duplicates", "--format", "json", ok=(1,))  # exit 1: a repeat stands
    rows = json.loads(listed.stdout)
    assert [(r["event_id"], r["hour"], r["counts"]) for r in rows] == [
        (eid, "2026100310", True),
        (eid, "2026100316", False),
    ]
    assert "1 unresolved repeat(s)" in listed.stderr
    cli("duplicates", "--resolve", "--format", "json")
    bal = {
        r["eth_address"]: r for r in json.loads(cli("balances", *part, "--format", "json").stdout)
    }
    assert bal[W1]["total_fees_wei"] == 4_000_000_001
    assert bal[W1]["worker_earnings_wei"] == 4_000_000_001 - 4_000_000_001 // 4
    assert bal[W2]["total_fees_wei"] == 9
    assert json.loads(cli("duplicates", "--format", "json").stdout) == []


@pytest.mark.slow
def test_the_connection_log_and_closed_days_stay_a_few_files_per_day(tmp_path: Path) -> None:
    """One commit a few minutes apart all day: each day slice is rewritten as one file
    once it holds 16, so the manifest does not grow by a file per commit per table."""
    events, state = stores(tmp_path)
    for i in range(40):
        t = T0 + timedelta(minutes=5 * i)
        c = f"10.0.0.{i}:1"
        put_file(
            events, TC, [connected(TC, t, W1, c), connected(TC, t, W1, c, "worker-disconnected")]
        )
        run(events, state, TC)
    snap = SnapshotStore(state, TC).latest()
    assert len(snap.files("connection_events", [f"{T0:%Y-%m-%d}"])) <= 16
    assert len(snap.files("connections", [f"closed-{T0:%Y-%m-%d}"])) <= 16
    assert snap.read("connection_events").num_rows == 80
    closed = snap.read("connections").to_pylist()
    assert len(closed) == 40 and all(r["close_reason"] == "worker-disconnected" for r in closed)


def test_the_dashboard_lists_a_repeat_and_marks_the_workers_it_holds(tmp_path: Path) -> None:
    from openpool.overview import DashboardReader, Sources

    events, state = stores(tmp_path)
    eid = str(uuid.uuid4())
    put_file(events, TC, [job(TC, T0, W1, 10**15, eid), job(TC, T0, W2, 10**15)])
    run(events, state, TC)
    put_file(events, TC, [job(TC, T0 + timedelta(hours=5), W1, 10**15, eid)])
    run(events, state, TC)
    src = Sources(state, LocalStore(tmp_path / "metrics"), (TC,), 10**16, 42161, None)
    reader = DashboardReader()
    d = reader.read(src)
    assert [r["event_id"] for r in d.repeats] == [eid]
    assert any(eid in w and W1 in w for w in d.warnings)
    status = {r["eth_address"]: r["status"] for r in d.partitions[0].summary.workers}
    assert "held: repeated event ID" in status[W1]
    assert "held: repeated event ID" not in status[W2]
    resolve_duplicates(state, [TC], find_duplicates(state, [TC]))
    d = reader.read(src)  # a new version: checked again, not taken from the cache
    assert d.repeats == [] and not any(eid in w for w in d.warnings)
