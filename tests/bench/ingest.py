"""Ingest benchmark (issues 3 and 20): throughput, memory and history-independence.

Figures, on generated files as the orchestrators write them (pretty-printed as Go's
``json.MarshalIndent`` does, 10,000 events a file, 200 workers, connections, disconnects,
resets, ticket redemptions and unknown event types; transcode and AI):

* whole-process rate of ``openpool ingest`` (a fresh interpreter: imports, read, validate,
  dedup, accrue, commit; what every Airflow task pays) on one CPU, for ~1,000,000
  transcode and ~300,000 AI events (one process per partition), next to a fresh
  interpreter that merely ``json.loads`` the same files with the standard library. The
  pairs run back to back, repeated; the figure is the median of the pairs' ratios (each
  pair's ratio cancels slow drifts of a shared machine's speed), shown with its spread;
* peak RSS of the ingest process of the 1M-event partition (``wait4``'s ``ru_maxrss``);
* the time of one run of a ~100,000-event batch (one hour of new events) on top of a
  ledger that already holds ~1M and ~20M events (in-process, after a warm-up).

Every measurement runs in a fresh subprocess pinned to one CPU (``sched_setaffinity``),
with ``OMP_NUM_THREADS=1`` (which also sizes Arrow's CPU pool), so figures do not mix.

The history is built synthetically and fast: one hour of generated traffic (~100k events)
is parsed once, then replayed hour after hour with fresh event IDs and shifted times and
written straight into the snapshot tables with the file layout hourly production runs
would leave (see :func:`child_history`); its last hour goes through the real batch steps.
The measured runs then ingest real generated files for the hours after the history, each
run one more hour (~100k events in ~60 files, as an orchestrator flushing every minute
writes them).

Generated input files are cached under ``var/bench/inputs/`` (keyed by the generator's
source and the sizes); states are built under ``var/bench/work/`` and deleted afterwards.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from openpool.tables import CONNECTIONS, ID_INDEX
from tests.bench import common
from tests.services import REPO

VAR = REPO / "var" / "bench"
RATE = Fraction(1, 4)
NODE_TYPE, REGION = "transcode", "us-west"
WORKERS = 100
# The throughput batch: files as busy orchestrators flush them (10,000 events each), for a
# transcode and an AI partition, 200 workers each, with resets.
BATCH_START = datetime(2026, 10, 1, 0, 0, tzinfo=UTC)
BATCH_EVENTS_PER_SECOND = 1000.0
BATCH_WORKERS = 200
BATCH_PARTITIONS = (("transcode", "us-west", 1.0), ("ai", "us-central", 0.3))  # share of batch
RSS_TARGET = 1.1e9  # bytes, for the 1M-event partition
# History ends (and the measured hourly runs begin) here; history lies in the hours before.
T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
TEMPLATE_START = datetime(2026, 9, 1, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Sizes:
    batch: int = 1_000_000  # events in the throughput batch's transcode partition
    run: int = 100_000  # events per measured run (one hour of traffic)
    histories: tuple[int, ...] = (1_000_000, 20_000_000)
    runs: int = 3  # measured runs per history (consecutive hours)
    repeats: int = 5  # interleaved repeats of the json.loads / ingest pair

    def scaled(self, factor: float) -> Sizes:
        return Sizes(
            batch=max(1000, int(self.batch * factor)),
            run=max(1000, int(self.run * factor)),
            histories=tuple(max(1000, int(h * factor)) for h in self.histories),
            runs=self.runs,
            repeats=self.repeats,
        )


QUICK = Sizes(batch=100_000, run=20_000, histories=(100_000, 2_000_000), runs=2, repeats=2)


# ---------------------------------------------------------------------------------------
# Subprocess plumbing


# ---------------------------------------------------------------------------------------
# Inputs (generated once, cached)


def _child(task: str, **args: Any) -> dict[str, Any]:
    return common.spawn("tests.bench.ingest", task, **args)


def _partition() -> Any:
    from openpool.partitions import Partition

    return Partition(NODE_TYPE, REGION)


def _inputs_dir(sizes: Sizes) -> Path:
    key = [sizes.batch, sizes.run, sizes.runs, WORKERS, BATCH_WORKERS, BATCH_PARTITIONS]
    return VAR / "inputs" / common.inputs_key(key)


def _generate(
    root: Path,
    start: datetime,
    events: int,
    events_per_second: float,
    seed: int,
    partition: Any = None,
    workers: int = WORKERS,
    resets: int = 0,
) -> dict[str, Any]:
    from openpool.storage import LocalStore
    from openpool.traffic import Mess, count_events, generate, write

    seconds = max(1, round(events / events_per_second))
    files = generate(
        partition or _partition(),
        start,
        timedelta(seconds=seconds),
        workers=workers,
        events_per_second=events_per_second,
        seed=seed,
        mess=Mess(resets=resets),
    )
    write(files, LocalStore(root))
    return {
        "files": len(files),
        "events": sum(count_events(f.body) for f in files),
        "bytes": sum(len(f.body) for f in files),
    }


def child_generate(args: dict[str, Any]) -> dict[str, Any]:
    """Every input file: the throughput batch, the history template hour, the run hours."""
    root = Path(args["root"])
    run, hour = int(args["run"]), 3600
    from openpool.partitions import Partition

    out: dict[str, Any] = {"batch": {}}
    for node_type, region, share in BATCH_PARTITIONS:
        events = int(int(args["batch"]) * share)
        out["batch"][f"{node_type}|{region}"] = _generate(
            root / "batch",
            BATCH_START,
            events,
            BATCH_EVENTS_PER_SECOND,
            seed=11,
            partition=Partition(node_type, region),
            workers=BATCH_WORKERS,
            resets=max(1, events // 200_000),  # an orchestrator restart every ~3 minutes
        )
    out |= {
        "template": _generate(root / "template", TEMPLATE_START, run, run / hour, seed=12),
    }
    for k in range(int(args["runs"])):
        out[f"run{k}"] = _generate(
            root / f"run{k}", T0 + timedelta(hours=k), run, run / hour, seed=13 + k
        )
    return out


def prepare_inputs(sizes: Sizes) -> tuple[Path, dict[str, Any]]:
    root = _inputs_dir(sizes)
    marker = root / "inputs.json"
    if marker.exists():
        return root, json.loads(marker.read_text())
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    print(f"generating input files under {root.relative_to(REPO)} (once; cached) ...", flush=True)
    t0 = time.perf_counter()
    info = _child("generate", root=str(root), batch=sizes.batch, run=sizes.run, runs=sizes.runs)
    marker.write_text(json.dumps(info, indent=2))
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return root, info


def _event_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if p.is_file())


def _whole_process(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``argv`` in a fresh process pinned to the bench CPU: wall seconds from start to
    exit, its CPU seconds and its own peak RSS (from ``wait4``), and its stdout."""
    import os
    import subprocess

    cpu = common.cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace"))
        raise RuntimeError(f"{argv[:4]} failed with exit code {proc.returncode}")
    return {"seconds": seconds, "stdout": out.decode()}


JSON_LOADS = """
import json, sys
from pathlib import Path
n = 0
for p in sorted(Path(sys.argv[1]).rglob("*.json")):
    n += len(json.loads(p.read_bytes()))
print(n)
"""


def child_whole(args: dict[str, Any]) -> dict[str, Any]:
    """One whole-process measurement, from this otherwise idle helper: ``json`` (a fresh
    interpreter ``json.loads``-ing every file of a partition) or ``ingest`` (a fresh
    ``openpool ingest`` of that partition into an empty state). The helper's
    RUSAGE_CHILDREN peak is then that one child's."""
    import resource

    env = common.child_env()
    # Bytecode as an installed package has it: compiled once, not on every start (this
    # workplace sets PYTHONDONTWRITEBYTECODE; the cache lives outside the tree).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(VAR / "pycache")
    if args["what"] == "json":
        argv = [sys.executable, "-c", JSON_LOADS, args["events"] + "/" + args["path"]]
    else:
        env |= {"OPENPOOL_EVENTS_URI": args["events"], "OPENPOOL_STATE_URI": args["state"]}
        node_type, region = args["path"].split("/")[::-1]
        argv = [sys.executable, "-m", "openpool.cli", "ingest"]
        argv += ["--node-type", node_type, "--region", region]
    got = _whole_process(argv, env)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    last = got["stdout"].strip().splitlines()[-1]
    events = int(last) if args["what"] == "json" else json.loads(last)["events_read"]
    return {"seconds": got["seconds"], "events": events, "peak_rss_bytes": rss}


# ---------------------------------------------------------------------------------------
# Measurements (each in its own process)


def _warm_up(scratch: Path) -> None:
    """A tiny ingest elsewhere: imports, lazily chosen backends, cached decoders."""
    from openpool.ingest.run import ingest
    from openpool.storage import LocalStore
    from openpool.traffic import generate, write

    files = generate(
        _partition(),
        datetime(2026, 1, 1, tzinfo=UTC),
        timedelta(seconds=30),
        workers=3,
        events_per_second=20,
        seed=99,
    )
    events, state = LocalStore(scratch / "events"), LocalStore(scratch / "state")
    write(files, events)
    ingest(_partition(), events, state, RATE)
    shutil.rmtree(scratch, ignore_errors=True)


def child_json(args: dict[str, Any]) -> dict[str, Any]:
    """Read every file and ``json.loads`` it (the standard-library baseline)."""
    paths = _event_files(Path(args["root"]))
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for p in paths:
        n += len(json.loads(p.read_bytes()))
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "events": n,
    }


def child_ingest(args: dict[str, Any]) -> dict[str, Any]:
    """One ``ingest()`` of every file under ``events`` into ``state``, timed."""
    from openpool.ingest.run import ingest
    from openpool.storage import LocalStore

    events_root, state_root = Path(args["events"]), Path(args["state"])
    for src in args.get("add", []):  # a run's new files arrive in the bucket (not timed)
        for p in _event_files(Path(src)):
            dst = events_root / p.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst)
    _warm_up(Path(args["scratch"]))
    rss_before = common.peak_rss_bytes()
    t0, c0 = time.perf_counter(), time.process_time()
    report = ingest(_partition(), LocalStore(events_root), LocalStore(state_root), RATE)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - c0,
        "counts": report.summary(),
        "batches": report.batches,
        "peak_rss_bytes": common.peak_rss_bytes(),
        "peak_rss_before_bytes": rss_before,
    }


# ---------------------------------------------------------------------------------------
# Synthetic history


def child_history(args: dict[str, Any]) -> dict[str, Any]:
    """Build a ledger of about ``events`` events ending at T0, laid out as hourly runs.

    The template hour (real generated files, parsed by the real reader) is replayed into
    each history hour with fresh IDs, content digests and ETags and times shifted by whole
    hours. The bulk of the hours is written straight into snapshot tables, file for file
    as hourly runs would have left them (per hour: one ``events`` file in its day's slice,
    one ``event_ids`` hour slice, one ``ingested_files`` and one ``tickets`` file; the
    connections table replays every connection event of the history), a day per commit.
    The last history hour then goes through the real dedup, accrual and staging, which
    also writes the derived tables (balances, workers, ...) and the counters.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from openpool.ingest import connections as conn
    from openpool.ingest.batch import (
        Parsed,
        apply_batch,
        parse_batch,
        with_version,
    )
    from openpool.ingest.connection_state import write_connections
    from openpool.ingest.discovery import Candidate
    from openpool.ingest.tickets import tickets_from
    from openpool.snapshots import SnapshotStore
    from openpool.storage import LocalStore
    from openpool.traffic import object_key, parse_key

    store = LocalStore(Path(args["template"]))
    cands = [
        Candidate(i.key, i.etag, i.size, None)
        for i in store.list(_partition().path + "/")
        if i.key.endswith(".json")
    ]
    tmpl = parse_batch(_partition(), [(c, store.get(c.key)) for c in cands], lambda c, d: "")
    ev = tmpl.events.combine_chunks()
    n = ev.num_rows
    hours = max(1, round(int(args["events"]) / n))
    snaps = SnapshotStore(LocalStore(Path(args["state"])), _partition())
    rng = np.random.default_rng(int(args.get("seed", 5)))
    keys = tmpl.files.column("source_key").to_pylist()
    key_idx = pc.index_in(ev.column("source_key"), value_set=tmpl.files.column("source_key"))
    digest_width = len(ev.column("content_sha256")[0].as_py())
    kinds = pa.array(["worker-connected", "worker-disconnected", "orchestrator-reset"])
    fmt = "%Y-%m-%dT%H:%M:%SZ"

    def replay(h: int) -> tuple[datetime, Parsed]:
        start = T0 - timedelta(hours=hours - h)
        delta = start - TEMPLATE_START
        new_keys = []
        for k in keys:
            _, first, last = parse_key(k)
            new_keys.append(
                object_key(
                    _partition(), (first + delta).strftime(fmt), (last + delta).strftime(fmt)
                )
            )
        new_keys_arr = pa.array(new_keys, pa.string())
        times = pc.add(ev.column("event_time"), pa.scalar(delta, pa.duration("s")))
        events = (
            ev.set_column(0, "event_id", common.uuid4s(rng, n))
            .set_column(1, "event_time", times.cast(ev.schema.field("event_time").type))
            .set_column(
                ev.schema.get_field_index("source_key"),
                "source_key",
                pc.take(new_keys_arr, key_idx),
            )
            .set_column(
                ev.schema.get_field_index("content_sha256"),
                "content_sha256",
                common.random_hex(rng, n, digest_width),
            )
        )
        files = tmpl.files.set_column(0, "source_key", new_keys_arr).set_column(
            1, "etag", common.random_hex(rng, len(keys), 20)
        )
        return start, Parsed(events, tmpl.rejected, tmpl.quarantined, files)

    t0 = time.perf_counter()
    base = None
    connection_events = []
    totals = {"files_ingested": 0, "events_read": 0, "events_accepted": 0}
    bulk = list(range(hours - 1))
    days = [bulk[i : i + 24] for i in range(0, len(bulk), 24)]
    for d, group in enumerate(days):
        txn = snaps.begin(base, f"bench-history-day-{d}")
        version = (base.version if base else 0) + 1
        for h in group:
            start, parsed = replay(h)
            events = parsed.events
            txn.append("events", events, slice_=start.strftime("%Y-%m-%d"))
            txn.replace_slice(
                "event_ids",
                start.strftime("%Y%m%d%H"),
                events.select(["event_id", "content_sha256"]).cast(ID_INDEX),
            )
            txn.append("ingested_files", with_version(parsed.files, "snapshot_version", version))
            txn.append("tickets", tickets_from(events))
            connection_events.append(events.filter(pc.is_in(events.column("event_type"), kinds)))
            totals["files_ingested"] += parsed.files.num_rows
            totals["events_read"] += events.num_rows
            totals["events_accepted"] += events.num_rows
        if d == len(days) - 1:
            change = conn.replay_connections(
                CONNECTIONS.empty_table(), pa.concat_tables(connection_events)
            )
            log = conn.log_of(pa.concat_tables(connection_events))
            write_connections(txn, None, change.open, change.closed, [], log)
            txn.set_properties(
                connections_clock=pc.max(log.column("event_time")).as_py().isoformat()
            )
            mark = pc.max(connection_events[-1].column("event_time")).as_py()
            txn.set_properties(
                **totals,
                files_quarantined=0,
                events_duplicate=0,
                events_rejected=0,
                unattributed_fees_wei="0",
                pending_ai_jobs=0,
                watermark=mark.isoformat() if mark else None,
            )
        base = txn.commit()
    _, parsed = replay(hours - 1)
    txn = snaps.begin(base, "bench-history-last-hour")
    apply_batch(base, txn, parsed, RATE, timedelta(hours=24))
    base = txn.commit()
    props = base.manifest.properties
    return {
        "seconds": time.perf_counter() - t0,
        "hours": hours,
        "commits": base.version,
        "events": int(props.get("events_accepted", 0)),
        "data_files": sum(len(v) for v in base.manifest.tables.values()),
        "disk_bytes": sum(p.stat().st_size for p in Path(args["state"]).rglob("*") if p.is_file()),
    }


CHILDREN = {
    "generate": child_generate,
    "whole": child_whole,
    "json": child_json,
    "ingest": child_ingest,
    "history": child_history,
}


# ---------------------------------------------------------------------------------------
# The benchmark


def _rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else float("nan")


def bench_throughput(root: Path, info: dict[str, Any], sizes: Sizes, work: Path) -> dict[str, Any]:
    """Whole-process pairs: per repeat, json.loads then ingest of every batch partition."""
    batch = root / "batch"
    paths = [f"{region}/{node_type}" for node_type, region, _ in BATCH_PARTITIONS]
    pairs: list[dict[str, Any]] = []
    empty = work / "no-events"
    for path in paths:  # untimed: writes the bytecode cache the measured processes use
        (empty / path).mkdir(parents=True, exist_ok=True)
        _child("whole", what="ingest", events=str(empty), state=str(work / "warm"), path=path)
    for k in range(sizes.repeats):
        pair: dict[str, Any] = {"json": {}, "ingest": {}}
        for path in paths:
            pair["json"][path] = _child("whole", what="json", events=str(batch), path=path)
            state = work / f"throughput-{k}-{path.replace('/', '-')}"
            pair["ingest"][path] = _child(
                "whole", what="ingest", events=str(batch), state=str(state), path=path
            )
            shutil.rmtree(state, ignore_errors=True)
            if pair["ingest"][path]["events"] != pair["json"][path]["events"]:
                raise RuntimeError(f"{path}: ingest and json.loads saw different events")
        pair["json_seconds"] = sum(v["seconds"] for v in pair["json"].values())
        pair["ingest_seconds"] = sum(v["seconds"] for v in pair["ingest"].values())
        pair["ratio"] = pair["json_seconds"] / pair["ingest_seconds"]
        pairs.append(pair)
        print(
            f"  pair {k + 1}/{sizes.repeats}: json.loads {pair['json_seconds']:.2f} s, "
            f"ingest {pair['ingest_seconds']:.2f} s (whole processes): {pair['ratio']:.2f} x",
            flush=True,
        )
    events = {p: pairs[0]["json"][p]["events"] for p in paths}
    total = sum(events.values())
    ratios = [p["ratio"] for p in pairs]
    big = paths[0]  # the 1M-event partition
    return {
        "events": total,
        "events_per_partition": events,
        "files": sum(v["files"] for v in info["batch"].values()),
        "bytes": sum(v["bytes"] for v in info["batch"].values()),
        "json_loads_seconds": [p["json_seconds"] for p in pairs],
        "ingest_seconds": [p["ingest_seconds"] for p in pairs],
        "json_loads_events_per_s": _rate(total, min(p["json_seconds"] for p in pairs)),
        "ingest_events_per_s": _rate(total, min(p["ingest_seconds"] for p in pairs)),
        "ingest_events_per_s_median": _rate(
            total, statistics.median(p["ingest_seconds"] for p in pairs)
        ),
        "pair_ratios": ratios,
        # Each pair runs back to back, so its ratio cancels slow drifts of a shared
        # machine's speed that best-of and medians of each side do not.
        "ratio_to_json_loads_paired_median": statistics.median(ratios),
        "peak_rss_bytes": max(p["ingest"][big]["peak_rss_bytes"] for p in pairs),
        "peak_rss_events": events[big],
        "json_loads_peak_rss_bytes": max(p["json"][big]["peak_rss_bytes"] for p in pairs),
    }


def bench_history(root: Path, sizes: Sizes, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for h in sizes.histories:
        state, events = work / f"history-{h}" / "state", work / f"history-{h}" / "events"
        events.mkdir(parents=True, exist_ok=True)
        print(f"  building a ledger of ~{h:,} events ...", flush=True)
        built = _child("history", template=str(root / "template"), state=str(state), events=h)
        print(
            f"    {built['events']:,} events, laid out as {built['hours']} hourly runs "
            f"({built['data_files']} data files), built in {built['seconds']:.0f} s, "
            f"{common.mb(built['disk_bytes'])} on disk",
            flush=True,
        )
        runs = []
        for k in range(sizes.runs):
            r = _child(
                "ingest",
                events=str(events),
                state=str(state),
                scratch=str(work / f"scratch-h{h}-{k}"),
                add=[str(root / f"run{k}")],
            )
            runs.append(r)
            print(
                f"    run {k + 1}: {r['counts']['events_accepted']:,} new events "
                f"in {r['seconds']:.2f} s",
                flush=True,
            )
        shutil.rmtree(work / f"history-{h}", ignore_errors=True)
        secs = [r["seconds"] for r in runs]
        out[str(h)] = {
            "history_events": built["events"],
            "history_commits": built["commits"],
            "history_data_files": built["data_files"],
            "history_build_seconds": built["seconds"],
            "history_disk_bytes": built["disk_bytes"],
            "run_events": [r["counts"]["events_read"] for r in runs],
            "run_seconds": secs,
            "run_seconds_best": min(secs),
            "run_seconds_median": statistics.median(secs),
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        }
    return out


def run(sizes: Sizes) -> dict[str, Any]:
    """The whole ingest benchmark; prints progress and returns the figures."""
    root, info = prepare_inputs(sizes)
    VAR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=VAR))
    try:
        batch = info["batch"].values()
        events, files = sum(b["events"] for b in batch), sum(b["files"] for b in batch)
        print(f"throughput: {events:,} events in {files} files, whole processes")
        throughput = bench_throughput(root, info, sizes, work)
        history = {}
        if sizes.histories:
            print("per-run time on top of history:")
            history = bench_history(root, sizes, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "sizes": asdict(sizes),
        "cpu": common.cpu(),
        "throughput": throughput,
        "history": history,
    }


def targets(fig: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) per target of issues 20 and 3."""
    t = fig["throughput"]
    ratio = t["ratio_to_json_loads_paired_median"]
    lo, hi = min(t["pair_ratios"]), max(t["pair_ratios"])
    out = [
        (
            ">= 1.0 x json.loads, whole process, one core (median of pairs)",
            f"{ratio:.2f} x (pairs {lo:.2f}-{hi:.2f} x)",
            ratio >= 1.0,
        ),
        (
            f"peak RSS <= {RSS_TARGET / 1e9:.1f} GB for 1M events",
            f"{common.mb(t['peak_rss_bytes'])} for {t['peak_rss_events']:,} events",
            t["peak_rss_bytes"] <= RSS_TARGET,
        ),
    ]
    hist = fig.get("history") or {}
    if len(hist) >= 2:
        small, large = (hist[k] for k in sorted(hist, key=int)[:1] + sorted(hist, key=int)[-1:])
        grow = large["run_seconds_best"] / small["run_seconds_best"]
        out.append(("run at large history <= 1.25 x at small", f"{grow:.2f} x", grow <= 1.25))
    return out


def print_table(fig: dict[str, Any]) -> None:
    t = fig["throughput"]
    parts = ", ".join(f"{p}: {n:,}" for p, n in t["events_per_partition"].items())
    pairs = ", ".join(f"{r:.2f}" for r in t["pair_ratios"])
    rows = [
        ("events in the batch", f"{t['events']:,} ({t['files']} files, {common.mb(t['bytes'])})"),
        ("  per partition (one process each)", parts),
        (
            "json.loads (stdlib) whole process, best",
            f"{t['json_loads_events_per_s']:,.0f} events/s",
        ),
        ("ingest whole process, best", f"{t['ingest_events_per_s']:,.0f} events/s"),
        ("ingest whole process, median", f"{t['ingest_events_per_s_median']:,.0f} events/s"),
        (
            "ingest / json.loads, median of pairs",
            f"{t['ratio_to_json_loads_paired_median']:.2f} x (pairs: {pairs})",
        ),
        (
            "peak RSS of the ingest process",
            f"{common.mb(t['peak_rss_bytes'])} ({t['peak_rss_events']:,} events; "
            f"json.loads: {common.mb(t['json_loads_peak_rss_bytes'])})",
        ),
    ]
    hist = fig.get("history") or {}
    for h in sorted(hist, key=int):
        r = hist[h]
        runs = ", ".join(f"{s:.2f}" for s in r["run_seconds"])
        rows.append(
            (
                f"run of ~{r['run_events'][0]:,} events, history {r['history_events']:,}",
                f"best {r['run_seconds_best']:.2f} s, median {r['run_seconds_median']:.2f} s "
                f"(runs: {runs} s)",
            )
        )
    keys = sorted(hist, key=int)
    if len(keys) >= 2:
        a, b = hist[keys[0]], hist[keys[-1]]
        rows.append(
            (
                "history large / small",
                f"best {b['run_seconds_best'] / a['run_seconds_best']:.2f} x, "
                f"median {b['run_seconds_median'] / a['run_seconds_median']:.2f} x",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"\ningest (one core: CPU {fig['cpu']})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("targets (issues 20 and 3):")
    for name, got, ok in targets(fig):
        print(f"  [{'met' if ok else 'MISSED'}] {name}: {got}")


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.bench.ingest [--quick] [--throughput-only]`` (the latter skips the
    history runs, which build ledgers of up to 20M events)."""

    argv = sys.argv[1:] if argv is None else argv
    only = "--throughput-only" in argv

    def measure(quick: bool) -> dict[str, Any]:
        sizes = QUICK if quick else Sizes()
        return run(replace(sizes, histories=()) if only else sizes)

    return common.main(
        [a for a in argv if a != "--throughput-only"], CHILDREN, measure, print_table
    )


if __name__ == "__main__":
    raise SystemExit(main())
