"""Payouts where the chain and the ledger disagree (issue 15), on a real anvil.

Faults are injected with a thin wrapper around :class:`Chain` (the RPC answers one caller
sees), never by stubbing the code under test; money is checked against recipients'
balances over RPC.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3.exceptions import Web3RPCError

from openpool.partitions import Partition
from openpool.payments import BROADCAST, CONFIRMED, FAILED, SIGNED
from openpool.payouts.execute import PayoutRefused, execute, recover
from openpool.payouts.plan import PlanRefused, build_plan, load_plan, save_plan
from tests.helpers.chain_faults import FaultyChain
from tests.test_payouts import CAP, LIMITS, PART, Pool, _balances, check_invariants, open_pool


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    with open_pool(tmp_path) as p:
        yield p


def _cli(
    pool: Pool, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``openpool payouts ...`` as an operator runs it, against this pool."""
    env = dict(
        os.environ,
        OPENPOOL_STATE_URI=str(pool.state.root),
        ETH_RPC_ENDPOINT=pool.rpc,
        HOT_WALLET_KEYSTORE=str(pool.keystore),
        HOT_WALLET_PASSWORD_FILE=str(pool.password),
        OPENPOOL_PARTITIONS=str(PART),
        MAX_GAS_PRICE_WEI=str(CAP),
        **(env or {}),
    )
    cli = str(Path(sys.executable).with_name("openpool"))
    return subprocess.run(
        [cli, "payouts", *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )


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

    _, h = pool.plan()
    ledger = pool.ledger()
    pool.run(h)
    settled = ledger.payments()
    row = next(iter(settled.values()))
    assert ledger.transition([{**row, "status": FAILED}], "confused", (CONFIRMED,)) == []
    assert ledger.transition([{**row, "status": BROADCAST}], "confused", (CONFIRMED,)) == []
    assert ledger.payments() == settled
    assert check_invariants(pool) == pool.earnings


def _mangled(plan: dict, how: str) -> dict:
    plan = copy.deepcopy(plan)
    p0, p1 = plan["payments"][0], plan["payments"][1]
    if how == "duplicate_payment_id":
        p1["payment_id"] = p0["payment_id"]
    elif how == "two_payments_to_one_worker":
        plan["payments"].append({**p0, "payment_id": "f" * 32, "amount_wei": 10**15})
    elif how == "zero_amount":
        p0["amount_wei"] = 0
    elif how == "negative_amount":
        p0["amount_wei"] = -(10**16)
    elif how == "float_amount":
        p0["amount_wei"] = float(p0["amount_wei"])
    elif how == "bad_address":
        p0["eth_address"] = p0["eth_address"][:-2]
    elif how == "unknown_field":
        p0["memo"] = "pay twice"
    return plan


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("duplicate_payment_id", "duplicate payment_id"),
        ("two_payments_to_one_worker", "more than one payment per"),
        ("zero_amount", "payments.0.amount_wei: Input should be greater than 0"),
        ("negative_amount", "payments.0.amount_wei: Input should be greater than 0"),
        ("float_amount", "payments.0.amount_wei: Input should be a valid integer"),
        ("bad_address", "not a valid Ethereum address"),
        ("unknown_field", "payments.0.memo: Extra inputs are not permitted"),
    ],
)
def test_a_malformed_approved_plan_is_refused_before_signing(
    pool: Pool, how: str, named: str
) -> None:
    """Issue 15 item 7: a plan with its own valid hash but a wrong structure (a duplicate
    payment id signs two nonces, the ledger keeps one, the wallet is blocked for good)."""
    plan, _ = pool.plan()
    h = save_plan(pool.state, _mangled(plan, how))
    with pytest.raises(PlanRefused, match=re.escape(named)) as refused:
        pool.run(h, timeout=5)
    assert refused.type.__name__ == "InvalidPlan"
    assert pool.ledger().payments() == {}
    assert pool.chain.nonce(pool.wallet.address, "pending") == 0
    assert sum(paid_on_chain(pool).values()) == 0


@pytest.mark.parametrize("when", ["after", "racing"])
def test_two_plans_never_spend_more_than_the_wallet_holds(pool: Pool, when: str) -> None:
    """Issue 15 item 8: the solvency check counts payments still in flight, on the same
    base as the commit that claims the nonces. Plan 1 is broadcast but not yet mined; plan 2
    (other workers) must see that money as spent, also when it checked the balance just
    before plan 1 committed."""
    other = Partition("ai", "us-west")
    workers2 = {Account.create().address: 10 * 10**16 for _ in range(2)}
    _balances(pool.state, workers2, other)
    _, h1 = pool.plan()  # 0.27 ETH to the six workers of PART
    plan2 = build_plan([other], pool.state, pool.ledger(), LIMITS, 42161)
    h2 = save_plan(pool.state, plan2)  # 0.2 ETH to two others
    pool.chain.rpc("anvil_setBalance", [pool.wallet.address, hex(4 * 10**17)])  # 0.4 ETH
    pool.chain.rpc("evm_setAutomine", [False])
    faulty = FaultyChain(pool.chain)
    if when == "after":
        pool.run(h1, timeout=1)
    else:

        def balance(real: Callable[..., int], address: str) -> int:
            seen = real(address)
            faulty.hooks.pop("balance")
            pool.run(h1, timeout=1)  # plan 1 claims its nonces right after our look
            return seen

        faulty.hooks["balance"] = balance
    with pytest.raises(PayoutRefused, match="short by"):
        execute(load_plan(pool.state, h2), h2, pool.ledger(), faulty, pool.wallet, CAP, 1.0)
    assert {r["plan_hash"] for r in pool.ledger().payments().values()} == {h1}
    assert pool.chain.nonce(pool.wallet.address, "pending") == 6
    pool.chain.rpc("evm_setAutomine", [True])
    pool.chain.rpc("evm_mine", [])
    recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert paid_on_chain(pool) == pool.earnings
    assert all(pool.chain.balance(a) == 0 for a in workers2)


def _priced_out_after_five_mined(pool: Pool) -> dict:
    """Six payments broadcast; five mined; the sixth dropped by the node, then the base fee
    rises above its maxFeePerGas (still under the cap): the node refuses its bytes."""
    _, h = pool.plan()
    pool.chain.rpc("evm_setAutomine", [False])
    pool.run(h, timeout=1)
    last = max(pool.ledger().payments().values(), key=lambda r: r["nonce"])
    pool.chain.rpc("anvil_dropTransaction", [last["tx_hash"]])
    pool.chain.rpc("evm_mine", [])
    pool.chain.rpc("anvil_setNextBlockBaseFeePerGas", [hex(int(last["max_fee_per_gas"]) * 10)])
    pool.chain.rpc("evm_mine", [])
    assert pool.chain.base_fee() > int(last["max_fee_per_gas"])
    return last


@pytest.mark.parametrize("via", ["library", "cli"])
def test_recover_settles_every_receipt_and_reports_a_refused_send(pool: Pool, via: str) -> None:
    """Issue 15 items 5 and 6: one send the node refuses must not stop recover (mined
    receipts unrecorded, and the DAG's first task failing); it is reported with the
    node's reason, and ``openpool payouts recover`` prints that, not a traceback."""
    last = _priced_out_after_five_mined(pool)
    if via == "library":
        rep = recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1).as_dict()
    else:
        proc = _cli(pool, "recover")
        assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.returncode == 4, proc.stderr[-2000:]
        rep = json.loads(proc.stdout)
    assert rep["confirmed"] == 5
    assert [(r["payment_id"], r["nonce"]) for r in rep["refused"]] == [
        (last["payment_id"], last["nonce"])
    ]
    assert "max fee per gas less than block base fee" in rep["refused"][0]["reason"]
    statuses = {r["payment_id"]: r["status"] for r in pool.ledger().payments().values()}
    assert statuses.pop(last["payment_id"]) == "broadcast"  # still ours to settle, not failed
    assert set(statuses.values()) == {CONFIRMED}
    paid = paid_on_chain(pool)
    assert paid[last["eth_address"]] == 0
    assert sum(paid.values()) == sum(pool.earnings.values()) - int(last["amount_wei"])


def _ledger_dir(pool: Pool) -> Path:
    return pool.state.root / "wallet" / pool.wallet.address.lower()


@pytest.mark.parametrize("damage", ["deleted", "rolled_back"])
def test_a_lost_or_rolled_back_ledger_refuses_everything_until_reconciled(
    pool: Pool, damage: str, tmp_path: Path
) -> None:
    """Issue 15 item 2: the chain judges the ledger. A ledger that does not know every
    nonce the chain shows the hot wallet used would pay those payments again; planning and
    executing are refused naming the gap until ``openpool payouts reconcile`` rebuilt the
    records from the chain and a person confirmed them."""
    other = Partition("ai", "us-west")
    later = {Account.create().address: 5 * 10**16 for _ in range(2)}
    _, h1 = pool.plan()
    pool.run(h1)
    saved = tmp_path / "ledger-copy"
    shutil.copytree(_ledger_dir(pool), saved)
    _balances(pool.state, later, other)
    h2 = save_plan(pool.state, build_plan([other], pool.state, pool.ledger(), LIMITS, 42161))
    pool.run(h2)
    earned = {**pool.earnings, **later}
    shutil.rmtree(_ledger_dir(pool))
    if damage == "rolled_back":
        shutil.copytree(saved, _ledger_dir(pool))  # an older copy restored
    gap = "nonces 0-7" if damage == "deleted" else "nonces 6-7"
    refused = None
    try:  # an approved plan whose records the ledger lost: today's code pays it again
        pool.run(h2)
    except PlanRefused as exc:
        refused = exc
    paid = {a: pool.chain.balance(a) for a in earned}
    assert paid == earned, "paid twice after the ledger was lost"
    assert refused is not None and gap in str(refused), refused
    planned = _cli(pool, "plan")
    assert planned.returncode == 1 and gap in planned.stderr, planned.stderr[-2000:]
    assert "openpool payouts reconcile" in planned.stderr
    # reconcile: says what it found, changes nothing until a person confirms
    looked = _cli(pool, "reconcile")
    assert looked.returncode == 3, looked.stderr[-2000:]
    found = json.loads(looked.stdout)
    assert found["missing_nonces"] == (list(range(8)) if damage == "deleted" else [6, 7])
    assert {m["payment_id"] for m in found["matched"]} <= (
        {p["payment_id"] for p in load_plan(pool.state, h1)["payments"]}
        | {p["payment_id"] for p in load_plan(pool.state, h2)["payments"]}
    )
    assert len(found["matched"]) == len(found["missing_nonces"]) and found["unmatched"] == []
    assert found["recorded"] is False
    assert _cli(pool, "plan").returncode == 1
    done = _cli(pool, "reconcile", "--i-confirm")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["recorded"] is True
    replanned = _cli(pool, "plan")
    assert replanned.returncode == 0, replanned.stderr[-2000:]
    assert json.loads(replanned.stdout)["payments"] == 0
    assert pool.run(h2).signed == 0
    assert {a: pool.chain.balance(a) for a in earned} == earned


def test_a_rival_executor_committing_between_our_reads_is_no_ledger_gap(pool: Pool) -> None:
    """The ledger-vs-chain check reads the chain first, then the ledger: a rival that
    commits and broadcasts in between is not a gap (its commit precedes its broadcast)."""
    _, h = pool.plan()
    faulty = FaultyChain(pool.chain)

    def nonce(real: Callable[..., int], address: str, block: str = "pending") -> int:
        faulty.hooks.pop("nonce")
        pool.run(h)  # the rival commits, broadcasts and confirms everything
        return real(address, block)

    faulty.hooks["nonce"] = nonce
    rep = execute(load_plan(pool.state, h), h, pool.ledger(), faulty, pool.wallet, CAP, 10.0)
    assert rep.signed == 0
    assert paid_on_chain(pool) == pool.earnings
    assert check_invariants(pool) == pool.earnings


def test_a_send_from_the_wallet_outside_openpool_is_a_gap_reconciled_as_investigate(
    pool: Pool,
) -> None:
    """A transfer signed with the hot wallet's key by hand matches no plan: planning stops
    naming its nonce; once a person confirms, it is recorded ``needs_investigation`` (its
    recipient blocked) and everyone else is paid."""
    from eth_account import Account as Acct

    stranger = Acct.create().address
    wallet = pool.wallet
    raw, _ = wallet.sign(
        {
            "type": 2,
            "chainId": 42161,
            "nonce": 0,
            "to": stranger,
            "value": 12345,
            "gas": 21000,
            "maxFeePerGas": 3 * 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    assert pool.chain.send_raw(raw) == "sent"
    planned = _cli(pool, "plan")
    assert planned.returncode == 1 and "nonce 0" in planned.stderr, planned.stderr[-2000:]
    found = json.loads(_cli(pool, "reconcile").stdout)
    assert found["matched"] == [] and [u["eth_address"] for u in found["unmatched"]] == [stranger]
    assert _cli(pool, "reconcile", "--i-confirm").returncode == 0
    statuses = {r["eth_address"]: r["status"] for r in pool.ledger().payments().values()}
    assert statuses == {stranger: "needs_investigation"}
    replanned = _cli(pool, "plan")
    assert replanned.returncode == 0, replanned.stderr[-2000:]
    h = json.loads(replanned.stdout)["plan_hash"]
    assert pool.run(h).confirmed == 6
    assert paid_on_chain(pool) == pool.earnings
    assert pool.chain.balance(stranger) == 12345


def test_a_send_refused_in_execute_is_reported_and_left_for_recover(pool: Pool) -> None:
    """The node refuses a signed payment's bytes during execute: reported with its reason,
    the record stays ``signed``; the next recover broadcasts the same bytes."""
    from openpool.payouts.chain import SendRefused

    _, h = pool.plan()
    victim = next(iter(pool.earnings))
    faulty = FaultyChain(pool.chain)
    victim_row: dict = {}

    def send_raw(real: Callable[..., str], raw: bytes) -> str:
        rows = [r for r in pool.ledger().payments().values() if r["raw_tx"] == raw.hex()]
        if rows and rows[0]["eth_address"] == victim:
            victim_row.update(rows[0])
            raise SendRefused("txpool is full")
        return real(raw)

    faulty.hooks["send_raw"] = send_raw
    rep = execute(load_plan(pool.state, h), h, pool.ledger(), faulty, pool.wallet, CAP, 3.0)
    assert [(r["payment_id"], r["reason"]) for r in rep.refused] == [
        (victim_row["payment_id"], "txpool is full")
    ]
    assert pool.ledger().payments()[victim_row["payment_id"]]["status"] == SIGNED
    assert pool.chain.balance(victim) == 0
    rec = recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert rec.broadcast == 1
    recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert paid_on_chain(pool) == pool.earnings
    assert check_invariants(pool) == pool.earnings


@pytest.mark.s3
def test_an_s3_state_store_lost_after_payments_is_refused_never_paid_again(
    tmp_path: Path,
) -> None:
    """Issue 18: moto killed and started empty (an S3 bucket lost or wiped) after workers
    were paid. The orchestrators upload again and the balances come back, but every ledger
    is gone: without the chain's word that is "paid 0" and every worker would be paid a
    second time. The plan and an approved plan's execute must be refused, naming the gap."""
    import dataclasses

    from openpool.storage import S3Store
    from tests.chaos.common import s3_client
    from tests.services import moto_server

    with open_pool(tmp_path) as local:
        with moto_server(tmp_path / "moto-a") as first:
            client = s3_client(first)
            client.create_bucket(Bucket="pool")
            state = S3Store("s3://pool/state", client=client)
            _balances(state, local.earnings)
            pool = dataclasses.replace(local, state=state)  # type: ignore[arg-type]
            _, h = pool.plan()
            pool.run(h)
            assert {a: pool.chain.balance(a) for a in pool.earnings} == pool.earnings
            plan = load_plan(state, h)
        with moto_server(tmp_path / "moto-b") as second:  # a new server: nothing survived
            client = s3_client(second)
            client.create_bucket(Bucket="pool")
            state = S3Store("s3://pool/state", client=client)
            assert list(state.list("")) == []
            _balances(state, pool.earnings)  # re-ingested: the same earnings again
            lost = dataclasses.replace(local, state=state)  # type: ignore[arg-type]
            # the payout DAG's first task (and `openpool payouts plan`) stops here
            with pytest.raises(PlanRefused, match="nonces 0-5"):
                recover(lost.ledger(), lost.chain, lost.wallet.address, confirmations=1)
            again, h2 = lost.plan()  # the library alone would plan everyone again ...
            assert again["total_wei"] == sum(pool.earnings.values())
            with pytest.raises(PlanRefused, match="ledger is behind the chain"):
                lost.run(h2)  # ... and execute refuses it
            h1 = save_plan(state, plan)  # the old approved plan, put back by hand
            with pytest.raises(PlanRefused, match="nonces 0-5"):
                lost.run(h1)
            assert lost.ledger().latest() is None  # nothing recorded, nothing signed
        paid = {a: local.chain.balance(a) for a in local.earnings}
        assert paid == local.earnings, "a worker was paid twice after the store was lost"
        assert local.chain.nonce(local.wallet.address, "pending") == len(local.earnings)
