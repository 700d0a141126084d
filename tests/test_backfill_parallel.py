"""A backfill parsed in worker processes ends in the serial path's state, commit for commit.

Every test here runs on the real moto server: the serial run (``workers=1``, today's path)
is the reference, and the parallel run must equal it table by table (data file hashes and
row content), manifest by manifest (each commit's counters), and in its quarantine copies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pyarrow.compute as pc
import pytest

from openpool.errors import ParseWorkerLost
from openpool.ingest.run import IngestReport, ingest
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import ObjectStore, S3Store
from openpool.tables import EVENTS, INGESTED, QUARANTINED, REJECTED, read_table
from openpool.traffic import GeneratedFile, generate, write
from tests.chaos.state import capture
from tests.helpers.ledger import balances_of
from tests.helpers.traffic import EVERY_KIND_OF_MESS
from tests.services import REPO

RATE = Fraction(1, 4)
TC = Partition("transcode", "us-west")
START = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
END = START + timedelta(hours=2)
MAX_FILES = 3  # many batches: the interval is a long backfill in small commits
OPENPOOL = str(Path(sys.executable).with_name("openpool"))
SITEHOOK = REPO / "tests" / "chaos" / "sitehook"


def _key(start: datetime, end: datetime) -> str:
    return f"us-west/transcode/us-west-transcode-{start:%Y%m%dT%H%M%SZ}_{end:%Y%m%dT%H%M%SZ}.json"


def _key_end(key: str) -> datetime:
    return datetime.strptime(key.rsplit("_", 1)[1], "%Y%m%dT%H%M%SZ.json").replace(tzinfo=UTC)


def interval() -> tuple[list[GeneratedFile], dict[str, str]]:
    """Two hours of messy traffic, plus two early files repeating events of late ones.

    ``copy`` holds a late file's events verbatim (its events come back as duplicates in a
    batch committed later); ``rival`` holds one job of another late file with other fees (the later
    copy is a conflict). Both sort into the first batches, so the first copy must win.
    Returns the files (as uploaded, in order) and the copy's key, the rival's and its ID.
    """
    files = generate(
        TC,
        START,
        END - START,
        workers=5,
        events_per_second=1,
        flush_seconds=300,
        seed=20,
        mess=EVERY_KIND_OF_MESS,
    )
    late, other = files[-3], files[-6]
    copy = GeneratedFile(_key(START + timedelta(seconds=10), _key_end(late.key)), late.body)
    events = json.loads(other.body)
    job = next(e for e in events if "fees" in e.get("Payload", {}))
    job["Payload"]["fees"] = int(job["Payload"]["fees"]) + 7
    rival_key = _key(START + timedelta(seconds=20), _key_end(other.key))
    rival = GeneratedFile(rival_key, json.dumps([job]).encode())
    # Not JSON at all, under a well-formed key: quarantined (beside the truncated file).
    garbage = GeneratedFile(
        _key(START + timedelta(minutes=31), START + timedelta(minutes=32)), b"\xff\xfe{not json"
    )
    made = {
        "copy_key": copy.key,
        "late_key": late.key,
        "rival_key": rival_key,
        "rival_id": job["ID"],
    }
    return [*files, copy, rival, garbage], made


@pytest.fixture
def archive(s3_bucket: str) -> tuple[ObjectStore, list[GeneratedFile], dict[str, str]]:
    store = S3Store(f"s3://{s3_bucket}/archive")
    files, made = interval()
    write(files, store)
    return store, files, made


@pytest.fixture
def serial_state(s3_bucket: str) -> ObjectStore:
    return S3Store(f"s3://{s3_bucket}/serial")


@pytest.fixture
def parallel_state(s3_bucket: str) -> ObjectStore:
    return S3Store(f"s3://{s3_bucket}/parallel")


def backfill(archive: ObjectStore, state: ObjectStore, workers: int) -> IngestReport:
    return ingest(
        TC, archive, state, RATE, max_files=MAX_FILES, start=START, end=END, workers=workers
    )


def assert_same_state(a: ObjectStore, b: ObjectStore) -> None:
    """Same commits (each version's counters), same tables (bytes and rows), same copies."""
    sa, sb = SnapshotStore(a, TC), SnapshotStore(b, TC)
    latest_a, latest_b = sa.latest(), sb.latest()
    assert latest_a is not None and latest_b is not None
    assert latest_a.version == latest_b.version
    for v in range(1, latest_a.version + 1):
        assert sa.at(v).manifest.properties == sb.at(v).manifest.properties, f"version {v}"
    ca, cb = capture(a, TC), capture(b, TC)
    assert ca is not None and cb is not None
    assert ca.diff(cb) == []
    assert ca.files == cb.files  # every data file's hash, per table and slice
    assert ca.content == cb.content
    for key in ca.quarantine_copies:
        assert a.get(key) == b.get(key)


@pytest.mark.slow
def test_a_parallel_backfill_equals_the_serial_one_table_by_table(
    archive, serial_state: ObjectStore, parallel_state: ObjectStore
) -> None:
    store, _, _ = archive
    serial = backfill(store, serial_state, workers=1)
    parallel = backfill(store, parallel_state, workers=2)

    assert serial.batches == parallel.batches > 5
    assert serial.counts == parallel.counts
    c = parallel.counts
    assert c.events_read == c.events_accepted + c.events_duplicate + c.events_rejected
    assert c.files_quarantined == 2 and c.events_duplicate > 0 and c.events_rejected > 0
    # The serial batches were parsed here; the parallel ones in (at most 2) other processes.
    assert serial.parsed_in == {os.getpid()}
    assert parallel.parsed_in and os.getpid() not in parallel.parsed_in
    assert len(parallel.parsed_in) <= 2
    assert_same_state(serial_state, parallel_state)
    # Exact money: the same balances as the reference, whatever the order of arrival.
    assert balances_of(parallel_state, TC) == balances_of(serial_state, TC)


@pytest.mark.slow
def test_cross_batch_repeats_count_once_and_the_first_batchs_copy_wins(
    archive, parallel_state: ObjectStore
) -> None:
    store, _, made = archive
    report = backfill(store, parallel_state, workers=2)
    snap = SnapshotStore(parallel_state, TC).latest()
    events = read_table(snap, "events", EVENTS)
    ids, keys = events.column("event_id"), events.column("source_key")
    assert pc.count_distinct(ids).as_py() == events.num_rows  # every ID once
    files = read_table(snap, "ingested_files", INGESTED).to_pylist()
    version_of = {r["source_key"]: r["snapshot_version"] for r in files}
    # The rival (an early batch) counts; the original, read in a later batch, is a conflict.
    mine = events.filter(pc.equal(ids, made["rival_id"]))
    assert mine.column("source_key").to_pylist() == [made["rival_key"]]
    rejected = read_table(snap, "rejected_events", REJECTED)
    later = rejected.filter(pc.equal(rejected.column("event_id"), made["rival_id"])).to_pylist()
    first = version_of[made["rival_key"]]
    assert later  # the generated original (the mess repeats some events in a second file)
    for r in later:
        assert r["source_key"] != made["rival_key"]
        assert r["reason"] == "conflict: event ID already ingested with different content"
        assert r["rejected_at_version"] == version_of[r["source_key"]] > first + 3
    # The verbatim copy (an early batch) holds the events; the late original's are duplicates.
    copied = pc.sum(pc.equal(keys, made["copy_key"])).as_py()
    assert copied > 0 and version_of[made["copy_key"]] <= first
    assert not pc.any(pc.equal(keys, made["late_key"])).as_py()
    assert version_of[made["late_key"]] > first + 3
    assert report.counts.events_duplicate >= copied


@pytest.mark.slow
def test_a_file_that_fails_in_a_worker_is_quarantined_with_its_reason_as_serially(
    archive, serial_state: ObjectStore, parallel_state: ObjectStore
) -> None:
    store, files, _ = archive
    backfill(store, serial_state, workers=1)
    report = backfill(store, parallel_state, workers=2)
    assert os.getpid() not in report.parsed_in

    def quarantined(state: ObjectStore) -> list[dict]:
        table = read_table(SnapshotStore(state, TC).latest(), "quarantined_files", QUARANTINED)
        return sorted(table.to_pylist(), key=lambda r: r["source_key"])

    rows = quarantined(parallel_state)
    assert rows == quarantined(serial_state)
    assert len(rows) == 2 and all(r["reason"] for r in rows)
    bodies = {f.key: f.body for f in files}
    for r in rows:  # the copy set aside holds the file's exact bytes
        assert parallel_state.get(r["quarantine_key"]) == bodies[r["source_key"]]


def _cli(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [OPENPOOL, "ingest", "--node-type", TC.node_type, "--region", TC.region, "--replay",
            "--from", START.isoformat(), "--to", END.isoformat(),
            "--max-files", str(MAX_FILES), *extra]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, check=False)


def _processes_of(state_uri: str) -> list[int]:
    """Live processes started with ``OPENPOOL_STATE_URI=state_uri`` (the CLI and its workers)."""
    mark = f"OPENPOOL_STATE_URI={state_uri}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return pids


def _workers_left(state_uri: str, within: float = 10.0) -> list[int]:
    """Those of :func:`_processes_of` still alive after ``within`` s, but multiprocessing's
    resource tracker (one per parent, ending with it): a dying pool stops its workers
    asynchronously."""
    deadline = time.monotonic() + within
    while True:
        left = [
            p
            for p in _processes_of(state_uri)
            if b"resource_tracker" not in _cmdline(p) and p != os.getpid()
        ]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.slow
def test_a_parallel_backfill_killed_mid_run_then_rerun_equals_a_clean_run(
    s3_bucket: str, archive
) -> None:
    """SIGKILL the CLI (``--workers 2``) just before its N-th object write (inside a commit,
    between data files and manifest, or at the hint), rerun it, and compare with a clean
    serial run. The workers write only quarantine copies (2 here), so they outlive N; and
    they end with their parent (the run returns only once every process holding its output
    pipes is gone; none is left behind)."""
    store, _, _ = archive
    path = os.pathsep.join(filter(None, [str(SITEHOOK), os.environ.get("PYTHONPATH")]))
    clean = S3Store(f"s3://{s3_bucket}/clean")
    backfill(store, clean, workers=1)
    for n in (5, 23, 41):
        state = f"s3://{s3_bucket}/killed-{n}"
        env = dict(
            os.environ,
            PYTHONPATH=path,
            OPENPOOL_ARCHIVE_URI=store.uri,
            OPENPOOL_STATE_URI=state,
        )
        killed = _cli({**env, "CHAOS_KILL_AT": f"write:{n}"}, "--workers", "2")
        assert killed.returncode == -9, killed.stderr
        assert _processes_of(state) == []
        done = _cli(env, "--workers", "2")
        assert done.returncode == 0, done.stderr
        assert_same_state(clean, S3Store(state))


def test_workers_default_to_every_usable_cpu_for_a_backfill_and_1_for_an_ingest() -> None:
    from openpool.cli.ingest import parse_workers
    from openpool.cli.main import build_parser
    from openpool.ingest.parallel import usable_cpus

    def workers(*argv: str) -> int:
        args = ["ingest", "--node-type", "transcode", "--region", "us-west", *argv]
        return parse_workers(build_parser(args).parse_args(args))

    assert usable_cpus() == len(os.sched_getaffinity(0))
    assert workers() == 1  # a scheduled ingest: the serial path
    assert workers("--replay") == workers("--from", "2026-10-03") == usable_cpus()
    assert workers("--to", "2026-10-03", "--workers", "3") == 3
    assert workers("--replay", "--workers", "1") == 1
    with pytest.raises(SystemExit):
        workers("--workers", "0")


@pytest.mark.slow
def test_a_worker_killed_mid_backfill_fails_the_run_by_name_and_a_rerun_equals_a_clean_run(
    archive, serial_state: ObjectStore, parallel_state: ObjectStore, monkeypatch
) -> None:
    """Only the workers die here: the spawned ones load the crash hook (this process was
    started without it) and SIGKILL themselves at their first write, the quarantine copy.
    The run stops with the error naming it, the pool's other worker is stopped too."""
    store, _, _ = archive
    backfill(store, serial_state, workers=1)
    path = os.pathsep.join(filter(None, [str(SITEHOOK), os.environ.get("PYTHONPATH")]))
    with monkeypatch.context() as env:
        env.setenv("PYTHONPATH", path)
        env.setenv("CHAOS_KILL_AT", "write:1")
        env.setenv("OPENPOOL_STATE_URI", parallel_state.uri)  # marks the workers, for below
        with pytest.raises(ParseWorkerLost, match=r"a parse worker process \(of 2\) died"):
            backfill(store, parallel_state, workers=2)
    assert _workers_left(parallel_state.uri) == []
    done = SnapshotStore(parallel_state, TC).latest()
    total = SnapshotStore(serial_state, TC).latest()
    assert done is None or done.version < total.version  # the batches before it stand
    backfill(store, parallel_state, workers=2)
    assert_same_state(serial_state, parallel_state)
