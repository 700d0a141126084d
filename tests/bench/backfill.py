"""Backfill benchmark (issue 14): a month of one-minute files ingested in ONE run.

A backfill (or an archive replay) hands one run every file of its interval, so the batch
spans hundreds of hours and dozens of days. Staging used to filter the whole batch once
per hour slice and once per day (quadratic in the batch); it now groups the batch once.
This figure is the wall time and peak RSS of that one run, on one pinned core, on files
generated as an orchestrator flushing every minute writes them (``--quick``: three days).

Issue 20: the same interval as a backfill takes it, in batches of the CLI's default size
(one commit each), read by 1 and by 2 processes (``ingest(workers=...)``, the CLI's
``--workers``): wall time, median of pairs run back to back (1 then 2), and the median of
the pairs' ratios, and where the CPU went (the committing process, the readers). These
children are not pinned: the second process needs a second CPU; on a busy machine the
wall times mean little, the CPU split (reading is most of the work) still holds.

Inputs are cached under ``var/bench/inputs/backfill-*``; the state is built under
``var/bench/work/`` and deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from tests.bench import common
from tests.services import REPO

VAR = REPO / "var" / "bench"
START = datetime(2026, 9, 1, tzinfo=UTC)
RATE = Fraction(1, 4)


@dataclass(frozen=True)
class Sizes:
    days: int = 30
    events_per_minute: int = 4  # a quiet partition: each one-minute flush holds a few events
    workers: int = 50


QUICK = Sizes(days=3)


def _partition() -> Any:
    from openpool.partitions import Partition

    return Partition("transcode", "us-west")


def _inputs(sizes: Sizes) -> Path:
    key = common.inputs_key([sizes.days, sizes.events_per_minute, sizes.workers])
    return VAR / "inputs" / f"backfill-{key}"


def child_generate(args: dict[str, Any]) -> dict[str, Any]:
    from openpool.storage import LocalStore
    from openpool.traffic import count_events, generate, write

    root = Path(args["root"])
    files = generate(
        _partition(),
        START,
        timedelta(days=args["days"]),
        workers=args["workers"],
        events_per_second=args["events_per_minute"] / 60,
        flush_seconds=60,
        seed=14,
    )
    tmp = root.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(files, LocalStore(tmp))
    tmp.rename(root)
    return {"files": len(files), "events": sum(count_events(f.body) for f in files)}


def _children_cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool's workers, once joined
    return ru.ru_utime + ru.ru_stime


def child_backfill(args: dict[str, Any]) -> dict[str, Any]:
    from openpool.ingest.run import ingest
    from openpool.storage import LocalStore

    work = Path(tempfile.mkdtemp(dir=args["work"]))
    try:
        t0 = time.perf_counter()
        c0 = time.process_time()
        report = ingest(
            _partition(),
            LocalStore(args["root"]),
            LocalStore(work / "state"),
            RATE,
            # the whole month in one batch, as a backfill run takes it (unless told)
            max_files=args.get("max_files", 10**7),
            workers=args.get("workers", 1),
        )
        return {
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "batches": report.batches,
            "events_accepted": report.counts.events_accepted,
            "files": report.counts.files_ingested,
            "processes": len(report.parsed_in),
            "worker_cpu_seconds": _children_cpu(),
            "peak_rss_bytes": common.peak_rss_bytes(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


BATCH_FILES = 250  # the CLI's --max-files default: one commit per 250 files
PAIRS = 3


CHILDREN = {"generate": child_generate, "backfill": child_backfill}


def run_workers(root: Path, work: Path, pairs: int) -> dict[str, Any]:
    """Median wall time of a batched backfill read by 1 and by 2 processes."""
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(pairs):
        for n in (1, 2):
            runs[n].append(
                common.spawn(
                    "tests.bench.backfill",
                    "backfill",
                    pin=False,
                    root=str(root),
                    work=str(work),
                    max_files=BATCH_FILES,
                    workers=n,
                )
            )
    if {r["events_accepted"] for rs in runs.values() for r in rs} != {
        runs[1][0]["events_accepted"]
    }:
        raise RuntimeError("the 1- and 2-process backfills accepted different event counts")
    ratios = [a["seconds"] / b["seconds"] for a, b in zip(runs[1], runs[2], strict=True)]
    return {
        "pairs": pairs,
        "batch_files": BATCH_FILES,
        "batches": runs[1][0]["batches"],
        "cpus": len(os.sched_getaffinity(0)),
        "seconds_1": statistics.median(r["seconds"] for r in runs[1]),
        "seconds_2": statistics.median(r["seconds"] for r in runs[2]),
        "processes_2": max(r["processes"] for r in runs[2]),
        "cpu_1": statistics.median(r["cpu_seconds"] for r in runs[1]),
        "cpu_2_parent": statistics.median(r["cpu_seconds"] for r in runs[2]),
        "cpu_2_workers": statistics.median(r["worker_cpu_seconds"] for r in runs[2]),
        "speedup": statistics.median(ratios),
    }


def run(sizes: Sizes) -> dict[str, Any]:
    root = _inputs(sizes)
    if not root.exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        common.spawn(
            "tests.bench.backfill",
            "generate",
            pin=False,
            root=str(root),
            days=sizes.days,
            events_per_minute=sizes.events_per_minute,
            workers=sizes.workers,
        )
    work = VAR / "work"
    work.mkdir(parents=True, exist_ok=True)
    fig = common.spawn("tests.bench.backfill", "backfill", root=str(root), work=str(work))
    workers = run_workers(root, work, 1 if sizes == QUICK else PAIRS)
    return {"sizes": sizes.__dict__, **fig, "workers": workers}


def print_table(fig: dict[str, Any]) -> None:
    s = fig["sizes"]
    rows = [
        ("batch", f"{s['days']} days of one-minute files: {fig['files']:,} files"),
        ("events accepted", f"{fig['events_accepted']:,} in {fig['batches']} commit(s)"),
        ("wall time of the one run", f"{fig['seconds']:.1f} s ({fig['cpu_seconds']:.1f} CPU-s)"),
        ("files per second", f"{fig['files'] / fig['seconds']:,.0f}"),
        ("peak RSS", common.mb(fig["peak_rss_bytes"])),
    ]
    w = fig["workers"]
    rows += [
        (
            "batched, 1 process",
            f"{w['seconds_1']:.1f} s ({w['batches']} commits of {w['batch_files']} files)",
        ),
        (
            "batched, 2 processes",
            f"{w['seconds_2']:.1f} s ({w['processes_2']} reading, {w['cpus']} CPUs usable)",
        ),
        (
            "CPU, 1 / 2 processes",
            f"{w['cpu_1']:.1f} CPU-s / {w['cpu_2_parent']:.1f} committing"
            f" + {w['cpu_2_workers']:.1f} in the readers",
        ),
        ("speed-up, 2 vs 1 process", f"{w['speedup']:.2f}x (median of {w['pairs']} pair(s))"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")


def main(argv: list[str] | None = None) -> int:
    return common.main(argv, CHILDREN, lambda quick: run(QUICK if quick else Sizes()), print_table)


if __name__ == "__main__":
    raise SystemExit(main())
