"""Exactly-once ingest end to end, on local files and on a real moto server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pyarrow.compute as pc
import pytest

from openpool.ingest.run import ingest
from openpool.ingest.service import status_row
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore, ObjectStore, S3Store
from openpool.tables import CONNECTIONS, WORKERS
from openpool.traffic import GeneratedFile, Mess, generate, write
from tests.helpers.ledger import balances_of, worker_oracle
from tests.helpers.traffic import EVERY_KIND_OF_MESS
from tests.services import REPO

OPENPOOL = str(Path(sys.executable).with_name("openpool"))

RATE = Fraction(1, 4)
FIXTURES = REPO / "tests" / "fixtures" / "events"
AI = Partition("ai", "us-central")
TC = Partition("transcode", "us-west")
START = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)


@dataclass
class Stores:
    events: ObjectStore
    state: ObjectStore
    archive: ObjectStore


@pytest.fixture(params=["local", "s3"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    if request.param == "local":
        return Stores(*(LocalStore(tmp_path / n) for n in ("events", "state", "archive")))
    bucket = request.getfixturevalue("s3_bucket")
    return Stores(*(S3Store(f"s3://{bucket}/{n}") for n in ("events", "state", "archive")))


def expected(files: list[GeneratedFile]) -> dict[str, dict[str, int]]:
    return worker_oracle(files, RATE)


def run(stores: Stores, part: Partition, **kw):
    return ingest(part, stores.events, stores.state, RATE, **kw)


def test_the_spec_fixtures_give_exact_balances(stores: Stores) -> None:
    for path in FIXTURES.rglob("*.json"):
        stores.events.put(path.relative_to(FIXTURES).as_posix(), path.read_bytes())
    eu = Partition("transcode", "eu-central")
    report = run(stores, eu)
    assert report.summary() == {
        "files_ingested": 1,
        "files_quarantined": 0,
        "events_read": 9,
        "events_accepted": 9,
        "events_duplicate": 0,
        "events_rejected": 0,
        "snapshot_version": 1,
    }
    a = "0xA4c123B1612dd272d1371C17149d439536b3216F"
    b = "0xdAeeb975729fAE923D5A4fd12aAbFe228F219e9C"
    got = balances_of(stores.state, eu)
    assert got[a]["total_fees_wei"] == 36899363381 + 115861109340
    assert got[a]["pool_commission_wei"] == 36899363381 // 4 + 115861109340 // 4
    assert got[b]["total_fees_wei"] == 66677919584 + 3958900734
    assert got[b]["worker_earnings_wei"] == (66677919584 - 66677919584 // 4) + (
        3958900734 - 3958900734 // 4
    )
    snap = SnapshotStore(stores.state, eu).latest()
    assert snap is not None
    tickets = snap.read("tickets").to_pylist()
    assert int(tickets[0]["face_value_wei"]) == 25000000000000000000
    conns = {r["connection"]: r for r in snap.read("connections").to_pylist()}
    assert conns["198.51.100.4:8935"]["close_reason"] == "worker-disconnected"
    assert conns["203.0.113.7:8935"]["disconnected_at"] is None

    report = run(stores, AI)
    assert report.counts.events_accepted == 3
    got = balances_of(stores.state, AI)
    assert got == {
        "0xb0EB53f16947CCF25eC84D8dbc74254770f58904": {
            "total_fees_wei": 4999610368,
            "pool_commission_wei": 4999610368 // 4,
            "worker_earnings_wei": 4999610368 - 4999610368 // 4,
            "job_count": 1,
        }
    }
    st = status_row(SnapshotStore(stores.state, AI).latest())
    assert st["pending_ai_jobs"] == 1  # 77b0d3aa's job-received is not in the file
    assert st["unattributed_fees_wei"] == 0  # not yet: the TTL has not passed


MESS = EVERY_KIND_OF_MESS


@pytest.mark.parametrize("part", [AI, TC], ids=str)
def test_messy_traffic_equals_the_oracle_and_a_rerun_changes_nothing(
    stores: Stores, part: Partition
) -> None:
    files = generate(
        part,
        START,
        timedelta(hours=2),
        workers=6,
        events_per_second=2,
        flush_seconds=600,
        seed=7,
        mess=MESS,
    )
    write(files, stores.events)
    report = run(stores, part, max_files=3)
    c = report.counts
    assert report.batches > 1
    assert c.files_quarantined == 1
    # events_read is what the reader found in the files, counted apart from the tables the
    # events end up in: the array elements of every stored object (a key uploaded twice is
    # one object, the last upload) that is not quarantined.
    stored = {f.key: f.body for f in files}
    assert c.events_read == sum(map(_elements, stored.values()))
    assert c.events_read == c.events_accepted + c.events_duplicate + c.events_rejected
    assert c.events_duplicate > 0 and c.events_rejected > 0
    assert balances_of(stores.state, part) == expected(files)

    again = run(stores, part)
    assert again.batches == 0 and again.snapshot_version == report.snapshot_version


def _elements(body: bytes) -> int:
    """Array elements of a file the reader reads (0 for one it quarantines as not JSON)."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except ValueError:
        return 0
    return len(doc) if isinstance(doc, list) else 0


def test_an_event_lost_between_the_reader_and_the_tables_fails_the_reconciliation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read = accepted + duplicate + rejected is a check, not an identity: events_read is
    counted by the reader, so an event silently dropped later in the batch is caught and
    nothing is committed."""
    from openpool.ingest import batch

    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    files = generate(TC, START, timedelta(minutes=30), workers=3, flush_seconds=300, seed=5)
    write(files, events)
    real = batch.check_times

    def drop_first(table, *args, **kwargs):  # type: ignore[no-untyped-def]
        kept, late = real(table, *args, **kwargs)
        return kept.slice(1), late

    monkeypatch.setattr(batch, "check_times", drop_first)
    with pytest.raises(AssertionError, match="event counts do not reconcile"):
        ingest(TC, events, state, RATE)
    assert SnapshotStore(state, TC).latest() is None


def test_late_and_reuploaded_files_are_picked_up_once(stores: Stores) -> None:
    files = generate(
        TC, START, timedelta(hours=1), workers=4, events_per_second=2, flush_seconds=300, seed=3
    )
    first, late = files[2:], files[:2]  # the two oldest keys arrive after the rest
    write(first, stores.events)
    v1 = run(stores, TC).snapshot_version
    write(late, stores.events)
    r2 = run(stores, TC)
    assert r2.counts.files_ingested == 2 and r2.snapshot_version == v1 + 1
    assert balances_of(stores.state, TC) == expected(files)
    # A re-upload with different bytes (same events, re-indented) is read again; its
    # events are duplicates and change nothing.
    body = json.dumps(json.loads(files[0].body), indent=4).encode()
    stores.events.put(files[0].key, body)
    r3 = run(stores, TC)
    assert r3.counts.files_ingested == 1
    assert r3.counts.events_accepted == 0
    assert r3.counts.events_duplicate == r3.counts.events_read > 0
    assert balances_of(stores.state, TC) == expected(files)


def test_replay_from_the_archive_for_a_time_range(stores: Stores) -> None:
    files = generate(
        TC, START, timedelta(hours=3), workers=3, events_per_second=1, flush_seconds=900, seed=11
    )
    write(files, stores.archive)
    mid = START + timedelta(hours=1)
    r1 = ingest(TC, stores.archive, stores.state, RATE, start=START, end=mid)
    assert r1.counts.files_ingested == sum(
        1 for f in files if f.key < f"us-west/transcode/us-west-transcode-{mid:%Y%m%dT%H%M%SZ}"
    )
    r2 = ingest(TC, stores.archive, stores.state, RATE, start=START, end=mid)
    assert r2.batches == 0
    ingest(TC, stores.archive, stores.state, RATE)
    assert balances_of(stores.state, TC) == expected(files)


@pytest.mark.slow
def test_two_ingests_at_once_count_everything_once(stores: Stores) -> None:
    from concurrent.futures import ThreadPoolExecutor

    files = generate(
        AI,
        START,
        timedelta(hours=1),
        workers=5,
        events_per_second=3,
        flush_seconds=300,
        seed=5,
        mess=Mess(split_ai_jobs=0.3),
    )
    write(files, stores.events)
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda i: run(stores, AI, max_files=2), range(2)))
    assert balances_of(stores.state, AI) == expected(files)
    accepted = sum(r.counts.events_accepted for r in reports)
    st = status_row(SnapshotStore(stores.state, AI).latest())
    assert st["events_accepted"] == accepted
    assert st["files_ingested"] == len({f.key for f in files})


def _fixture_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI run over a copy of the fixture events, state in tmp_path."""
    events = tmp_path / "events"
    shutil.copytree(FIXTURES, events)
    return dict(os.environ, OPENPOOL_EVENTS_URI=str(events), OPENPOOL_STATE_URI=str(tmp_path / "s"))


def _run_cli(env: dict[str, str], *argv: str) -> str:
    return subprocess.run(
        [OPENPOOL, *argv], env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout


@pytest.mark.slow
def test_cli_contract(tmp_path: Path) -> None:
    env = _fixture_env(tmp_path)
    args = ["--node-type", "ai", "--region", "us-central"]

    def cli(*argv: str) -> str:
        return _run_cli(env, *argv, *args)

    last = json.loads(cli("ingest").strip().splitlines()[-1])
    assert last == {
        "files_ingested": 1,
        "files_quarantined": 0,
        "events_read": 3,
        "events_accepted": 3,
        "events_duplicate": 0,
        "events_rejected": 0,
        "snapshot_version": 1,
    }
    bal = json.loads(cli("balances", "--format", "json"))
    assert bal[0]["worker_earnings_wei"] == 4999610368 - 4999610368 // 4
    assert isinstance(bal[0]["total_fees_wei"], int)
    assert {"eth_address", "paid_wei", "payable_wei", "job_count"} <= set(bal[0])
    st = json.loads(cli("status", "--format", "json"))
    assert st["snapshot_version"] == 1 and st["pending_ai_jobs"] == 1
    bad = subprocess.run(
        [OPENPOOL, "ingest", *args],
        env={**env, "OPENPOOL_STATE_URI": "ftp://x"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode != 0 and "OPENPOOL_STATE_URI" in bad.stderr


def test_connections_split_open_and_closed_and_old_layout_migrates(tmp_path: Path) -> None:
    """Runs read only the open connections (the closed ones, by the day they closed, grow
    with history and are read again only from a late event's day on); the rows equal one
    replay of every event; an unsliced table is carried over."""
    from openpool.ingest import connections as conn
    from openpool.snapshots.store import Snapshot

    files = generate(
        TC, START, timedelta(hours=3), workers=6, events_per_second=1, flush_seconds=600, seed=9
    )
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    snaps = SnapshotStore(state, TC)
    write(files[:6], events)
    ingest(TC, events, state, RATE)
    # Rewrite the table as versions before the split left it: one unsliced file.
    base = snaps.latest()
    whole = base.read("connections", schema=CONNECTIONS)
    txn = snaps.begin(base, "old-layout")
    txn.replace("connections", whole)
    txn.commit()

    read: list[tuple[str, str | None]] = []
    original = Snapshot.read

    def spy(self, name, slices=None, schema=None, columns=None):  # type: ignore[no-untyped-def]
        if name == "connections":
            read.extend((name, s) for s in (slices if slices is not None else ["*"]))
        return original(self, name, slices, schema, columns)

    Snapshot.read = spy  # type: ignore[method-assign]
    try:
        for k in range(6, len(files), 3):
            write(files[k : k + 3], events)
            ingest(TC, events, state, RATE)
    finally:
        Snapshot.read = original  # type: ignore[method-assign]
    assert ("connections", None) in read  # the old layout was read (once) and migrated
    # Never the whole table: the open slice, and only closed days a late event reaches.
    assert all(s in (conn.OPEN, None) or s.startswith(conn.CLOSED_PREFIX) for _, s in read)

    snap = snaps.latest()
    layout = {f.slice for f in snap.files("connections")}
    assert conn.OPEN in layout and None not in layout and conn.CLOSED not in layout
    assert any(s.startswith(conn.CLOSED_PREFIX) for s in layout - {conn.OPEN})
    got = snap.read("connections", schema=CONNECTIONS)
    fresh = snap.read("events", schema=None)
    want = conn.apply_connections(CONNECTIONS.empty_table(), fresh)
    key = [("eth_address", "ascending"), ("connection", "ascending"), ("connected_at", "ascending")]
    assert got.sort_by(key).equals(want.sort_by(key))
    assert got.num_rows > 0 and got.filter(pc.is_valid(got["disconnected_at"])).num_rows > 0
    workers = snap.read("workers", schema=WORKERS)
    counts = {r["eth_address"]: r["connection_count"] for r in workers.to_pylist()}
    per = want.group_by("eth_address").aggregate([("connection", "count")]).to_pylist()
    assert {a: k for a, k in counts.items() if k} == {
        r["eth_address"]: r["connection_count"] for r in per
    }


@pytest.mark.slow
def test_table_output_prints_money_exactly(tmp_path: Path) -> None:
    """Issue 16: ``--format table`` printed ETH through tabulate's number parsing
    (``7.03447e-05``, ``0.000122139`` for ``0.000122138597753041``). Every amount in a table
    must read exactly as the JSON's integer wei says."""
    from decimal import Decimal

    env = _fixture_env(tmp_path)
    args = ["--node-type", "ai", "--region", "us-central"]

    def cli(*argv: str) -> str:
        return _run_cli(env, *argv)

    cli("ingest", *args)
    wei = json.loads(cli("balances", "--format", "json", *args))[0]["worker_earnings_wei"]
    exact = format(Decimal(wei).scaleb(-18), "f")
    assert len(exact.rstrip("0")) > 8  # an amount a float rendering would round
    table = cli("summary", "--format", "table", *args)
    assert exact in table, table
    assert "e-" not in table, table
