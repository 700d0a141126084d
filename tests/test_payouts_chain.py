"""Payouts where the chain and the ledger disagree (issue 15), on a real anvil.

Faults are injected with a thin wrapper around :class:`Chain` (the RPC answers one caller
sees), never by stubbing the code under test; money is checked against recipients'
balances over RPC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from web3.exceptions import Web3RPCError

from openpool.payouts.execute import execute
from openpool.payouts.ledger import CONFIRMED, FAILED
from openpool.payouts.plan import load_plan
from tests.helpers.chain_faults import FaultyChain
from tests.test_payouts import CAP, Pool, check_invariants, open_pool


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    with open_pool(tmp_path) as p:
        yield p


def paid_on_chain(pool: Pool) -> dict[str, int]:
    return {a: pool.chain.balance(a) for a in pool.earnings}


def test_an_estimate_error_racing_another_executor_never_pays_twice(pool: Pool) -> None:
    """Issue 15 item 1: executor A's gas estimate for one worker fails while executor B pays
    the whole plan; A must not record that payment ``failed`` (payable again)."""
    _, h = pool.plan()
    victim = max(pool.earnings, key=lambda a: pool.earnings[a])
    faulty = FaultyChain(pool.chain)

    def estimate(real: Callable[..., int], sender: str, to: str, value: int) -> int:
        if to == victim:
            faulty.hooks.pop("estimate_gas")
            pool.run(h)  # the rival executor signs, sends and confirms everything
            raise Web3RPCError("{'code': -32000, 'message': 'header not found'}")
        return real(sender, to, value)

    faulty.hooks["estimate_gas"] = estimate
    execute(
        load_plan(pool.state, h), h, pool.ledger(), faulty, pool.wallet, CAP, receipt_timeout=10
    )
    _, again = pool.plan()  # the next run plans whatever the ledger says is payable
    pool.run(again)
    assert paid_on_chain(pool) == pool.earnings, "a worker was paid twice"
    statuses = {r["eth_address"]: r["status"] for r in pool.ledger().payments().values()}
    assert statuses[victim] == CONFIRMED and FAILED not in statuses.values()
    assert check_invariants(pool) == pool.earnings


def test_an_estimate_error_alone_signs_nothing_for_that_worker_and_records_nothing(
    pool: Pool,
) -> None:
    """An RPC error on an estimate means "not signed this time": no record, paid next run."""
    _, h = pool.plan()
    victim = next(iter(pool.earnings))
    faulty = FaultyChain(pool.chain)

    def estimate(real: Callable[..., int], sender: str, to: str, value: int) -> int:
        if to == victim:
            raise Web3RPCError("{'code': -32000, 'message': 'header not found'}")
        return real(sender, to, value)

    faulty.hooks["estimate_gas"] = estimate
    rep = execute(
        load_plan(pool.state, h), h, pool.ledger(), faulty, pool.wallet, CAP, receipt_timeout=10
    )
    assert rep.confirmed == 5 and rep.failed == 0
    assert victim not in {r["eth_address"] for r in pool.ledger().payments().values()}
    again = pool.run(h)  # the same approved plan, the node healthy again
    assert again.confirmed == 1
    assert paid_on_chain(pool) == pool.earnings
    assert check_invariants(pool) == pool.earnings


def test_a_settled_record_never_moves_back(pool: Pool) -> None:
    """Whatever a (stale or confused) writer asks, confirmed is final: only forward moves."""
    from openpool.payouts.ledger import BROADCAST

    _, h = pool.plan()
    ledger = pool.ledger()
    pool.run(h)
    settled = ledger.payments()
    row = next(iter(settled.values()))
    assert ledger.transition([{**row, "status": FAILED}], "confused", (CONFIRMED,)) == []
    assert ledger.transition([{**row, "status": BROADCAST}], "confused", (CONFIRMED,)) == []
    assert ledger.payments() == settled
    assert check_invariants(pool) == pool.earnings
