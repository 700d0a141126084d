"""Part 6b: plans that must be refused, through the real CLI against anvil.

Each attack is a trial; it passes only if ``openpool payouts execute`` exits non-zero
with the expected reason and the wallet sent nothing (its nonce did not move and the
ledger holds no new record). Then the genuine plan pays, and a replay of it is refused.
"""

from __future__ import annotations

import copy
import random
import time
from typing import Any

from eth_account import Account

from openpool.payouts.plan import canonical, plan_key, save_plan
from openpool.storage import LocalStore
from tests.chaos.common import Campaign, Result
from tests.chaos.pool import Pool, check_pool, make_pool
from tests.services import anvil


def _attack(
    pool: Pool, res: Result, what: str, plan_hash: str, approve: str | None, expect: str
) -> None:
    before = (pool.chain.nonce(pool.address, "pending"), len(pool.ledger().payments()))
    out = pool.cli("execute", "--plan", plan_hash, "--i-approve", approve or plan_hash)
    after = (pool.chain.nonce(pool.address, "pending"), len(pool.ledger().payments()))
    res.add(trials=1, faults=1)
    if not out.refused or expect not in out.stderr or before != after:
        res.violate(
            f"{what}: not refused as expected (rc={out.returncode}, sent {after[0] - before[0]},"
            f" stderr={out.stderr.strip()[-200:]!r})"
        )
    else:
        res.add(**{f"refused: {what}": 1})


def _saved(pool: Pool, plan: dict[str, Any]) -> str:
    return save_plan(pool.state, plan)


def run(c: Campaign) -> list[Result]:
    res = Result("trust: refused plans (CLI)")
    started = time.monotonic()
    with anvil(c.path("logs")) as rpc:
        where = c.path("trust")
        pool = make_pool(
            c, rpc, where, random.Random(5), LocalStore(where / "state"), str(where / "state")
        )
        plan, h = pool.plan()

        # 1. The stored plan is changed after it was made (and approved).
        original = pool.state.get(plan_key(h))
        tampered = copy.deepcopy(plan)
        tampered["payments"][0]["amount_wei"] *= 10
        pool.state.put(plan_key(h), canonical(tampered))
        _attack(pool, res, "tampered plan", h, None, "no longer matches its hash")
        pool.state.put(plan_key(h), original)

        # 2. A well-formed plan (its own valid hash) paying an address with no balance.
        stranger = copy.deepcopy(plan)
        stranger["payments"][0]["eth_address"] = Account.create().address
        _attack(
            pool, res, "address not in the balances", _saved(pool, stranger), None, "no balance"
        )

        # 3. A well-formed plan paying one wei more than the worker's payable.
        greedy = copy.deepcopy(plan)
        greedy["payments"][0]["amount_wei"] += 1
        _attack(
            pool, res, "amount above the payable", _saved(pool, greedy), None, "above its payable"
        )

        # 4. An approval naming another plan.
        _attack(pool, res, "approval of another hash", h, "0" * 64, "--i-approve must repeat")

        # 5. A plan made for another hot wallet.
        other = copy.deepcopy(plan)
        other["wallet"] = Account.create().address
        _attack(
            pool, res, "plan for another wallet", _saved(pool, other), None, "another hot wallet"
        )

        # The genuine plan pays, exactly once.
        out = pool.cli("execute", "--plan", h, "--i-approve", h)
        if not out.ok:
            res.violate(f"the genuine plan was not paid: {out.stderr[-300:]}")
        pool.settle()
        check_pool(pool, res, "trust")

        # 6. A replay: the same payments under new payment ids, after they were paid.
        replay = copy.deepcopy(plan)
        for p in replay["payments"]:
            p["payment_id"] = "r" + p["payment_id"][1:]
        _attack(pool, res, "replay of a paid plan", _saved(pool, replay), None, "above its payable")
        check_pool(pool, res, "trust after replay")
    res.seconds = time.monotonic() - started
    return [res]
