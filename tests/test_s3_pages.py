"""Every S3 listing of the library, with more than 1,000 keys, against the real moto server.

S3 answers ``ListObjectsV2`` 1,000 keys at a time; a listing that does not follow the
continuation token sees only the first page. One bucket (filled once for the module, straight
through boto3 from a thread pool) holds over 1,000 event files of a partition, over 1,000
manifests of another, a wallet with over 1,000 ledger objects and over 1,000 saved plans:
each test checks that what the library finds lies past the first page -- every key of
:meth:`S3Store.list` (``start_after`` inside and across page boundaries), the event file
discovery must ingest, the latest manifest and ``history()``, every wallet, every plan --
and counts the ListObjectsV2 requests, so a listing of one page cannot pass. gc, which
deletes, gets a bucket of its own.
"""

from __future__ import annotations

import hashlib
import http.client
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import pyarrow as pa
import pytest

from openpool.errors import CorruptState
from openpool.ingest.discovery import list_partition, pending_files
from openpool.partitions import Partition
from openpool.payments import wallets
from openpool.payouts.plan import canonical, plan_key
from openpool.payouts.reconcile import _plans
from openpool.snapshots import SnapshotStore, collect_garbage
from openpool.snapshots.manifest import DataFile, Manifest, manifest_name
from openpool.storage import S3Store, make_s3_client

pytestmark = [pytest.mark.s3, pytest.mark.slow]

PAGE = 1000  # S3's (and moto's) largest ListObjectsV2 page
EVENTS = PAGE + 50
VERSIONS = PAGE + 40
LEDGER = PAGE + 30
PLANS = PAGE + 20
PART = Partition("transcode", "us-west")  # its event files
SNAP = Partition("transcode", "eu-central")  # its manifests
T0 = datetime(2026, 10, 3, tzinfo=UTC)
WALLETS = [f"0x{ch * 40}" for ch in "abd"]


class Counting:
    """A boto3 client for the moto server that counts its ListObjectsV2 requests."""

    def __init__(self) -> None:
        self.client = make_s3_client()
        self.lists = 0

        def count(**_: Any) -> None:
            self.lists += 1

        self.client.meta.events.register("before-call.s3.ListObjectsV2", count)


def put_all(endpoint: str, bucket: str, objects: Iterable[tuple[str, bytes]]) -> list[str]:
    """PUT every (key, body) straight over HTTP to the moto server (8 keep-alive connections;
    boto3's signing and parsing would cost more than the server); returns the keys."""
    objects = list(objects)
    host = urlsplit(endpoint).netloc
    local = threading.local()

    def put(kv: tuple[str, bytes]) -> None:
        conn = getattr(local, "conn", None) or http.client.HTTPConnection(host, timeout=30)
        local.conn = conn
        conn.request("PUT", f"/{bucket}/{quote(kv[0])}", body=kv[1])
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, (kv[0], resp.status)

    with ThreadPoolExecutor(8) as pool:
        for _ in pool.map(put, objects):
            pass
    return [k for k, _ in objects]


def _event_key(i: int) -> str:
    start = T0 + timedelta(minutes=i)
    end = start + timedelta(minutes=1)
    f = "%Y%m%dT%H%M%SZ"
    return f"{PART.path}/us-west-transcode-{start:{f}}_{end:{f}}.json"


def _manifest(
    version: int, files: dict[str, list[str]] | None = None, partition: Partition = SNAP
) -> Manifest:
    return Manifest(
        partition=partition,
        version=version,
        parent_version=version - 1 if version > 1 else None,
        created_at=(T0 + timedelta(minutes=version)).isoformat(),
        run_id=f"run-{version}",
        commit_id=f"commit-{version:06d}",
        tables={
            t: tuple(DataFile(path=p, rows=1, size=1, sha256="0" * 64) for p in paths)
            for t, paths in (files or {}).items()
        },
    )


def _plan(i: int) -> dict[str, Any]:
    return {
        "format": 1,
        "created_at": (T0 + timedelta(seconds=i)).isoformat(),
        "chain_id": 42161,
        "wallet": "0x" + "11" * 20,
        "basis": f"basis-{i}",
        "limits": {"threshold_wei": 1, "max_payment_wei": 1, "max_run_wei": 1, "min_interval_s": 1},
        "payments": [],
        "total_wei": 0,
    }


@dataclass
class Bucket:
    name: str
    counting: Counting
    events: S3Store
    state: S3Store
    plans: dict[str, dict[str, Any]]

    @property
    def lists(self) -> int:
        return self.counting.lists


@pytest.fixture(scope="module")
def big(moto_endpoint: str) -> Bucket:
    c = Counting()
    name = f"test-pages-{uuid.uuid4().hex[:8]}"
    c.client.create_bucket(Bucket=name)
    plans = {hashlib.sha256(canonical(p)).hexdigest(): p for p in map(_plan, range(PLANS))}
    a, b, d = WALLETS
    put_all(
        moto_endpoint,
        name,
        [(f"events/{_event_key(i)}", _event_key(i).encode()) for i in range(EVENTS)]
        + [("events/us-west/ai/us-west-ai-20261003T000000Z_20261003T000100Z.json", b"{}")]
        + [
            (f"state/{SNAP.path}/{manifest_name(v)}", _manifest(v).to_bytes())
            for v in range(1, VERSIONS + 1)
        ]
        + [(f"state/wallet/{a}/manifests/{i:020d}.json", b"{}") for i in range(LEDGER)]
        + [(f"state/wallet/{b}/_latest.json", b"{}"), (f"state/wallet/{d}/x", b"")]
        + [(f"state/wallets-other/{i}", b"") for i in range(3)]
        + [(f"state/{plan_key(h)}", canonical(p)) for h, p in plans.items()],
    )
    return Bucket(
        name,
        c,
        S3Store(f"s3://{name}/events", client=c.client),
        S3Store(f"s3://{name}/state", client=c.client),
        plans,
    )


@pytest.fixture
def bucket(big: Bucket) -> Iterator[Bucket]:
    big.counting.lists = 0
    yield big


def test_a_listing_returns_every_key_past_1000_and_start_after_across_pages(
    s3_bucket: str, moto_endpoint: str
) -> None:
    c = Counting()
    keys = [f"p/{i:05d}.json" for i in range(2 * PAGE + 50)]
    outside = [f"root/q/{i}" for i in range(5)] + [f"other/p/{i}" for i in range(5)]
    put_all(
        moto_endpoint,
        s3_bucket,
        [(f"root/{k}", b"x" * (i % 7)) for i, k in enumerate(keys)][::-1]
        + [(k, b"") for k in outside],
    )
    store = S3Store(f"s3://{s3_bucket}/root", client=c.client)
    listed = list(store.list("p/"))
    assert [i.key for i in listed] == keys  # all 2,050, in key order, none twice, only p/
    assert [i.size for i in listed] == [i % 7 for i in range(len(keys))]
    assert c.lists == 3  # one request per page of 1,000

    # from start_after on: inside the first page, at each page's end and start, in the last
    for after in (0, PAGE - 1, PAGE, 2 * PAGE - 1, len(keys) - 2):
        c.lists = 0
        got = [i.key for i in store.list("p/", start_after=keys[after])]
        assert got == keys[after + 1 :], after
        assert c.lists == -(-len(got) // PAGE), after
    # a start_after between two keys, one that sorts before all, one past the last
    assert [i.key for i in store.list("p/", start_after=keys[1500] + "~")] == keys[1501:]
    assert [i.key for i in store.list("p/", start_after="a")] == keys
    assert list(store.list("p/", start_after=keys[-1])) == []


def test_discovery_finds_the_one_new_file_that_sorts_past_the_1000th(bucket: Bucket) -> None:
    keys = [_event_key(i) for i in range(EVENTS)]
    listing = list_partition(bucket.events, PART)
    assert [i.key for i in listing] == keys and bucket.lists == 2  # not the ai partition's

    # everything but the last file (the 1,050th key, on the second page) was ingested
    new = keys[-1]
    done = [i for i in listing if i.key != new]
    ingested = pa.table({"source_key": [i.key for i in done], "etag": [i.etag for i in done]})
    pending = pending_files(listing, ingested)
    assert [p.key for p in pending] == [new]
    assert pending[0].etag == hashlib.md5(new.encode()).hexdigest()
    # nothing ingested yet: all of them, oldest first; a replay window inside the second page
    none = ingested.slice(0, 0)
    assert [p.key for p in pending_files(listing, none)] == keys
    window = pending_files(
        listing, none, T0 + timedelta(minutes=PAGE + 10), T0 + timedelta(minutes=PAGE + 30)
    )
    assert [p.key for p in window] == keys[PAGE + 10 : PAGE + 30]


def test_a_partition_with_over_1000_manifests_resolves_latest_and_full_history(
    bucket: Bucket,
) -> None:
    snaps = SnapshotStore(bucket.state, SNAP)  # no latest hint: the manifests are listed
    assert snaps.latest_version() == VERSIONS and bucket.lists == 2
    latest = snaps.latest()
    assert latest is not None and latest.version == VERSIONS
    history = snaps.history()
    assert [m.version for m in history] == list(range(VERSIONS, 0, -1))
    assert [m.commit_id for m in history] == [f"commit-{v:06d}" for v in range(VERSIONS, 0, -1)]
    assert [m.version for m in snaps.history(limit=3)] == [VERSIONS, VERSIONS - 1, VERSIONS - 2]


def test_a_manifest_missing_on_the_second_page_is_a_gap_not_a_shorter_history(
    s3_bucket: str, moto_endpoint: str
) -> None:
    c = Counting()
    state = S3Store(f"s3://{s3_bucket}/state", client=c.client)
    missing = PAGE + 20
    put_all(
        moto_endpoint,
        s3_bucket,
        (
            (f"state/{SNAP.path}/{manifest_name(v)}", b"{}")  # never read: the gap is found first
            for v in range(1, VERSIONS + 1)
            if v != missing
        ),
    )
    with pytest.raises(CorruptState, match=f"gap.*{manifest_name(missing)}"):
        SnapshotStore(state, SNAP).latest_version()
    with pytest.raises(CorruptState, match=manifest_name(missing)):
        SnapshotStore(state, SNAP).history()
    assert c.lists == 4


def test_gc_keeps_and_deletes_correctly_across_listing_pages(
    s3_bucket: str, moto_endpoint: str
) -> None:
    c = Counting()
    state = S3Store(f"s3://{s3_bucket}/state", client=c.client)
    data = [f"data/t/{i:020d}-f.parquet" for i in range(PAGE + 30)]
    kept = [data[5], data[PAGE + 10], data[-1]]  # the latest version's: two past the first page
    older = [data[PAGE - 1], data[PAGE]]  # version 1's, on both sides of the page boundary
    manifests = {v: _manifest(v, {"t": f}, PART) for v, f in ((1, older), (2, kept))}
    base = f"state/{PART.path}/"
    put_all(
        moto_endpoint,
        s3_bucket,
        [(base + k, b"p") for k in data]
        + [(base + manifest_name(v), m.to_bytes()) for v, m in manifests.items()],
    )
    snaps = SnapshotStore(state, PART)
    now = datetime.now(UTC)  # the objects' own times (moto's clock) are now

    # all data files are younger than the grace: every orphan is kept, on every page
    young = collect_garbage(snaps, now + timedelta(hours=12), grace=timedelta(hours=24))
    assert young.retained_versions == [2] and young.referenced_files == 3
    assert young.deleted == [] and young.kept_young_orphans == len(data) - 3

    # old enough: a dry run names every orphan of both pages and deletes nothing
    later = now + timedelta(days=2)
    dry = collect_garbage(snaps, later, grace=timedelta(hours=24), dry_run=True)
    assert dry.deleted == [k for k in data if k not in kept]
    assert len(list(state.list(f"{PART.path}/data/"))) == len(data)

    # keeping two versions keeps version 1's files too; then gc for real
    report = collect_garbage(snaps, later, grace=timedelta(hours=24), keep_versions=2)
    assert report.retained_versions == [2, 1]
    assert sorted(report.deleted) == [k for k in data if k not in kept + older]
    left = [i.key.removeprefix(f"{PART.path}/") for i in state.list(f"{PART.path}/")]
    assert left == sorted([*kept, *older, manifest_name(1), manifest_name(2)])


def test_every_wallet_is_found_behind_one_with_over_1000_objects(bucket: Bucket) -> None:
    assert wallets(bucket.state) == WALLETS
    assert bucket.lists == 4  # one short listing per wallet, whatever the length of its history


def test_reconcile_reads_every_saved_plan_past_the_1000th(bucket: Bucket) -> None:
    plans = bucket.plans
    found = _plans(bucket.state)
    assert bucket.lists == 2
    assert [h for h, _ in found] == sorted(plans, key=lambda h: plans[h]["created_at"])
    assert [p for _, p in found] == sorted(plans.values(), key=lambda p: p["created_at"])
