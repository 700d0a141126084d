"""Discovery whose cost does not grow with the bucket's age (issue 20), and still finds every
file: runs list only the window after the key-time watermark, a sweep lists everything
and proves what the windows missed, and ``ingested_files`` is read by key day."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from openpool.ingest import steps
from openpool.ingest.discovery import key_start
from openpool.ingest.ingested import key_day
from openpool.ingest.run import ingest
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.snapshots.store import Snapshot
from openpool.storage import LocalStore, ObjectStore, S3Store, make_s3_client
from openpool.tables import INGESTED
from openpool.traffic import GeneratedFile, generate, write
from tests.helpers.ledger import balances_of, worker_oracle

RATE = Fraction(1, 4)
PART = Partition("transcode", "us-west")
START = datetime(2026, 10, 10, 8, 0, tzinfo=UTC)
FMT = "%Y%m%dT%H%M%SZ"


def traffic(
    start: datetime, span: timedelta, seed: int, flush: int = 600, eps: float = 1
) -> list[GeneratedFile]:
    return generate(
        PART, start, span, workers=3, events_per_second=eps, flush_seconds=flush, seed=seed
    )


def run(events: ObjectStore, state: ObjectStore, **kw: Any):
    return ingest(PART, events, state, RATE, **kw)


def latest(state: ObjectStore) -> Snapshot:
    snap = SnapshotStore(state, PART).latest()
    assert snap is not None
    return snap


def index_rows(state: ObjectStore) -> list[tuple[str, str]]:
    t = latest(state).read("ingested_files", schema=INGESTED)
    return sorted(zip(t["source_key"].to_pylist(), t["etag"].to_pylist(), strict=True))


@pytest.fixture(params=["local", "s3"])
def two(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ObjectStore, ObjectStore]:
    if request.param == "local":
        return LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(f"s3://{bucket}/events"), S3Store(f"s3://{bucket}/state")


def test_a_file_late_by_a_week_is_ingested_once_by_the_sweep_and_never_twice(
    two: tuple[ObjectStore, ObjectStore],
) -> None:
    events, state = two
    now = traffic(START, timedelta(hours=2), seed=1)
    week_late = traffic(START - timedelta(days=7), timedelta(minutes=10), seed=2)
    write(now, events)
    first = run(events, state)  # the partition's first run lists everything
    assert first.sweep is not None and first.counts.files_ingested == len(now)
    mark = datetime.fromisoformat(latest(state).manifest.properties["discovery_mark"])
    assert mark == max(key_start(f.key) for f in now)

    write(week_late, events)  # a key a week before the watermark, uploaded now
    windowed = run(events, state)
    assert windowed.sweep is None and windowed.batches == 0  # outside the window

    swept = run(events, state, sweep=True)  # on demand (CLI --sweep, the DAG's sweep box)
    assert swept.counts.files_ingested == len(week_late)
    assert swept.sweep is not None and swept.sweep.missed == len(week_late)
    props = latest(state).manifest.properties
    assert props["discovery_sweep_missed"] == len(week_late)
    assert props["discovery_sweep_listed"] == len(now) + len(week_late)
    assert balances_of(state, PART) == worker_oracle(now + week_late, RATE)

    # never twice: not by a run, nor by the next sweep, which finds nothing missed
    assert run(events, state).batches == 0
    again = run(events, state, sweep=True)
    assert again.batches == 0 and again.sweep is not None and again.sweep.missed == 0
    assert latest(state).manifest.properties["discovery_sweep_missed"] == 0
    assert len(index_rows(state)) == len(now) + len(week_late)
    assert balances_of(state, PART) == worker_oracle(now + week_late, RATE)


def _backdate_sweep(state: ObjectStore, by: timedelta) -> None:
    """Make the recorded sweep ``by`` older, as if that much wall time had passed."""
    snaps = SnapshotStore(state, PART)
    base = latest(state)
    at = datetime.fromisoformat(base.manifest.properties["discovery_sweep_at"]) - by
    txn = snaps.begin(base, "backdate")
    txn.set_properties(discovery_sweep_at=at.isoformat())
    txn.commit()


def test_a_sweep_runs_by_itself_once_the_last_one_is_a_day_old(tmp_path: Path) -> None:
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    now = traffic(START, timedelta(hours=1), seed=3)
    late = traffic(START - timedelta(days=2), timedelta(minutes=10), seed=4)
    write(now, events)
    run(events, state)
    write(late, events)
    _backdate_sweep(state, timedelta(hours=23))
    assert run(events, state).batches == 0  # 23 h: not yet due
    _backdate_sweep(state, timedelta(hours=1))
    due = run(events, state)  # 24 h since the last sweep: this run sweeps
    assert due.sweep is not None and due.counts.files_ingested == len(late)
    assert balances_of(state, PART) == worker_oracle(now + late, RATE)


def test_a_reupload_inside_the_lookback_is_read_again_and_its_events_count_once(
    two: tuple[ObjectStore, ObjectStore],
) -> None:
    events, state = two
    files = traffic(START, timedelta(hours=3), seed=5)
    write(files[:-3], events)
    run(events, state)
    write(files[-3:], events)
    assert run(events, state).sweep is None  # a windowed run from here on
    # files[-6] is an hour before the watermark, inside the 6 h lookback: same key, new
    # bytes (the same events re-indented), so a new ETag
    old = files[-6]
    body = json.dumps(json.loads(old.body), indent=4).encode()
    events.put(old.key, body)
    r = run(events, state)
    assert r.sweep is None and r.counts.files_ingested == 1
    assert r.counts.events_accepted == 0 and r.counts.events_duplicate == r.counts.events_read > 0
    assert balances_of(state, PART) == worker_oracle(files, RATE)
    keys = [k for k, _ in index_rows(state)]
    assert keys.count(old.key) == 2  # both versions, each once
    assert run(events, state).batches == 0


def _spy_index_reads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    read: list[Any] = []
    original = Snapshot.read

    def spy(self, name, slices=None, schema=None, columns=None):  # type: ignore[no-untyped-def]
        if name == "ingested_files":
            read.append(sorted(slices, key=str) if slices is not None else "ALL")
        return original(self, name, slices, schema, columns)

    monkeypatch.setattr(Snapshot, "read", spy)
    return read


def test_a_run_reads_only_the_ingested_files_days_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    days = traffic(START, timedelta(days=4), seed=6, flush=3 * 3600, eps=0.05)
    write(days[:-1], events)
    run(events, state)
    layout = {f.slice for f in latest(state).files("ingested_files")}
    assert layout == {key_day(f.key) for f in days[:-1]} and len(layout) == 5

    read = _spy_index_reads(monkeypatch)
    write(days[-1:], events)
    r = run(events, state)
    assert r.counts.files_ingested == 1
    # the days of the keys 6 h before the watermark on (the listing), then of the batch
    mark = max(key_start(f.key) for f in days[:-1])
    window = {key_day(f.key) for f in days if key_start(f.key) >= mark - timedelta(hours=6)}
    assert read[0] == [*sorted(window), None] and len(window) < len(layout) - 2
    assert all(s == [key_day(days[-1].key), None] for s in read[1:]), read
    assert balances_of(state, PART) == worker_oracle(days, RATE)


def _old_layout(state: ObjectStore) -> int:
    """Rewrite ``ingested_files`` as versions before the slicing left it: one unsliced file,
    and no discovery properties. Returns its rows."""
    snaps = SnapshotStore(state, PART)
    base = latest(state)
    whole = base.read("ingested_files", schema=INGESTED)
    txn = snaps.begin(base, "old-layout")
    txn.replace("ingested_files", whole)
    txn.set_properties(**{k: None for k in base.manifest.properties if k.startswith("discovery_")})
    txn.commit()
    return whole.num_rows


def test_an_unsliced_ingested_files_table_reads_correctly_and_is_migrated_at_the_next_commit(
    tmp_path: Path,
) -> None:
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    files = traffic(START, timedelta(days=2), seed=7, flush=2 * 3600, eps=0.05)
    write(files[:-2], events)
    run(events, state)
    rows = _old_layout(state)
    assert {f.slice for f in latest(state).files("ingested_files")} == {None}
    before = index_rows(state)

    # read correctly: nothing already ingested is pending, not even in a full listing
    env = steps.StepEnv(PART, events, state, None, RATE)
    assert not steps.has_new_files(env, list(events.list(PART.path + "/")))
    write(files[-2:], events)
    r = run(events, state)  # no watermark or sweep recorded: lists everything
    assert r.counts.files_ingested == 2 and r.sweep is not None and r.sweep.missed == 0

    snap = latest(state)
    layout = {f.slice for f in snap.files("ingested_files")}
    assert layout == {key_day(f.key) for f in files} and len(layout) == 3  # no None
    after = index_rows(state)
    assert len(after) == rows + 2 and set(before) <= set(after)
    assert "discovery_mark" in snap.manifest.properties  # derived from what was committed
    assert balances_of(state, PART) == worker_oracle(files, RATE)
    assert run(events, state).batches == 0


def test_each_day_slice_is_compacted_after_16_files(tmp_path: Path) -> None:
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    files = traffic(START, timedelta(hours=3), seed=8, flush=300)
    write(files[:2], events)
    run(events, state)
    for k in range(2, len(files)):
        write(files[k : k + 1], events)
        run(events, state)
    day = f"{START:%Y-%m-%d}"
    assert len(latest(state).files("ingested_files", [day])) <= 16
    assert len(index_rows(state)) == len(files)
    assert balances_of(state, PART) == worker_oracle(files, RATE)


def test_a_key_dated_in_the_future_cannot_move_the_watermark_past_the_clock(
    tmp_path: Path,
) -> None:
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    wall = datetime.now(UTC).replace(microsecond=0)
    ahead = traffic(wall + timedelta(days=30), timedelta(minutes=10), seed=9)
    write(ahead, events)
    run(events, state)  # its events are rejected (skew); its key is committed
    mark = datetime.fromisoformat(latest(state).manifest.properties["discovery_mark"])
    assert mark <= datetime.now(UTC)
    recent = traffic(wall - timedelta(hours=2), timedelta(minutes=30), seed=10)
    write(recent, events)
    r = run(events, state)  # two hours before the clock: inside the window
    assert r.sweep is None and r.counts.files_ingested == len(recent)


def test_the_watermark_is_crash_safe_and_a_retry_lists_the_same_window(tmp_path: Path) -> None:
    """A run that dies before its commit leaves the watermark where it was, so the rerun
    lists the same window and ends in the state of a clean run; a repeated commit changes
    nothing."""
    files = traffic(START, timedelta(hours=2), seed=11)

    def env(root: Path) -> steps.StepEnv:
        return steps.StepEnv(PART, LocalStore(root / "e"), LocalStore(root / "s"), None, RATE)

    def prepare(e: steps.StepEnv, key: str) -> dict[str, Any]:
        out = steps.parse(e, key)
        steps.dedup(e, key)
        steps.accrue(e, key)
        return out

    clean, crashed = env(tmp_path / "clean"), env(tmp_path / "crashed")
    for e in (clean, crashed):
        write(files[:-2], e.events)
        prepare(e, "r1")
        steps.commit(e, "r1")
        write(files[-2:], e.events)
    mark = latest(crashed.state).manifest.properties["discovery_mark"]

    prepare(crashed, "r2")
    # dies here (before the manifest): nothing moved
    assert latest(crashed.state).manifest.properties["discovery_mark"] == mark
    for e in (clean, crashed):
        out = prepare(e, "r3")
        assert out["files"] == 2 and out["sweep"] is None
        assert steps.commit(e, "r3")["committed"] is True
        assert steps.commit(e, "r3")["committed"] is False  # a retried commit: no-op
    a, b = latest(clean.state), latest(crashed.state)
    assert a.version == b.version
    keep = ("discovery_mark", "discovery_sweep_listed", "discovery_sweep_missed", "watermark")
    assert {k: a.manifest.properties[k] for k in keep} == {
        k: b.manifest.properties[k] for k in keep
    }
    assert [k for k, _ in index_rows(clean.state)] == [k for k, _ in index_rows(crashed.state)]
    assert balances_of(crashed.state, PART) == worker_oracle(files, RATE)


# --- the number of S3 requests does not depend on the bucket's age ------------------------


@pytest.mark.s3
@pytest.mark.slow
def test_a_runs_s3_requests_do_not_depend_on_how_many_old_keys_the_bucket_holds() -> None:
    """Counted at the client (a botocore hook on every S3 call) against moto's real server,
    run in this process so that 33,000 old keys can be put straight into its backend. Each
    bucket's old keys are ingested (the index as an older version left it: one unsliced
    file); one run lists everything once (it migrates the index and records the sweep),
    then a normal run and a sensor poke are counted."""
    from openpool.ingest.window import Window, poke
    from tests.helpers.history import ingested_rows, old_keys
    from tests.helpers.moto_inproc import moto_in_process

    new = traffic(START, timedelta(hours=2), seed=12)
    figures = {}
    with moto_in_process() as moto:
        client = make_s3_client()
        calls: list[str] = []
        client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
        for n in (3_000, 30_000):
            bucket = f"old-keys-{n}"
            client.create_bucket(Bucket=bucket)
            events = S3Store(f"s3://{bucket}/events", client=client)
            state = S3Store(f"s3://{bucket}/state", client=client)
            keys = old_keys(PART, n, START - timedelta(days=1))
            etag = moto.fill(bucket, (f"events/{k}" for k in keys))
            txn = SnapshotStore(state, PART).begin(None, "history")
            txn.append("ingested_files", ingested_rows(keys, etag))
            txn.commit()
            write(new[:-4], events)
            first = run(events, state)
            assert first.counts.files_ingested == len(new) - 4 and first.sweep is not None
            assert first.sweep.listed == n + len(new) - 4 and first.sweep.missed == 0
            write(new[-4:-2], events)
            calls.clear()
            r = run(events, state)
            a_run = sorted(calls)
            assert r.counts.files_ingested == 2 and r.sweep is None
            write(new[-2:-1], events)
            calls.clear()
            p = poke(events, PART, SnapshotStore(state, PART).latest(), Window())
            a_poke = sorted(calls)
            assert p.pending == 1 and not p.sweep_due and p.listed < 100
            figures[n] = (a_run, a_poke)
    (run_3k, poke_3k), (run_30k, poke_30k) = figures[3_000], figures[30_000]
    assert run_3k.count("ListObjectsV2") == 1 and poke_3k.count("ListObjectsV2") == 1
    assert run_3k == run_30k and poke_3k == poke_30k


def test_a_partition_with_no_dated_key_sweeps_once_not_every_run(tmp_path: Path) -> None:
    """No watermark can be derived from a key that names no time: runs list the whole
    (small) prefix, but only a due sweep is recorded, so idle runs commit nothing."""
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    events.put(f"{PART.path}/upload.json", b"[]")
    first = run(events, state)
    assert first.counts.files_quarantined == 1 and first.sweep is not None
    v = latest(state).version
    assert "discovery_mark" not in latest(state).manifest.properties
    for _ in range(2):
        again = run(events, state)
        assert again.batches == 0 and again.sweep is None
    assert latest(state).version == v


def test_a_replay_of_the_archive_lists_it_whole_and_records_no_sweep(tmp_path: Path) -> None:
    """``openpool ingest --replay`` (no --from/--to) reads every archived file the state has
    not ingested, however old (files the source bucket expired before they were read), and
    does not pass for the events bucket's sweep."""
    events, archive = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "archive")
    state = LocalStore(tmp_path / "state")
    old = traffic(START, timedelta(hours=2), seed=11)
    new = traffic(START + timedelta(days=2), timedelta(hours=2), seed=12)
    write(old + new, archive)
    write(new, events)  # the old files expired from the source bucket, unread
    run(events, state)
    swept_at = latest(state).manifest.properties["discovery_sweep_at"]

    replayed = run(archive, state, replay=True)
    assert replayed.sweep is None
    # every old file is read now (the archive's copies of the new ones may carry other
    # ETags than the source's, as a local store's do: read again, their events duplicates)
    assert {f.key for f in old} <= {k for k, _ in index_rows(state)}
    assert replayed.counts.events_rejected == 0
    assert latest(state).manifest.properties["discovery_sweep_at"] == swept_at
    assert balances_of(state, PART) == worker_oracle(old + new, RATE)


def test_a_future_key_in_a_state_from_before_the_watermark_cannot_blind_the_window(
    tmp_path: Path,
) -> None:
    """A state the old code left (no discovery properties) may index a key an orchestrator
    dated decades ahead; the watermark derived from it must still be capped at the clock."""
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    first = traffic(START, timedelta(hours=2), seed=13)
    write(first, events)
    events.put(f"{PART.path}/{PART.region}-{PART.node_type}-20990101T000000Z_20990101T000959Z.json",
               first[0].body)  # fmt: skip
    run(events, state)
    _old_layout(state)
    later = traffic(START + timedelta(hours=3), timedelta(hours=1), seed=14)
    write(later, events)
    run(events, state)  # the first run after the upgrade (it sweeps: none recorded)
    mark = datetime.fromisoformat(latest(state).manifest.properties["discovery_mark"])
    assert mark <= datetime.now(UTC)
    assert mark == max(key_start(f.key) for f in later)
    last = traffic(START + timedelta(hours=5), timedelta(minutes=30), seed=15)
    write(last, events)
    windowed = run(events, state)
    assert windowed.sweep is None and windowed.counts.files_ingested == len(last)
