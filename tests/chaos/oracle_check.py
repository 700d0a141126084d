"""An ingest end state judged against the oracle: balances from the generated events alone.

The expectation comes from ``tests/helpers/oracle.py`` over the files the data set
uploaded (plain Python over the JSON, no Arrow, no project ingest code, no state). The
end state is read back from its snapshot: per worker, total fees, commission, earnings
and job count (the ``balances`` table); the AI jobs no worker can be credited with (the
``pending_ai`` and ``unattributed`` tables: the oracle's ``__unattributed__`` row); and
the accepted event IDs (the ``events`` table), as a multiset, so an ID counted twice is
seen even when the clean run counts it twice as well.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from openpool.snapshots import Snapshot
from openpool.traffic import GeneratedFile
from tests.helpers.ledger import FIELDS
from tests.helpers.oracle import UNATTRIBUTED, oracle_balances, oracle_events


@dataclass(frozen=True)
class Expected:
    workers: dict[str, dict[str, int]]  # eth address -> FIELDS
    unattributed: tuple[int, int]  # (fees wei, jobs) the pool keeps or still holds pending
    ids: Counter  # every accepted event ID, once


def expected(files: list[GeneratedFile], rate: Fraction) -> Expected:
    accepted = oracle_events(files)
    balances = oracle_balances(files, rate, accepted)
    rest = balances.pop(UNATTRIBUTED, {"total_fees_wei": 0, "job_count": 0})
    return Expected(
        balances,
        (rest["total_fees_wei"], rest["job_count"]),
        Counter(ev["ID"] for ev in accepted),
    )


def _rows(snap: Snapshot, table: str) -> list[dict]:
    return snap.read(table).to_pylist() if snap.files(table) else []


def judge(snap: Snapshot | None, want: Expected) -> tuple[list[str], int, int]:
    """Differences from the oracle, events lost and events counted twice."""
    if snap is None:
        return ["nothing committed"], sum(want.ids.values()), 0
    out = []
    got = {r["eth_address"]: {k: int(r[k]) for k in FIELDS} for r in _rows(snap, "balances")}
    for addr in sorted(set(got) | set(want.workers)):
        a, b = got.get(addr), want.workers.get(addr)
        if a != b:
            diff = [k for k in FIELDS if (a or {}).get(k) != (b or {}).get(k)]
            out.append(f"balance of {addr}: {a} != oracle {b} ({', '.join(diff)})")
    held = _rows(snap, "pending_ai") + _rows(snap, "unattributed")
    pool = (sum(int(r["fees_wei"]) for r in held), len(held))
    if pool != want.unattributed:
        out.append(f"AI jobs without a worker (fees, jobs) {pool} != oracle {want.unattributed}")
    ids = Counter()
    if snap.files("events"):
        ids = Counter(snap.read("events", columns=["event_id"]).column("event_id").to_pylist())
    lost, twice = want.ids - ids, ids - want.ids
    if lost:
        out.append(f"{sum(lost.values())} accepted event IDs missing, e.g. {min(lost)}")
    if twice:
        out.append(f"{sum(twice.values())} event IDs beyond the oracle's, e.g. {min(twice)}")
    return out, sum(lost.values()), sum(twice.values())
