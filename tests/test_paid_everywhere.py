"""One "paid" everywhere: every surface shows what the chain shows, from every wallet's ledger.

Workers are paid on a real anvil chain by a hot wallet that is then rotated out, and by its
successor (some payments confirmed, some still in flight). Every reader -- the CLI's
``balances`` and ``summary``, the ``openpool_summary`` DAG run in real Airflow
(``dag.test()``), the partition's JSON export and the Parquet published for Athena (the
``openpool analytics`` refresh), and the dashboard's read model -- must show, per worker,
paid = what the worker's address holds on chain, in flight = the value of the wallet's
pending transactions to it (anvil's txpool), and payable = earnings - paid - in flight.
No surface is told which wallets exist (no ``HOT_WALLET_ADDRESS``); the dashboard is
configured with the new wallet only, as the UI would be after a rotation.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from eth_account import Account

from openpool.partitions import Partition
from openpool.payments import payout_log, wallets
from openpool.payouts.chain import Chain
from openpool.payouts.execute import execute
from openpool.payouts.keys import load_wallet, write_keystore
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import Limits, PlanRefused, build_plan, load_plan, save_plan
from openpool.storage import LocalStore, ObjectStore
from openpool.tables import PAYOUTS
from tests.services import REPO, anvil
from tests.test_payouts import _balances

PART = Partition("transcode", "us-west")
ETH = 10**18
CAP = 10**12
PASSWORD = "correct horse battery staple"
Money = dict[str, tuple[int, int, int]]  # worker -> (paid, in flight, payable)


@dataclass
class World:
    rpc: str
    chain: Chain
    root: Path
    state: LocalStore
    metrics: LocalStore
    earnings: dict[str, int]
    wallets: list[str]  # keystore paths, oldest first

    def wallet(self, i: int):
        return load_wallet(self.wallets[i], str(self.root / "password"))

    def plan(self, i: int, max_run_wei: int, max_payment_wei: int = 5 * 10**16) -> dict:
        limits = Limits(10**16, max_payment_wei, max_run_wei, timedelta(0))
        ledger = Ledger(self.state, self.wallet(i).address)
        return build_plan([PART], self.state, ledger, limits, 42161)

    def run(self, i: int, plan: dict, wait: float = 30.0) -> Any:
        w, h = self.wallet(i), save_plan(self.state, plan)
        ledger = Ledger(self.state, w.address)
        return execute(load_plan(self.state, h), h, ledger, self.chain, w, CAP, wait)

    def pay(self, i: int, max_run_wei: int, wait: float = 30.0, **kw: int) -> None:
        plan = self.plan(i, max_run_wei, **kw)
        assert plan["payments"], "nothing planned"
        self.run(i, plan, wait)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOT_WALLET_")}
        env.update(
            OPENPOOL_STATE_URI=self.state.uri,
            OPENPOOL_METRICS_URI=self.metrics.uri,
            OPENPOOL_PARTITIONS=str(PART),
            PAYMENT_THRESHOLD_WEI=str(10**16),
            ETH_RPC_ENDPOINT=self.rpc,
        )
        return env

    def cli(self, *args: str) -> Any:
        out = subprocess.run(
            [str(REPO / ".venv/bin/openpool"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with anvil(tmp_path / "logs") as rpc:
        chain = Chain(rpc)
        (tmp_path / "password").write_text(PASSWORD)
        wallets = []
        for i in range(2):
            path = tmp_path / f"keystore-{i}.json"
            address = write_keystore(secrets.token_bytes(32), PASSWORD, path)
            chain.rpc("anvil_setBalance", [address, hex(10 * ETH)])
            wallets.append(str(path))
        earnings = {Account.create().address: (i + 2) * 10**17 for i in range(4)}
        state = LocalStore(tmp_path / "state")
        _balances(state, earnings)
        yield World(
            rpc, chain, tmp_path, state, LocalStore(tmp_path / "metrics"), earnings, wallets
        )


def chain_money(world: World) -> Money:
    """Per worker, from the chain alone: balance (paid), pending value to it (in flight)."""
    pool = world.chain.rpc("txpool_content", [])
    pending: dict[str, int] = {}
    for txs in pool.get("pending", {}).values():
        for tx in txs.values():
            to = tx["to"].lower()
            pending[to] = pending.get(to, 0) + int(tx["value"], 16)
    out = {}
    for addr, earned in world.earnings.items():
        paid, flight = world.chain.balance(addr), pending.get(addr.lower(), 0)
        out[addr.lower()] = (paid, flight, earned - paid - flight)
    return out


def _money(rows: dict[str, dict[str, Any]], paid: str, flight: str, payable: str) -> Money:
    return {a.lower(): (int(r[paid]), int(r[flight]), int(r[payable])) for a, r in rows.items()}


def _published(state: ObjectStore, table: str) -> list[dict[str, Any]]:
    """The published table's rows, read the way Athena reads them (its symlink.txt)."""
    from openpool.analytics.published import symlink_key

    uris = state.get(symlink_key(table, PART)).decode().split()
    rows: list[dict[str, Any]] = []
    for uri in uris:
        key = uri.removeprefix(state.uri + "/")
        rows.extend(pq.read_table(io.BytesIO(state.get(key))).to_pylist())
    return rows


def test_every_surface_shows_the_paid_and_payable_the_chain_shows(
    world: World, airflow_db: str, monkeypatch
) -> None:
    world.pay(0, max_run_wei=ETH)  # the old wallet pays everyone 0.05 ETH ...
    world.pay(1, max_run_wei=10**17)  # ... its successor pays two workers more ...
    world.chain.rpc("evm_setAutomine", [False])
    world.pay(1, max_run_wei=10**17, wait=1.0)  # ... and two more payments stay in flight
    truth = chain_money(world)
    assert sum(p for p, _, _ in truth.values()) == 6 * 5 * 10**16  # paid by both wallets
    assert sum(f for _, f, _ in truth.values()) == 2 * 5 * 10**16  # in flight

    # the CLI, with no wallet configured
    balances = {r["eth_address"]: r for r in world.cli("balances", *_part(), "--format", "json")}
    assert _money(balances, "paid_wei", "in_flight_wei", "payable_wei") == truth, "balances"
    for args in ((), _part()):
        doc = world.cli("summary", *args, "--format", "json")
        rows = {r["eth_address"]: r for r in doc["workers"]}
        assert _money(rows, "paid_wei", "in_flight_wei", "payable_wei") == truth, args

    # the openpool_summary DAG, in Airflow, writing pool/worker_summary.json
    for k, v in world.env().items():
        monkeypatch.setenv(k, v)
    for k in [k for k in os.environ if k.startswith("HOT_WALLET_")]:
        monkeypatch.delenv(k)
    from openpool.airflow.factory import build_summary_dag

    dr = build_summary_dag(partitions=(str(PART),)).test()
    assert {str(ti.state) for ti in dr.get_task_instances()} == {"success"}
    pool = json.loads(world.metrics.get("pool/worker_summary.json"))["data"]
    assert _money(pool["workers"], "paid_wei", "in_flight_wei", "payable_wei") == truth, "DAG"
    assert pool["aggregates"]["paid_wei"] == sum(p for p, _, _ in truth.values())

    # the partition's refresh: its JSON export and the Parquet published for Athena
    world.cli("analytics", *_part())
    export = json.loads(world.metrics.get(f"{PART.path}/worker_summary.json"))["data"]
    assert (
        _money(export["workers"], "total_fees_paid", "in_flight_fees", "pending_fees") == truth
    ), "export"
    published = {r["eth_address"]: r for r in _published(world.state, "worker_summary")}
    assert _money(published, "paid_wei", "in_flight_wei", "payable_wei") == truth, "Athena"
    confirmed: dict[str, int] = {}
    for p in _published(world.state, "payouts"):
        if p["status"] == "confirmed":
            a = p["eth_address"].lower()
            confirmed[a] = confirmed.get(a, 0) + int(p["amount_wei"])
    assert confirmed == {a: p for a, (p, _, _) in truth.items() if p}, "Athena payouts"

    # the dashboard, configured with the new wallet only
    from openpool.overview import DashboardReader, Sources

    d = DashboardReader().read(
        Sources(
            state=world.state,
            metrics=world.metrics,
            partitions=(PART,),
            threshold_wei=10**16,
            chain_id=42161,
            wallet=world.wallet(1).address,
        )
    )
    for summary in (d.pool, d.partitions[0].summary):
        rows = {r["eth_address"]: r for r in summary.workers}
        assert _money(rows, "paid_wei", "in_flight_wei", "payable_wei") == truth, "dashboard"
    assert sum(1 for p in d.payments if p["confirmed"]) == 6  # both wallets' payments listed


def test_a_rotated_wallet_never_pays_what_its_predecessor_paid(world: World) -> None:
    """The new hot wallet's ledger is empty; the old one's payments still count for plan
    and execute, found under wallet/ without being configured anywhere."""
    world.pay(0, max_run_wei=10 * ETH, max_payment_wei=ETH)  # everyone paid in full
    paid = {a: world.chain.balance(a) for a in world.earnings}
    assert paid == world.earnings
    assert world.plan(1, max_run_wei=10 * ETH, max_payment_wei=ETH)["payments"] == []
    # a plan for the new wallet replaying the old one's payments under new ids is refused
    replay = world.plan(0, max_run_wei=10 * ETH, max_payment_wei=ETH)
    replay["payments"] = [
        {"payment_id": f"replay-{n}", "partition": str(PART), "eth_address": a, "amount_wei": e}
        for n, (a, e) in enumerate(world.earnings.items())
    ]
    replay["total_wei"] = sum(world.earnings.values())
    replay["wallet"] = world.wallet(1).address
    with pytest.raises(PlanRefused, match="above its payable"):
        world.run(1, replay)
    assert {a: world.chain.balance(a) for a in world.earnings} == paid  # nothing sent twice
    assert world.chain.nonce(world.wallet(1).address, "pending") == 0


def _part() -> tuple[str, ...]:
    return ("--node-type", PART.node_type, "--region", PART.region)


def test_every_wallet_under_wallet_is_found_without_listing_its_history(
    store: ObjectStore,
) -> None:
    """Both backends (local and the moto S3 server): one short listing per wallet."""
    from decimal import Decimal

    import pyarrow as pa

    from openpool.snapshots import commit_with_retry

    addresses = sorted(Account.create().address.lower() for _ in range(3))
    for n, addr in enumerate(addresses):
        for k in range(3):  # a few commits each: manifests, data files and hints to skip over
            row = {
                "payment_id": f"p{k}",
                "plan_hash": "h",
                "partition": str(PART),
                "eth_address": "0x" + "ab" * 20,
                "amount_wei": Decimal(10**16 * (n + 1)),
                "status": "confirmed",
            }
            table = pa.Table.from_pylist([row], schema=PAYOUTS)
            commit_with_retry(
                Ledger(store, addr).snaps, lambda b, t, x=table: t.append("payouts", x), "r"
            )
    store.put("wallets-not-a-ledger.json", b"{}")  # a neighbour of the prefix
    calls: list[str] = []
    inner = store.list

    def counted(*a: Any, **kw: Any):
        calls.append("list")
        return inner(*a, **kw)

    store.list = counted  # type: ignore[method-assign]
    assert wallets(store) == addresses
    assert len(calls) == len(addresses) + 1
    log = payout_log(store, str(PART))
    assert sorted(set(log.column("wallet").to_pylist())) == addresses
    assert log.num_rows == 9
