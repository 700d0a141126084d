"""Part: the payout faults of issue 15 at random, judged by the chain (anvil, over RPC).

Three kinds of trial, each on its own hot wallet, workers and ledger:

- **race**: two executors of one approved plan at once. One is ``openpool payouts
  execute`` in its own process; the other runs in this process through a node that fails
  some gas estimates ("header not found") and loses the answer to some broadcasts (sent,
  then "node unreachable"). Then recover, and a *new* plan is built and executed, which is
  where a payment wrongly recorded ``failed`` would be paid a second time.
- **rollback**: two plans paid, then the hot wallet's ledger deleted or replaced by the
  copy taken after the first. Planning and executing must be refused naming the gap;
  ``openpool payouts reconcile --i-confirm`` rebuilds the records from the chain; the
  next plan pays nothing.
- **stuck**: payments broadcast, then the base fee raised above their ``maxFeePerGas``
  (``anvil_setNextBlockBaseFeePerGas``) and some of them dropped from the node
  (``anvil_dropTransaction``). ``recover`` with the key (in process or through the CLI)
  replaces them until all are mined. These trials run one after another on their own
  chain, whose automining they switch off.

Money is judged from the chain: after every trial each worker's balance on anvil must be
exactly what it earned (``check_pool``), and the wallet's mined transactions exactly the
ledger's records; a worker holding more is counted as a double payment.
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from web3.exceptions import Web3RPCError

from openpool.payments import BROADCAST, OPEN
from openpool.payouts.chain import SendRefused
from openpool.payouts.plan import PlanRefused, build_plan
from openpool.payouts.recover import recover
from openpool.storage import LocalStore
from tests.chaos.common import Campaign, Result
from tests.chaos.pool import CAP, LIMITS, PARTS, Pool, check_pool, make_pool, seed_balances
from tests.helpers.chain_faults import FaultyChain
from tests.services import anvil

PART = "payouts: race, rollback, stuck (anvil)"


def _pool(c: Campaign, rpc: str, name: str, rng: random.Random) -> Pool:
    where = c.path("payout-faults", name)
    state = LocalStore(where / "state")
    return make_pool(c, rpc, where, rng, state, str(where / "state"))


def _ledger_dir(pool: Pool) -> Path:
    return Path(pool.state_uri) / "wallet" / pool.address.lower()


def _settle_with_key(pool: Pool, deadline_s: float = 90.0) -> None:
    """Recover with the key (stuck sends replaced at once) until nothing is open."""
    deadline = time.monotonic() + deadline_s
    while any(r["status"] in OPEN for r in pool.ledger().payments().values()):
        recover(
            pool.ledger(),
            pool.chain,
            pool.address,
            wallet=pool.wallet,
            max_gas_price_wei=CAP,
            stuck_after=timedelta(0),
            confirmations=1,
        )
        if time.monotonic() > deadline:
            return
        time.sleep(0.2)


def race(c: Campaign, res: Result, rpc: str, n: int, rng: random.Random) -> None:
    name = f"race-{n:03d}"
    pool = _pool(c, rpc, name, rng)
    plan, h = pool.plan()
    workers = sorted({p["eth_address"] for p in plan["payments"]})
    flaky_estimates = set(rng.sample(workers, rng.randint(1, len(workers))))
    lose_answer = rng.random() < 0.5
    faulty = FaultyChain(pool.chain)
    injected = {"estimate": 0, "lost broadcast answer": 0}
    lock = threading.Lock()

    def estimate(real: Callable[..., int], sender: str, to: str, value: int) -> int:
        if to in flaky_estimates:
            with lock:
                injected["estimate"] += 1
            time.sleep(rng.uniform(0, 0.3))  # let the rival get ahead of us
            raise Web3RPCError("{'code': -32000, 'message': 'header not found'}")
        return real(sender, to, value)

    def send(real: Callable[..., str], raw: bytes) -> str:
        answer = real(raw)
        if lose_answer:
            with lock:
                injected["lost broadcast answer"] += 1
            raise SendRefused("node unreachable: ReadTimeout")
        return answer

    faulty.hooks["estimate_gas"] = estimate
    faulty.hooks["send_raw"] = send
    rival: dict[str, Any] = {}

    def run_rival() -> None:
        rival["child"] = pool.cli("execute", "--plan", h, "--i-approve", h)

    t = threading.Thread(target=run_rival)
    t.start()
    time.sleep(rng.uniform(0, 0.8))
    from openpool.payouts.execute import execute

    try:
        execute(plan, h, pool.ledger(), faulty, pool.wallet, CAP, receipt_timeout=5)
    except PlanRefused as exc:  # e.g. the rival's send landed between our reads: no harm
        res.add(**{"race: in-process executor refused": 1})
        c.note_exception(exc)
    t.join()
    child = rival["child"]
    if not child.ok and not child.refused:
        res.violate(f"{name}: the rival executor crashed rc={child.returncode}: {child.stderr}")
    res.add(faults=max(1, sum(injected.values())), **{f"race: {k}": v for k, v in injected.items()})
    pool.settle()
    _, again = pool.plan()  # what the ledger says is still payable, paid by a healthy node
    pool.execute(again)
    pool.settle()
    res.add(trials=1, payments=len(plan["payments"]), **{"race trials": 1})
    check_pool(pool, res, name)


def rollback(c: Campaign, res: Result, rpc: str, n: int, rng: random.Random) -> None:
    name = f"rollback-{n:03d}"
    pool = _pool(c, rpc, name, rng)
    _, h1 = pool.plan()
    pool.execute(h1)
    pool.settle()
    saved = c.path("payout-faults", name, "ledger-copy")
    shutil.rmtree(saved, ignore_errors=True)
    shutil.copytree(_ledger_dir(pool), saved)
    for key in rng.sample(sorted(pool.earnings), rng.randint(1, len(pool.earnings))):
        pool.earnings[key] += rng.randint(11 * 10**15, 2 * 10**17)  # they earned more since
    seed_balances(pool.state, pool.earnings)
    _, h2 = pool.plan()
    pool.execute(h2)
    pool.settle()
    shutil.rmtree(_ledger_dir(pool))
    damage = "restored an older copy" if rng.random() < 0.5 else "deleted"
    if damage != "deleted":
        shutil.copytree(saved, _ledger_dir(pool))
    res.add(faults=1, **{f"rollback: ledger {damage}": 1})
    try:  # the approved plan again, in process: its records are what the ledger lost
        pool.execute(h2)
        res.violate(f"{name}: execute went ahead on a ledger {damage}")
    except PlanRefused as exc:
        if "reconcile" not in str(exc):
            res.violate(f"{name}: execute refused without naming reconcile: {exc}")
    for argv in (("plan",), ("execute", "--plan", h2, "--i-approve", h2)):
        out = pool.cli(*argv)  # as an operator runs them
        if out.returncode != 1 or "openpool payouts reconcile" not in out.stderr:
            res.violate(f"{name}: {argv[0]} on a ledger {damage}: rc={out.returncode}")
    looked = pool.cli("reconcile")
    if looked.returncode != 3:
        res.violate(f"{name}: reconcile (looking) rc={looked.returncode}: {looked.stderr}")
    done = pool.cli("reconcile", "--i-confirm")
    if not done.ok:
        res.violate(f"{name}: reconcile --i-confirm rc={done.returncode}: {done.stderr}")
        return
    plan = build_plan(list(PARTS), pool.state, pool.ledger(), LIMITS, 42161)
    if plan["payments"]:
        res.violate(f"{name}: after reconcile the next plan pays {len(plan['payments'])} again")
    res.add(trials=1, **{"rollback trials": 1})
    check_pool(pool, res, name)


def stuck(c: Campaign, res: Result, rpc: str, n: int, rng: random.Random) -> None:
    name = f"stuck-{n:03d}"
    pool = _pool(c, rpc, name, rng)
    _, h = pool.plan()
    calm = pool.chain.base_fee()
    pool.chain.rpc("evm_setAutomine", [False])
    try:
        pool.execute(h, timeout=0.5)
        rows = [r for r in pool.ledger().payments().values() if r["status"] == BROADCAST]
        top = max(int(r["max_fee_per_gas"]) for r in rows)
        pool.chain.rpc("anvil_setNextBlockBaseFeePerGas", [hex(top * rng.randint(2, 4))])
        pool.chain.rpc("evm_mine", [])
        dropped = rng.sample(rows, rng.randint(0, len(rows)))
        for r in dropped:
            pool.chain.rpc("anvil_dropTransaction", [r["tx_hash"]])
    finally:
        pool.chain.rpc("evm_setAutomine", [True])
    res.add(faults=len(rows) + len(dropped), **{"stuck: priced out": len(rows)})
    res.add(**{"stuck: dropped by the node": len(dropped)})
    if rng.random() < 0.5:
        out = pool.cli("recover", extra={"STUCK_AFTER_SECONDS": "0"})
        if "Traceback" in out.stderr:
            res.violate(f"{name}: recover crashed: {out.stderr[-500:]}")
        res.add(**{"stuck: replaced through the CLI": 1})
    _settle_with_key(pool)
    res.add(trials=1, **{"stuck trials": 1})
    check_pool(pool, res, name)
    pool.chain.rpc("anvil_setNextBlockBaseFeePerGas", [hex(calm)])  # the next trial's start
    pool.chain.rpc("evm_mine", [])


def run(c: Campaign) -> list[Result]:
    res = Result(PART)
    started = time.monotonic()
    rng = random.Random(c.seed + 5)
    trials = c.sizes.payout_fault_trials
    logs = c.path("logs")
    with anvil(logs) as shared, anvil(logs) as own:

        def stuck_ones() -> None:
            for n in range(trials):
                _guarded(c, res, stuck, own, n, random.Random(rng.random()))

        line = threading.Thread(target=stuck_ones)
        line.start()
        for n in range(trials):
            _guarded(c, res, race, shared, n, random.Random(rng.random()))
            _guarded(c, res, rollback, shared, n, random.Random(rng.random()))
        line.join()
        res.notes["detector self-test"] = _self_test(c, shared)
    res.seconds = time.monotonic() - started
    res.notes["double payments (from chain balances)"] = res.duplicates
    res.notes["chains"] = "anvil, chain id 42161, automining (the stuck trials switch it off)"
    return [res]


def _self_test(c: Campaign, rpc: str) -> str:
    """The judge must see a double payment: a worker paid, then holding twice its amount
    on the chain (``anvil_setBalance``), is a duplicate for ``check_pool``."""
    pool = _pool(c, rpc, "self-test", random.Random(3))
    _, h = pool.plan()
    pool.execute(h)
    pool.settle()
    (_, worker), earned = next(iter(sorted(pool.earnings.items())))
    paid = pool.chain.balance(worker)
    pool.chain.rpc("anvil_setBalance", [worker, hex(paid + earned)])
    probe = Result("self-test")
    check_pool(pool, probe, "self-test")
    if probe.duplicates != 1 or not probe.violations:
        return f"MISSED: {probe.violations}"
    return _unrecorded_transfer(c, rpc)


def _unrecorded_transfer(c: Campaign, rpc: str) -> str:
    """A second payment from the hot wallet that no record knows (sent as the wallet by
    anvil's impersonation): the blocks, read over RPC, must show it as a mined transfer
    the ledger never recorded and a worker holding more than it earned."""
    pool = _pool(c, rpc, "self-test-unrecorded", random.Random(4))
    _, h = pool.plan()
    pool.execute(h)
    pool.settle()
    (_, worker), earned = next(iter(sorted(pool.earnings.items())))
    pool.chain.rpc("anvil_impersonateAccount", [pool.address])
    try:
        tx = {"from": pool.address, "to": worker, "value": hex(earned)}
        tx_hash = pool.chain.rpc("eth_sendTransaction", [tx])
    finally:
        pool.chain.rpc("anvil_stopImpersonatingAccount", [pool.address])
    deadline = time.monotonic() + 30
    while pool.chain.receipt(tx_hash) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    probe = Result("self-test")
    check_pool(pool, probe, "self-test")
    wanted = ("the ledger never recorded", "earned", "mined transfers")
    seen = [w for w in wanted if any(w in v for v in probe.violations)]
    if probe.duplicates == 1 and seen == list(wanted):
        return "ok"
    return f"MISSED (an unrecorded transfer): {probe.violations}"


def _guarded(
    c: Campaign,
    res: Result,
    trial: Callable[[Campaign, Result, str, int, random.Random], None],
    rpc: str,
    n: int,
    rng: random.Random,
) -> None:
    try:
        trial(c, res, rpc, n, rng)
    except Exception as exc:
        c.note_exception(exc)
        res.violate(f"{trial.__name__}-{n}: trial raised {type(exc).__name__}: {exc}")
