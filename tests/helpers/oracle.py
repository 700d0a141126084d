"""The test oracle: balances computed the deliberately plain way, to check the ingest by.

A loop over parsed JSON with Python ints: no Arrow, no state, no cleverness, and no code
shared with the ingest it checks. Test code only; the product never computes balances
this way.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from fractions import Fraction
from typing import Any

from eth_utils import is_checksum_address, to_checksum_address

from openpool.traffic import GeneratedFile
from openpool.traffic.keys import DT_FORMAT, KEY_RE

UNATTRIBUTED = "__unattributed__"

_DT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _valid_address(value: Any) -> bool:
    return isinstance(value, str) and _address_ok(value)


@functools.lru_cache(maxsize=1 << 12)
def _address_ok(value: str) -> bool:
    # Hex of the right length; mixed case must carry a valid EIP-55 checksum. Cached: the
    # checksum is a keccak hash, and the same few worker addresses repeat on every job.
    if not _ADDRESS_RE.match(value):
        return False
    hexpart = value[2:]
    return hexpart in (hexpart.lower(), hexpart.upper()) or is_checksum_address(value)


@functools.lru_cache(maxsize=1 << 12)
def _checksummed(value: str) -> str:
    return to_checksum_address(value)


@functools.lru_cache(maxsize=1 << 16)
def _dt_ok(value: str) -> bool:
    if not _DT_RE.match(value):
        return False
    try:
        datetime.strptime(value, DT_FORMAT)
    except ValueError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_event(ev: Any, node_type: str, region: str) -> bool:
    """The spec's rules for an event worth counting, written out plainly."""
    if not isinstance(ev, dict):
        return False
    dt, etype, eid, payload = ev.get("DT"), ev.get("EventType"), ev.get("ID"), ev.get("Payload")
    if not (isinstance(dt, str) and _dt_ok(dt)):
        return False
    if not (isinstance(etype, str) and etype and isinstance(eid, str) and eid):
        return False
    if not isinstance(payload, dict) or not _is_int(ev.get("Version")):
        return False
    if ev.get("NodeType") != node_type or ev.get("Region") != region:
        return False
    fees_ok = _is_int(payload.get("fees")) and payload["fees"] >= 0
    rid_ok = isinstance(payload.get("requestID"), str) and bool(payload["requestID"])
    addr_ok = _valid_address(payload.get("ethAddress"))
    if etype == "job-processed":
        return fees_ok and (rid_ok if node_type == "ai" else addr_ok)
    if etype == "job-received":
        return rid_ok and addr_ok
    if etype in ("worker-connected", "worker-disconnected"):
        return addr_ok and isinstance(payload.get("connection"), str)
    return True


def oracle_balances(
    files: list[GeneratedFile], commission_rate: Fraction
) -> dict[str, dict[str, int]]:
    """Reference balances over ``files``: what a correct ingest of them must produce.

    Unparseable files are skipped whole; invalid events are dropped; each valid event ID
    counts once (the first occurrence wins, a later one with other content is ignored).
    AI jobs are credited through the earliest valid job-received with their requestID
    anywhere in the set; the rest go to ``__unattributed__`` (the pool keeps all of it).
    """
    p, q = commission_rate.numerator, commission_rate.denominator
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
