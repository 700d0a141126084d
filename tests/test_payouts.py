"""Payouts against a real anvil chain (chain id 42161): exactly once through every crash."""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from eth_account import Account

from openpool.analytics.summary import worker_summary
from openpool.errors import InvalidPlan
from openpool.partitions import Partition
from openpool.payments import CONFIRMED, partition_payouts
from openpool.payouts.chain import Chain
from openpool.payouts.execute import PayoutRefused, execute, recover
from openpool.payouts.keys import load_wallet, write_keystore
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import Limits, PlanRefused, build_plan, load_plan, plan_key, save_plan
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from openpool.tables import BALANCES
from tests.helpers.leaks import Secrets, leaks
from tests.services import REPO, anvil

PART = Partition("transcode", "us-west")
ETH = 10**18
LIMITS = Limits(
    threshold_wei=10**16,
    max_payment_wei=ETH,
    max_run_wei=100 * ETH,
    min_interval=timedelta(hours=24),
)
CAP = 10**12  # 1000 gwei: far above anvil's base fee


@dataclass
class Pool:
    rpc: str
    chain: Chain
    state: LocalStore
    keystore: Path
    password: Path
    earnings: dict[str, int]
    private_key: str

    @property
    def wallet(self):
        return load_wallet(str(self.keystore), str(self.password))

    def ledger(self) -> Ledger:
        return Ledger(self.state, self.wallet.address)

    def plan(self) -> tuple[dict, str]:
        plan = build_plan([PART], self.state, self.ledger(), LIMITS, 42161)
        return plan, save_plan(self.state, plan)

    def run(self, plan_hash: str, timeout: float = 30.0):
        return execute(
            load_plan(self.state, plan_hash),
            plan_hash,
            self.ledger(),
            self.chain,
            self.wallet,
            CAP,
            receipt_timeout=timeout,
        )


def _balances(state: LocalStore, earnings: dict[str, int], part: Partition = PART) -> None:
    rows = [
        {
            "eth_address": a,
            "total_fees_wei": Decimal(e * 4 // 3),
            "pool_commission_wei": Decimal(e * 4 // 3 - e),
            "worker_earnings_wei": Decimal(e),
            "job_count": 1,
            "first_job_at": None,
            "last_job_at": None,
        }
        for a, e in earnings.items()
    ]
    snaps = SnapshotStore(state, part)
    txn = snaps.begin(snaps.latest(), "seed")
    txn.replace("balances", pa.Table.from_pylist(rows, schema=BALANCES))
    txn.commit()


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    with open_pool(tmp_path) as p:
        yield p


@contextlib.contextmanager
def open_pool(tmp_path: Path) -> Iterator[Pool]:
    """A funded hot wallet on a fresh anvil and six workers' balances in one partition."""
    with anvil(tmp_path / "logs") as rpc:
        chain = Chain(rpc)
        key = "0x" + secrets.token_hex(32)
        password = tmp_path / "password"
        password.write_text("correct horse battery staple")
        keystore = tmp_path / "keystore.json"
        address = write_keystore(bytes.fromhex(key[2:]), password.read_text(), keystore)
        chain.rpc("anvil_setBalance", [address, hex(50 * ETH)])
        earnings = {Account.create().address: (i + 2) * 10**16 for i in range(6)}
        state = LocalStore(tmp_path / "state")
        _balances(state, earnings)
        yield Pool(rpc, chain, state, keystore, password, earnings, key)


def check_invariants(pool: Pool) -> dict[str, int]:
    """On-chain received == confirmed records; nothing twice; paid+in-flight+payable == earned."""
    log = pool.ledger().log(pool.ledger().latest())
    confirmed: dict[str, int] = {}
    per_payment: dict[str, int] = {}
    for r in log.to_pylist():
        if r["status"] == CONFIRMED:
            per_payment[r["payment_id"]] = per_payment.get(r["payment_id"], 0) + 1
            confirmed[r["eth_address"]] = confirmed.get(r["eth_address"], 0) + int(r["amount_wei"])
    assert all(n == 1 for n in per_payment.values()), "a payment was confirmed twice"
    for addr in pool.earnings:
        assert pool.chain.balance(addr) == confirmed.get(addr, 0), addr
    snap = SnapshotStore(pool.state, PART).latest()
    summ = worker_summary(snap, PART, LIMITS.threshold_wei, partition_payouts(log, str(PART)))
    for r in summ.workers:
        assert r["paid_wei"] == confirmed.get(r["eth_address"], 0)
        assert (
            r["paid_wei"] + r["in_flight_wei"] + r["payable_wei"] == pool.earnings[r["eth_address"]]
        )
        assert r["payable_wei"] >= 0
    return confirmed


def test_pays_every_worker_once_and_a_rerun_sends_nothing(pool: Pool) -> None:
    plan, h = pool.plan()
    assert len(plan["payments"]) == 6 and plan["total_wei"] == sum(pool.earnings.values())
    rep = pool.run(h)
    assert rep.confirmed == 6 and rep.pending == 0
    assert check_invariants(pool) == pool.earnings
    again = pool.run(h)
    assert again.signed == again.broadcast == again.confirmed == 0
    assert build_plan([PART], pool.state, pool.ledger(), LIMITS, 42161)["payments"] == []
    assert check_invariants(pool) == pool.earnings


@pytest.mark.parametrize(
    "point",
    ["after_sign", "before_signed_commit", "after_signed_commit", "after_broadcast", "during_wait"],
)
def test_a_killed_execute_then_recover_and_rerun_pays_exactly_once(pool: Pool, point: str) -> None:
    _, h = pool.plan()
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests/helpers/payout_crash.py"),
            str(pool.state.root),
            pool.rpc,
            str(pool.keystore),
            str(pool.password),
            h,
            point,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    pool.run(h)
    recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert check_invariants(pool) == pool.earnings


def test_mining_paused_then_resumed(pool: Pool) -> None:
    _, h = pool.plan()
    pool.chain.rpc("evm_setAutomine", [False])
    rep = pool.run(h, timeout=2)
    assert rep.pending == 6 and rep.confirmed == 0  # a timeout is not a failure
    check_invariants(pool)
    pool.chain.rpc("evm_setAutomine", [True])
    pool.chain.rpc("evm_mine", [])
    rec = recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert rec.confirmed == 6
    assert check_invariants(pool) == pool.earnings


def test_a_dropped_transaction_is_rebroadcast_from_its_recorded_bytes(pool: Pool) -> None:
    _, h = pool.plan()
    pool.chain.rpc("evm_setAutomine", [False])
    pool.run(h, timeout=1)
    first = min(pool.ledger().payments().values(), key=lambda r: r["nonce"])
    pool.chain.rpc("anvil_dropTransaction", [first["tx_hash"]])
    assert not pool.chain.known(first["tx_hash"])
    rec = recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert rec.broadcast >= 1 and not rec.investigate
    pool.chain.rpc("evm_setAutomine", [True])
    pool.chain.rpc("evm_mine", [])
    recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert check_invariants(pool) == pool.earnings


def test_a_recipient_that_reverts_is_failed_and_its_amount_stays_payable(pool: Pool) -> None:
    """Only a mined receipt with status 0 makes a payment ``failed`` (payable again); a
    recipient that reverts already on the estimate is simply not signed this run."""
    from tests.helpers.chain_faults import FaultyChain

    rejecting, late = list(pool.earnings)[:2]
    pool.chain.rpc("anvil_setCode", [rejecting, "0x60006000fd"])  # REVERT on any call
    faulty = FaultyChain(pool.chain)

    def estimate(real, sender: str, to: str, value: int) -> int:  # type: ignore[no-untyped-def]
        gas = real(sender, to, value)
        if to == late:  # starts reverting after its estimate: the mined tx reverts
            pool.chain.rpc("anvil_setCode", [late, "0x60006000fd"])
        return gas

    faulty.hooks["estimate_gas"] = estimate
    _, h = pool.plan()
    rep = execute(load_plan(pool.state, h), h, pool.ledger(), faulty, pool.wallet, CAP, 30.0)
    assert rep.confirmed == 4 and rep.failed == 1
    assert [n["reason"] for n in rep.not_signed] == [
        "gas estimate failed: ContractLogicError: ('execution reverted', '0x')"
    ]
    assert {r["eth_address"]: r["status"] for r in pool.ledger().payments().values()}[late] == (
        "failed"
    )
    paid = check_invariants(pool)
    assert rejecting not in paid and late not in paid
    replan = build_plan([PART], pool.state, pool.ledger(), LIMITS, 42161)
    assert sorted(p["eth_address"] for p in replan["payments"]) == sorted([rejecting, late])


def test_gas_above_the_cap_or_a_short_wallet_sends_nothing(pool: Pool) -> None:
    _, h = pool.plan()
    with pytest.raises(PayoutRefused, match="gas price above the cap"):
        execute(load_plan(pool.state, h), h, pool.ledger(), pool.chain, pool.wallet, 1)
    pool.chain.rpc("anvil_setBalance", [pool.wallet.address, hex(10**16)])
    with pytest.raises(PayoutRefused, match="short by"):
        pool.run(h)
    assert pool.ledger().payments() == {}
    assert pool.chain.nonce(pool.wallet.address) == 0
    check_invariants(pool)


def test_two_executions_of_one_plan_at_once_pay_once(pool: Pool) -> None:
    _, h = pool.plan()
    errors: list[BaseException] = []

    def go() -> None:
        try:
            pool.run(h)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert check_invariants(pool) == pool.earnings
    assert pool.chain.nonce(pool.wallet.address, "latest") == 6


def test_a_tampered_plan_is_refused_and_the_key_never_leaks(pool: Pool, caplog) -> None:
    plan, h = pool.plan()
    plan["payments"][0]["amount_wei"] *= 10
    import json

    pool.state.put(plan_key(h), json.dumps(plan, sort_keys=True, separators=(",", ":")).encode())
    with pytest.raises(PlanRefused, match="no longer matches"):
        load_plan(pool.state, h)
    _, h2 = pool.plan()  # the untampered content is a different name... re-derive and pay
    plan2 = build_plan([PART], pool.state, pool.ledger(), LIMITS, 42161)
    h2 = save_plan(pool.state, plan2)
    with caplog.at_level("DEBUG"):
        pool.run(h2)
    key = pool.private_key[2:]
    assert key not in caplog.text and key not in repr(pool.wallet)
    hunted = Secrets()  # the key as hex in any case, raw bytes, base64; and the password
    hunted.add_key(bytes.fromhex(key))
    hunted.add_password(pool.password.read_text())
    found = leaks(hunted, caplog.text.encode() + repr(pool.wallet).encode(), "logs")
    for info in pool.state.list(""):  # every object, its Parquet decoded
        found += leaks(hunted, pool.state.get(info.key), info.key)
    assert found == []
    assert any(i.key.endswith(".parquet") for i in pool.state.list("wallet/"))


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("negative_amount", "payments.0.amount_wei: Input should be greater than 0"),
        ("repeated_payment_id", "duplicate payment_id"),
    ],
)
def test_load_plan_refuses_a_malformed_plan_whose_content_hashes_to_its_name(
    tmp_path: Path, how: str, named: str
) -> None:
    """Every reader of a plan (the DAG, the CLI, the dashboard) gets a checked one: the
    hash proves nobody changed the bytes, not that the bytes were ever a payable plan."""
    state = LocalStore(tmp_path / "state")
    _balances(state, {Account.create().address: (i + 2) * 10**16 for i in range(3)})
    ledger = Ledger(state, Account.create().address)
    plan = build_plan([PART], state, ledger, LIMITS, 42161)
    good = save_plan(state, plan)
    assert load_plan(state, good) == plan  # a well-formed plan comes back as it was saved
    p0, p1 = plan["payments"][0], plan["payments"][1]
    if how == "negative_amount":
        p0["amount_wei"] = -p0["amount_wei"]
    else:
        p1["payment_id"] = p0["payment_id"]
    h = save_plan(state, plan)  # its own, correct, hash
    with pytest.raises(InvalidPlan, match=re.escape(named)):
        load_plan(state, h)


def test_cli_plan_then_execute_requires_an_approval_bound_to_the_hash(pool: Pool) -> None:
    import json
    import os

    env = dict(
        os.environ,
        OPENPOOL_STATE_URI=str(pool.state.root),
        ETH_RPC_ENDPOINT=pool.rpc,
        HOT_WALLET_KEYSTORE=str(pool.keystore),
        HOT_WALLET_PASSWORD_FILE=str(pool.password),
        OPENPOOL_PARTITIONS="transcode|us-west",
        MAX_GAS_PRICE_WEI=str(CAP),
    )
    cli = str(Path(sys.executable).with_name("openpool"))

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, "payouts", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    planned = json.loads(run("plan").stdout)
    h = planned["plan_hash"]
    assert planned["payments"] == 6 and len(planned["largest"]) == 6
    refused = run("execute", "--plan", h)
    assert refused.returncode == 1 and "no recorded approval" in refused.stderr
    assert pool.chain.nonce(pool.wallet.address) == 0
    done = run("execute", "--plan", h, "--i-approve", h)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["confirmed"] == 6 and out["approved_by"].startswith("cli:")
    status = json.loads(run("status", "--format", "json").stdout)
    assert {r["status"] for r in status} == {"confirmed"} and len(status) == 6
    assert json.loads(run("recover").stdout)["confirmed"] == 0
    assert pool.private_key[2:] not in done.stdout + done.stderr
    assert check_invariants(pool) == pool.earnings
