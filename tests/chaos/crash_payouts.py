"""Part 2: SIGKILL ``openpool payouts execute`` at random moments on anvil, recover, re-execute.

Each trial has its own hot wallet, workers and ledger on one of two anvil chains: one
mines each transaction at once, the other a block a second (so kills also land while
receipts are awaited). Kills are timed (a random delay into the run) or targeted: just
before the N-th state-store write (approval, the ``signed`` commit that claims the nonces,
the ``broadcast`` and ``confirmed`` commits), just before the N-th broadcast, or just after
it (sent but not recorded as sent). Then ``recover`` and ``execute`` again (in this
process, or through the CLI one time in four), sometimes killed a second time.

Invariants: on-chain received amounts equal the confirmed records; no address received
a payment twice and no payment is confirmed twice; the wallet's mined transactions are
exactly the recorded ones; paid + in flight + payable = earnings for every worker; in the
end every planned payment is confirmed. What the wallet sent is also read from the
blocks themselves (``chain_audit``, raw RPC): per worker the mined transfers lie between
the confirmed and confirmed + in flight amounts, never above what it earned (the pool's
seeded earnings, known to the test alone), and in the end equal to both.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

from openpool.storage import LocalStore
from tests.chaos.common import Campaign, Result
from tests.chaos.pool import Pool, check_pool, make_pool
from tests.services import anvil


def _pool(c: Campaign, rpc: str, name: str, rng: random.Random) -> Pool:
    where = c.path("payouts", name)
    state = LocalStore(where / "state")
    return make_pool(c, rpc, where, rng, state, str(where / "state"))


def _kill_spec(
    rng: random.Random, payments: int, seconds: float, quick: bool
) -> tuple[dict, float | None, str]:
    # The quick size uses only kill points every execute reaches (it must inject faults).
    roll = rng.uniform(0.65, 1.0) if quick else rng.random()
    if roll < 0.4:
        return {}, rng.uniform(0.3, 1.0) * seconds, "timed"
    if roll < 0.65:
        n = rng.randint(1, 10)
        return {"CHAOS_KILL_AT": f"write:{n}"}, None, "before a state write"
    kind = "send" if roll < 0.8 else "sent"
    n = rng.randint(1, payments)
    label = "before a broadcast" if kind == "send" else "after a broadcast, before recording it"
    return {"CHAOS_KILL_AT": f"{kind}:{n}"}, None, label


def trial(c: Campaign, res: Result, rpc: str, n: int, rng: random.Random, seconds: float) -> None:
    name = f"pay-{n:03d}"
    pool = _pool(c, rpc, name, rng)
    plan, h = pool.plan()
    kills = 1 if rng.random() < 0.8 else 2
    for k in range(kills):
        quick = c.sizes.name != "full" and k == 0
        env, after, where = _kill_spec(rng, len(plan["payments"]), seconds, quick)
        child = pool.cli("execute", "--plan", h, "--i-approve", h, kill_after=after, extra=env)
        if child.ok:
            res.add(finished_before_kill=1)
        elif child.killed:
            res.add(faults=1, **{f"kill: {where}": 1})
        else:
            res.violate(
                f"{name}: execute died on its own rc={child.returncode}: {child.stderr[-300:]}"
            )
            return
        check_pool(pool, res, f"{name} after kill {k}", settled=False)
        if k == kills - 1:
            break
        pool.recover()
    if rng.random() < 0.25:
        for argv in (("recover",), ("execute", "--plan", h, "--i-approve", h)):
            out = pool.cli(*argv)
            if not out.ok:
                res.violate(f"{name}: {argv[0]} after the crash failed: {out.stderr[-300:]}")
        res.add(**{"recovered through the CLI": 1})
    else:
        pool.recover()
        pool.execute(h)
    pool.settle()
    res.add(trials=1, payments=len(plan["payments"]))
    check_pool(pool, res, name)


def calibrate(c: Campaign, res: Result, rpc: str) -> float:
    """Seconds an uninterrupted CLI execute takes (the timed kills' scale)."""
    pool = _pool(c, rpc, "calibrate", random.Random(1))
    _, h = pool.plan()
    started = time.monotonic()
    child = pool.cli("execute", "--plan", h, "--i-approve", h)
    seconds = time.monotonic() - started
    if not child.ok:
        res.violate(f"calibration execute failed: {child.stderr[-300:]}")
    pool.settle()
    check_pool(pool, res, "calibration")
    return seconds


def run(c: Campaign) -> list[Result]:
    res = Result("crash: payouts execute (anvil)")
    started = time.monotonic()
    rng = random.Random(c.seed + 2)
    logs = c.path("logs")
    with anvil(logs) as instant, anvil(logs, block_time=1) as timed:
        seconds = {instant: calibrate(c, res, instant), timed: calibrate(c, res, timed)}
        jobs = [
            ((instant, timed)[n % 2], n, random.Random(rng.random()))
            for n in range(c.sizes.payout_trials)
        ]
        with ThreadPoolExecutor(c.sizes.workers) as ex:
            futures = [ex.submit(_guarded, c, res, rpc, n, r, seconds[rpc]) for rpc, n, r in jobs]
            for f in futures:
                f.result()
    res.seconds = time.monotonic() - started
    res.notes["chains"] = "anvil, chain id 42161: one automining, one with 1 s blocks"
    return [res]


def _guarded(
    c: Campaign, res: Result, rpc: str, n: int, rng: random.Random, seconds: float
) -> None:
    try:
        trial(c, res, rpc, n, rng, seconds)
    except Exception as exc:
        c.note_exception(exc)
        res.violate(f"pay-{n}: trial raised {type(exc).__name__}: {exc}")
