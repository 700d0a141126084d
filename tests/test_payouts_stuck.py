"""Stuck sends (issue 15 item 5) on a real anvil: a broadcast payment not mined after a
configurable wait is replaced with the same nonce and fees raised by at least +10 % on both
fields, never above ``MAX_GAS_PRICE_WEI``; the replacement is signed and recorded before it
is sent; whichever hash mines is settled; the amount is paid once (checked on the chain)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import rlp

from openpool.payments import BROADCAST, CONFIRMED
from openpool.payouts.execute import recover
from tests.helpers.chain_faults import FaultyChain
from tests.test_payouts import CAP, Pool, check_invariants, open_pool
from tests.test_payouts_chain import _cli, paid_on_chain


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    with open_pool(tmp_path) as p:
        yield p


def _fees(raw_hex: str) -> tuple[int, int]:
    """(maxFeePerGas, maxPriorityFeePerGas) of signed EIP-1559 bytes."""
    fields = rlp.decode(bytes.fromhex(raw_hex.removeprefix("0x"))[1:])
    return int.from_bytes(fields[3], "big"), int.from_bytes(fields[2], "big")


def _history(pool: Pool) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in pool.ledger().log(pool.ledger().latest()).to_pylist():
        out.setdefault(r["payment_id"], []).append(r)
    return out


def test_a_priced_out_send_is_replaced_with_raised_fees_and_paid_once(pool: Pool) -> None:
    """The base fee rises above the broadcast payments' maxFeePerGas (still under the cap):
    ``openpool payouts recover`` replaces each, same nonce, fees +10 % or more, under the cap."""
    _, h = pool.plan()
    pool.chain.rpc("evm_setAutomine", [False])
    pool.run(h, timeout=1)
    first = {pid: rows[-1] for pid, rows in _history(pool).items()}
    old_fee = max(int(r["max_fee_per_gas"]) for r in first.values())
    pool.chain.rpc("anvil_setNextBlockBaseFeePerGas", [hex(old_fee * 3)])
    pool.chain.rpc("evm_mine", [])
    assert pool.chain.base_fee() > old_fee and 10 * pool.chain.base_fee() < CAP
    pool.chain.rpc("evm_setAutomine", [True])
    out = _cli(pool, "recover", env={"STUCK_AFTER_SECONDS": "0"})
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    _cli(pool, "recover", env={"STUCK_AFTER_SECONDS": "0"})
    assert paid_on_chain(pool) == pool.earnings, "a stuck payment was not paid (or paid twice)"
    for pid, rows in _history(pool).items():
        final = rows[-1]
        assert final["status"] == CONFIRMED and final["nonce"] == first[pid]["nonce"]
        assert final["tx_hash"] != first[pid]["tx_hash"]
        old_max, old_tip = _fees(first[pid]["raw_tx"])
        mined = pool.chain.w3.eth.get_transaction(final["tx_hash"])
        assert mined["nonce"] == first[pid]["nonce"]
        assert mined["maxFeePerGas"] * 10 >= old_max * 11 and mined["maxFeePerGas"] <= CAP
        assert mined["maxPriorityFeePerGas"] * 10 >= old_tip * 11
        # the replacement was recorded (signed, as ``broadcast``) before it was sent
        assert any(r["tx_hash"] == final["tx_hash"] and r["status"] == BROADCAST for r in rows)
    assert check_invariants(pool) == pool.earnings


def test_the_original_mining_after_its_replacement_was_recorded_is_settled_once(
    pool: Pool,
) -> None:
    """The replacement is recorded, but the node does not take it and the original mines:
    recover settles the hash that mined, and the amount is paid once."""
    from openpool.payouts.chain import SendRefused

    _, h = pool.plan()
    pool.chain.rpc("evm_setAutomine", [False])
    pool.run(h, timeout=1)
    first = {pid: rows[-1]["tx_hash"] for pid, rows in _history(pool).items()}
    faulty = FaultyChain(pool.chain)

    def refuse(real: Callable[..., str], raw: bytes) -> str:
        raise SendRefused("replacement transaction underpriced")

    faulty.hooks["send_raw"] = refuse
    rep = recover(
        pool.ledger(),
        faulty,
        pool.wallet.address,
        wallet=pool.wallet,
        max_gas_price_wei=CAP,
        stuck_after=timedelta(0),
        confirmations=1,
    )
    assert len(rep.replaced) == 6 and len(rep.refused) == 6
    assert all(r["reason"] == "replacement transaction underpriced" for r in rep.refused)
    recorded = {pid: rows[-1]["tx_hash"] for pid, rows in _history(pool).items()}
    assert all(recorded[pid] != first[pid] for pid in first)  # recorded before it was sent
    pool.chain.rpc("evm_mine", [])  # the originals mine
    rec = recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert rec.confirmed == 6
    settled = {pid: rows[-1] for pid, rows in _history(pool).items()}
    assert {pid: r["tx_hash"] for pid, r in settled.items()} == first
    assert {r["status"] for r in settled.values()} == {CONFIRMED}
    assert paid_on_chain(pool) == pool.earnings
    assert check_invariants(pool) == pool.earnings


def test_a_payment_is_confirmed_only_at_the_configured_depth(pool: Pool) -> None:
    """CONFIRMATIONS=3: mined in block N, ``confirmed`` only once block N+2 exists."""
    _, h = pool.plan()
    pool.chain.rpc("evm_setAutomine", [False])
    pool.run(h, timeout=1)
    pool.chain.rpc("evm_mine", [])
    for _ in range(2):
        rep = recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=3)
        assert rep.confirmed == 0 and rep.pending == 6
        assert {r["status"] for r in pool.ledger().payments().values()} == {BROADCAST}
        pool.chain.rpc("evm_mine", [])
    rep = recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=3)
    assert rep.confirmed == 6 and rep.pending == 0
    assert paid_on_chain(pool) == pool.earnings
    assert check_invariants(pool) == pool.earnings


def test_a_replacement_above_the_gas_cap_is_never_sent_only_reported(pool: Pool) -> None:
    """When +10 % would pass MAX_GAS_PRICE_WEI the stuck send stays as it is, reported."""
    _, h = pool.plan()
    pool.chain.rpc("evm_setAutomine", [False])
    pool.run(h, timeout=1)
    before = {pid: rows[-1]["tx_hash"] for pid, rows in _history(pool).items()}
    fee = max(_fees(rows[-1]["raw_tx"])[0] for rows in _history(pool).values())
    rep = recover(
        pool.ledger(),
        pool.chain,
        pool.wallet.address,
        wallet=pool.wallet,
        max_gas_price_wei=fee * 105 // 100,
        stuck_after=timedelta(0),
        confirmations=1,
    )
    assert rep.replaced == [] and len(rep.stuck) == 6
    assert all("above MAX_GAS_PRICE_WEI" in s["reason"] for s in rep.stuck)
    assert {pid: rows[-1]["tx_hash"] for pid, rows in _history(pool).items()} == before
    pool.chain.rpc("evm_mine", [])
    recover(pool.ledger(), pool.chain, pool.wallet.address, confirmations=1)
    assert paid_on_chain(pool) == pool.earnings


def test_without_the_key_a_stuck_send_is_reported_not_replaced(pool: Pool) -> None:
    """A recover that has only the wallet's address (no keystore) names the stuck sends."""
    _, h = pool.plan()
    pool.chain.rpc("evm_setAutomine", [False])
    pool.run(h, timeout=1)
    before = {pid: rows[-1]["tx_hash"] for pid, rows in _history(pool).items()}
    rep = recover(
        pool.ledger(),
        pool.chain,
        pool.wallet.address,
        stuck_after=timedelta(0),
        confirmations=1,
    ).as_dict()
    assert rep["replaced"] == [] and sorted(s["payment_id"] for s in rep["stuck"]) == sorted(before)
    assert all("HOT_WALLET_KEYSTORE" in s["reason"] for s in rep["stuck"])
    assert {pid: rows[-1]["tx_hash"] for pid, rows in _history(pool).items()} == before
