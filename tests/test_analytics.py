"""Analytics: exact quantiles and ranks against brute force, summaries, exports, the CLI."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from openpool.analytics.export_models import WorkerPerformanceExport, WorkerSummaryExport
from openpool.analytics.exports import summary_json
from openpool.analytics.performance import performance
from openpool.analytics.performance.quantiles import grouped_quantiles, ranks
from openpool.analytics.refresh import export_keys, refresh
from openpool.analytics.summary import pool_summary, worker_summary
from openpool.ingest.run import ingest
from openpool.money import eth
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from openpool.tables import CONNECTIONS, EVENTS
from openpool.traffic import Mess, generate, write

RATE = Fraction(1, 4)
T0 = datetime(2026, 10, 1, tzinfo=UTC)
TC = Partition("transcode", "us-west")
A = "0x" + "a" * 40
B = "0x" + "b" * 40
C = "0x" + "c" * 40


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["x", "y", "z"]), st.integers(0, 5)),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0]),
)
def test_grouped_quantiles_equal_numpy_per_group(rows, q) -> None:
    groups = pa.table({"g": [g for g, _ in rows]})
    values = pa.array([float(v) for _, v in rows])
    out = grouped_quantiles(groups, values, {"q": q}).to_pylist()
    for r in out:
        vals = [float(v) for g, v in rows if g == r["g"]]
        assert r["n"] == len(vals)
        assert r["q"] == pytest.approx(float(np.quantile(vals, q)), abs=1e-12)


def test_ranks_share_the_best_rank_on_ties() -> None:
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0]), descending=True).tolist() == [1, 4, 1, 3]
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0]), descending=False).tolist() == [3, 1, 3, 2]


def _event(i: int, worker: str, rt_ms: int | None, dur: int = 2000, fees: int = 10, **kw):
    base = {n: None for n in EVENTS.names}
    base.update(
        event_id=f"00000000-0000-4000-8000-{i:012d}",
        event_time=T0 + timedelta(minutes=i),
        event_type="job-processed",
        node_type="transcode",
        region="us-west",
        schema_version=1,
        source_key="k",
        source_index=i,
        eth_address=worker,
        fees_wei=Decimal(fees),
        compute_units=1000,
        duration_ms=dur,
        response_time_ns=None if rt_ms is None else rt_ms * 1_000_000,
        payload_json="{}",
        content_sha256=str(i),
    )
    base.update(kw)
    return base


def _snapshot_with(tmp_path: Path, events: list[dict]):
    snaps = SnapshotStore(LocalStore(tmp_path / "s"), TC)
    txn = snaps.begin(None, "t")
    txn.append("events", pa.Table.from_pylist(events, schema=EVENTS), slice_="2026-10-01")
    txn.set_properties(watermark=max(e["event_time"] for e in events).isoformat())
    return txn.commit()


def test_transcode_performance_against_brute_force_with_garbage_and_ties(tmp_path) -> None:
    spec = {
        A: [1000, 2000, 3000, 4000, 0, None],  # two garbage response times
        B: [1000, 2000, 3000, 4000],  # the same speeds as A: a tie
        C: [500],  # a single job
    }
    events, i = [], 0
    for w, rts in spec.items():
        for rt in rts:
            events.append(_event(i, w, rt))
            i += 1
    snap = _snapshot_with(tmp_path, events)
    perf = performance(snap, ("all",), min_timed_jobs=1)  # rank every timed worker here
    rows = {r["eth_address"]: r for r in perf.transcode.to_pylist()}
    for w, rts in spec.items():
        good = [rt for rt in rts if rt]
        r = rows[w]
        assert r["jobs"] == len(rts) and r["excluded_jobs"] == len(rts) - len(good)
        assert r["fees_wei"] == Decimal(10 * len(rts))
        assert r["response_ms_p50"] == pytest.approx(np.quantile(good, 0.5))
        assert r["response_ms_p99"] == pytest.approx(np.quantile(good, 0.99))
        rtf = [2000 / rt for rt in good]
        assert r["rtf_p50"] == pytest.approx(np.quantile(rtf, 0.5))
        assert r["rtf_p10"] == pytest.approx(np.quantile(rtf, 0.1))
        assert r["compute_units_per_s_p50"] == pytest.approx(
            np.quantile([1000 / (rt / 1000) for rt in good], 0.5)
        )
    assert rows[C]["rank"] == 1 and rows[C]["percentile"] == 100.0  # fastest: 4x real time
    assert rows[A]["rank"] == rows[B]["rank"] == 2  # tie shares the better rank
    assert rows[A]["percentile"] == rows[B]["percentile"] == 50.0


def test_a_worker_below_the_minimum_of_timed_jobs_is_unranked_everywhere(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19: a rank needs ``OPENPOOL_RANK_MIN_TIMED_JOBS`` timed jobs; below it a worker is
    *unranked* (rank null, ``ranked`` false) in the table, the export and the CLI -- it takes
    no rank from the others, and no ``-1`` is ever shown as a number."""
    spec = {
        A: [1000] * 5,  # 5 timed jobs
        B: [250] * 3 + [0, None, 0, None],  # the fastest, but only 3 timed jobs (7 jobs)
        C: [2000] * 6,
    }
    events, i = [], 0
    for w, rts in spec.items():
        for rt in rts:
            events.append(_event(i, w, rt))
            i += 1
    snap = _snapshot_with(tmp_path, events)
    rows = {
        r["eth_address"]: r
        for r in performance(snap, ("all",), min_timed_jobs=5).transcode.to_pylist()
    }
    assert (rows[A]["rank"], rows[A]["ranked"], rows[A]["percentile"]) == (1, True, 100.0)
    assert (rows[C]["rank"], rows[C]["ranked"]) == (2, True)
    assert (rows[B]["rank"], rows[B]["ranked"], rows[B]["percentile"]) == (None, False, None)
    assert rows[B]["timed_jobs"] == 3 and rows[B]["rtf_p50"] == 8.0  # measured, just not ranked
    everyone = {r["eth_address"]: r["rank"] for r in performance(snap, ("all",), min_timed_jobs=1)
                .transcode.to_pylist()}  # fmt: skip
    assert everyone == {B: 1, A: 2, C: 3}

    monkeypatch.setenv("OPENPOOL_STATE_URI", str(tmp_path / "s"))
    monkeypatch.setenv("OPENPOOL_METRICS_URI", str(tmp_path / "m"))
    monkeypatch.setenv("OPENPOOL_RANK_MIN_TIMED_JOBS", "5")
    from openpool.cli import main

    argv = ["performance", "--node-type", "transcode", "--region", "us-west"]
    assert main([*argv, "--format", "json"]) == 0
    cli = {r["eth_address"]: r for r in json.loads(capsys.readouterr().out)}
    assert (cli[B]["rank"], cli[B]["ranked"]) == (None, False) and cli[A]["rank"] == 1
    assert main([*argv, "--format", "table"]) == 0
    table = capsys.readouterr().out
    line_b = next(ln for ln in table.splitlines() if B in ln)
    assert "unranked" in line_b and "-1" not in table
    assert "unranked" not in next(ln for ln in table.splitlines() if A in ln)

    assert main(["analytics", "--node-type", "transcode", "--region", "us-west"]) == 0
    doc = json.loads((tmp_path / "m" / "us-west" / "transcode" / "worker_performance.json")
                     .read_text())  # fmt: skip
    WorkerPerformanceExport.model_validate(doc)
    exported = {r["eth_address"]: r for r in doc["transcode_performance"]}
    assert (exported[B]["rank"], exported[B]["ranked"]) == (None, False)
    assert (exported[C]["rank"], exported[C]["ranked"]) == (2, True)


def test_windows_cut_by_event_time(tmp_path) -> None:
    events = [_event(i * 60 * 24, A, 1000) for i in range(10)]  # one job a day for 10 days
    for e in events:
        e["event_time"] = T0 + timedelta(days=int(e["source_index"]) // (60 * 24))
    snaps = SnapshotStore(LocalStore(tmp_path / "s"), TC)
    txn = snaps.begin(None, "t")
    for e in events:
        txn.append(
            "events", pa.Table.from_pylist([e], schema=EVENTS), slice_=f"{e['event_time']:%Y-%m-%d}"
        )
    txn.set_properties(watermark=events[-1]["event_time"].isoformat())
    snap = txn.commit()
    perf = performance(snap).transcode.to_pylist()
    jobs = {r["window"]: r["jobs"] for r in perf}
    assert jobs == {"all": 10, "24h": 1, "7d": 7}


def _ingested(tmp_path: Path, part: Partition, seed: int = 1):
    files = generate(
        part,
        T0,
        timedelta(hours=3),
        workers=5,
        events_per_second=1,
        flush_seconds=600,
        seed=seed,
        mess=Mess(split_ai_jobs=0.3, resets=1),
    )
    ev, state = LocalStore(tmp_path / f"e-{part.slug}"), LocalStore(tmp_path / "state")
    write(files, ev)
    ingest(part, ev, state, RATE)
    return state, SnapshotStore(state, part).latest()


def test_ai_performance_ranks_within_each_model_by_latency(tmp_path) -> None:
    part = Partition("ai", "us-central")
    _, snap = _ingested(tmp_path, part)
    ai = performance(snap, ("all",), min_timed_jobs=1).ai
    events = snap.read("events", schema=EVENTS).to_pylist()
    credits = {r["event_id"]: r["eth_address"] for r in snap.read("ai_credits").to_pylist()}
    by: dict[tuple, list[float]] = {}
    for e in events:
        if e["event_type"] == "job-processed" and e["event_id"] in credits:
            by.setdefault((credits[e["event_id"]], e["pipeline"], e["model_id"]), []).append(
                e["response_time_ns"] / 1e9
            )
    rows = ai.to_pylist()
    assert len(rows) == len(by) > 3
    for r in rows:
        lat = by[(r["eth_address"], r["pipeline"], r["model_id"])]
        assert r["jobs"] == len(lat)
        assert r["latency_s_p90"] == pytest.approx(np.quantile(lat, 0.9))
        same_model = [
            x for x in rows if (x["pipeline"], x["model_id"]) == (r["pipeline"], r["model_id"])
        ]
        better = sum(1 for x in same_model if x["latency_s_p50"] < r["latency_s_p50"])
        assert r["rank"] == better + 1


def test_summary_aggregates_come_from_the_rows_and_pool_merges_workers(tmp_path) -> None:
    parts = [Partition("transcode", "us-west"), Partition("transcode", "oceania")]
    summaries, props = [], []
    for p in parts:
        _state, snap = _ingested(tmp_path, p, seed=7)  # same seed: the same workers in both
        s = worker_summary(snap, p, threshold_wei=10**15)
        assert s.aggregates["workers"] == len(s.workers) > 0
        assert s.aggregates["total_fees_wei"] == sum(r["total_fees_wei"] for r in s.workers)
        assert s.aggregates["active_workers"] == sum(r["active"] for r in s.workers)
        for r in s.workers:
            assert r["payable_wei"] == r["worker_earnings_wei"] - r["paid_wei"] - r["in_flight_wei"]
            assert r["payout_due"] == (r["payable_wei"] >= 10**15)
        summaries.append(s)
        props.append(snap.manifest.properties)
    pool = pool_summary(summaries, props)
    both = {r["eth_address"] for r in summaries[0].workers} & {
        r["eth_address"] for r in summaries[1].workers
    }
    assert both and len(pool.workers) == len(
        {r["eth_address"] for s in summaries for r in s.workers}
    )
    for r in pool.workers:
        if r["eth_address"] in both:
            assert set(r["partitions"]) == {str(p) for p in parts}
            assert r["total_fees_wei"] == sum(
                s_["total_fees_wei"] for s_ in r["partitions"].values()
            )
    assert pool.aggregates["total_fees_wei"] == sum(
        s.aggregates["total_fees_wei"] for s in summaries
    )


def _valid(model: type[BaseModel], raw: bytes) -> dict:
    """The export's document, once its model (strict, from the file's bytes) and the
    model's JSON Schema (what a dashboard developer validates with) both accept it."""
    model.model_validate_json(raw)
    doc = json.loads(raw)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER  # date-time: rfc3339-validator
    jsonschema.validate(doc, model.model_json_schema(), format_checker=checker)
    return doc


def test_exports_validate_and_carry_wei_as_integers(tmp_path) -> None:
    for part in (Partition("ai", "us-central"), TC):
        state, _snap = _ingested(tmp_path, part)
        metrics = LocalStore(tmp_path / "metrics")
        refresh(part, state, metrics, threshold_wei=10**15)
        skey, pkey = export_keys(part)
        summ = _valid(WorkerSummaryExport, metrics.get(skey))
        perf = _valid(WorkerPerformanceExport, metrics.get(pkey))
        assert perf["transcode_performance" if part == TC else "ai_performance"]
        w = next(iter(summ["data"]["workers"].values()))
        assert (
            isinstance(w["total_fees"], int)
            and Decimal(w["pending_eth"]) * 10**18 == w["pending_fees"]
        )
        assert skey == f"{part.region}/{part.node_type}/worker_summary.json"


@pytest.fixture(scope="module")
def ai_exports(tmp_path_factory) -> tuple[bytes, bytes]:
    """An AI partition's two exports as written (summary, performance)."""
    tmp_path, part = tmp_path_factory.mktemp("exports"), Partition("ai", "us-central")
    state, _snap = _ingested(tmp_path, part)
    metrics = LocalStore(tmp_path / "metrics")
    refresh(part, state, metrics, threshold_wei=10**15)
    skey, pkey = export_keys(part)
    return metrics.get(skey), metrics.get(pkey)


_DELETE, _WORKER = object(), object()  # values: remove the key; a copy of a valid worker
_A, _R = "{address}", "{ranking}"  # path parts: the first worker; the first ranking


@pytest.mark.parametrize(
    ("which", "path", "value"),
    [
        ("summary", ("data", "workers", _A, "total_fees"), 1.5),  # wei are integers
        ("summary", ("data", "workers", _A, "total_fees"), -1),  # unsigned wei are >= 0
        ("summary", ("data", "workers", _A, "total_fees_paid"), "10"),
        ("summary", ("data", "workers", _A, "payment_due"), _DELETE),  # every key required
        ("summary", ("data", "workers", _A, "last_seen"), "yesterday"),  # RFC 3339 times
        ("summary", ("data", "workers", _A, "last_seen"), "2026-10-01T00:00:00"),  # offset
        ("summary", ("data", "workers", _A, "pending_eth"), "1e-3"),  # exact decimal ETH
        ("summary", ("data", "workers", _A, "connections", 0, "active"), "yes"),
        ("summary", ("data", "workers", _A, "memo"), "x"),  # no key the model does not name
        ("summary", ("data", "workers", "0xnot-an-address"), _WORKER),
        ("summary", ("data", "aggregates", "paid_wei"), -5),
        ("summary", ("data", "aggregates", "extra_wei"), 5),
        ("summary", ("data", "node_type"), "gpu"),
        ("summary", ("export_timestamp",), _DELETE),
        ("performance", ("ai_performance", 0, "window"), "1h"),
        ("performance", ("ai_performance", 0, "fees_wei"), 2.5),
        ("performance", ("ai_performance", 0, "rank"), 0),
        ("performance", ("ai_performance", 0, "eth_address"), "0x1234"),
        ("performance", ("ai_performance", 0, "latency_s_p50"), "fast"),
        ("performance", ("ai_performance", 0, "pipeline"), _DELETE),
        ("performance", ("as_of",), _DELETE),
        ("performance", ("ai_model_pipeline_rankings", _R, 0, "rank"), None),
    ],
)
def test_the_models_and_their_schemas_refuse_a_wrong_export(
    ai_exports: tuple[bytes, bytes], which: str, path: tuple, value: object
) -> None:
    """Each constraint holds in the model (what exports.py checks before writing) and in
    its generated JSON Schema (what the README points dashboard developers to)."""
    summ, perf = (json.loads(raw) for raw in ai_exports)
    doc = summ if which == "summary" else perf
    model = WorkerSummaryExport if which == "summary" else WorkerPerformanceExport
    address = next(iter(summ["data"]["workers"]))
    worker = summ["data"]["workers"][address]
    worker["connections"] = [
        {"connection": "c", "connected_at": None, "disconnected_at": None, "active": True}
    ]
    model.model_validate(doc)  # as exported (with a connection): accepted
    names = {_A: address, _R: next(iter(perf["ai_model_pipeline_rankings"]))}
    *parents, last = (names.get(p, p) if isinstance(p, str) else p for p in path)
    at: Any = doc
    for key in parents:
        at = at[key]
    if value is _DELETE:
        del at[last]
    else:
        at[last] = copy.deepcopy(worker) if value is _WORKER else value
    with pytest.raises(ValidationError):
        model.model_validate(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            doc,
            model.model_json_schema(),
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )


def test_wei_beyond_64_bits_stay_exact_integers_and_a_float_wei_is_refused(
    ai_exports: tuple[bytes, bytes],
) -> None:
    summ = json.loads(ai_exports[0])
    w = next(iter(summ["data"]["workers"].values()))
    w["total_fees"] = w["pending_fees"] = 2**130 + 1
    w["pending_eth"] = "1"  # the model checks the form, not the arithmetic
    raw = json.dumps(summ).encode()
    assert WorkerSummaryExport.model_validate_json(raw).data.workers  # arbitrary precision
    assert b"1361129467683753853853498429727072845825" in raw  # 2**130 + 1, digit for digit
    w["total_fees"] = 1.0  # json.dumps writes 1.0: not an integer in the file's bytes
    with pytest.raises(ValidationError, match="total_fees"):
        WorkerSummaryExport.model_validate(summ)
    with pytest.raises(ValidationError, match="Input should be a valid integer"):
        WorkerSummaryExport.model_validate_json(json.dumps(summ))


def test_a_wrong_export_fails_before_it_is_written_naming_the_field(tmp_path) -> None:
    state, snap = _ingested(tmp_path, TC)
    s = worker_summary(snap, TC, threshold_wei=10**15)
    s.workers[0]["paid_wei"] = -1  # a bug upstream: a negative paid amount
    addr = s.workers[0]["eth_address"]
    with pytest.raises(ValidationError, match=re.escape(f"data.workers.{addr}.total_fees_paid")):
        summary_json(s, TC, T0, CONNECTIONS.empty_table())
    metrics = LocalStore(tmp_path / "metrics")
    with pytest.raises(ValidationError, match="export_timestamp"):  # no UTC offset
        refresh(TC, state, metrics, threshold_wei=10**15, now=datetime(2026, 10, 2))
    assert not metrics.exists(export_keys(TC)[0]) and not metrics.exists(export_keys(TC)[1])


def test_eth_strings_are_exact() -> None:
    assert eth(1) == "0.000000000000000001"
    assert eth(10**18) == "1"
    assert eth(1234500000000000000) == "1.2345"
    assert eth(0) == "0"


def test_eth_strings_are_exact_to_the_last_of_38_digits() -> None:
    """decimal's default 28-digit context rounded every amount above ~10**28 wei."""
    assert eth(10**38 - 1) == "99999999999999999999.999999999999999999"
    assert eth(2**100 + 1) == "1267650600228.229401496703205377"
    assert eth(-(10**30) - 7) == "-1000000000000.000000000000000007"


@pytest.mark.slow
def test_cli_performance_and_summary(tmp_path) -> None:
    _state, snap = _ingested(tmp_path, TC)
    env = dict(
        os.environ,
        OPENPOOL_STATE_URI=str(tmp_path / "state"),
        OPENPOOL_METRICS_URI=str(tmp_path / "m"),
    )
    cli = str(Path(sys.executable).with_name("openpool"))
    args = ["--node-type", "transcode", "--region", "us-west", "--format", "json"]
    perf = json.loads(
        subprocess.run(
            [cli, "performance", *args, "--window", "24h"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert {r["window"] for r in perf} == {"24h"} and all(
        isinstance(r["fees_wei"], int) for r in perf
    )
    summ = json.loads(
        subprocess.run(
            [cli, "summary", *args], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    assert summ["aggregates"]["workers"] == len(summ["workers"]) > 0
    pool = json.loads(
        subprocess.run(
            [cli, "summary", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert pool["partition"] == "pool" and pool["aggregates"]["workers"] == len(summ["workers"])
    out = subprocess.run(
        [cli, "analytics", "--node-type", "transcode", "--region", "us-west"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["snapshot_version"] == snap.version
