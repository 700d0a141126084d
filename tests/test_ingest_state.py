"""The pure state transitions of ingest: dedup, money, AI correlation, connections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from openpool.ingest import accrue as acc
from openpool.ingest import connections as conn
from openpool.ingest.dedup import dedup
from openpool.money import commission, to_wei_array, wei_ints, wei_sum
from openpool.tables import (
    AI_CREDITS,
    AI_REQUESTS,
    BALANCES,
    CONNECTIONS,
    EVENTS,
    ID_INDEX,
    PENDING_AI,
    WORKERS,
)

T0 = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
A = "0xA4c123B1612dd272d1371C17149d439536b3216F"
B = "0xdAeeb975729fAE923D5A4fd12aAbFe228F219e9C"


def ev(i: int, event_type: str, sec: int = 0, node: str = "transcode", **kw: Any) -> dict:
    row = {name: None for name in EVENTS.names}
    row.update(
        event_id=kw.pop("event_id", f"id-{i}"),
        event_time=T0 + timedelta(seconds=sec),
        event_type=event_type,
        node_type=node,
        region="us-central",
        schema_version=1,
        source_key=kw.pop("source_key", "k1"),
        source_index=i,
        payload_json="{}",
        content_sha256=kw.pop("sha", f"sha-{i}"),
    )
    if "fees" in kw:
        kw["fees_wei"] = Decimal(kw.pop("fees"))
    row.update(kw)
    return row


def table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=EVENTS)


def test_dedup_in_batch_and_against_history_with_conflicts() -> None:
    batch = table(
        [
            ev(0, "job-processed", event_id="x", sha="s1"),
            ev(1, "job-processed", event_id="x", sha="s1"),  # exact re-send
            ev(2, "job-processed", event_id="x", sha="s2"),  # conflict within batch
            ev(3, "job-processed", event_id="y", sha="s3"),  # already ingested, same content
            ev(4, "job-processed", event_id="z", sha="s4"),  # already ingested, other content
            ev(5, "job-processed", event_id="w", sha="s5"),  # new
        ]
    )
    known = pa.table({"event_id": ["y", "z"], "content_sha256": ["s3", "zzz"]}, schema=ID_INDEX)
    r = dedup(batch, known)
    assert r.fresh.column("event_id").to_pylist() == ["x", "w"]
    assert r.duplicates == 2
    assert r.conflicts.column("event_id").to_pylist() == ["x", "z"]
    reasons = r.conflicts.column("reason").to_pylist()
    assert "in this batch" in reasons[0] and "already ingested" in reasons[1]
    assert r.fresh.num_rows + r.duplicates + r.conflicts.num_rows == batch.num_rows


@given(
    st.lists(st.integers(min_value=0, max_value=2**63 - 1), max_size=50),
    st.sampled_from(["0.25", "0.1", "0.333333333", "0", "0.999999999999999999999"]),
)
def test_commission_is_exact_floor_of_rational(fees: list[int], rate_text: str) -> None:
    rate = Fraction(Decimal(rate_text))
    got = wei_ints(commission(to_wei_array(fees), rate))
    assert got == [f * rate.numerator // rate.denominator for f in fees]


def test_a_wei_sum_past_38_digits_is_exact_not_wrapped() -> None:
    """Arrow sums decimal128(38,0) in 128 bits and wraps silently past 10**38."""
    amounts = [9 * 10**37, 9 * 10**37, 10**37 + 3]
    assert wei_sum(to_wei_array(amounts)) == sum(amounts)
    assert wei_sum(pa.chunked_array([to_wei_array(amounts[:1]), to_wei_array(amounts[1:])])) == sum(
        amounts
    )


def test_commission_beyond_int64_is_still_exact() -> None:
    fees = [10**30 + 3, 7]
    assert wei_ints(commission(to_wei_array(fees), Fraction(1, 4))) == [f // 4 for f in fees]


def test_accrue_sums_exactly_and_merges_with_previous() -> None:
    credits = pa.Table.from_pylist(
        [
            {"event_id": "1", "eth_address": A, "event_time": T0, "fees_wei": Decimal(7)},
            {
                "event_id": "2",
                "eth_address": A,
                "event_time": T0 + timedelta(seconds=5),
                "fees_wei": Decimal(10**19),
            },
            {"event_id": "3", "eth_address": B, "event_time": T0, "fees_wei": Decimal(3)},
        ],
        schema=AI_CREDITS,
    )
    b1 = acc.accrue(BALANCES.empty_table(), credits, Fraction(1, 4))
    b2 = acc.accrue(b1, credits.slice(0, 1), Fraction(1, 4))
    rows = {r["eth_address"]: r for r in b2.to_pylist()}
    assert int(rows[A]["total_fees_wei"]) == 7 + 10**19 + 7
    assert int(rows[A]["pool_commission_wei"]) == 1 + 10**19 // 4 + 1  # floor per job
    assert int(rows[A]["worker_earnings_wei"]) == (7 + 10**19 + 7) - (1 + 10**19 // 4 + 1)
    assert rows[A]["job_count"] == 3
    assert rows[A]["last_job_at"] == T0 + timedelta(seconds=5)
    assert int(rows[B]["pool_commission_wei"]) == 0  # floor(3/4)
    assert b2.schema == BALANCES


def ai_received(i: int, req: str, addr: str, sec: int = 0) -> dict:
    return ev(i, "job-received", sec, node="ai", request_id=req, eth_address=addr)


def ai_processed(i: int, req: str, fees: int, sec: int = 0) -> dict:
    return ev(
        i,
        "job-processed",
        sec,
        node="ai",
        request_id=req,
        fees=fees,
        pipeline="text-to-image",
        model_id="m",
    )


def test_ai_processed_before_received_waits_then_is_credited() -> None:
    r1 = acc.correlate_ai(
        table([ai_processed(0, "r1", 100, 10)]),
        AI_REQUESTS.empty_table(),
        PENDING_AI.empty_table(),
        T0 + timedelta(seconds=10),
        timedelta(hours=24),
    )
    assert r1.credited.num_rows == 0 and r1.pending.num_rows == 1
    r2 = acc.correlate_ai(
        table([ai_received(1, "r1", A, 5)]),
        r1.requests,
        r1.pending,
        T0 + timedelta(seconds=10),
        timedelta(hours=24),
    )
    assert r2.credited.column("eth_address").to_pylist() == [A]
    assert wei_ints(r2.credited.column("fees_wei")) == [100]
    assert r2.pending.num_rows == 0 and r2.unattributed.num_rows == 0


def test_ai_received_in_an_earlier_run_credits_a_later_processed() -> None:
    r1 = acc.correlate_ai(
        table([ai_received(0, "r1", B)]),
        AI_REQUESTS.empty_table(),
        PENDING_AI.empty_table(),
        T0,
        timedelta(hours=24),
    )
    r2 = acc.correlate_ai(
        table([ai_processed(1, "r1", 5, 2)]),
        r1.requests,
        r1.pending,
        T0 + timedelta(seconds=2),
        timedelta(hours=24),
    )
    assert r2.credited.column("eth_address").to_pylist() == [B]


def test_ai_never_received_becomes_unattributed_after_ttl_and_is_kept() -> None:
    r1 = acc.correlate_ai(
        table([ai_processed(0, "lost", 42)]),
        AI_REQUESTS.empty_table(),
        PENDING_AI.empty_table(),
        T0,
        timedelta(hours=24),
    )
    assert r1.pending.num_rows == 1
    later = table(
        [ev(1, "worker-connected", 25 * 3600, node="ai", eth_address=A, connection="h:1")]
    )
    r2 = acc.correlate_ai(
        later, r1.requests, r1.pending, T0 + timedelta(hours=25), timedelta(hours=24)
    )
    assert r2.pending.num_rows == 0
    assert r2.unattributed.column("request_id").to_pylist() == ["lost"]
    assert wei_ints(r2.unattributed.column("fees_wei")) == [42]
    assert "no job-received" in r2.unattributed.column("reason")[0].as_py()


def test_reset_closes_every_open_connection_and_workers_stay() -> None:
    fresh = table(
        [
            ev(0, "worker-connected", 1, eth_address=A, connection="a:1"),
            ev(1, "worker-connected", 1, eth_address=B, connection="b:1"),
            ev(2, "worker-disconnected", 2, eth_address=B, connection="b:1"),
            ev(3, "orchestrator-reset", 3),
            ev(4, "worker-connected", 3, eth_address=B, connection="b:2"),  # same second, after
        ]
    )
    c = conn.apply_connections(CONNECTIONS.empty_table(), fresh)
    rows = {(r["eth_address"], r["connection"]): r for r in c.to_pylist()}
    assert rows[(A, "a:1")]["close_reason"] == "orchestrator-reset"
    assert rows[(B, "b:1")]["close_reason"] == "worker-disconnected"
    assert rows[(B, "b:2")]["disconnected_at"] is None
    change = conn.replay_connections(CONNECTIONS.empty_table(), fresh)
    assert change.open.column("connection").to_pylist() == ["b:2"]
    assert sorted(change.closed.column("connection").to_pylist()) == ["a:1", "b:1"]
    assert change.opened.num_rows == 3
    workers = conn.update_workers(
        WORKERS.empty_table(), fresh, change.open, conn.opened_counts(change.opened)
    )
    w = {r["eth_address"]: r for r in workers.to_pylist()}
    assert w[A]["active"] is False and w[B]["active"] is True
    assert w[A]["connection_count"] == 1 and w[B]["connection_count"] == 2
    assert w[A]["last_seen"] == T0 + timedelta(seconds=1)


@pytest.mark.parametrize("n", [0, 1])
def test_connections_without_events_are_unchanged(n: int) -> None:
    fresh = table([ev(0, "job-processed", 1, eth_address=A, fees=1)][:n])
    c = conn.apply_connections(CONNECTIONS.empty_table(), fresh)
    assert c.num_rows == 0
