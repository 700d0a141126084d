"""Approvals on the command line come from the person running it, never from a file alone.

Real CLI (``openpool payouts``) in a subprocess, real anvil chain (chain id 42161). What
was sent is read from the chain: the wallet's nonce and the workers' balances.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from openpool.payouts.approvals import approval_key
from openpool.payouts.chain import Chain
from openpool.payouts.keys import write_keystore
from openpool.storage import LocalStore
from tests.services import REPO, anvil
from tests.test_payouts import CAP, ETH, _balances


@dataclass
class Cli:
    chain: Chain
    state: LocalStore
    wallet: str
    earnings: dict[str, int]
    env: dict[str, str]

    def run(self, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / ".venv/bin/openpool"), "payouts", *argv],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def plan(self) -> str:
        out = self.run("plan")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["plan_hash"]

    def nothing_sent(self) -> None:
        assert self.chain.nonce(self.wallet, "pending") == 0
        assert all(self.chain.balance(a) == 0 for a in self.earnings)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    with anvil(tmp_path / "logs") as rpc:
        chain = Chain(rpc)
        (tmp_path / "password").write_text("correct horse battery staple")
        wallet = write_keystore(
            secrets.token_bytes(32), "correct horse battery staple", tmp_path / "keystore.json"
        )
        chain.rpc("anvil_setBalance", [wallet, hex(10 * ETH)])
        earnings = {Account.create().address: (i + 2) * 10**16 for i in range(3)}
        state = LocalStore(tmp_path / "state")
        _balances(state, earnings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOT_WALLET_")}
        env.update(
            OPENPOOL_STATE_URI=str(state.root),
            ETH_RPC_ENDPOINT=rpc,
            HOT_WALLET_KEYSTORE=str(tmp_path / "keystore.json"),
            HOT_WALLET_PASSWORD_FILE=str(tmp_path / "password"),
            OPENPOOL_PARTITIONS="transcode|us-west",
            MAX_GAS_PRICE_WEI=str(CAP),
        )
        yield Cli(chain, state, wallet, earnings, env)


@pytest.mark.parametrize("decision", [None, "approved"])
def test_an_approval_file_dropped_into_approvals_does_not_let_execute_send(
    cli: Cli, decision: str | None
) -> None:
    """Anyone who can write to the state bucket can drop a file; it is not a person."""
    h = cli.plan()
    doc = {"plan_hash": h, "approver": "airflow:treasurer", "via": "HITL openpool_payouts/x"}
    if decision:
        doc["decision"] = decision
    cli.state.put(approval_key(h), json.dumps(doc).encode())
    out = cli.run("execute", "--plan", h)
    assert out.returncode != 0
    assert "--i-approve" in out.stderr
    cli.nothing_sent()


def test_the_cli_approver_is_the_os_user_never_an_environment_variable(cli: Cli) -> None:
    h = cli.plan()
    spoof = {k: "mallory" for k in ("USER", "LOGNAME", "LNAME", "USERNAME")}
    out = cli.run("execute", "--plan", h, "--i-approve", h, **spoof)
    assert out.returncode == 0, out.stderr
    me = pwd.getpwuid(os.getuid()).pw_name
    record = json.loads(cli.state.get(approval_key(h)))
    assert record["approver"] == f"cli:{me}"
    assert record["decision"] == "approved"
    assert json.loads(out.stdout)["approved_by"] == f"cli:{me}"
    assert {a: cli.chain.balance(a) for a in cli.earnings} == cli.earnings


def test_an_explicit_approver_name_is_recorded_beside_the_os_user(cli: Cli) -> None:
    h = cli.plan()
    out = cli.run("execute", "--plan", h, "--i-approve", h, "--approver", "Jane Treasurer")
    assert out.returncode == 0, out.stderr
    me = pwd.getpwuid(os.getuid()).pw_name
    assert json.loads(cli.state.get(approval_key(h)))["approver"] == f"cli:{me} (Jane Treasurer)"


def test_i_approve_must_repeat_the_full_hash(cli: Cli) -> None:
    h = cli.plan()
    out = cli.run("execute", "--plan", h, "--i-approve", h[:12])
    assert out.returncode != 0 and "--i-approve must repeat" in out.stderr
    assert not cli.state.exists(approval_key(h))
    cli.nothing_sent()
