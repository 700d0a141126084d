"""A repeated event ID ingested after a plan was approved: execute refuses to pay the
workers it touched (checked on anvil: nothing reaches them), and pays once it is resolved."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from eth_account import Account

from openpool.duplicates import find_duplicates
from openpool.ingest.resolve import resolve_duplicates
from openpool.payouts.chain import Chain
from openpool.payouts.execute import execute
from openpool.payouts.keys import load_wallet, write_keystore
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import Limits, PlanRefused, build_plan, load_plan, save_plan
from openpool.storage import LocalStore
from tests.services import anvil
from tests.test_ingest_edges import T0, TC, job, put_file, run

ETH = 10**18
LIMITS = Limits(10**16, ETH, 100 * ETH, timedelta(hours=24))


def test_a_repeat_ingested_after_the_plan_holds_the_payment_back_at_execute(
    tmp_path: Path,
) -> None:
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    w1, w2 = Account.create().address, Account.create().address
    eid = str(uuid.uuid4())
    put_file(events, TC, [job(TC, T0, w1, ETH // 10, eid), job(TC, T0, w2, ETH // 5)])
    run(events, state, TC)
    with anvil(tmp_path / "logs") as rpc:
        chain = Chain(rpc)
        password = tmp_path / "password"
        password.write_text(secrets.token_urlsafe(16))
        address = write_keystore(secrets.token_bytes(32), password.read_text(), tmp_path / "k")
        chain.rpc("anvil_setBalance", [address, hex(10 * ETH)])
        wallet = load_wallet(str(tmp_path / "k"), str(password))
        ledger = Ledger(state, address)
        plan_hash = save_plan(state, build_plan([TC], state, ledger, LIMITS, 42161))
        # After the plan (and its approval): the same ID again, dated four hours later.
        put_file(events, TC, [job(TC, T0 + timedelta(hours=4), w1, ETH // 10, eid)])
        run(events, state, TC)
        with pytest.raises(PlanRefused, match=f"held back by unresolved repeated event ID.*{eid}"):
            execute(load_plan(state, plan_hash), plan_hash, ledger, chain, wallet, 10**12)
        assert chain.balance(w1) == 0 and chain.balance(w2) == 0  # nothing was sent
        resolve_duplicates(state, [TC], find_duplicates(state, [TC]), Fraction(1, 4))
        report = execute(load_plan(state, plan_hash), plan_hash, ledger, chain, wallet, 10**12)
        assert report.confirmed == 2
        earned = {w1: ETH // 10 - ETH // 40, w2: ETH // 5 - ETH // 20}  # fees less 1/4
        assert {w: chain.balance(w) for w in (w1, w2)} == earned  # read over RPC
