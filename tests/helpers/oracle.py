"""The test oracle: balances computed the deliberately plain way, to check the ingest by.

A loop over parsed JSON with Python ints: no Arrow, no state, no cleverness, and no code
shared with the ingest it checks. Test code only; the product never computes balances
this way.
"""

from __future__ import annotations

import functools
import json
from fractions import Fraction
from typing import Any

from eth_utils import to_checksum_address

from openpool.traffic import GeneratedFile
from openpool.traffic.keys import KEY_RE
from tests.helpers.spec_rules import event_problems

UNATTRIBUTED = "__unattributed__"


@functools.lru_cache(maxsize=1 << 12)
def _checksummed(value: str) -> str:
    return to_checksum_address(value)


def _valid_event(ev: Any, node_type: str, region: str) -> bool:
    """The spec's rules for an event worth counting (tests/helpers/spec_rules.py)."""
    return not event_problems(ev, node_type, region)


def oracle_events(files: list[GeneratedFile]) -> list[dict[str, Any]]:
    """The events a correct ingest of ``files`` accepts, in upload order.

    Unparseable files are skipped whole; invalid events are dropped; each valid event ID
    counts once (the first occurrence wins, a later one with other content is ignored).
    """
    seen: set[str] = set()
    accepted: list[dict[str, Any]] = []
    for f in files:
        m = KEY_RE.match(f.key)
        if not m:
            continue
        try:
            events = json.loads(f.body)
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(events, list):
            continue
        for ev in events:
            if not _valid_event(ev, m["node_type"], m["region"]):
                continue
            if ev["ID"] in seen:
                continue  # duplicate (same content) or conflict (other content): not counted
            seen.add(ev["ID"])
            accepted.append(ev)
    return accepted


def oracle_balances(
    files: list[GeneratedFile],
    commission_rate: Fraction,
    accepted: list[dict[str, Any]] | None = None,
) -> dict[str, dict[str, int]]:
    """Reference balances over ``files``: what a correct ingest of them must produce.

    The events counted are :func:`oracle_events` (``accepted``: already computed).
    AI jobs are credited through the earliest valid job-received with their requestID
    anywhere in the set; the rest go to ``__unattributed__`` (the pool keeps all of it).
    """
    p, q = commission_rate.numerator, commission_rate.denominator
    if accepted is None:
        accepted = oracle_events(files)

    worker_of: dict[str, tuple[str, str]] = {}  # requestID -> (DT, checksummed address)
    for ev in accepted:
        if ev["EventType"] == "job-received" and ev["NodeType"] == "ai":
            rid = ev["Payload"]["requestID"]
            cand = (ev["DT"], _checksummed(ev["Payload"]["ethAddress"]))
            if rid not in worker_of or cand[0] < worker_of[rid][0]:
                worker_of[rid] = cand

    out: dict[str, dict[str, int]] = {}

    def credit(who: str, fees: int, commission: int) -> None:
        row = out.setdefault(
            who,
            {
                "total_fees_wei": 0,
                "pool_commission_wei": 0,
                "worker_earnings_wei": 0,
                "job_count": 0,
            },
        )
        row["total_fees_wei"] += fees
        row["pool_commission_wei"] += commission
        row["worker_earnings_wei"] += fees - commission
        row["job_count"] += 1

    for ev in accepted:
        if ev["EventType"] != "job-processed":
            continue
        fees = ev["Payload"]["fees"]
        if ev["NodeType"] == "ai":
            match = worker_of.get(ev["Payload"]["requestID"])
            if match is None:
                credit(UNATTRIBUTED, fees, fees)
                continue
            who = match[1]
        else:
            who = _checksummed(ev["Payload"]["ethAddress"])
        credit(who, fees, fees * p // q)
    return out
