"""``openpool.frames`` (issue 21): every frame against the CLI's JSON for the same snapshot.

One pool on a real moto S3 server: two ingests of hand-written wire-format files (so two
versions to travel between), amounts past 2**64 in balances, performance and payments, an
invalid event set aside, and a hot wallet's ledger with one confirmed and one in-flight
payment. Each frame must hold exactly what ``openpool`` prints as JSON for that version,
the events frame also what the raw files say, and only the slices asked for are read.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from openpool import frames
from openpool.errors import CorruptObject, MissingDataFile, SnapshotNotFound
from openpool.money import eth as eth_text
from openpool.payouts.ledger import Ledger
from openpool.snapshots import SnapshotStore
from openpool.storage import S3Store, make_s3_client
from openpool.traffic import object_key
from tests.services import REPO
from tests.test_ingest_edges import AI, T0, TC, W1, W2, dt, job, put_file, run, stores

pytestmark = pytest.mark.s3

BIG = 9 * 10**18  # one fee fits int64; three of them do not fit 64 bits
WALLET = "0x" + "ab" * 20
PAID = 2**65 + 3
FLYING = 2**64 + 11


@dataclass
class Pool:
    bucket: str
    state: S3Store
    sent: list[dict[str, Any]]  # every event written, valid or not
    torn: str  # the key of a file cut short (quarantined)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/state"

    def env(self) -> dict[str, str]:
        return dict(
            os.environ,
            OPENPOOL_STATE_URI=self.uri,
            OPENPOOL_PARTITIONS=f"{TC},{AI}",
            HOT_WALLET_ADDRESS=WALLET,
        )

    def cli(self, *argv: str) -> Any:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("openpool")), *argv, "--format", "json"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def _payment(pid: str, worker: str, amount: int, nonce: int) -> dict[str, Any]:
    return {
        "payment_id": pid,
        "plan_hash": "p" * 64,
        "partition": str(TC),
        "eth_address": worker,
        "amount_wei": amount,
        "status": "signed",
        "nonce": nonce,
        "tx_hash": "0x" + f"{nonce:064x}",
        "raw_tx": "0x02",
        "max_fee_per_gas": 10**9,
        "gas": 21000,
        "block_number": None,
        "note": None,
    }


@pytest.fixture(scope="module")
def pool(moto_endpoint: str) -> Pool:
    bucket = f"frames-{uuid.uuid4().hex[:12]}"
    make_s3_client().create_bucket(Bucket=bucket)
    events, state = S3Store(f"s3://{bucket}/events"), S3Store(f"s3://{bucket}/state")
    day1 = [
        job(TC, T0, W1, BIG),
        job(TC, T0 + timedelta(seconds=1), W1, BIG, responseTime=250),
        job(TC, T0 + timedelta(seconds=2), W2, 5),
        job(TC, T0 + timedelta(seconds=3), "0xnot-hex", 1),  # set aside: not an address
    ]
    day2 = [
        job(TC, T0 + timedelta(days=1), W1, BIG),
        job(TC, T0 + timedelta(days=1, seconds=3), W2, 7, responseTime=None),
    ]
    put_file(events, TC, day1)
    torn = object_key(TC, dt(T0 + timedelta(minutes=5)), dt(T0 + timedelta(minutes=6)))
    events.put(torn, b'[\n  {\n    "DT": "2026-10-03T10:05:00Z",\n    "Event')  # cut short
    run(events, state, TC)
    put_file(events, TC, day2)
    run(events, state, TC)
    ledger = Ledger(state, WALLET)
    rows = [_payment("pay-1", W1, PAID, 0), _payment("pay-2", W2, FLYING, 1)]
    ledger.try_commit(None, rows, run_id="t", next_nonce=2)
    ledger.transition(
        [{**rows[0], "status": "confirmed", "block_number": 7}], "t", allowed_from=("signed",)
    )
    return Pool(bucket, state, day1 + day2, torn)


def plain(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as the CLI's JSON writes them: wei as int, times as ISO 8601."""

    def one(v: Any) -> Any:
        if v is None or v is pd.NA or v is pd.NaT:
            return None
        if isinstance(v, Decimal):
            return int(v)
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        if isinstance(v, float) and v != v:  # NaN
            return None
        return v

    return [{k: one(v) for k, v in r.items()} for r in df.astype(object).to_dict("records")]


@pytest.mark.parametrize("version", [1, 2, None])
def test_each_frame_holds_what_the_cli_prints_for_that_version(pool: Pool, version) -> None:
    pin = [] if version is None else ["--version", str(version)]
    part = ["--node-type", TC.node_type, "--region", TC.region]

    bal = frames.balances(TC, version=version, state=pool.uri)
    assert plain(bal) == pool.cli("balances", *part, *pin)
    assert bal.attrs["version"] == (version or 2) and bal.attrs["partition"] == str(TC)

    perf = frames.performance(str(TC), "all", version=version, state=pool.uri)
    assert plain(perf) == pool.cli("performance", *part, "--window", "all", *pin)

    ev_ = frames.events(TC, version=version, state=pool.uri)
    want = pool.cli("table", "events", *part, *pin)
    assert plain(ev_) == sorted(want, key=lambda r: r["event_time"])

    rej = frames.rejected(TC, version=version, state=pool.uri)
    assert plain(rej) == pool.cli("table", "rejected_events", *part, *pin)
    assert len(rej) == 1 and "ethAddress" in rej["reason"][0]

    quarantined = frames.quarantined(TC, version=version, state=pool.uri)
    assert plain(quarantined) == pool.cli("table", "quarantined_files", *part, *pin)
    assert quarantined["source_key"].tolist() == [pool.torn]


def test_payments_hold_what_the_cli_prints_and_each_record_in_history(pool: Pool) -> None:
    pay = frames.payments(state=pool.uri)
    cli = {r["payment_id"]: r for r in pool.cli("payouts", "status")}
    got = {r["payment_id"]: r for r in plain(pay)}
    assert set(got) == set(cli) == {"pay-1", "pay-2"}
    for pid, r in cli.items():
        assert {k: got[pid][k] for k in r if k != "eth"} == {
            k: v for k, v in r.items() if k != "eth"
        }
        assert frames.eth(pay["amount_wei"], text=True)[pay["payment_id"] == pid].item() == r["eth"]
    assert got["pay-1"]["status"] == "confirmed" and got["pay-1"]["amount_wei"] == PAID
    assert got["pay-2"]["status"] == "signed" and got["pay-1"]["wallet"] == WALLET
    assert pay.attrs["versions"] == {WALLET: 2}

    history = frames.payments(WALLET, state=pool.uri, history=True)
    assert list(zip(history["payment_id"], history["status"], strict=True)) == [
        ("pay-1", "signed"),
        ("pay-2", "signed"),
        ("pay-1", "confirmed"),
    ]
    before = frames.payments(WALLET, version=1, state=pool.uri)
    assert set(before["status"]) == {"signed"} and before.attrs["versions"] == {WALLET: 1}
    with pytest.raises(ValueError, match="wallet="):
        frames.payments(version=1, state=pool.uri)

    # paid and in flight reach the balances frame, past 2**64, exactly
    bal = frames.balances(TC, state=pool.uri).set_index("eth_address")
    assert int(bal.loc[W1, "paid_wei"]) == PAID and int(bal.loc[W2, "in_flight_wei"]) == FLYING
    assert int(bal.loc[W1, "payable_wei"]) == 3 * (BIG - BIG // 4) - PAID


def test_money_stays_exact_integers_and_times_are_utc(pool: Pool) -> None:
    bal = frames.balances(TC, state=pool.uri)
    wei = [c for c in bal.columns if c.endswith("_wei")]
    assert len(wei) == 6
    for c in wei:
        assert bal[c].dtype == pd.ArrowDtype(pa.decimal128(38, 0)), c
    assert bal["job_count"].dtype == pd.ArrowDtype(pa.int64())
    for c in ("first_job_at", "last_job_at"):
        assert str(bal[c].dt.tz) == "UTC"
    w1 = bal.set_index("eth_address").loc[W1]
    fees = 3 * BIG
    assert fees > 2**64 and int(w1["total_fees_wei"]) == fees  # an oracle, from the files
    assert int(w1["worker_earnings_wei"]) == fees - 3 * (BIG // 4)

    shown = frames.eth(bal["total_fees_wei"])
    assert shown.name == "total_fees_eth"
    assert shown.dtype == pd.ArrowDtype(pa.decimal128(38, 18))
    assert shown[bal["eth_address"] == W1].item() == Decimal(fees).scaleb(-18)
    assert frames.eth(bal["total_fees_wei"], text=True).tolist() == ["27", "0.000000000000000012"]
    edge = pd.Series([10**38 - 1, None], dtype=pd.ArrowDtype(pa.decimal128(38, 0)), name="x_wei")
    assert frames.eth(edge, text=True).tolist()[0] == "99999999999999999999.999999999999999999"
    assert str(frames.eth(edge)[0]) == "99999999999999999999.999999999999999999"
    assert frames.eth(edge).isna().tolist() == [False, True]
    with pytest.raises(TypeError, match="decimal128"):
        frames.eth(bal["job_count"])

    # a nullable integer column stays integer: null is <NA>, not a float NaN
    ev_ = frames.events(TC, state=pool.uri, columns=["event_id", "response_time_ns"])
    assert ev_["response_time_ns"].dtype == pd.ArrowDtype(pa.int64())
    assert ev_["response_time_ns"].isna().sum() == 1


def test_events_read_only_the_window_s_day_slices_and_the_columns_asked(pool: Pool) -> None:
    store = S3Store(pool.uri)
    fetched: list[str] = []
    get = store.get

    def recording(key: str) -> bytes:
        fetched.append(key)
        return get(key)

    store.get = recording  # type: ignore[method-assign]
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=1, seconds=3)
    got = frames.events(TC, start, end, columns=["event_id", "fees_wei"], state=store)

    # the oracle: the raw events of the window that the spec accepts (valid address)
    def dt_of(e: dict[str, Any]) -> datetime:
        return datetime.strptime(e["DT"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    want = [
        (e["ID"], e["Payload"]["fees"])
        for e in pool.sent
        if start <= dt_of(e) < end
        and re.fullmatch(r"0x[0-9a-fA-F]{40}", e["Payload"]["ethAddress"])
    ]
    assert list(zip(got["event_id"], map(int, got["fees_wei"]), strict=True)) == want
    assert list(got.columns) == ["event_id", "fees_wei"]
    assert got.attrs["days_read"] == ["2026-10-04"] and got.attrs["start"] == start

    snap = SnapshotStore(store, TC).latest()
    every = {snap.snapshots._key(f.path) for f in snap.files("events")}
    window = {snap.snapshots._key(f.path) for f in snap.files("events", [None, "2026-10-04"])}
    assert len(every) > len(window) > 0
    assert {k for k in fetched if k in every} == window

    naive = frames.events(TC, "2026-10-03T10:00:01", "2026-10-03T10:00:03", state=pool.uri)
    assert naive["event_time"].tolist() == [
        pd.Timestamp(T0 + timedelta(seconds=1)),
        pd.Timestamp(T0 + timedelta(seconds=2)),
    ]
    with pytest.raises(ValueError, match="no such event column"):
        frames.events(TC, columns=["fee"], state=pool.uri)


def test_time_travel_and_damaged_state_is_a_named_error_never_an_empty_frame(
    pool: Pool, s3_bucket: str
) -> None:
    versions = frames.versions(TC, state=pool.uri)
    assert versions["version"].tolist() == [2, 1]
    assert str(versions["created_at"].dt.tz) == "UTC"
    first = frames.balances(TC, version=1, state=pool.uri).set_index("eth_address")
    assert int(first.loc[W1, "total_fees_wei"]) == 2 * BIG and first.attrs["version"] == 1

    with pytest.raises(SnapshotNotFound, match="no version 9"):
        frames.balances(TC, version=9, state=pool.uri)
    with pytest.raises(SnapshotNotFound, match="nothing committed"):
        frames.rejected("transcode|oceania", state=pool.uri)
    with pytest.raises(ValueError, match="invalid partition"):
        frames.balances("transcode-us-west", state=pool.uri)

    # a copy of the pool's state whose files are then damaged, one way each
    src, copy = S3Store(pool.uri), S3Store(f"s3://{s3_bucket}/state")
    for obj in src.list(""):
        copy.put(obj.key, src.get(obj.key))
    snap = SnapshotStore(copy, TC).latest()
    [bal_file] = snap.files("balances")
    copy.delete(snap.snapshots._key(bal_file.path))
    with pytest.raises(MissingDataFile):
        frames.balances(TC, state=copy)
    ledger_file = snap.files("events", ["2026-10-04"])[0]
    key = snap.snapshots._key(ledger_file.path)
    copy.put(key, copy.get(key)[:-40] + b"\0" * 40)
    with pytest.raises(CorruptObject):
        frames.events(TC, start=T0 + timedelta(days=1), state=copy)


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## In a notebook: `openpool.frames`", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_readme_notebook_example_runs_as_written(pool: Pool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _readme_example()],
        env={**pool.env(), "PYTHONPATH": str(REPO / "plugins")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "version 2 of transcode|us-west" in out and "version 1: 2 workers" in out
    earned = {W1: 3 * (BIG - BIG // 4), W2: 5 + 7 - 5 // 4 - 7 // 4}  # from the files
    assert re.search(rf"{W1}\s+20\.25\n", out) and earned[W1] == 2025 * 10**16
    assert re.search(rf"{W2}\s+0\.00000000000000001\n", out) and earned[W2] == 10
    assert re.search(rf"{W1}\s+{BIG}\n", out)  # the newest day's fees, summed exactly
    assert "ethAddress '0xnot-hex' is not a valid address    1" in out


def test_eth_reads_a_column_of_many_chunks(pool: Pool) -> None:
    """A column made of several Arrow chunks (several ledger files, ``pd.concat``)."""
    history = frames.payments(WALLET, state=pool.uri, history=True)
    shown = frames.eth(history["amount_wei"], text=True).tolist()
    assert shown == [eth_text(a) for a in (PAID, FLYING, PAID)]
    bal = frames.balances(TC, state=pool.uri)
    both = pd.concat([bal, bal], ignore_index=True)
    assert both["total_fees_wei"].array._pa_array.num_chunks == 2
    assert (
        frames.eth(both["total_fees_wei"]).tolist()
        == 2 * frames.eth(bal["total_fees_wei"]).tolist()
    )
    assert frames.eth(pd.Series([None], dtype=bal["paid_wei"].dtype), text=True).isna().all()


def test_event_bounds_with_fractions_of_a_second_keep_start_le_t_lt_end(pool: Pool) -> None:
    t1, t2 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    got = frames.events(
        TC, T0 + timedelta(milliseconds=500), t2 + timedelta(milliseconds=1), state=pool.uri
    )
    assert got["event_time"].tolist() == [pd.Timestamp(t1), pd.Timestamp(t2)]
    got = frames.events(
        TC, "2026-10-03T10:00:01.000000001", t2 + timedelta(microseconds=1), state=pool.uri
    )
    assert got["event_time"].tolist() == [pd.Timestamp(t2)]
    with pytest.raises(ValueError, match=r"start .* after end"):
        frames.events(TC, t2, t1, state=pool.uri)
    with pytest.raises(ValueError, match="twice"):
        frames.events(TC, columns=["event_id", "event_id"], state=pool.uri)


def test_events_in_one_second_come_in_their_true_order_whatever_the_commit_order(
    tmp_path: Path,
) -> None:
    """The true order is (DT, file key, position in file): here the later key lands first."""
    events, state = stores(tmp_path)
    early = [job(TC, T0, W1, 1), job(TC, T0, W1, 2)]  # key ..._T100000Z.json sorts first
    late = [job(TC, T0, W2, 3), job(TC, T0, W2, 4), job(TC, T0 + timedelta(seconds=1), W2, 5)]
    put_file(events, TC, late)
    run(events, state, TC)
    put_file(events, TC, early)
    run(events, state, TC)
    assert SnapshotStore(state, TC).latest_version() == 2
    got = frames.events(TC, state=state, columns=["fees_wei"])
    assert [int(f) for f in got["fees_wei"]] == [1, 2, 3, 4, 5]
    assert list(got.columns) == ["fees_wei"]


def test_an_unknown_partition_or_state_is_an_error_not_an_empty_frame(
    pool: Pool, tmp_path: Path
) -> None:
    with pytest.raises(SnapshotNotFound, match="nothing committed"):
        frames.versions("transcode|oceania", state=pool.uri)
    with pytest.raises(SnapshotNotFound, match="nothing"):
        frames.payments(state=f"file://{tmp_path}/no-such-state")


def test_wei_total_is_exact_where_arrow_sums_wrap() -> None:
    big = pd.Series([9 * 10**37] * 3, dtype=pd.ArrowDtype(pa.decimal128(38, 0)))
    assert frames.total(big) == 27 * 10**37
    assert frames.total(big.iloc[:0]) == 0
