"""Execute re-checks every limit when it runs, not only when the plan was built (issue 15
item 4), through the real CLI against anvil; money checked on the chain."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from openpool.payouts.plan import Limits, build_plan, save_plan
from tests.test_payouts import LIMITS, PART, Pool, _balances, open_pool
from tests.test_payouts_chain import _cli, paid_on_chain


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    with open_pool(tmp_path) as p:
        yield p


def _execute(pool: Pool, h: str, **env: str):  # type: ignore[no-untyped-def]
    return _cli(pool, "execute", "--plan", h, "--i-approve", h, env=env)


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("MAX_PAYMENT_WEI", str(5 * 10**16), "above MAX_PAYMENT_WEI"),
        ("MAX_RUN_WEI", str(10**17), "above MAX_RUN_WEI"),
        ("PAYMENT_THRESHOLD_WEI", str(5 * 10**16), "below PAYMENT_THRESHOLD_WEI"),
    ],
)
def test_a_limit_lowered_after_planning_is_enforced_by_execute(
    pool: Pool, setting: str, value: str, named: str
) -> None:
    """The plan was built under LIMITS; the operator has since tightened a limit."""
    plan, h = pool.plan()
    assert len(plan["payments"]) == 6
    out = _execute(pool, h, **{setting: value})
    assert sum(paid_on_chain(pool).values()) == 0, "paid past a limit set after planning"
    assert out.returncode == 1 and named in out.stderr and setting in out.stderr, out.stderr
    assert pool.ledger().payments() == {}


def test_a_plan_paying_within_the_minimum_interval_is_refused(pool: Pool) -> None:
    """A second plan (built with no interval) for workers paid minutes ago."""
    _, h = pool.plan()
    assert _execute(pool, h).returncode == 0
    _balances(pool.state, {a: 2 * e for a, e in pool.earnings.items()})
    quick = Limits(LIMITS.threshold_wei, LIMITS.max_payment_wei, LIMITS.max_run_wei, timedelta(0))
    h2 = save_plan(pool.state, build_plan([PART], pool.state, pool.ledger(), quick, 42161))
    out = _execute(pool, h2, MIN_PAYOUT_INTERVAL_SECONDS="86400")
    assert paid_on_chain(pool) == pool.earnings, "paid again within the minimum interval"
    assert out.returncode == 1 and "MIN_PAYOUT_INTERVAL_SECONDS" in out.stderr, out.stderr


def test_a_plan_older_than_the_plan_window_is_refused(pool: Pool) -> None:
    """An approval given now for a plan made two days ago approves stale numbers."""
    old = datetime.now(UTC) - timedelta(days=2)
    h = save_plan(pool.state, build_plan([PART], pool.state, pool.ledger(), LIMITS, 42161, old))
    out = _execute(pool, h)
    assert sum(paid_on_chain(pool).values()) == 0, "an expired plan was paid"
    assert out.returncode == 1 and "PLAN_MAX_AGE_SECONDS" in out.stderr, out.stderr
    fresh = _cli(pool, "plan")
    h2 = json.loads(fresh.stdout)["plan_hash"]
    assert _execute(pool, h2).returncode == 0
    assert paid_on_chain(pool) == pool.earnings
