"""Part 1: SIGKILL ingest at random moments, rerun to completion, compare with a clean run.

Two paths. The CLI: every fourth trial runs the installed ``openpool`` console script
throughout; the others kill ``ingest_cli`` (the same entry point run as ``python -m``)
and complete with the same ``ingest()`` in the campaign's process. The DAG task path
(``steps_child``): the step functions the DAG tasks call, one DAG run after another;
after a kill the killed task is retried as Airflow retries it, or, one time in four when
the kill hit a task before ``commit``, the run is abandoned and a new DAG run starts.
Real Airflow per trial would cost tens of seconds of scheduler start-up each;
``tests/test_dags.py`` covers the DAG itself (task retries included).

Kills are either timed (a random delay into the run) or targeted: the child kills itself
just before its N-th object store write, N drawn over all writes of a clean run, so kills
land between a commit's data files and its manifest, at the manifest, between the
manifest and the hint, in staging, quarantine and archive writes.

After each kill the partition's latest version must equal the clean run's same version
(no half-commit is ever visible). The end state is judged twice, and each judge's
violations are counted apart ("vs oracle", "vs clean run"):

* **vs oracle** (``oracle_check``): per worker total fees, commission, earnings and job
  count, the AI jobs no worker can be credited with, and the multiset of accepted event
  IDs, against ``tests/helpers/oracle.py`` over the generated files alone. A mistake the
  clean run makes too (a deterministic double count) is seen here.
* **vs clean run**: every table's rows and the manifest properties; then every object of
  the state store read and re-hashed (``identity``: manifests, data files, quarantine
  copies, the hint; normalised only where two correct runs may differ) must equal the
  clean run's, and ``gc`` must delete exactly the orphaned data files of killed commits.

Both judges are first shown broken states (``ingest_selftest``); a miss is a violation.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from openpool.ingest.run import ingest
from openpool.storage import ObjectStore
from tests.chaos import identity, ingest_selftest
from tests.chaos.common import OPENPOOL, PYTHON, Campaign, Child, Result, s3_client
from tests.chaos.datasets import (
    AI,
    MAX_FILES,
    RATE,
    TC,
    Dataset,
    make_dataset,
    reference_runs,
    write_kind,
)
from tests.chaos.oracle_check import judge
from tests.chaos.state import capture
from tests.chaos.steps_child import STEPS
from tests.services import moto_server, s3_env

# A DAG run may be abandoned (a new run starts instead) only while it has committed
# nothing: a run abandoned after its commit leaves its files unarchived, because later
# runs archive only the files they ingest themselves (reported as a finding, not hidden).
ABANDONABLE = ("parse", "dedup", "accrue")


def _argv(
    ds: Dataset, path: str, state: str, archive: str, prefix: str, resume: tuple, binary: bool
) -> list[str]:
    if path == "cli":
        head = [OPENPOOL] if binary else [PYTHON, "-m", "tests.chaos.ingest_cli"]
        return [*head, "-v", "ingest", "--node-type", ds.part.node_type,
                "--region", ds.part.region, "--max-files", str(MAX_FILES)]  # fmt: skip
    return [PYTHON, "-m", "tests.chaos.steps_child", ds.events_uri, state, archive,
            ds.part.node_type, ds.part.region, str(MAX_FILES), prefix,
            str(resume[0]), resume[1]]  # fmt: skip


def _resume_point(child: Child, current: tuple[int, str]) -> tuple[int, str]:
    """The DAG task to retry: the one the kill interrupted, else the next one due."""
    last = None
    for line in child.stdout.splitlines():
        try:
            last = json.loads(line)
        except ValueError:
            continue
    if last is None:
        return current
    if last["phase"] == "finished":
        return last["run"], "parse"
    if last["phase"] == "start":
        return last["run"], last["step"]
    i = STEPS.index(last["step"]) + 1
    return (last["run"], STEPS[i]) if i < len(STEPS) else (last["run"] + 1, "parse")


def _xcom(c: Campaign, child: Child) -> None:
    for line in child.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("phase") == "done":
            c.xcom.append(msg["xcom"])


def trial(c: Campaign, res: Result, ds: Dataset, path: str, n: int, rng: random.Random) -> None:
    name = f"{path}-{n:03d}"
    state_uri = ds.store(f"trials/{name}/state").uri
    archive_uri = ds.store(f"trials/{name}/archive").uri
    env = c.env(
        {"OPENPOOL_EVENTS_URI": ds.events_uri, "OPENPOOL_STATE_URI": state_uri, **ds.s3_env}
    )
    state = ds.store(f"trials/{name}/state")
    prefix, resume = f"{name}-a", (0, "parse")
    writes = ds.writes[path]
    binary = n % 4 == 0  # every fourth CLI trial runs the installed console script throughout
    if path == "cli":
        res.add(**{"runs of the console script" if binary else "runs of the CLI handler": 1})
    timing = ds.seconds[f"{path}-binary" if path == "cli" and binary else path]
    for k in range(1 if rng.random() < 0.85 else 2):
        kill_env, kill_after = {}, None
        # Half timed, half targeted; the quick size targets every first kill (a timed kill
        # can miss a run that finished early, and the quick run must inject faults).
        timed_share = 0.5 if c.sizes.name == "full" or k else 0.0
        if rng.random() >= timed_share:
            at = rng.randint(1, len(writes) if k == 0 else max(1, len(writes) // 2))
            kill_env = {"CHAOS_KILL_AT": f"write:{at}"}
            where = write_kind(writes[at - 1][1]) if k == 0 else "targeted (rerun)"
        else:
            kill_after = rng.uniform(0.4, 1.0) * timing
            where = "timed"
        child = c.run(
            _argv(ds, path, state_uri, archive_uri, prefix, resume, binary),
            {**env, **kill_env},
            kill_after=kill_after,
            label=f"ingest-{name}-kill{k}",
        )
        if path == "dag":
            _xcom(c, child)
            resume = _resume_point(child, resume)
        if child.ok:
            res.add(finished_before_kill=1)
            break
        if not child.killed:
            res.violate(f"{name}: died on its own rc={child.returncode}: {child.stderr[-300:]}")
            return
        res.add(faults=1, **{f"kill: {where}": 1})
        latest = capture(state, ds.part, copies=False)
        if latest is not None:
            diff = latest.diff(ds.at(path, latest.version))
            if diff:
                res.violate(
                    f"{name}: after kill v{latest.version} != clean v{latest.version}: {diff}"
                )
        if path == "dag":
            if resume[1] in ABANDONABLE and rng.random() < 0.25:
                # The run is given up and a new DAG run starts from scratch (see docstring).
                prefix, resume = f"{name}-b{k}", (0, "parse")
                res.add(**{"DAG runs abandoned before their commit": 1})
            else:  # Airflow retries the killed task, then runs the rest
                res.add(**{f"DAG task retried: {resume[1]}": 1})
    res.add(trials=1)
    if path == "cli" and not binary:
        # The rerun that completes the work, in this process: the same ingest() the CLI
        # handler calls, without a second interpreter start per trial.
        try:
            ingest(ds.part, ds.store("events"), state, RATE, max_files=MAX_FILES)
        except Exception as exc:
            c.note_exception(exc)
            res.violate(f"{name}: the rerun raised {type(exc).__name__}: {exc}")
            return
    else:
        final_child = c.run(
            _argv(ds, path, state_uri, archive_uri, prefix, resume, binary),
            env,
            label=f"ingest-{name}-final",
        )
        if path == "dag":
            _xcom(c, final_child)
        if not final_child.ok:
            res.violate(
                f"{name}: rerun failed rc={final_child.returncode}: {final_child.stderr[-300:]}"
            )
            return
    judge_end_state(res, ds, path, name, state)
    if path == "dag":
        _check_archive(res, ds, name, archive_uri)


def judge_end_state(res: Result, ds: Dataset, path: str, name: str, state: ObjectStore) -> None:
    """The end state against the oracle and against the clean run (content, then every
    object re-hashed); then ``gc`` must collect exactly the orphans. Each comparison's
    violations are counted apart."""
    final = capture(state, ds.part)
    vs_oracle, lost, dup = judge(final.snap if final else None, ds.oracle)
    vs_clean: list[str] = []
    if final is None:
        vs_clean.append("nothing committed")
    else:
        reference = ds.final[path]
        vs_clean += final.diff(reference)
        if final.version != reference.version:
            vs_clean.append(f"v{final.version} != clean v{reference.version}")
        lost_c, dup_c = final.lost_and_duplicated(reference)
        lost, dup = max(lost, lost_c), max(dup, dup_c)
    image = identity.take(state, ds.part)
    vs_bytes, figures = identity.compare(image, ds.image(path))
    gc = identity.collect_orphans(state, ds.part, image)
    for label, found in (("vs oracle", vs_oracle), ("vs clean run", vs_clean + vs_bytes + gc)):
        for what in found:
            res.violate(f"{name}: {label}: {what}")
        res.add(**{f"end states checked {label}": 1, f"violations {label}": len(found)})
    res.add(data_lost=lost, duplicates=dup, byte_identical=int(not vs_bytes), **figures)


def _check_archive(res: Result, ds: Dataset, name: str, archive_uri: str) -> None:
    archive = ds.store(f"trials/{name}/archive")
    events = ds.store("events")
    wanted = {i.key for i in events.list(ds.part.path + "/")}
    got = {i.key for i in archive.list(ds.part.path + "/")}
    if wanted != got:
        res.violate(f"{name}: archive holds {len(got)} of {len(wanted)} files")
        res.add(data_lost=len(wanted - got))
        return
    for key in wanted:
        if archive.get(key) != events.get(key):
            res.violate(f"{name}: archive copy of {key} differs")


def calibrate(c: Campaign, res: Result, ds: Dataset) -> None:
    """One uninterrupted child per way of running: its duration, and that it equals the
    clean in-process run."""
    for label, path, binary in (
        ("cli", "cli", False),
        ("cli-binary", "cli", True),
        ("dag", "dag", False),
    ):
        state_uri = ds.store(f"calibrate-{label}/state").uri
        archive_uri = ds.store(f"calibrate-{label}/archive").uri
        env = c.env(
            {"OPENPOOL_EVENTS_URI": ds.events_uri, "OPENPOOL_STATE_URI": state_uri, **ds.s3_env}
        )
        argv = _argv(ds, path, state_uri, archive_uri, "cal", (0, "parse"), binary)
        child = c.run(argv, env, label=f"cal-{label}")
        ds.seconds[label] = child.seconds
        got = capture(ds.store(f"calibrate-{label}/state"), ds.part)
        if not child.ok or got is None or got.diff(ds.final[path]):
            res.violate(f"{ds.name}: an uninterrupted {label} child differs from the clean run")
        elif not got.same_bytes(ds.final[path]):
            res.add(calibration_not_byte_identical=1)
    if ds.final["cli"].diff(ds.final["dag"]):
        res.violate(f"{ds.name}: CLI and DAG paths give different states")


def _judge_clean_runs(res: Result, ds: Dataset) -> None:
    """The clean runs themselves against the oracle, and whole (no integrity problem, no
    orphan): every trial is compared with them."""
    for path in ("cli", "dag"):
        found, _, _ = judge(ds.final[path].snap, ds.oracle)
        image = ds.image(path)
        found += image.problems + [f"orphan {o}" for o in image.orphans]
        for what in found:
            res.violate(f"{ds.name}: the clean {path} run vs oracle: {what}")


def _self_tests(c: Campaign, res: Result, ds: Dataset) -> None:
    """The judges shown broken states (``ingest_selftest``); a miss is a violation."""
    where = c.path("ingest", "self-test")
    for label, test in (
        ("oracle self-test (cross-hour duplicate)", ingest_selftest.oracle_self_test),
        ("identity self-test (damaged copies)", ingest_selftest.identity_self_test),
    ):
        verdict, _ = test(ds, where / label.split()[0])
        res.notes[label] = verdict
        shutil.rmtree(where / label.split()[0], ignore_errors=True)  # nothing for the scan
        if verdict != "ok":
            res.violate(f"{label}: {verdict}")


def run(c: Campaign) -> list[Result]:
    """All ingest crash trials; returns one row per path (CLI, DAG tasks)."""
    sizes, rng = c.sizes, random.Random(c.seed)
    results = {
        "cli": Result("crash: ingest CLI (SIGKILL)"),
        "dag": Result("crash: ingest DAG tasks"),
    }
    started = time.monotonic()
    with moto_server(c.path("logs")) as endpoint:
        client = s3_client(endpoint)
        sets: list[Dataset] = []
        for i in range(4 if sizes.name == "full" else 1):
            root = str(c.path("ingest", f"local{i}"))
            sets.append(make_dataset(f"local{i}", (AI, TC)[i % 2], 100 + i, root, {}))
        for i in range(2 if sizes.name == "full" else 0):  # quick: S3 is in the faults part
            bucket = f"chaos-ingest-{i}"
            client.create_bucket(Bucket=bucket)
            sets.append(
                make_dataset(
                    f"s3-{i}", (TC, AI)[i % 2], 200 + i, f"s3://{bucket}", s3_env(endpoint), client
                )
            )
        for ds in sets:
            reference_runs(ds)
            _judge_clean_runs(results["cli"], ds)
            calibrate(c, results["cli"], ds)
        _self_tests(c, results["cli"], sets[0])
        setup = time.monotonic() - started
        local = [d for d in sets if not d.s3_env]
        remote = [d for d in sets if d.s3_env]
        for path, count in (("cli", sizes.ingest_cli_trials), ("dag", sizes.ingest_dag_trials)):
            phase = time.monotonic()
            res = results[path]
            jobs = []
            for n in range(count):
                on_s3 = remote and n % sizes.s3_every == sizes.s3_every - 1
                pool = remote if on_s3 else local
                jobs.append((n, pool[n % len(pool)], random.Random(rng.random())))
            with ThreadPoolExecutor(sizes.workers) as ex:
                for f in [ex.submit(_guarded, c, res, ds, path, n, r) for n, ds, r in jobs]:
                    f.result()
            res.seconds = time.monotonic() - phase
            res.notes["trials on moto S3"] = sum(1 for _, ds, _ in jobs if ds.s3_env)
            res.notes["data sets"] = len(sets)
            res.notes["writes per clean run"] = sorted({len(d.writes[path]) for d in sets})
        results["cli"].seconds += setup
        results["cli"].notes["setup seconds (data sets, clean runs)"] = round(setup, 1)
    return list(results.values())


def _guarded(c: Campaign, res: Result, ds: Dataset, path: str, n: int, rng: random.Random) -> None:
    try:
        trial(c, res, ds, path, n, rng)
    except Exception as exc:  # a harness error is reported, never hidden
        c.note_exception(exc)
        res.violate(f"{path}-{n}: trial raised {type(exc).__name__}: {exc}")
