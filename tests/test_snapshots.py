"""The snapshot store contract, run against the local backend and a real moto server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from openpool.errors import (
    CommitConflict,
    CorruptDataFile,
    CorruptManifest,
    CorruptState,
    MissingDataFile,
    SnapshotNotFound,
)
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore, collect_garbage, commit_with_retry
from openpool.snapshots.manifest import LATEST_HINT, manifest_name
from openpool.snapshots.parquet import decode
from openpool.storage import ObjectStore
from openpool.tables import PAYOUTS

PART = Partition("transcode", "eu-central")
WEI = pa.decimal128(38, 0)


class Clock:
    """A controllable clock, so manifest times and gc cut-offs are exact."""

    def __init__(self) -> None:
        self.now = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def balances(amounts: list[int], hour: int = 8) -> pa.Table:
    return pa.table(
        {
            "eth_address": pa.array([f"0x{i:040x}" for i in range(len(amounts))]),
            "total_fees_wei": pa.array([Decimal(a) for a in amounts], WEI),
            "event_time": pa.array(
                [datetime(2026, 10, 3, hour, i % 60, tzinfo=UTC) for i in range(len(amounts))],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


def counter(v: int) -> pa.Table:
    return pa.table({"value": pa.array([v], pa.int64())})


@pytest.fixture
def snaps(store: ObjectStore) -> SnapshotStore:
    return SnapshotStore(store, PART, clock=Clock())


def test_empty_partition_has_no_snapshot(snaps: SnapshotStore) -> None:
    assert snaps.latest_version() == 0
    assert snaps.latest() is None
    with pytest.raises(SnapshotNotFound):
        snaps.at(1)


def test_commit_round_trips_128_bit_money_and_records_metadata(snaps: SnapshotStore) -> None:
    big = [10**38 - 1, 0, 10**30 + 7, 25 * 10**18]  # far beyond int64
    txn = snaps.begin(None, run_id="run-1")
    txn.replace("balances", balances(big))
    txn.set_properties(files_ingested=3)
    snap = txn.commit()

    again = snaps.latest()
    assert again is not None and again.version == snap.version == 1
    table = again.read("balances")
    assert table.schema.field("total_fees_wei").type == WEI
    assert [int(x) for x in table.column("total_fees_wei").to_pylist()] == big

    m = again.manifest
    assert (m.version, m.parent_version, m.run_id) == (1, None, "run-1")
    assert m.created_at == "2026-10-03T08:00:00+00:00"
    assert m.row_counts() == {"balances": 4}
    assert m.properties == {"files_ingested": 3}
    (f,) = m.tables["balances"]
    assert f.stats == {
        "min_event_time": "2026-10-03T08:00:00+00:00",
        "max_event_time": "2026-10-03T08:03:00+00:00",
    }


def test_time_travel_returns_exactly_what_each_version_held(snaps: SnapshotStore) -> None:
    snap = None
    for k in range(1, 6):
        txn = snaps.begin(snap, run_id=f"run-{k}")
        txn.replace("counter", counter(k * 10))
        txn.append("ledger", pa.table({"value": pa.array(list(range(k)), pa.int64())}))
        snap = txn.commit()
    assert snaps.latest_version() == 5
    for k in range(1, 6):
        old = snaps.at(k)
        assert old.read("counter").column("value").to_pylist() == [k * 10]
        assert old.manifest.parent_version == (k - 1 if k > 1 else None)
        assert old.read("ledger").num_rows == sum(range(1, k + 1))  # 1+2+...+k rows appended
    assert [m.version for m in snaps.history()] == [5, 4, 3, 2, 1]


def test_slices_are_replaced_and_read_independently(snaps: SnapshotStore) -> None:
    txn = snaps.begin(None, "r1")
    txn.replace_slice("ids", "2026100308", pa.table({"id": ["a", "b"]}))
    txn.replace_slice("ids", "2026100309", pa.table({"id": ["c"]}))
    s1 = txn.commit()
    txn = snaps.begin(s1, "r2")
    txn.replace_slice("ids", "2026100308", pa.table({"id": ["a", "b", "d"]}))
    s2 = txn.commit()
    assert s2.slices("ids") == {"2026100308", "2026100309"}
    assert sorted(s2.read("ids", slices=["2026100308"]).column("id").to_pylist()) == ["a", "b", "d"]
    assert s2.read("ids", slices=["2026100309"]).column("id").to_pylist() == ["c"]
    assert (
        s2.read("ids", slices=["2026100310"], schema=pa.schema([("id", pa.string())])).num_rows == 0
    )
    assert s1.read("ids", slices=["2026100308"]).num_rows == 2


def test_losing_writer_gets_conflict_with_both_versions(snaps: SnapshotStore) -> None:
    base = snaps.begin(None, "r0")
    base.replace("counter", counter(1))
    s1 = base.commit()
    a = snaps.begin(s1, "a")
    b = snaps.begin(s1, "b")
    a.replace("counter", counter(2))
    b.replace("counter", counter(3))
    a.commit()
    with pytest.raises(CommitConflict) as info:
        b.commit()
    assert info.value.attempted_version == 2
    assert info.value.current_version == 2
    assert snaps.latest().read("counter").column("value").to_pylist() == [2]  # type: ignore[union-attr]


def test_a_retried_publish_of_our_own_manifest_is_not_a_conflict(snaps: SnapshotStore) -> None:
    """A PUT whose response was lost, then retried, finds its own manifest: success."""
    txn = snaps.begin(None, "r1")
    txn.replace("counter", counter(1))
    snap = txn.commit()
    snaps._publish(snap.manifest)  # the "retry" of the same request
    assert snaps.latest_version() == 1


def test_nothing_is_ever_overwritten(snaps: SnapshotStore, store: ObjectStore) -> None:
    txn = snaps.begin(None, "r1")
    txn.replace("counter", counter(1))
    snap = txn.commit()
    before = {i.key: i.etag for i in store.list("") if not i.key.endswith(LATEST_HINT)}
    txn = snaps.begin(snap, "r2")
    txn.replace("counter", counter(2))
    txn.commit()
    after = {i.key: i.etag for i in store.list("") if not i.key.endswith(LATEST_HINT)}
    assert all(after[k] == v for k, v in before.items())
    assert len(after) == len(before) + 2  # one manifest, one data file


class CountingStore:
    """Wraps a store and counts calls, to show how latest is found."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        attr = getattr(self.inner, name)
        if callable(attr):

            def wrapped(*a, **kw):
                self.calls.append(name)
                return attr(*a, **kw)

            return wrapped
        return attr


def test_latest_is_found_from_the_hint_without_listing(
    snaps: SnapshotStore, store: ObjectStore
) -> None:
    snap = None
    for k in range(30):
        txn = snaps.begin(snap, f"r{k}")
        txn.replace("counter", counter(k))
        snap = txn.commit()
    counting = CountingStore(store)
    reader = SnapshotStore(counting, PART)  # type: ignore[arg-type]
    assert reader.latest_version() == 30
    assert "list" not in counting.calls
    assert len(counting.calls) <= 4  # get hint, head hinted, head next, head the one after


@pytest.mark.parametrize("hint", [b'{"version": 3}', b"garbage{", None])
def test_a_stale_broken_or_missing_hint_is_never_trusted(
    snaps: SnapshotStore, store: ObjectStore, hint: bytes | None
) -> None:
    snap = None
    for k in range(7):
        txn = snaps.begin(snap, f"r{k}")
        txn.replace("counter", counter(k))
        snap = txn.commit()
    key = snaps.prefix + LATEST_HINT
    if hint is None:
        store.delete(key)
    else:
        store.put(key, hint)
    assert snaps.latest_version() == 7
    assert snaps.latest().read("counter").column("value").to_pylist() == [6]  # type: ignore[union-attr]


def _commit_two(snaps: SnapshotStore):
    txn = snaps.begin(None, "r1")
    txn.replace("counter", counter(1))
    s1 = txn.commit()
    txn = snaps.begin(s1, "r2")
    txn.replace("counter", counter(2))
    return s1, txn.commit()


def test_truncated_manifest_is_a_named_error_not_empty_state(
    snaps: SnapshotStore, store: ObjectStore
) -> None:
    _commit_two(snaps)
    key = snaps.prefix + manifest_name(2)
    raw = store.get(key)
    store.put(key, raw[: len(raw) // 2])  # damage at rest
    with pytest.raises(CorruptManifest) as info:
        snaps.latest()
    assert store.url(key) in str(info.value)
    assert snaps.at(1).read("counter").column("value").to_pylist() == [1]


def test_truncated_parquet_is_a_named_error(snaps: SnapshotStore, store: ObjectStore) -> None:
    _, s2 = _commit_two(snaps)
    (f,) = s2.manifest.tables["counter"]
    key = snaps.prefix + f.path
    raw = store.get(key)
    store.put(key, raw[:-20])
    with pytest.raises(CorruptDataFile) as info:
        snaps.latest().read("counter")  # type: ignore[union-attr]
    assert store.url(key) in str(info.value)
    # Without the manifest's size and hash, the Parquet reader itself refuses it by name.
    with pytest.raises(CorruptDataFile, match="not a readable Parquet file"):
        decode(raw[:-20], store.url(key))


def test_same_size_damage_is_caught_by_the_hash(snaps: SnapshotStore, store: ObjectStore) -> None:
    _, s2 = _commit_two(snaps)
    (f,) = s2.manifest.tables["counter"]
    key = snaps.prefix + f.path
    raw = bytearray(store.get(key))
    raw[len(raw) // 2] ^= 0xFF
    store.put(key, bytes(raw))
    with pytest.raises(CorruptDataFile, match="SHA-256"):
        snaps.latest().read("counter")  # type: ignore[union-attr]


def test_a_missing_data_file_is_named(snaps: SnapshotStore, store: ObjectStore) -> None:
    _, s2 = _commit_two(snaps)
    (f,) = s2.manifest.tables["counter"]
    store.delete(snaps.prefix + f.path)
    with pytest.raises(MissingDataFile, match=f.path):
        snaps.latest().read("counter")  # type: ignore[union-attr]


def test_manifest_of_another_partition_is_refused(snaps: SnapshotStore, store: ObjectStore) -> None:
    other = SnapshotStore(store, Partition("ai", "us-central"))
    txn = other.begin(None, "r1")
    txn.replace("counter", counter(1))
    txn.commit()
    raw = store.get(other.prefix + manifest_name(1))
    store.put_if_absent(snaps.prefix + manifest_name(1), raw)
    with pytest.raises(CorruptManifest, match="belongs to partition"):
        snaps.latest()


def test_gc_keeps_what_retained_versions_need_and_honours_grace(store: ObjectStore) -> None:
    clock = Clock()
    snaps = SnapshotStore(store, PART, clock=clock)
    snap = None
    for k in range(1, 4):  # three versions an hour apart, each replacing the counter
        txn = snaps.begin(snap, f"r{k}")
        txn.replace("counter", counter(k))
        txn.append("ledger", pa.table({"value": pa.array([k], pa.int64())}))
        snap = txn.commit()
        clock.advance(hours=1)
    counters = {v: snaps.at(v).manifest.tables["counter"][0].path for v in (1, 2, 3)}

    # Within the grace period nothing goes, and a dry run deletes nothing.
    real_now = datetime.now(UTC)
    report = collect_garbage(snaps, now=real_now, grace=timedelta(hours=24))
    assert report.deleted == []
    # A day later (files are old enough, versions 1-2 superseded long ago): only the
    # counters of versions 1 and 2 go; the ledger files are all still referenced by v3.
    later = real_now + timedelta(days=2)
    clock.now = later
    dry = collect_garbage(snaps, now=later, grace=timedelta(hours=24), dry_run=True)
    assert sorted(dry.deleted) == sorted([counters[1], counters[2]])
    assert store.exists(snaps.prefix + counters[1])
    report = collect_garbage(snaps, now=later, grace=timedelta(hours=24))
    assert sorted(report.deleted) == sorted([counters[1], counters[2]])
    assert report.retained_versions == [3]
    latest = snaps.latest()
    assert latest is not None
    assert latest.read("counter").column("value").to_pylist() == [3]
    assert latest.read("ledger").column("value").to_pylist() == [1, 2, 3]
    with pytest.raises(MissingDataFile):
        snaps.at(1).read("counter")
    # Manifests are never deleted: history stays auditable.
    assert [m.version for m in snaps.history()] == [3, 2, 1]


def test_gc_retains_recently_superseded_versions_for_slow_readers(store: ObjectStore) -> None:
    clock = Clock()
    clock.now = datetime.now(UTC) - timedelta(days=3)
    snaps = SnapshotStore(store, PART, clock=clock)
    txn = snaps.begin(None, "r1")
    txn.replace("counter", counter(1))
    s1 = txn.commit()
    clock.now = datetime.now(UTC) - timedelta(hours=1)  # v2 supersedes v1 an hour ago
    txn = snaps.begin(s1, "r2")
    txn.replace("counter", counter(2))
    txn.commit()
    report = collect_garbage(
        snaps, now=datetime.now(UTC) + timedelta(hours=2), grace=timedelta(hours=24)
    )
    assert report.retained_versions == [2, 1]
    assert report.deleted == []
    assert snaps.at(1).read("counter").column("value").to_pylist() == [1]


def test_manifest_json_is_readable_by_other_tools(snaps: SnapshotStore, store: ObjectStore) -> None:
    txn = snaps.begin(None, "r1")
    txn.replace("balances", balances([5, 6]))
    txn.commit()
    doc = json.loads(store.get(snaps.prefix + manifest_name(1)))
    assert doc["format"] == "openpool-snapshot/1"
    assert doc["partition"] == {"node_type": "transcode", "region": "eu-central"}
    assert doc["tables"]["balances"]["rows"] == 2
    assert doc["tables"]["balances"]["files"][0]["path"].startswith("data/balances/")


# -- damage to the version chain: never read as an older state, never a reused number ----


def _commit_n(snaps: SnapshotStore, n: int) -> None:
    snap = None
    for k in range(1, n + 1):
        txn = snaps.begin(snap, f"r{k}")
        txn.replace("counter", counter(k))
        snap = txn.commit()


def _bump(snaps: SnapshotStore) -> None:
    def build(base, txn) -> None:
        value = base.read("counter").column("value").to_pylist()[0] if base else 0
        txn.replace("counter", counter(value + 1))

    commit_with_retry(snaps, build, run_id="next")


def test_a_deleted_newest_manifest_is_corrupt_state_and_its_number_is_never_reused(
    snaps: SnapshotStore, store: ObjectStore
) -> None:
    """Losing the newest manifest must not roll the partition back to the one before it."""
    _commit_n(snaps, 3)
    newest = snaps.prefix + manifest_name(3)
    store.delete(newest)
    with pytest.raises(CorruptState) as info:
        snaps.latest_version()
    assert store.url(newest) in str(info.value)
    assert store.url(snaps.prefix + LATEST_HINT) in str(info.value)
    with pytest.raises(CorruptState):
        snaps.latest()
    with pytest.raises(CorruptState):
        _bump(snaps)
    # a writer holding the older base cannot publish the lost number either
    txn = snaps.begin(snaps.at(2), "stale-writer")
    txn.replace("counter", counter(99))
    with pytest.raises(CorruptState):
        txn.commit()
    assert not store.exists(newest)  # version 3 was not created a second time
    assert snaps.at(2).read("counter").column("value").to_pylist() == [2]


def test_a_hint_ahead_of_the_manifests_is_corrupt_state(
    snaps: SnapshotStore, store: ObjectStore
) -> None:
    _commit_n(snaps, 7)
    store.put(snaps.prefix + LATEST_HINT, b'{"version": 99}')
    with pytest.raises(CorruptState) as info:
        snaps.latest_version()
    assert store.url(snaps.prefix + manifest_name(99)) in str(info.value)
    with pytest.raises(CorruptState):
        _bump(snaps)
    assert not store.exists(snaps.prefix + manifest_name(8))


@pytest.mark.parametrize("hint", [b'{"version": 4}', None, b"garbage{"])
def test_a_gap_in_the_version_chain_is_corrupt_state_naming_the_missing_manifest(
    snaps: SnapshotStore, store: ObjectStore, hint: bytes | None
) -> None:
    """Manifest 5 of 1..7 is gone while the hint is stale, missing or unreadable."""
    _commit_n(snaps, 7)
    gone = snaps.prefix + manifest_name(5)
    store.delete(gone)
    key = snaps.prefix + LATEST_HINT
    if hint is None:
        store.delete(key)
    else:
        store.put(key, hint)
    with pytest.raises(CorruptState, match=manifest_name(5)) as info:
        snaps.latest_version()
    assert store.url(gone) in str(info.value)
    with pytest.raises(CorruptState):
        _bump(snaps)
    assert not store.exists(gone)  # the gap was not filled with a new version 5


def test_history_names_a_gap_in_the_middle_of_the_chain(
    snaps: SnapshotStore, store: ObjectStore
) -> None:
    _commit_n(snaps, 5)
    store.delete(snaps.prefix + manifest_name(2))
    assert snaps.latest_version() == 5  # the newest state is intact and readable ...
    with pytest.raises(CorruptState, match=manifest_name(2)):
        snaps.history()  # ... but the audit trail is not, and says where


def test_a_ledger_whose_newest_manifest_is_lost_is_not_silently_rolled_back(
    store: ObjectStore,
) -> None:
    """The payout ledger is a snapshot chain too: a lost commit must stop payouts."""
    from openpool.payouts.ledger import Ledger

    ledger = Ledger(store, "0x" + "ab" * 20)
    row = {
        "payment_id": "p1",
        "plan_hash": "h",
        "partition": "transcode|us-west",
        "eth_address": "0x" + "cd" * 20,
        "amount_wei": Decimal(5 * 10**16),
        "status": "signed",
        "nonce": 0,
        "recorded_at": datetime(2026, 10, 3, 8, tzinfo=UTC),
    }

    def record(status: str):
        def build(base, txn) -> None:
            txn.append("payouts", pa.Table.from_pylist([{**row, "status": status}], schema=PAYOUTS))

        return build

    commit_with_retry(ledger.snaps, record("signed"), run_id="sign")
    commit_with_retry(ledger.snaps, record("broadcast"), run_id="send")
    store.delete(ledger.snaps.prefix + manifest_name(2))
    with pytest.raises(CorruptState, match=manifest_name(2)):
        ledger.payments()  # not "p1 is only signed": that would let it be signed again
    with pytest.raises(CorruptState):
        commit_with_retry(ledger.snaps, record("confirmed"), run_id="confirm")
    assert not store.exists(ledger.snaps.prefix + manifest_name(2))


def test_the_compose_state_bucket_is_versioned_so_a_lost_manifest_can_be_restored() -> None:
    """CorruptState names what is gone; bucket versioning is what brings it back."""
    import yaml

    from tests.services import REPO

    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    script = " ".join(compose["services"]["minio-init"]["command"])
    assert "mc version enable local/openpool-state" in script


def test_parquet_is_read_from_arrow_memory_never_from_python_bytes(monkeypatch) -> None:
    """CI died once with SIGABRT *after* ``openpool balances`` had printed its answer.

    A Parquet reader over Python bytes keeps them through a buffer whose destructor takes
    the GIL; Arrow's decode threads drop that buffer after the read returns, and if the
    interpreter is exiting by then the process aborts ("terminate called without an
    active exception"; 7 of 60 CLI runs under CPU load). Every reader in the product must
    therefore read an Arrow-owned copy: a view of immutable Python bytes is the bug.
    """
    import pyarrow.parquet as pq

    from openpool.analytics.performance import daycache
    from openpool.analytics.performance.share import Share

    sources: list[pa.BufferReader] = []
    real = pq.ParquetFile

    def spy(source, *args, **kwargs):  # type: ignore[no-untyped-def]
        sources.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pq, "ParquetFile", spy)
    table = pa.table({"a": pa.array(range(1000)), "b": pa.array([str(i) for i in range(1000)])})
    from openpool.snapshots.parquet import encode

    assert decode(encode(table), "mem://t").equals(table)
    share = Share(groups=[("0xab", None, None)], jobs=[3], excluded=[0], fees=[7])
    assert daycache.decode(daycache.encode({"workers": share}), "mem://d")["workers"].fees == [7]
    assert len(sources) == 2
    for source in sources:
        source.seek(0)
        backing = source.read_buffer(1).parent
        assert backing is not None and backing.is_mutable, "reader is a view of Python bytes"

    plugins = Path(__file__).resolve().parents[1] / "plugins"
    offenders = [
        p.name
        for p in plugins.rglob("*.py")
        if "BufferReader(" in p.read_text() and p.name != "parquet.py"
    ]
    assert offenders == [], f"read Parquet through snapshots.parquet.arrow_reader: {offenders}"
