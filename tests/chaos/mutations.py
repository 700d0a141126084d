"""Valid events of every type, and the same events with exactly one field broken.

The fuzzer's main generator (tests/chaos/fuzz.py) and the validity properties
(tests/test_ingest_validity.py) draw from here: files that are JSON arrays as the
orchestrators write them, so they get past the JSON parse and reach event validation,
where a single mutated field is what the reader has to find. A mutation removes a field,
nulls it, gives it another JSON type, puts it out of range, writes it in a wrong unit or
shape (ETH as a float, a decimal string, milliseconds as "2440ms"), breaks an address or
its checksum, a time, an ID, or swaps the event type, node type or region. Some mutations
leave the event valid (an extra key, an optional field removed, a type change to an
unknown type): the properties judge every event by the spec, not by the mutation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

PARTITIONS = (("transcode", "eu-central"), ("ai", "us-central"))
WINDOW_START = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=59, seconds=59)
ADDRESSES = (
    "0xA4c123B1612dd272d1371C17149d439536b3216F",
    "0xdAeeb975729fAE923D5A4fd12aAbFe228F219e9C",
    "0xb0EB53f16947CCF25eC84D8dbc74254770f58904",
    "0xa4c123b1612dd272d1371c17149d439536b3216f",  # no checksum (lower case): accepted
)
INT64_MAX = 2**63 - 1


def key_for(node_type: str, region: str, n: int = 0) -> str:
    """An object key whose time window holds every time :func:`valid_event` draws (``n``
    widens it by ``n`` seconds, so that several files get distinct keys)."""
    end = WINDOW_START + WINDOW + timedelta(seconds=n)
    return (
        f"{region}/{node_type}/{region}-{node_type}-"
        f"{WINDOW_START:%Y%m%dT%H%M%SZ}_{end:%Y%m%dT%H%M%SZ}.json"
    )


_U63 = st.integers(0, 2**40)
_HEX = st.text("0123456789abcdef", min_size=1, max_size=16)
_LOWER_ADDR = st.text("0123456789abcdef", min_size=40, max_size=40).map(lambda h: "0x" + h)


def _payload(node_type: str, etype: str) -> st.SearchStrategy[dict[str, Any]]:
    addr = st.sampled_from(ADDRESSES)
    model, pipeline = st.sampled_from(["ByteDance/SDXL-Lightning", "m"]), st.just("text-to-image")
    if etype == "job-processed" and node_type == "transcode":
        return st.fixed_dictionaries(
            {
                "computeUnits": _U63,
                "duration": st.integers(0, 10_000),
                "ethAddress": addr,
                "fees": st.integers(0, INT64_MAX),
                "pricePerComputeUnit": st.integers(0, 10**6),
                "realTimeRatio": st.integers(0, 10),
                "responseTime": st.integers(0, 10**7),
            }
        )
    if etype == "job-processed":
        return st.fixed_dictionaries(
            {
                "computeUnits": _U63,
                "fees": st.integers(0, INT64_MAX),
                "modelID": model,
                "pipeline": pipeline,
                "pricePerComputeUnit": st.integers(0, 10**6),
                "requestID": _HEX,
                "responseTime": st.integers(0, INT64_MAX),
            }
        )
    if etype == "job-received":
        return st.fixed_dictionaries(
            {"ethAddress": addr, "modelID": model, "pipeline": pipeline, "requestID": _HEX}
        )
    if etype in ("worker-connected", "worker-disconnected"):
        conn = st.tuples(st.integers(0, 255), st.integers(1, 65535)).map(
            lambda t: f"203.0.113.{t[0]}:{t[1]}"
        )
        return st.fixed_dictionaries({"connection": conn, "ethAddress": addr})
    if etype == "ticket-redeemed":
        return st.fixed_dictionaries(
            {
                "creationRound": st.integers(0, 10**6),
                "faceValue": st.integers(0, 2**100),
                "pricePerPixel": st.tuples(_U63, st.integers(1, 10**6)).map(
                    lambda t: f"{t[0]}/{t[1]}"
                ),
                "recipient": _LOWER_ADDR,
                "sender": _LOWER_ADDR,
                "txHash": st.sampled_from(["0x" + "0" * 64, "0x" + "ab" * 32]),
                "winProb": st.integers(0, 2**256),
            }
        )
    if etype == "orchestrator-reset":
        return st.just({})
    return st.dictionaries(st.sampled_from(["x", "fees", "deep"]), st.integers(), max_size=2)


TYPES = {
    "transcode": [
        "job-processed",
        "worker-connected",
        "worker-disconnected",
        "orchestrator-reset",
        "ticket-redeemed",
        "node-reset",
    ],
    "ai": [
        "job-received",
        "job-processed",
        "worker-connected",
        "worker-disconnected",
        "orchestrator-reset",
        "ticket-redeemed",
        "gateway-reset",
    ],
}
# Jobs most often, as in real files.
_TYPE_WEIGHTS = {"job-processed": 5, "job-received": 3}


@st.composite
def valid_event(draw: st.DrawFn, node_type: str, region: str) -> dict[str, Any]:
    """An event as the spec describes it, of any type the partition sees."""
    weighted = [t for t in TYPES[node_type] for _ in range(_TYPE_WEIGHTS.get(t, 1))]
    etype = draw(st.sampled_from(weighted))
    dt = WINDOW_START + timedelta(seconds=draw(st.integers(0, int(WINDOW.total_seconds()))))
    return {
        "DT": f"{dt:%Y-%m-%dT%H:%M:%SZ}",
        "EventType": etype,
        "ID": str(draw(st.uuids(version=4))),
        "NodeType": node_type,
        "Payload": draw(_payload(node_type, etype)),
        "Region": region,
        "Version": 1,
    }


# Replacement values by what they break. Each is (label, value).
_WRONG_TYPE = [
    ("null", None),
    ("true", True),
    ("float", 1.5),
    ("zero float", 0.0),
    ("list", [1]),
    ("object", {"v": 1}),
    ("empty string", ""),
]
_OUT_OF_RANGE = [
    ("negative", -1),
    ("int64 + 1", 2**63),
    ("2^64", 2**64),
    ("decimal128 + 1", 10**38),
    ("2^256 + 1", 2**256 + 1),
    ("huge", 10**400),
    ("min int64 - 1", -(2**63) - 1),
]
_BAD_TIMES = [
    "2026-02-30T08:00:00Z",
    "2026-10-03T24:00:00Z",
    "2026-10-03T08:00:60Z",
    "2026-10-03T08:00:05.5Z",
    "2026-10-03T08:00:05+00:00",
    "2026-10-03 08:00:05Z",
    "2026-10-03T08:00:05",
    "03/10/2026 08:00:05",
    "0000-01-01T00:00:00Z",
    "2026-10-03T08:00:05z",
    "",
]
_BAD_ADDRESSES = [
    "0xA4C123B1612dd272d1371C17149d439536b3216F",  # one letter's case flipped: bad checksum
    "0xa4c123b1612dd272d1371c17149d439536b3216",  # 39 digits
    "A4c123B1612dd272d1371C17149d439536b3216F",  # no 0x
    "0XA4C123B1612DD272D1371C17149D439536B3216F",
    "0xg4c123b1612dd272d1371c17149d439536b3216f",
    " 0xa4c123b1612dd272d1371c17149d439536b3216f",
    "0x",
    "",
]


def _unit_shaped(value: Any) -> list[tuple[str, Any]]:
    """The value written in another unit or shape a buggy producer might use."""
    if type(value) is int:
        return [
            ("decimal string", str(value)),
            ("ETH float", value / 10**18),
            ("seconds float", value / 1000),
            ("ms string", f"{value}ms"),
            ("hex string", hex(value)),
            ("scientific", float(value) if value else 1e3),
        ]
    if isinstance(value, str):
        return [("number", 12345), ("padded", f" {value} "), ("long", value * 50 + "x")]
    return []


@dataclass
class Mutation:
    """What was done to which field (``path``: top-level key, or ("Payload", key))."""

    path: tuple[str, ...]
    label: str


@st.composite
def mutated_event(draw: st.DrawFn, node_type: str, region: str) -> tuple[dict[str, Any], Mutation]:
    """A valid event with exactly one field broken (or, rarely, harmlessly changed)."""
    ev = draw(valid_event(node_type, region))
    payload = ev["Payload"]
    top = ["DT", "EventType", "ID", "NodeType", "Payload", "Region", "Version"]
    choices = [(k,) for k in top] + [("Payload", k) for k in sorted(payload)]
    # Payload fields carry the money: they get most of the mutations.
    path = draw(st.sampled_from(choices + [c for c in choices if len(c) == 2] * 2))
    target = payload if len(path) == 2 else ev
    key = path[-1]
    value = target[key]
    options: list[tuple[str, Any]] = [("removed", _REMOVE), *_WRONG_TYPE]
    if type(value) is int:
        options += _OUT_OF_RANGE
    options += _unit_shaped(value)
    if key == "DT":
        options += [(f"time {t!r}", t) for t in _BAD_TIMES]
        options += [("epoch seconds", 1759478400), ("later hour", "2026-10-03T09:00:00Z")]
    elif key in ("ethAddress", "recipient", "sender"):
        options += [(f"address {a!r}", a) for a in _BAD_ADDRESSES]
    elif key == "ID":
        options += [
            ("no dashes", value.replace("-", "")),
            ("short", value[:-1]),
            ("braced", "{" + value + "}"),
            ("not hex", "g" + value[1:]),
        ]
    elif key == "EventType":
        options += [(f"type {t}", t) for t in TYPES["ai"] + ["job-processed ", "JOB-PROCESSED"]]
    elif key == "NodeType":
        options += [("other node type", "ai" if node_type == "transcode" else "transcode")]
    elif key == "Region":
        options += [("other region", "oceania"), ("upper case", region.upper())]
    elif key in ("connection",):
        options += [("no port", "203.0.113.7"), ("port 0", "h:0"), ("port 70000", "h:70000")]
    elif key == "pricePerPixel":
        options += [("zero denominator", "1200/0"), ("float", "1200.5"), ("no slash", "1200")]
    elif key == "txHash":
        options += [("short hash", "0x" + "ab" * 31), ("no 0x", "ab" * 32)]
    elif key == "Version":
        options += [("Version 2", 2), ("Version 0", 0)]
    elif key == "Payload":
        options += [("extra key", {**value, "extra": [1, {"x": None}]}), ("empty", {})]
    label, new = draw(st.sampled_from(options))
    if new is _REMOVE:
        del target[key]
    else:
        target[key] = new
    if draw(st.integers(0, 9)) == 0:  # an unknown top-level key: tolerated
        ev["Extra"] = "kept"
    return ev, Mutation(path, label)


_REMOVE = object()


@dataclass
class FuzzFile:
    """One drawn file: its events (valid and mutated) and the bytes as uploaded."""

    node_type: str
    region: str
    events: list[Any]
    mutated: dict[int, Mutation]  # array index -> what was done to that element
    body: bytes


@st.composite
def mutated_file(
    draw: st.DrawFn, node_type: str | None = None, region: str | None = None
) -> FuzzFile:
    """A pretty-printed JSON array (as Go writes it) of valid events, one or two of them
    with a field mutated; now and then an element that is not an event at all."""
    if node_type is None or region is None:
        node_type, region = draw(st.sampled_from(PARTITIONS))
    events: list[Any] = draw(st.lists(valid_event(node_type, region), min_size=0, max_size=5))
    mutated: dict[int, Mutation] = {}
    for _ in range(draw(st.integers(1, 2))):
        at = draw(st.integers(0, len(events)))
        if draw(st.integers(0, 19)) == 0:
            element: Any = draw(st.sampled_from([None, 7, "event", [1, 2], {}]))
            mutation = Mutation((), "not an event")
        else:
            element, mutation = draw(mutated_event(node_type, region))
        events.insert(at, element)
        mutated = {i + (i >= at): m for i, m in mutated.items()}
        mutated[at] = mutation
    body = json.dumps(events, indent=2).encode()
    if draw(st.integers(0, 19)) == 0:
        body = b"\xef\xbb\xbf" + body
    return FuzzFile(node_type, region, events, mutated, body)
