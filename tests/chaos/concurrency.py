"""Part 5: races. Two ingests of one partition at once (file:// and moto S3); an ingest
racing payout plans and executions that read the same partition's balances; two
executions of one payout plan at once (two CLI processes, and a CLI process against an
in-process executor).

Invariants: the ingest state equals a clean single run's, order-normalised (which writer
committed which batch may differ, so versions are not compared); no event lost or counted
twice; nobody paid twice or above their earnings; on-chain amounts equal the confirmed
records; paid + in flight + payable = earnings.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

from openpool.payouts.plan import Limits
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from openpool.tables import BALANCES, read_table
from tests.chaos.common import OPENPOOL, Campaign, Child, Result, s3_client
from tests.chaos.datasets import AI, TC, Dataset, make_dataset, reference_runs
from tests.chaos.pool import ETH, check_pool, make_pool
from tests.chaos.state import capture
from tests.services import anvil, moto_server, s3_env

EVERY_WEI = Limits(
    threshold_wei=1, max_payment_wei=ETH, max_run_wei=100 * ETH, min_interval=timedelta(0)
)


def _together(*jobs: tuple) -> list[Child]:
    """Run ``c.run(...)`` calls at the same moment; returns their results in order."""
    out: list[Child | None] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def go(i: int, c: Campaign, argv: list[str], env: dict[str, str], label: str) -> None:
        start.wait()
        out[i] = c.run(argv, env, label=label)

    threads = [threading.Thread(target=go, args=(i, *j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [o for o in out if o is not None]


def _ingest_argv(ds: Dataset, max_files: int) -> list[str]:
    return [OPENPOOL, "-v", "ingest", "--node-type", ds.part.node_type, "--region",
            ds.part.region, "--max-files", str(max_files)]  # fmt: skip


def two_ingests(c: Campaign, res: Result, ds: Dataset, round_: int) -> None:
    name = f"{ds.name}-twice-{round_}"
    state = ds.store(f"{name}/state")
    env = c.env(
        {"OPENPOOL_EVENTS_URI": ds.events_uri, "OPENPOOL_STATE_URI": state.uri, **ds.s3_env}
    )
    a, b = _together(
        (c, _ingest_argv(ds, 2), env, f"{name}-a"), (c, _ingest_argv(ds, 3), env, f"{name}-b")
    )
    res.add(trials=1, faults=1)
    for child in (a, b):
        if not child.ok:
            res.violate(f"{name}: a writer failed: {child.stderr[-300:]}")
    final = capture(state, ds.part, drop_versions=True)
    ref = capture(ds.ref_state["cli"], ds.part, drop_versions=True)
    assert ref is not None
    if final is None or final.diff(ref):
        res.violate(
            f"{name}: state differs from a single run: {final.diff(ref) if final else None}"
        )
        return
    lost, dup = final.lost_and_duplicated(ref)
    conflicts = sum(ch.stderr.count("commit conflict on") for ch in (a, b))
    res.add(data_lost=lost, duplicates=dup)
    res.add(**{"two-writer ingests: commit conflicts resolved by rebase": conflicts})


def ingest_vs_payouts(c: Campaign, res: Result, rpc: str, ds: Dataset, round_: int) -> None:
    """Plans and executions paying every wei while an ingest keeps committing."""
    name = f"race-{round_}"
    where = c.path("concurrency", name)
    state = LocalStore(where / "state")
    pool = make_pool(c, rpc, where, random.Random(round_), state, state.uri, seed=False)
    env = c.env({"OPENPOOL_EVENTS_URI": ds.events_uri, "OPENPOOL_STATE_URI": state.uri})
    done = threading.Event()
    result: list[Child] = []

    def ingest() -> None:
        result.append(c.run(_ingest_argv(ds, 1), env, label=f"{name}-ingest"))
        done.set()

    t = threading.Thread(target=ingest)
    t.start()
    runs = 0
    while not done.is_set():
        plan, h = pool.plan(EVERY_WEI)
        if plan["payments"]:
            pool.execute(h)
            runs += 1
        time.sleep(0.05)
    t.join()
    if not result[0].ok:
        res.violate(f"{name}: the ingest failed: {result[0].stderr[-300:]}")
    snap = SnapshotStore(state, ds.part).latest()
    pool.earnings = {
        (str(ds.part), r["eth_address"]): int(r["worker_earnings_wei"])
        for r in read_table(snap, "balances", BALANCES).to_pylist()
    }
    plan, h = pool.plan(EVERY_WEI)
    if plan["payments"]:
        pool.execute(h)
    pool.settle()
    res.add(trials=1, faults=runs, **{"payout runs during an ingest": runs})
    check_pool(pool, res, name)
    final = capture(state, ds.part, drop_versions=True)
    ref = capture(ds.ref_state["cli"], ds.part, drop_versions=True)
    assert ref is not None
    if final is None or final.diff(ref):
        res.violate(f"{name}: the ingest's state differs from a clean run")


def two_executes(c: Campaign, res: Result, rpc: str, round_: int, in_process: bool) -> None:
    name = f"double-execute-{round_}"
    where = c.path("concurrency", name)
    state = LocalStore(where / "state")
    pool = make_pool(c, rpc, where, random.Random(100 + round_), state, state.uri)
    _, h = pool.plan()
    argv = [OPENPOOL, "-v", "payouts", "execute", "--plan", h, "--i-approve", h]
    if in_process:
        errors: list[BaseException] = []

        def lib() -> None:
            try:
                pool.execute(h)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=lib)
        t.start()
        child = c.run(argv, pool.env(), label=name)
        t.join()
        if errors or not child.ok:
            res.violate(f"{name}: an executor failed: {errors} {child.stderr[-300:]}")
    else:
        for child in _together(
            (c, argv, pool.env(), f"{name}-a"), (c, argv, pool.env(), f"{name}-b")
        ):
            if not child.ok:
                res.violate(f"{name}: an executor failed: {child.stderr[-300:]}")
    pool.settle()
    res.add(trials=1, faults=1)
    check_pool(pool, res, name)


def run(c: Campaign) -> list[Result]:
    res = Result("concurrency")
    started = time.monotonic()
    with moto_server(c.path("logs")) as endpoint:
        client = s3_client(endpoint)
        client.create_bucket(Bucket="chaos-concurrency")
        local = make_dataset("conc-local", AI, 500, str(c.path("concurrency", "local")), {})
        remote = make_dataset(
            "conc-s3", TC, 501, "s3://chaos-concurrency", s3_env(endpoint), client
        )
        # One data set per race round: its workers are paid on one shared chain, and a
        # worker paid in an earlier round would show that round's money too.
        races = [
            make_dataset(f"conc-race{r}", TC, 502 + r, str(c.path("concurrency", f"race{r}")), {})
            for r in range(c.sizes.concurrency_rounds)
        ]
        for ds in (local, remote, *races) if c.sizes.name == "full" else (local, *races):
            reference_runs(ds, ("cli",))
        for r in range(c.sizes.concurrency_rounds):
            two_ingests(c, res, local, r)
            if c.sizes.name == "full":
                two_ingests(c, res, remote, r)
        with anvil(c.path("logs")) as rpc:
            for r in range(c.sizes.concurrency_rounds):
                ingest_vs_payouts(c, res, rpc, races[r], r)
                two_executes(c, res, rpc, r, in_process=False)
                if c.sizes.name == "full":
                    two_executes(c, res, rpc, 100 + r, in_process=True)
    res.seconds = time.monotonic() - started
    return [res]
