"""Part 3: object store faults between the product and the moto server, and moto restarts.

Every S3 request of the children (``openpool ingest``, ``openpool analytics``,
``openpool payouts execute/recover``) goes through :mod:`faultproxy`, which injects
500/503/SlowDown answers, connection resets before and after the request took effect,
bodies cut short and delays. A run must either succeed (botocore's and the store's own
retries) or fail cleanly: non-zero exit, a one-line reason, no traceback, and a state
that is exactly one of the clean run's versions. Failed runs are rerun until they
succeed; the end state must equal the clean run's.

moto restarts: mid-ingest the proxy answers 503 SlowDown (an S3 outage), the moto
server is SIGKILLed and a new one started; with moto's recorder replayed the objects
come back (``restored``), without it the store is empty (``lost``). After a loss the
run fails cleanly, the events are uploaded again and a rerun equals a clean run on the
new server.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from openpool.analytics.refresh import refresh
from openpool.storage import S3Store
from openpool.tables import PAYOUTS
from openpool.traffic import write
from tests.chaos.common import OPENPOOL, Campaign, Child, Result, s3_client
from tests.chaos.datasets import AI, MAX_FILES, TC, Dataset, make_dataset, reference_runs
from tests.chaos.faultproxy import FaultConfig, FaultProxy
from tests.chaos.motoproc import MotoProcess
from tests.chaos.pool import check_pool, make_pool
from tests.chaos.state import capture
from tests.services import anvil

MODERATE = FaultConfig.uniform(0.015, delay_max=0.3)
HEAVY = FaultConfig.uniform(0.05, delay_max=0.5)
NONE = FaultConfig()
ATTEMPTS = 8


def _s3env(url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _judge_failure(res: Result, what: str, child: Child) -> None:
    """A failed run must be a documented refusal: the CLI's exit code and one-line reason,
    never a traceback or a signal."""
    if child.ok:
        return
    res.add(**{"runs that failed cleanly (then rerun)": 1})
    if not child.refused:
        res.violate(f"{what}: unclean failure rc={child.returncode}: {child.stderr[-400:]}")
    else:
        reason = child.stderr.strip().splitlines()[-1] if child.stderr.strip() else ""
        res.notes.setdefault("failure reasons", [])
        if len(res.notes["failure reasons"]) < 6:
            res.notes["failure reasons"].append(reason[:160])


def _ingest_until_done(
    c: Campaign,
    res: Result,
    ds: Dataset,
    state_uri: str,
    proxy_url: str,
    what: str,
    during: Any = None,
) -> bool:
    """Run ``openpool ingest`` through the proxy until it succeeds; check every failure."""
    env = c.env({"OPENPOOL_EVENTS_URI": ds.events_uri, "OPENPOOL_STATE_URI": state_uri})
    env.update(_s3env(proxy_url))
    argv = [OPENPOOL, "-v", "ingest", "--node-type", ds.part.node_type,
            "--region", ds.part.region, "--max-files", str(MAX_FILES)]  # fmt: skip
    for attempt in range(ATTEMPTS):
        if during is not None and attempt == 0:
            child = during(argv, env)
        else:
            child = c.run(argv, env, label=f"faults-{what}")
        _judge_failure(res, what, child)
        state = ds.store(state_uri.split("/", 3)[3])
        latest = capture(state, ds.part, copies=False)
        if latest is not None and latest.diff(ds.at("cli", latest.version)):
            res.violate(f"{what}: v{latest.version} differs from the clean run's v{latest.version}")
        if child.ok:
            return True
    res.violate(f"{what}: still failing after {ATTEMPTS} runs")
    return False


def _final(res: Result, ds: Dataset, state_uri: str, what: str) -> None:
    final = capture(ds.store(state_uri.split("/", 3)[3]), ds.part)
    ref = ds.final["cli"]
    if final is None or final.diff(ref) or final.version != ref.version:
        res.violate(f"{what}: final state differs from the clean run")
        return
    lost, dup = final.lost_and_duplicated(ref)
    res.add(trials=1, data_lost=lost, duplicates=dup, byte_identical=int(final.same_bytes(ref)))


def _catch_up(
    c: Campaign, res: Result, ds: Dataset, state_uri: str, what: str, proxies: tuple
) -> None:
    """The next scheduled run, without faults: it picks up what a stale listing hid from
    the faulty runs -- and only that. A file it finds when no listing hid an events key
    was lost by a run that reported success."""
    env = c.env({"OPENPOOL_EVENTS_URI": ds.events_uri, "OPENPOOL_STATE_URI": state_uri})
    env.update(_s3env(FaultProxy.instances[-1].url))  # the clean proxy
    argv = [OPENPOOL, "ingest", "--node-type", ds.part.node_type, "--region", ds.part.region,
            "--max-files", str(MAX_FILES)]  # fmt: skip
    child = c.run(argv, env, label=f"catch-up-{what}")
    if not child.ok:
        res.violate(f"{what}: the catch-up run failed: {child.stderr[-300:]}")
        return
    found = json.loads(child.stdout.strip().splitlines()[-1])["files_ingested"]
    hidden = sum(1 for p in proxies for k in p.hidden if b"events/" in k)
    res.add(**{"files only the catch-up run found (hidden by stale listings)": found})
    if found > hidden:
        res.violate(f"{what}: the catch-up run found {found} file(s) no stale listing hid")


def ingest_faults(c: Campaign, proxy: FaultProxy, heavy: FaultProxy, ds: Dataset) -> Result:
    """Ingest runs through the faulty proxies, two at a time; the last two (full size) heavy."""
    res = Result("S3 faults: ingest")
    started, before = time.monotonic(), proxy.faults + heavy.faults
    runs = c.sizes.fault_ingest_runs

    def one(i: int) -> None:
        through = heavy if c.sizes.name == "full" and i >= runs - 2 else proxy
        state_uri = f"{ds.root}/faults-{i}/state"
        try:
            if _ingest_until_done(c, res, ds, state_uri, through.url, f"ingest-{i}"):
                _catch_up(c, res, ds, state_uri, f"ingest-{i}", (proxy, heavy))
                _final(res, ds, state_uri, f"ingest-{i}")
        except Exception as exc:
            c.note_exception(exc)
            res.violate(f"ingest-{i}: the check raised {type(exc).__name__}: {exc}")

    proxy.config, heavy.config = MODERATE, HEAVY
    with ThreadPoolExecutor(c.sizes.workers) as ex:
        list(ex.map(one, range(runs)))
    proxy.config, heavy.config = NONE, NONE
    res.faults = proxy.faults + heavy.faults - before
    res.notes["rates per request"] = (
        "1.5 % per fault kind (9 kinds; 403 at 0.15 %); 2 runs at 5 % (full)"
    )
    res.notes["keys hidden by stale listings"] = len(proxy.hidden) + len(heavy.hidden)
    res.seconds = time.monotonic() - started
    return res


def _analytics_docs(metrics: Any, ds: Dataset) -> dict[str, Any]:
    out = {}
    for name in ("worker_summary.json", "worker_performance.json"):
        doc = json.loads(metrics.get(f"{ds.part.path}/{name}"))
        doc.pop("export_timestamp", None)
        if "data" in doc:
            doc["data"].pop("timestamp", None)
        out[name] = doc
    return out


def analytics_faults(c: Campaign, proxy: FaultProxy, ds: Dataset) -> Result:
    """``openpool analytics`` through faults equals a clean refresh (timestamps aside)."""
    from openpool.analytics.published import read_state

    res = Result("S3 faults: analytics")
    started, before = time.monotonic(), proxy.faults
    state = ds.store("faults-0/state")
    clean_metrics = ds.store("analytics-clean")
    refresh(ds.part, state, clean_metrics, 10**16, payouts=PAYOUTS.empty_table())
    expected = _analytics_docs(clean_metrics, ds)
    for i in range(c.sizes.fault_analytics_runs):
        metrics_uri = f"{ds.root}/analytics-{i}"
        env = c.env({"OPENPOOL_STATE_URI": state.uri, "OPENPOOL_METRICS_URI": metrics_uri})
        env.update(_s3env(proxy.url))
        argv = [OPENPOOL, "-v", "analytics", "--node-type", ds.part.node_type,
                "--region", ds.part.region]  # fmt: skip
        last = c.sizes.name == "full" and i == c.sizes.fault_analytics_runs - 1
        proxy.config = HEAVY if last else MODERATE
        ok = False
        for _ in range(ATTEMPTS):
            child = c.run(argv, env, label=f"faults-analytics-{i}")
            _judge_failure(res, f"analytics-{i}", child)
            if child.ok:
                ok = True
                break
        proxy.config = NONE
        res.add(trials=1)
        if not ok:
            res.violate(f"analytics-{i}: still failing after {ATTEMPTS} runs")
            continue
        if _analytics_docs(ds.store(f"analytics-{i}"), ds) != expected:
            res.violate(f"analytics-{i}: exports differ from a clean refresh")
        published = read_state(state, ds.part)
        if published is None or published.in_progress is not None:
            res.violate(f"analytics-{i}: Athena publication left half done")
    res.faults = proxy.faults - before
    res.seconds = time.monotonic() - started
    return res


def payout_faults(c: Campaign, proxy: FaultProxy, ds: Dataset, client: Any) -> Result:
    """``payouts execute``/``recover`` with the state store behind the faulty proxy."""
    res = Result("S3 faults: payouts")
    started, before = time.monotonic(), proxy.faults
    rng = random.Random(c.seed + 3)
    with anvil(c.path("logs")) as rpc:
        for i in range(c.sizes.fault_payout_runs):
            rel = f"payouts-{i}/state"
            state = S3Store(f"{ds.root}/{rel}", client=client)
            pool = make_pool(
                c, rpc, c.path("faults", f"pay{i}"), rng, state, state.uri, _s3env(proxy.url)
            )
            _, h = pool.plan()
            last = c.sizes.name == "full" and i == c.sizes.fault_payout_runs - 1
            proxy.config = HEAVY if last else MODERATE
            done = False
            for attempt in range(ATTEMPTS):
                if attempt:
                    _judge_failure(res, f"payouts-{i} recover", pool.cli("recover"))
                child = pool.cli("execute", "--plan", h, "--i-approve", h)
                _judge_failure(res, f"payouts-{i}", child)
                check_pool(pool, res, f"payouts-{i} attempt {attempt}", settled=False)
                if child.ok:
                    done = True
                    break
            proxy.config = NONE
            res.add(trials=1)
            if not done:
                res.violate(f"payouts-{i}: still failing after {ATTEMPTS} runs")
                continue
            pool.settle()
            check_pool(pool, res, f"payouts-{i}")
    res.faults = proxy.faults - before
    res.seconds = time.monotonic() - started
    return res


def _run_with_restart(
    c: Campaign,
    proxy: FaultProxy,
    moto: MotoProcess,
    argv: list[str],
    env: dict[str, str],
    delay: float,
    restore: bool,
    label: str,
) -> Child:
    """Run ``argv`` while, after ``delay`` seconds, the moto server is killed and replaced."""

    def restart() -> None:
        time.sleep(delay)
        proxy.outage(True)  # S3 answers 503 SlowDown while the server is replaced
        proxy.drain()
        url = moto.restart(restore=restore)
        for p in FaultProxy.instances:
            p.retarget(url)
        proxy.outage(False)

    t = threading.Thread(target=restart)
    t.start()
    try:
        return c.run(argv, env, label=label)
    finally:
        t.join()


def moto_restarts(
    c: Campaign, proxy: FaultProxy, moto: MotoProcess, ds: Dataset, seconds: float
) -> Result:
    res = Result("moto restarted mid-run")
    started = time.monotonic()
    rng = random.Random(c.seed + 4)
    for i in range(c.sizes.moto_restarts):
        delay = rng.uniform(0.4, 0.9) * seconds

        def during(argv: list[str], env: dict[str, str], i: int = i, delay: float = delay) -> Child:
            return _run_with_restart(c, proxy, moto, argv, env, delay, True, f"restart-{i}")

        state_uri = f"{ds.root}/restart-{i}/state"
        if _ingest_until_done(c, res, ds, state_uri, proxy.url, f"restart-{i}", during):
            _final(res, ds, state_uri, f"restart-{i}")
        res.add(faults=1, **{"restarts with the recording replayed": 1})
    res.seconds = time.monotonic() - started
    return res


def moto_loss(c: Campaign, proxy: FaultProxy, moto: MotoProcess, res: Result) -> None:
    """The store is lost mid-run: the run fails cleanly; after a re-upload it equals a
    clean run on the new server."""
    started = time.monotonic()
    client = s3_client(FaultProxy.instances[-1].url)  # the clean one
    bucket = "chaos-loss"
    client.create_bucket(Bucket=bucket)
    ds = make_dataset("loss", TC, 404, f"s3://{bucket}", _s3env(proxy.url), client)
    env = c.env({"OPENPOOL_EVENTS_URI": ds.events_uri, "OPENPOOL_STATE_URI": f"{ds.root}/run"})
    env.update(_s3env(proxy.url))
    argv = [OPENPOOL, "-v", "ingest", "--node-type", TC.node_type, "--region", TC.region,
            "--max-files", str(MAX_FILES)]  # fmt: skip
    child = _run_with_restart(c, proxy, moto, argv, env, 1.2, False, "moto-loss")
    res.add(faults=1, **{"restarts losing every object": 1})
    if child.ok:
        res.add(**{"loss run finished before the loss": 1})
    else:
        _judge_failure(res, "moto-loss", child)
    client.create_bucket(Bucket=bucket)
    write(ds.files, ds.store("events"))  # the orchestrators upload again
    ds._versions.clear()
    reference_runs(ds, ("cli",))
    again = c.run(argv, env, label="moto-loss-rerun")
    if not again.ok:
        res.violate(f"after the loss, the rerun failed: {again.stderr[-300:]}")
    else:
        _final(res, ds, f"{ds.root}/run", "moto-loss")
    res.seconds += time.monotonic() - started


def run(c: Campaign) -> list[Result]:
    logs = c.path("logs")
    with MotoProcess(logs, c.work / "moto-recording.jsonl") as moto:
        with (
            FaultProxy(moto.url, seed=c.seed) as proxy,
            FaultProxy(moto.url, seed=c.seed + 1) as heavy,
            FaultProxy(moto.url) as clean,
        ):
            client = s3_client(clean.url)  # in-process access: a proxy without faults
            client.create_bucket(Bucket="chaos-faults")
            ds = make_dataset("faults", AI, 300, "s3://chaos-faults", _s3env(proxy.url), client)
            reference_runs(ds, ("cli",))
            t = time.monotonic()
            probe = f"{ds.root}/probe/state"
            _ingest_until_done(c, Result("probe"), ds, probe, proxy.url, "probe")
            seconds = time.monotonic() - t
            # Restarts first: the replay re-sends every request recorded so far.
            restarts = moto_restarts(c, proxy, moto, ds, seconds)
            results = [ingest_faults(c, proxy, heavy, ds), analytics_faults(c, proxy, ds)]
            results.append(payout_faults(c, proxy, ds, client))
            # The recording holds every object ever written (the secrets scan reads it);
            # the loss below starts a new one.
            if c.sizes.name == "full":
                shutil.copy(moto.recording, logs / "moto-recording-before-loss.jsonl")
                moto_loss(c, proxy, moto, restarts)
            results.append(restarts)
            kinds = proxy.counts + heavy.counts
            results[0].notes["faults by kind (all S3 rows)"] = {
                k: v for k, v in sorted(kinds.items()) if v
            }
            results[0].notes["S3 requests through the faulty proxies"] = (
                proxy.requests + heavy.requests
            )
    return results
