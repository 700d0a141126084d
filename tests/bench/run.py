"""``make bench``: speed and memory figures, printed (never asserted in unit tests).

Snapshot store: the cost of one commit and of finding the latest version, on local disk
and on a real moto server over HTTP, with 1,000 versions of history.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore, ObjectStore, S3Store, make_s3_client
from tests.services import moto_server, s3_env

PART = Partition("transcode", "us-west")


def _ms(samples: list[float]) -> str:
    qs = statistics.quantiles(samples, n=20)
    mean, p50, p95 = statistics.fmean(samples), statistics.median(samples), qs[18]
    return f"mean {mean * 1000:7.2f} ms  p50 {p50 * 1000:7.2f} ms  p95 {p95 * 1000:7.2f} ms"


def _time(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_snapshots(store: ObjectStore, label: str, versions: int) -> None:
    snaps = SnapshotStore(store, PART)
    table = pa.table({"value": pa.array(range(100), pa.int64())})
    commit_times: list[float] = []
    snap = None
    for k in range(versions):
        t0 = time.perf_counter()
        txn = snaps.begin(snap, f"bench-{k}")
        txn.replace("balances", table)
        snap = txn.commit()
        commit_times.append(time.perf_counter() - t0)
    find = _time(snaps.latest_version, 50)
    load = _time(snaps.latest, 50)
    print(f"[{label}] {versions} versions committed")
    print(f"  commit (1 data file + manifest + hint): {_ms(commit_times)}")
    print(f"  find latest version at {versions}:       {_ms(find)}")
    print(f"  find + load latest manifest:            {_ms(load)}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_snapshots(LocalStore(Path(tmp) / "state"), "local", args.versions)
        with moto_server(Path(tmp) / "logs") as endpoint:
            os.environ.update(s3_env(endpoint))
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            make_s3_client().create_bucket(Bucket=bucket)
            bench_snapshots(S3Store(f"s3://{bucket}/state"), "moto S3", args.versions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
