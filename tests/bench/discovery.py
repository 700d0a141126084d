"""Discovery benchmark (issue 20): what one run and one sensor poke cost with 10k and 500k
keys already in the bucket (a week and a year of one-minute files).

Each case runs in a fresh interpreter (pinned to one CPU) holding moto's own S3 server
(``ThreadedMotoServer``) in a thread: the bucket's history is put straight into the
server's backend (500,000 PUTs over HTTP would take most of an hour), then the library
talks to it over HTTP like any client. The history is continuous one-minute keys up to
the new traffic, all ingested: the ``ingested_files`` index in its day slices, with the
watermark and the last sweep recorded as runs leave them. The state is on the same
server. A warm-up run takes 50 new files; then each measured run takes 2 more and each
poke finds 1.

Figures per case: S3 requests of a run and of a poke (counted by a botocore hook on every
call), the run's client CPU time (``time.thread_time`` of the thread that runs it: the
library's own work, without moto's) and its wall time. moto answers ``StartAfter`` by
sorting every key of the bucket on each request (S3 seeks it in its index), so the wall
time grows with the bucket in moto alone; the CPU time and the request counts are the
figures the target is judged on: large <= 1.1 x small. A sweep (a full listing) is
measured in the small case only: at 500k it is 500 listing requests by S3's page size,
once a day.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from tests.bench import common

T0 = datetime(2026, 9, 1, tzinfo=UTC)
RATE = Fraction(1, 4)
TARGET = 1.1


@dataclass(frozen=True)
class Sizes:
    small: int = 10_000
    large: int = 500_000
    repeats: int = 5  # measured runs and pokes per case (medians are shown)


QUICK = Sizes(small=1_000, large=10_000, repeats=3)


def child_case(args: dict[str, Any]) -> dict[str, Any]:
    """One bucket with ``keys`` old keys: a warm-up run, then measured runs, pokes, a sweep."""
    from openpool.ingest.discovery import key_start
    from openpool.ingest.ingested import write_index
    from openpool.ingest.run import ingest
    from openpool.ingest.window import MARK, SWEEP_AT, Window, poke
    from openpool.partitions import Partition
    from openpool.snapshots import SnapshotStore
    from openpool.storage import S3Store, make_s3_client
    from openpool.traffic import generate, write
    from tests.helpers.history import ingested_rows, old_keys
    from tests.helpers.moto_inproc import moto_in_process

    part = Partition("transcode", "us-west")
    n = int(args["keys"])
    keys = old_keys(part, n, T0)
    last = key_start(keys[-1])
    assert last is not None
    new = generate(part, T0, timedelta(hours=2), workers=20, events_per_second=2, seed=20)
    with moto_in_process() as moto:
        client = make_s3_client()
        calls: list[str] = []
        client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
        bucket = f"bench-discovery-{n}"
        client.create_bucket(Bucket=bucket)
        t = time.perf_counter()
        etag = moto.fill(bucket, (f"events/{k}" for k in keys))
        fill_s = time.perf_counter() - t
        events = S3Store(f"s3://{bucket}/events", client=client)
        state = S3Store(f"s3://{bucket}/state", client=client)
        snaps = SnapshotStore(state, part)
        txn = snaps.begin(None, "history")
        write_index(txn, None, ingested_rows(keys, etag))
        txn.set_properties(**{MARK: last.isoformat(), SWEEP_AT: datetime.now(UTC).isoformat()})
        txn.commit()
        keys = []
        # moto's keys live in this process: keep them out of the collector's passes, which
        # the measured thread would otherwise pay for in proportion to the bucket
        gc.collect()
        gc.freeze()
        window = Window()
        write(new[:50], events)
        ingest(part, events, state, RATE, window=window)  # warm-up (imports, first reads)
        runs, pokes = [], []
        at = 50
        for _ in range(int(args["repeats"])):
            write(new[at : at + 2], events)
            at += 2
            calls.clear()
            w, c = time.perf_counter(), time.thread_time()
            r = ingest(part, events, state, RATE, window=window)
            runs.append(
                {
                    "requests": len(calls),
                    "lists": calls.count("ListObjectsV2"),
                    "cpu_s": time.thread_time() - c,
                    "wall_s": time.perf_counter() - w,
                    "files": r.counts.files_ingested,
                    "swept": r.sweep is not None,
                }
            )
            write(new[at : at + 1], events)
            calls.clear()
            w, c = time.perf_counter(), time.thread_time()
            p = poke(events, part, snaps.latest(), window)
            pokes.append(
                {
                    "requests": len(calls),
                    "lists": calls.count("ListObjectsV2"),
                    "listed": p.listed,
                    "pending": p.pending,
                    "cpu_s": time.thread_time() - c,
                    "wall_s": time.perf_counter() - w,
                }
            )
            ingest(part, events, state, RATE, window=window)  # take the poked file
            at += 1
        sweep = None
        if args.get("sweep"):
            calls.clear()
            w, c = time.perf_counter(), time.thread_time()
            r = ingest(part, events, state, RATE, window=window, sweep=True)
            assert r.sweep is not None
            sweep = {
                "requests": len(calls),
                "lists": calls.count("ListObjectsV2"),
                "listed": r.sweep.listed,
                "missed": r.sweep.missed,
                "cpu_s": time.thread_time() - c,
                "wall_s": time.perf_counter() - w,
            }
    return {
        "keys": n,
        "fill_s": fill_s,
        "runs": runs,
        "pokes": pokes,
        "sweep": sweep,
        "peak_rss_bytes": common.peak_rss_bytes(),
    }


CHILDREN = {"case": child_case}


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def run(sizes: Sizes) -> dict[str, Any]:
    small = common.spawn(
        "tests.bench.discovery", "case", keys=sizes.small, repeats=sizes.repeats, sweep=True
    )
    large = common.spawn("tests.bench.discovery", "case", keys=sizes.large, repeats=sizes.repeats)
    return {"sizes": sizes.__dict__, "small": small, "large": large}


def targets(fig: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each figure judged large <= 1.1 x small."""
    out = []
    s, big = fig["small"], fig["large"]
    for label, rows, key in (
        ("S3 requests per run", "runs", "requests"),
        ("S3 requests per sensor poke", "pokes", "requests"),
        ("client CPU per run", "runs", "cpu_s"),
    ):
        a, b = _median(s[rows], key), _median(big[rows], key)
        shown = f"{b:.0f} vs {a:.0f}" if key == "requests" else f"{b * 1e3:.0f} vs {a * 1e3:.0f} ms"
        name = f"{label} at {big['keys']:,} keys <= {TARGET} x at {s['keys']:,}"
        out.append((name, f"{shown} ({b / a:.2f} x)", b <= TARGET * a))
    return out


def print_table(fig: dict[str, Any]) -> None:
    rows = []
    for case in (fig["small"], fig["large"]):
        k = f"{case['keys']:,} old keys"
        r, p = case["runs"], case["pokes"]
        rows += [
            (f"{k}: a run (2 new files)",
             f"{_median(r, 'requests'):.0f} S3 requests ({_median(r, 'lists'):.0f} listing), "
             f"client CPU {_median(r, 'cpu_s') * 1e3:.0f} ms, "
             f"wall {_median(r, 'wall_s') * 1e3:.0f} ms"),
            (f"{k}: a sensor poke",
             f"{_median(p, 'requests'):.0f} S3 requests ({_median(p, 'lists'):.0f} listing, "
             f"{_median(p, 'listed'):.0f} keys listed), client CPU "
             f"{_median(p, 'cpu_s') * 1e3:.0f} ms, wall {_median(p, 'wall_s') * 1e3:.0f} ms"),
            (f"{k}: moto process peak RSS", common.mb(case["peak_rss_bytes"])),
        ]  # fmt: skip
        if case["sweep"]:
            sw = case["sweep"]
            rows.append(
                (
                    f"{k}: a sweep",
                    f"{sw['requests']} S3 requests ({sw['lists']} listing, {sw['listed']:,} "
                    f"keys), client CPU {sw['cpu_s'] * 1e3:.0f} ms, wall {sw['wall_s']:.1f} s",
                )
            )
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print("  (wall time includes moto sorting the whole bucket on every listing request)")
    for name, got, ok in targets(fig):
        print(f"  target {name}: {got} -> {'met' if ok else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    return common.main(argv, CHILDREN, lambda quick: run(QUICK if quick else Sizes()), print_table)


if __name__ == "__main__":
    raise SystemExit(main())
