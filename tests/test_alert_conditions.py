"""The alert conditions that need no chain or Airflow, from real state: a repeated event
ID and a stuck payment that then needs investigation, each alerted once, cleared when it
is resolved; a notifier refusing an alert leaves it unrecorded, so it is sent again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from openpool.alerts.conditions import Condition, Inputs
from openpool.alerts.service import run_round
from openpool.alerts.state import alert_store, rows
from openpool.duplicates import find_duplicates
from openpool.ingest.resolve import resolve_duplicates
from openpool.payments import INVESTIGATE, SIGNED
from openpool.payouts.ledger import Ledger
from openpool.storage import LocalStore
from tests.test_ingest_edges import TC, W1, job, put_file, run

WALLET = "0x" + "11" * 20
T0 = datetime(2026, 10, 3, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 10, 3, 14, 0, tzinfo=UTC)


def _inputs(state: LocalStore) -> Inputs:
    return Inputs(
        state=state,
        partitions=(TC,),
        threshold_wei=10**12,
        max_payment_wei=10**18,
        max_run_wei=10**19,
        max_gas_price_wei=10**10,
        stale_after=timedelta(days=30),  # not under test here
        rejected_rate=Fraction(99, 100),  # a resolved repeat is a rejected event: not here
        stuck_after=timedelta(minutes=10),
    )


def _payment(ledger: Ledger, recorded_at: datetime) -> str:
    pid = uuid.uuid4().hex
    row = {
        "payment_id": pid,
        "plan_hash": "ab" * 32,
        "partition": str(TC),
        "eth_address": W1,
        "amount_wei": 10**15,
        "status": SIGNED,
        "nonce": 0,
        "tx_hash": "0x" + "cd" * 32,
        "raw_tx": "0x00",
        "max_fee_per_gas": 10**9,
        "gas": 25_200,
        "block_number": None,
        "note": None,
        "recorded_at": recorded_at,
    }
    ledger.try_commit(ledger.latest(), [row], "tests/test_alert_conditions.py", 1)
    return pid


def test_a_repeated_id_and_a_stuck_then_investigated_payment_alert_once_each(
    tmp_path: Path,
) -> None:
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    eid = str(uuid.uuid4())
    put_file(events, TC, [job(TC, T0, W1, 10**15, eid)])
    run(events, state, TC)
    put_file(events, TC, [job(TC, T0 + timedelta(hours=2), W1, 10**15, eid)])  # another hour
    run(events, state, TC)
    ledger = Ledger(state, WALLET)
    pid = _payment(ledger, NOW - timedelta(hours=1))
    sent: list[Condition] = []
    src = _inputs(state)

    first = run_round(src, sent.append, "r1", now=NOW)
    assert sorted(first.sent) == [f"duplicate_id:{eid}", f"payment_attention:{pid}:signed"]
    assert [c.key for c in sent] == first.sent
    dup = next(c for c in sent if c.kind == "duplicate_id")
    assert W1 in dup.text and "openpool duplicates --resolve" in dup.text
    assert run_round(src, sent.append, "r2", now=NOW).sent == [] and len(sent) == 2

    # the stuck payment now needs investigation: a new alert, the stuck one cleared
    [current] = ledger.payments().values()
    ledger.transition([{**current, "status": INVESTIGATE}], "t", allowed_from=(SIGNED,))
    third = run_round(src, sent.append, "r3", now=NOW)
    assert third.sent == [f"payment_attention:{pid}:needs_investigation"]
    # the repeat is resolved: its alert clears, nothing is sent
    resolve_duplicates(state, [TC], find_duplicates(state, [TC]), Fraction(1, 4))
    assert run_round(src, sent.append, "r4", now=NOW).sent == [] and len(sent) == 3
    recorded = {r["key"]: r["cleared_at"] for r in rows(alert_store(state).latest())}
    assert recorded[f"duplicate_id:{eid}"] is not None
    assert recorded[f"payment_attention:{pid}:signed"] is not None
    assert recorded[f"payment_attention:{pid}:needs_investigation"] is None


def test_an_alert_a_notifier_refused_is_sent_again_next_round(tmp_path: Path) -> None:
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    put_file(events, TC, [job(TC, T0, W1, 10**15)])
    run(events, state, TC)
    pid = _payment(Ledger(state, WALLET), NOW - timedelta(hours=1))
    src = _inputs(state)

    def refuse(c: Condition) -> None:
        raise ConnectionError("slack is down")

    first = run_round(src, refuse, "r1", now=NOW)
    assert first.failed == {f"payment_attention:{pid}:signed": "ConnectionError"}
    assert first.recorded_version is None  # nothing recorded, nothing lost
    sent: list[Condition] = []
    assert run_round(src, sent.append, "r2", now=NOW).sent == [f"payment_attention:{pid}:signed"]


@pytest.mark.parametrize("rate", ["0.05", "1/20"])
def test_the_rejected_rate_setting_is_an_exact_decimal(rate: str) -> None:
    from openpool.config import load_settings
    from openpool.errors import ConfigError

    if rate == "0.05":
        assert load_settings(OPENPOOL_ALERT_REJECTED_RATE=rate).alert_rejected_rate == Fraction(
            1, 20
        )
    else:
        with pytest.raises(ConfigError, match="OPENPOOL_ALERT_REJECTED_RATE"):
            load_settings(OPENPOOL_ALERT_REJECTED_RATE=rate)
