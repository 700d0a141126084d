"""Analytics benchmark (issue 5): one partition's refresh over 20M events, time and peak RSS.

For a transcode and an AI partition (their refreshes differ: AI jobs are rated per model
and joined to the worker they were credited to), a snapshot state holding ~20,000,000
events over 64 days is built, then ``openpool.analytics.refresh.refresh`` (what the ingest
DAG's ``analytics`` task calls: performance for all three windows, summary, JSON exports,
Athena publish) runs in a fresh process, timed, and that process's peak RSS
(``ru_maxrss``) is recorded. Refreshes come in pairs: *cold* (no stored day shares, so
the whole ledger is read; the first refresh ever) then *warm* (the shares the cold one
stored: the steady state, as the DAG refreshes after every commit and a commit changes
only the latest days, which are read every time). Pairs run ``repeats`` times on all the
machine's CPUs (as the DAG task runs; the target is for this machine class) and
``one_core`` times pinned to one CPU with Arrow's pools at one thread. The first refresh
then also times each window of ``performance`` alone (after its peak RSS is read). The
load average is recorded with every run: the machine may be shared.

The state is built fast and synthetically, in the tables, schemas and file layout the
ingest commits: one hour of generated traffic (100 workers, the wire format) is parsed
once by the real reader, then replayed hour after hour with fresh event IDs and content
digests, shifted times and jittered response times: one ``events`` file per hour in its
date slice and one ``ai_credits`` file per hour (hourly runs; committed a day at a time
to keep the build short). ``balances`` are accrued hour by hour with the ingest's own
``accrue``; ``connections`` and ``workers`` come from the ingest's own functions over all
connection events and per-hour first/last-seen rows. Tables the refresh never reads
(``event_ids``, ``tickets``, ``ingested_files``) are not built. ``payload_json`` keeps the
template's text (the refresh does not read it; it keeps file sizes realistic). States
live under ``var/bench/`` and are deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from openpool.tables import (
    AI_CREDITS,
    AI_REQUESTS,
    BALANCES,
    CONNECTIONS,
    EVENTS,
    PENDING_AI,
    REJECTED,
)
from openpool.tables import WORKERS as WORKERS_SCHEMA
from tests.bench import common
from tests.services import REPO

VAR = REPO / "var" / "bench"
RATE = Fraction(1, 4)
THRESHOLD_WEI = 10**16
WORKERS = 100
PARTITIONS = ("transcode|us-west", "ai|us-central")
TEMPLATE_START = datetime(2026, 9, 1, 0, 0, tzinfo=UTC)
END = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # history ends here (exclusive)


@dataclass(frozen=True)
class Sizes:
    events: int = 20_000_000  # events per partition
    days: int = 64  # of history
    repeats: int = 2  # cold + warm refresh pairs per partition on the machine's cores
    one_core: int = 1  # and pinned to one core


QUICK = Sizes(events=200_000, days=64, repeats=1, one_core=1)


# ---------------------------------------------------------------------------------------
# Subprocess plumbing


def _child(task: str, **args: Any) -> dict[str, Any]:
    return common.spawn("tests.bench.analytics", task, **args)


def _partition(key: str) -> Any:
    from openpool.partitions import Partition

    return Partition.parse(key)


# ---------------------------------------------------------------------------------------
# Building the state (vectorised replay of one parsed hour)


def _template(partition: Any, per_hour: int, seed: int) -> tuple[Any, Any]:
    """One hour of generated traffic, parsed by the real reader; and its AI credits."""
    import hashlib

    from openpool.ingest import accrue as acc
    from openpool.ingest.batch import parse_batch
    from openpool.ingest.discovery import Candidate, key_start
    from openpool.traffic import generate

    files = generate(
        partition,
        TEMPLATE_START,
        timedelta(hours=1),
        workers=WORKERS,
        events_per_second=per_hour / 3600,
        seed=seed,
    )
    batch = [
        (
            Candidate(f.key, hashlib.sha256(f.body).hexdigest(), len(f.body), key_start(f.key)),
            f.body,
        )
        for f in files
    ]
    parsed = parse_batch(partition, batch, lambda c, d: "")
    events = parsed.events.combine_chunks()
    empty = AI_REQUESTS.empty_table()
    credited = acc.correlate_ai(
        events, empty, PENDING_AI.empty_table(), None, timedelta(hours=24)
    ).credited
    return events, credited


def child_build(args: dict[str, Any]) -> dict[str, Any]:
    """A partition state of about ``events`` events over ``days`` days, ending at END."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from openpool.ingest import accrue as acc
    from openpool.ingest import connections as conn
    from openpool.ingest.connection_state import write_connections
    from openpool.snapshots import SnapshotStore
    from openpool.storage import LocalStore
    from openpool.traffic import object_key, parse_key

    t0 = time.perf_counter()
    part = _partition(args["partition"])
    days = int(args["days"])
    hours = days * 24
    per_hour = max(1, round(int(args["events"]) / hours))
    ev, credited = _template(part, per_hour, seed=int(args.get("seed", 21)))
    n = ev.num_rows
    rng = np.random.default_rng(int(args.get("seed", 21)))
    credit_idx = pc.index_in(credited.column("event_id"), value_set=ev.column("event_id"))
    file_keys = pc.unique(ev.column("source_key"))
    key_idx = pc.index_in(ev.column("source_key"), value_set=file_keys)
    digest_width = len(ev.column("content_sha256")[0].as_py())
    rt = ev.column("response_time_ns").to_numpy(zero_copy_only=False)
    rt_valid = ~np.isnan(rt)
    rt = np.nan_to_num(rt).astype(np.int64)
    rt_mask = ~rt_valid
    kinds = pa.array(["worker-connected", "worker-disconnected", "orchestrator-reset"])
    is_transcode = part.node_type == "transcode"
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    first_hour = END - timedelta(hours=hours)

    spans = [parse_key(k)[1:] for k in file_keys.to_pylist()]

    def replay(h: int) -> tuple[pa.Table, pa.Table]:
        delta = first_hour + timedelta(hours=h) - TEMPLATE_START
        keys = [
            object_key(part, (a + delta).strftime(fmt), (b + delta).strftime(fmt)) for a, b in spans
        ]
        if is_transcode:  # the wire's integer ms, jittered by up to 50 ms either way
            jit = rng.integers(-50, 51, size=n) * 1_000_000
        else:  # ns, jittered by up to 10 %
            jit = (rt * rng.uniform(-0.1, 0.1, size=n)).astype(np.int64)
        new_rt = np.maximum(rt + jit, 1_000_000)
        times = pc.add(ev.column("event_time"), pa.scalar(delta, pa.duration("s")))
        events = (
            ev.set_column(0, "event_id", common.uuid4s(rng, n))
            .set_column(1, "event_time", times.cast(EVENTS.field("event_time").type))
            .set_column(
                EVENTS.get_field_index("source_key"),
                "source_key",
                pc.take(pa.array(keys, pa.string()), key_idx),
            )
            .set_column(
                EVENTS.get_field_index("response_time_ns"),
                "response_time_ns",
                pa.array(new_rt, pa.int64(), mask=rt_mask),
            )
            .set_column(
                EVENTS.get_field_index("content_sha256"),
                "content_sha256",
                common.random_hex(rng, n, digest_width),
            )
        )
        credits = pa.table(
            {
                "event_id": pc.take(events.column("event_id"), credit_idx),
                "eth_address": credited.column("eth_address"),
                "event_time": pc.take(events.column("event_time"), credit_idx),
                "fees_wei": credited.column("fees_wei"),
            },
            schema=AI_CREDITS,
        )
        return events, credits

    snaps = SnapshotStore(LocalStore(Path(args["state"])), part)
    base = None
    balances = BALANCES.empty_table()
    connection_events, seen = [], []
    total = 0
    mark = None
    for d in range(days):
        txn = snaps.begin(base, f"bench-analytics-day-{d}")
        for h in range(d * 24, (d + 1) * 24):
            events, credits = replay(h)
            day = events.column("event_time")[0].as_py().strftime("%Y-%m-%d")
            txn.append("events", events, slice_=day)
            job_credits = acc.transcode_credits(events) if is_transcode else credits
            if not is_transcode:
                txn.append("ai_credits", credits)
            balances = acc.accrue(balances, job_credits, RATE)
            connection_events.append(events.filter(pc.is_in(events.column("event_type"), kinds)))
            named = events.filter(pc.is_valid(events.column("eth_address")))
            agg = named.group_by("eth_address", use_threads=False).aggregate(
                [("event_time", "min"), ("event_time", "max")]
            )
            for col in ("event_time_min", "event_time_max"):
                seen.append(pa.table({"eth_address": agg["eth_address"], "event_time": agg[col]}))
            total += events.num_rows
            mark = pc.max(events.column("event_time")).as_py()
        if d == days - 1:
            change = conn.replay_connections(
                CONNECTIONS.empty_table(), pa.concat_tables(connection_events)
            )
            workers = conn.update_workers(
                WORKERS_SCHEMA.empty_table(),
                pa.concat_tables(seen),
                change.open,
                conn.opened_counts(change.opened),
            )
            txn.replace("balances", balances)
            log = conn.log_of(pa.concat_tables(connection_events))
            write_connections(txn, None, change.open, change.closed, [], log)
            txn.set_properties(
                connections_clock=pc.max(log.column("event_time")).as_py().isoformat()
            )
            txn.replace("workers", workers)
            txn.replace("ai_requests", AI_REQUESTS.empty_table())
            txn.replace("pending_ai", PENDING_AI.empty_table())
            txn.append("rejected_events", REJECTED.empty_table())
            txn.set_properties(
                files_ingested=0,
                files_quarantined=0,
                events_read=total,
                events_accepted=total,
                events_duplicate=0,
                events_rejected=0,
                unattributed_fees_wei="0",
                pending_ai_jobs=0,
                watermark=mark.isoformat() if mark else None,
            )
        base = txn.commit()
    assert base is not None
    return {
        "seconds": time.perf_counter() - t0,
        "partition": part.key,
        "events": total,
        "template_events": n,
        "days": days,
        "commits": base.version,
        "data_files": sum(len(v) for v in base.manifest.tables.values()),
        "events_data_bytes": sum(f.size for f in base.files("events")),
        "workers": base.manifest.rows("balances"),
    }


# ---------------------------------------------------------------------------------------
# Measurement


def child_refresh(args: dict[str, Any]) -> dict[str, Any]:
    """One timed ``refresh`` of the partition; optionally then each window of
    ``performance`` alone (after peak RSS is read, so it does not count)."""
    from openpool.analytics.performance import performance
    from openpool.analytics.refresh import refresh
    from openpool.snapshots import SnapshotStore
    from openpool.storage import LocalStore

    part = _partition(args["partition"])
    state = LocalStore(Path(args["state"]))
    metrics = LocalStore(Path(args["metrics"]))
    rss_before = common.peak_rss_bytes()
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    done = refresh(part, state, metrics, THRESHOLD_WEI)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = common.peak_rss_bytes()
    out = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_bytes": peak,
        "rss_before_bytes": rss_before,
        "cpus": len(os.sched_getaffinity(0)),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "report": done.report(),
    }
    if args.get("breakdown"):
        snap = SnapshotStore(state, part).latest()
        windows = {}
        for w in ("24h", "7d", "all"):
            t1 = time.perf_counter()
            performance(snap, (w,))
            windows[w] = time.perf_counter() - t1
        out["window_seconds"] = windows
    return out


CHILDREN = {"build": child_build, "refresh": child_refresh}


def _refreshes(key: str, state: Path, work: Path, sizes: Sizes) -> dict[str, Any]:
    """Cold and warm refreshes of one built state, each in a fresh process.

    Cold: no stored day shares (the whole ledger is read, and shares are stored); warm: the
    shares the previous refresh stored (the steady state: the DAG refreshes after every
    commit, and a commit changes only the latest days, which are always read).
    """
    from openpool.analytics.performance import daycache

    runs: dict[str, list[dict[str, Any]]] = {}
    plan = [(m, False) for _ in range(sizes.repeats) for m in ("cold", "warm")]
    plan += [(m, True) for _ in range(sizes.one_core) for m in ("cold", "warm")]
    for k, (mode, pin) in enumerate(plan):
        if mode == "cold":
            shutil.rmtree(state / daycache.PREFIX, ignore_errors=True)
        r = _child(
            "refresh",
            pin=pin,
            partition=key,
            state=str(state),
            metrics=str(work / f"m{k}"),
            breakdown=k == 0,
        )
        r["mode"] = mode
        runs.setdefault(f"{mode}{'_one_core' if pin else ''}", []).append(r)
        w = r.get("window_seconds")
        alone = (
            f"; then performance alone: 24h {w['24h']:.2f} s, 7d {w['7d']:.2f} s, "
            f"all {w['all']:.2f} s (with the shares just stored)"
            if w
            else ""
        )
        print(
            f"    {mode} refresh ({r['cpus']} CPU{'s' if r['cpus'] > 1 else ''}): "
            f"{r['seconds']:.2f} s (CPU {r['cpu_seconds']:.2f} s), peak RSS "
            f"{common.mb(r['peak_rss_bytes'])}, load {r['load_before']:.1f}{alone}",
            flush=True,
        )
    every = [r for rs in runs.values() for r in rs]
    out: dict[str, Any] = {
        f"{name}_seconds": [r["seconds"] for r in rs] for name, rs in runs.items()
    }
    out.update({f"{name}_cpu_seconds": [r["cpu_seconds"] for r in rs] for name, rs in runs.items()})
    out.update(
        peak_rss_bytes=max(r["peak_rss_bytes"] for r in every),
        rss_before_refresh_bytes=max(r["rss_before_bytes"] for r in every),
        load_average_before=[r["load_before"] for r in every],
        window_seconds=every[0].get("window_seconds"),
        report=every[-1]["report"],
    )
    return out


def run(sizes: Sizes) -> dict[str, Any]:
    """The whole analytics benchmark; prints progress and returns the figures."""
    VAR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="analytics-", dir=VAR))
    out: dict[str, Any] = {}
    try:
        for key in PARTITIONS:
            slug = key.replace("|", "-")
            state = work / slug / "state"
            print(
                f"  {key}: building ~{sizes.events:,} events over {sizes.days} days ...", flush=True
            )
            built = _child(
                "build", partition=key, state=str(state), events=sizes.events, days=sizes.days
            )
            print(
                f"    {built['events']:,} events, {built['workers']} workers, "
                f"{built['data_files']} data files "
                f"({common.mb(built['events_data_bytes'])} of events), "
                f"built in {built['seconds']:.0f} s",
                flush=True,
            )
            out[key] = {
                "events": built["events"],
                "days": built["days"],
                "workers": built["workers"],
                "data_files": built["data_files"],
                "events_data_bytes": built["events_data_bytes"],
                "build_seconds": built["seconds"],
                **_refreshes(key, state, work / slug, sizes),
            }
            shutil.rmtree(work / slug, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "sizes": asdict(sizes),
        "cpu": common.cpu(),
        "machine_cpus": len(os.sched_getaffinity(0)),
        "partitions": out,
    }


def targets(fig: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) per partition, for issue 5's targets: the slowest cold and
    warm refresh on the machine's cores (the target's machine class), and peak RSS."""
    rows = []
    for key, p in fig["partitions"].items():
        for mode in ("cold", "warm"):
            secs = p.get(f"{mode}_seconds") or []
            if not secs:
                continue
            worst = max(secs)
            rows.append(
                (
                    f"{key}: {mode} refresh of {p['events']:,} events < 20 s",
                    f"{worst:.2f} s (slowest of {len(secs)} on {fig['machine_cpus']} CPUs)",
                    worst < 20,
                )
            )
        rows.append(
            (f"{key}: peak RSS < 2 GB", common.mb(p["peak_rss_bytes"]), p["peak_rss_bytes"] < 2e9)
        )
    return rows


def print_table(fig: dict[str, Any]) -> None:
    print(f"\nanalytics refresh ({fig['machine_cpus']} CPUs; one-core runs on CPU {fig['cpu']})")

    def runs(p: dict[str, Any], name: str) -> str:
        return ", ".join(f"{s:.2f}" for s in p.get(f"{name}_seconds", [])) or "-"

    for key, p in fig["partitions"].items():
        print(
            f"  {key}: {p['events']:,} events over {p['days']} days, {p['workers']} workers; "
            f"state built in {p['build_seconds']:.0f} s"
        )
        print(f"    cold refresh: {runs(p, 'cold')} s (one core: {runs(p, 'cold_one_core')} s)")
        print(f"    warm refresh: {runs(p, 'warm')} s (one core: {runs(p, 'warm_one_core')} s)")
        print(f"    peak RSS: {common.mb(p['peak_rss_bytes'])}")
        w = p.get("window_seconds")
        if w:
            print(
                f"    performance alone: 24h {w['24h']:.2f} s, 7d {w['7d']:.2f} s, "
                f"all {w['all']:.2f} s (with stored shares)"
            )
    print("targets (issue 5):")
    for name, got, ok in targets(fig):
        print(f"  [{'met' if ok else 'MISSED'}] {name}: {got}")


def main(argv: list[str] | None = None) -> int:
    return common.main(argv, CHILDREN, lambda quick: run(QUICK if quick else Sizes()), print_table)


if __name__ == "__main__":
    raise SystemExit(main())
