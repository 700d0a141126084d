"""``make bench``: speed and memory figures, printed (never asserted in unit tests).

* Ingest (:mod:`tests.bench.ingest`, issue 3): end-to-end events/s on one core against
  plain ``json.loads``, peak RSS, and the time of one run on top of a small and a large
  history.
* Analytics (:mod:`tests.bench.analytics`, issue 5): one partition's refresh (all three
  windows) over 20M events, transcode and AI, with its peak RSS.
* Discovery (:mod:`tests.bench.discovery`, issue 20): S3 requests and client CPU of one
  run and one sensor poke with 10k and 500k keys already in the bucket.
* Snapshot store: the cost of one commit and of finding the latest version, on local disk
  and on a real moto server over HTTP, with 1,000 versions of history.

The figures are printed as a table and written to ``reports/bench.json``. ``--quick`` (or
``OPENPOOL_BENCH_QUICK=1``) runs everything small; ``--scale F`` (or
``OPENPOOL_BENCH_SCALE=F``) multiplies the ingest sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore, ObjectStore, S3Store, make_s3_client
from tests.bench import analytics as analytics_bench
from tests.bench import backfill as backfill_bench
from tests.bench import discovery as discovery_bench
from tests.bench import ingest as ingest_bench
from tests.services import REPO, moto_server, s3_env

PART = Partition("transcode", "us-west")


def _stats(samples: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(samples, n=20)
    return {
        "mean_ms": statistics.fmean(samples) * 1000,
        "p50_ms": statistics.median(samples) * 1000,
        "p95_ms": qs[18] * 1000,
    }


def _ms(s: dict[str, float]) -> str:
    return f"mean {s['mean_ms']:7.2f} ms  p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f} ms"


def _time(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_snapshots(store: ObjectStore, label: str, versions: int) -> dict[str, Any]:
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
    fig = {
        "versions": versions,
        "commit": _stats(commit_times),
        "find_latest": _stats(_time(snaps.latest_version, 50)),
        "find_and_load_latest": _stats(_time(snaps.latest, 50)),
    }
    print(f"[{label}] {versions} versions committed")
    print(f"  commit (1 data file + manifest + hint): {_ms(fig['commit'])}")
    print(f"  find latest version at {versions}:       {_ms(fig['find_latest'])}")
    print(f"  find + load latest manifest:            {_ms(fig['find_and_load_latest'])}")
    return fig


def run_snapshots(versions: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out["local"] = bench_snapshots(LocalStore(Path(tmp) / "state"), "local", versions)
        with moto_server(Path(tmp) / "logs") as endpoint:
            os.environ.update(s3_env(endpoint))
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            make_s3_client().create_bucket(Bucket=bucket)
            out["moto_s3"] = bench_snapshots(S3Store(f"s3://{bucket}/state"), "moto S3", versions)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=None, help="snapshot versions (1000)")
    parser.add_argument(
        "--quick",
        action="store_true",
        default=bool(os.environ.get("OPENPOOL_BENCH_QUICK")),
        help="small sizes: a smoke run of every figure",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get("OPENPOOL_BENCH_SCALE", "1")),
        help="multiply the ingest sizes",
    )
    parser.add_argument(
        "--only",
        choices=["ingest", "backfill", "discovery", "analytics", "snapshots"],
        default=None,
    )
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench.json")
    args = parser.parse_args()

    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "quick": args.quick,
    }
    if args.only in (None, "ingest"):
        sizes = ingest_bench.QUICK if args.quick else ingest_bench.Sizes()
        if args.scale != 1:
            sizes = sizes.scaled(args.scale)
        fig = ingest_bench.run(sizes)
        ingest_bench.print_table(fig)
        report["ingest"] = fig
        report["ingest_targets"] = [
            {"target": name, "measured": got, "met": ok}
            for name, got, ok in ingest_bench.targets(fig)
        ]
    if args.only in (None, "backfill"):
        print("\nbackfill: a month of one-minute files in one run")
        fig = backfill_bench.run(backfill_bench.QUICK if args.quick else backfill_bench.Sizes())
        backfill_bench.print_table(fig)
        report["backfill"] = fig
    if args.only in (None, "discovery"):
        print("\ndiscovery: one run and one sensor poke on a bucket with a long history")
        sizes = discovery_bench.QUICK if args.quick else discovery_bench.Sizes()
        fig = discovery_bench.run(sizes)
        discovery_bench.print_table(fig)
        report["discovery"] = fig
        report["discovery_targets"] = [
            {"target": name, "measured": got, "met": ok}
            for name, got, ok in discovery_bench.targets(fig)
        ]
    if args.only in (None, "analytics"):
        print("\nanalytics refresh")
        fig = analytics_bench.run(analytics_bench.QUICK if args.quick else analytics_bench.Sizes())
        analytics_bench.print_table(fig)
        report["analytics"] = fig
        report["analytics_targets"] = [
            {"target": name, "measured": got, "met": ok}
            for name, got, ok in analytics_bench.targets(fig)
        ]
    if args.only in (None, "snapshots"):
        print("\nsnapshot store")
        versions = args.versions or (200 if args.quick else 1000)
        report["snapshots"] = run_snapshots(versions)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.only and args.out.exists():  # keep the sections this run did not measure
        report = {**json.loads(args.out.read_text()), **report}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    shown = args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out
    print(f"\nfigures written to {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
