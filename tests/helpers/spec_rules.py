"""The wire format's rules for one event, written out from /work/shared/spec/events.md.

Test code only, and deliberately independent of the reader (``openpool.ingest.reader``):
plain Python over the parsed JSON, no Arrow, no msgspec, none of its tables or regexes.
:func:`event_problems` lists what is wrong with an element, each problem naming the field
it is about, so a test can check both that the reader accepted only valid events and
that each rejection names what is really wrong.

Where the spec leaves room, the reader's documented choices are taken (module docstring
of ``openpool.ingest.reader``): unknown top-level and payload keys are tolerated; an ID
needs UUID shape, not version 4; an ``ethAddress`` may also carry no checksum (all lower
or all upper case); a job's ``responseTime`` may be absent (the job was still done).
Storage limits the spec does not state are the reader's too: int64 for the integer
columns (a transcode ``responseTime`` is stored in nanoseconds), decimal128(38, 0) for
``pricePerComputeUnit``; a year before 1000 is refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eth_utils import is_checksum_address

INT64_MAX = 2**63 - 1
DECIMAL38_MAX = 10**38 - 1
TOP_KEYS = ("DT", "EventType", "ID", "NodeType", "Payload", "Region", "Version")

_DT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", re.ASCII)
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}", re.ASCII)
_RATIONAL = re.compile(r"\d+/0*[1-9]\d*", re.ASCII)  # denominator > 0
_HOST_PORT = re.compile(r"(\S+):(\d{1,5})", re.ASCII)


@dataclass(frozen=True)
class Problem:
    """One broken rule: ``field`` is the top-level or payload key (None: the element)."""

    field: str | None
    message: str


# What each value kind accepts: (test, what it must be).
def _is_int(v: Any) -> bool:
    return type(v) is int  # bool is an int subclass: not a JSON integer


def _uint(top: int) -> Any:
    return lambda v: _is_int(v) and 0 <= v <= top


@functools.lru_cache(maxsize=4096)
def _address(v: str) -> bool:
    if not _HEX_ADDRESS.fullmatch(v):
        return False
    digits = v[2:]
    return digits in (digits.lower(), digits.upper()) or is_checksum_address(v)


def _host_port(v: str) -> bool:
    m = _HOST_PORT.fullmatch(v)
    return m is not None and 1 <= int(m[2]) <= 65535


def _string(test: Any = None) -> Any:
    return lambda v: isinstance(v, str) and (test is None or test(v))


KINDS: dict[str, tuple[Any, str]] = {
    "count": (_uint(INT64_MAX), "a non-negative JSON integer that fits int64"),
    "ms": (_uint(INT64_MAX // 10**6), "non-negative integer ms whose ns fit int64"),
    "fee": (_uint(INT64_MAX), "a non-negative JSON integer of wei that fits int64"),
    "price": (_uint(DECIMAL38_MAX), "a non-negative JSON integer of wei (decimal128)"),
    "big": (lambda v: _is_int(v) and v >= 0, "a non-negative JSON integer"),
    "prob": (_uint(2**256), "a JSON integer from 0 to 2^256"),
    "text": (_string(), "a string"),
    "nonempty": (_string(bool), "a non-empty string"),
    "address": (_string(_address), "a hex address, EIP-55 checksummed or uniform case"),
    "hexaddr": (_string(_HEX_ADDRESS.fullmatch), "a hex address"),
    "txhash": (_string(_TX_HASH.fullmatch), "a 32-byte hex hash"),
    "rational": (_string(_RATIONAL.fullmatch), "a rational 'n/d' with d > 0"),
    "hostport": (_string(_host_port), "host:port"),
}

_TRANSCODE_JOB = {
    "computeUnits": "count",
    "duration": "count",  # ms
    "ethAddress": "address",
    "fees": "fee",
    "pricePerComputeUnit": "price",
    "realTimeRatio": "count",
    "responseTime": "ms",
}
_AI_RECEIVED = {
    "ethAddress": "address",
    "modelID": "text",
    "pipeline": "text",
    "requestID": "nonempty",
}
_AI_JOB = {
    "computeUnits": "count",
    "fees": "fee",
    "modelID": "text",
    "pipeline": "text",
    "pricePerComputeUnit": "price",
    "requestID": "nonempty",
    "responseTime": "count",  # ns
}
_CONNECTION = {"connection": "hostport", "ethAddress": "address"}
_TICKET = {
    "creationRound": "count",
    "faceValue": "big",
    "pricePerPixel": "rational",
    "recipient": "hexaddr",
    "sender": "hexaddr",
    "txHash": "txhash",
    "winProb": "prob",
}
_BOTH = {
    "worker-connected": _CONNECTION,
    "worker-disconnected": _CONNECTION,
    "orchestrator-reset": {},
    "ticket-redeemed": _TICKET,
}
# (node type, event type) -> payload key -> kind. Other types: any payload object.
PAYLOADS: dict[str, dict[str, dict[str, str]]] = {
    "transcode": {"job-processed": _TRANSCODE_JOB, **_BOTH},
    "ai": {"job-received": _AI_RECEIVED, "job-processed": _AI_JOB, **_BOTH},
}
OPTIONAL = frozenset({"responseTime"})


@functools.lru_cache(maxsize=1 << 14)
def _dt_ok(v: str) -> bool:
    if not _DT.fullmatch(v) or v.startswith("0"):
        return False
    try:
        datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def event_problems(ev: Any, node_type: str, region: str) -> list[Problem]:
    """Every rule of the spec ``ev`` (one parsed array element) breaks, for a file of the
    ``node_type``/``region`` partition. Empty: the event is valid."""
    if not isinstance(ev, dict):
        return [Problem(None, "an event must be a JSON object")]
    out = [Problem(k, "missing") for k in TOP_KEYS if k not in ev]
    if out:
        return out
    for key in ("DT", "EventType", "ID", "NodeType", "Region"):
        if not isinstance(ev[key], str):
            out.append(Problem(key, "must be a string"))
    if not _is_int(ev["Version"]) or not -(2**63) <= ev["Version"] <= INT64_MAX:
        out.append(Problem("Version", "must be a JSON integer (int64)"))
    if not isinstance(ev["Payload"], dict):
        out.append(Problem("Payload", "must be an object"))
    if out:
        return out
    if not _dt_ok(ev["DT"]):
        out.append(Problem("DT", "must be RFC 3339 UTC with second precision"))
    if not ev["EventType"]:
        out.append(Problem("EventType", "must not be empty"))
    if not _UUID.fullmatch(ev["ID"]):
        out.append(Problem("ID", "must be a UUID"))
    if ev["NodeType"] != node_type:
        out.append(Problem("NodeType", f"must be the partition's {node_type!r}"))
    if ev["Region"] != region:
        out.append(Problem("Region", f"must be the partition's {region!r}"))
    rules = PAYLOADS.get(node_type, {}).get(ev["EventType"], {})
    payload = ev["Payload"]
    for key, kind in rules.items():
        if key not in payload:
            if key not in OPTIONAL:
                out.append(Problem(key, "missing"))
            continue
        test, what = KINDS[kind]
        if not test(payload[key]):
            out.append(Problem(key, f"must be {what}"))
    return out
