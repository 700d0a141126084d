"""Part 4a: a corpus of malformed files and events, ingested by the real ``openpool ingest``.

Every kind is one object in the partition's events location, next to clean files. Kinds
of a whole file end in ``quarantined_files``; kinds of one event sit between two good
events and end in ``rejected_events``, while their neighbours are accepted and counted.
Each outcome is checked against the specific reason the kind must produce. One very
large file (hundreds of thousands of events) carries a bad event in its middle.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from tests.chaos.common import OPENPOOL, Campaign, Result

PART = Partition("transcode", "us-west")
ADDR = "0xA4c123B1612dd272d1371C17149d439536b3216F"  # EIP-55 checksummed
FEES = 36_899_363_381


@dataclass
class Kind:
    name: str
    body: bytes
    outcome: str  # quarantine | reject | accept | duplicate
    reason: str = ""  # regular expression the recorded reason must match (search)
    good: int = 0  # events of this file that must be accepted
    bad: int = 0  # events of this file that must be rejected


_n = [0]


def _uid() -> str:
    _n[0] += 1
    return str(uuid.UUID(int=_n[0], version=4))


def job(**over: Any) -> dict[str, Any]:
    """A valid transcode job-processed event of the partition; keys overridable."""
    payload = {
        "computeUnits": 4623401,
        "duration": 2000,
        "ethAddress": ADDR,
        "fees": FEES,
        "pricePerComputeUnit": 7981,
        "realTimeRatio": 0,
        "responseTime": 2440,
    }
    payload.update(over.pop("Payload", {}))
    ev = {
        "DT": "2026-10-03T09:00:00Z",
        "EventType": "job-processed",
        "ID": _uid(),
        "NodeType": "transcode",
        "Payload": payload,
        "Region": "us-west",
        "Version": 1,
    }
    ev.update(over)
    return ev


def dumps(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def sandwich(bad: Any) -> bytes:
    return dumps([job(), bad, job()])


def raw_sandwich(bad_text: str) -> bytes:
    """A bad element given as raw JSON text (for what json.dumps cannot write)."""
    a, b = dumps(job()).decode(), dumps(job()).decode()
    return f"[{a},\n{bad_text},\n{b}]".encode()


def drop(key: str, **over: Any) -> dict[str, Any]:
    ev = job(**over)
    ev.pop(key)
    return ev


def no_payload_key(key: str) -> dict[str, Any]:
    ev = job()
    ev["Payload"].pop(key)
    return ev


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"x": value}
    return value


def corpus(large_events: int) -> list[Kind]:
    good = dumps([job(), job()])
    kinds = [
        # -- whole files: quarantined
        Kind("truncated JSON", good[: len(good) // 2], "quarantine", r"input ends early"),
        Kind("0-byte object", b"", "quarantine", r"^empty file \(0 bytes\)$"),
        Kind("whitespace only", b" \n\t ", "quarantine", r"^empty file \(only whitespace\)$"),
        Kind("BOM only", b"\xef\xbb\xbf", "quarantine", r"only a byte-order mark"),
        Kind("UTF-16 file", "[]".encode("utf-16"), "quarantine", r"UTF-16/UTF-32 byte-order"),
        Kind(
            "not UTF-8",
            good.replace(b'"job-processed"', b'"job-proc\xe9ssed"', 1),
            "quarantine",
            r"^not valid UTF-8: invalid continuation byte at byte \d+$",
        ),
        Kind("object, not array", dumps(job()), "quarantine", r"is an object, expected an array"),
        Kind("string, not array", b'"events"', "quarantine", r"is a string, expected an array"),
        Kind("number, not array", b"42", "quarantine", r"is a number, expected an array"),
        Kind("null, not array", b"null", "quarantine", r"is null, expected an array"),
        Kind("trailing garbage", good + b"\n]", "quarantine", r"trailing characters at byte"),
        Kind("trailing comma", good[:-1] + b",]", "quarantine", r"trailing comma"),
        Kind(
            "NaN literal",
            good.replace(str(FEES).encode(), b"NaN", 1),
            "quarantine",
            r"invalid character at byte",
        ),
        Kind(
            "unpaired surrogate",
            good.replace(b'"job-processed"', b'"job-\\udc00processed"', 1),
            "quarantine",
            r"surrogate",
        ),
        Kind(
            "nesting deeper than the parser allows",
            good[:-2] + b",\n" + b"[" * 5000 + b"]" * 5000 + b"\n]",
            "quarantine",
            r"^JSON nested too deeply to parse$",
        ),
        Kind(
            "nesting 60,000 deep (crashed the CLI with SIGSEGV before the reader's fix)",
            good[:-2] + b",\n" + b"[" * 60_000 + b"]" * 60_000 + b"\n]",
            "quarantine",
            r"^JSON nested too deeply to parse$",
        ),
        # -- one bad event between two good ones: rejected, neighbours accepted
        Kind(
            "number beyond double range",
            raw_sandwich(dumps(job()).decode().replace(str(FEES), "1e400")),
            "reject",
            r"cannot be represented exactly",
        ),
        Kind(
            "integer of 5000 digits",
            raw_sandwich(dumps(job()).decode().replace(str(FEES), "9" * 5000)),
            "reject",
            r"cannot be represented exactly",
        ),
        Kind(
            "float where an integer belongs",
            sandwich(job(Payload={"fees": 1.5})),
            "reject",
            r"field 'fees' is a float \(1\.5\)",
        ),
        Kind(
            "exponent literal for an integer",
            raw_sandwich(dumps(job()).decode().replace(str(FEES), "1e3")),
            "reject",
            r"field 'fees' is a float \(1000\.0\)",
        ),
        Kind(
            "negative fees",
            sandwich(job(Payload={"fees": -5})),
            "reject",
            r"'fees' must be a non-negative integer, got -5",
        ),
        Kind(
            "fees as a string",
            sandwich(job(Payload={"fees": "123"})),
            "reject",
            r"'fees' must be a non-negative integer, got string",
        ),
        Kind(
            "fees beyond int64 (one event's fees fit in int64)",
            sandwich(job(Payload={"fees": 2**63})),
            "reject",
            r"'fees' = \d+ is too large for one event's fees \(int64\)",
        ),
        Kind(
            "ticket without its recipient",
            sandwich(
                job(EventType="ticket-redeemed")
                | {
                    "Payload": {
                        "creationRound": 1,
                        "faceValue": 1,
                        "pricePerPixel": "1/1",
                        "sender": "0x" + "1" * 40,
                        "txHash": "0x" + "0" * 64,
                        "winProb": 1,
                    }
                }
            ),
            "reject",
            r"^transcode ticket-redeemed missing recipient$",
        ),
        Kind(
            "connection without a port",
            sandwich(
                job(EventType="worker-connected")
                | {"Payload": {"connection": "203.0.113.7", "ethAddress": ADDR}}
            ),
            "reject",
            r"'connection' '203\.0\.113\.7' is not host:port",
        ),
        Kind(
            "computeUnits beyond int64",
            sandwich(job(Payload={"computeUnits": 2**63})),
            "reject",
            r"'computeUnits' = \d+ is too large for its column \(int64\)",
        ),
        Kind(
            "responseTime beyond int64 nanoseconds",
            sandwich(job(Payload={"responseTime": 2**62})),
            "reject",
            r"ms is too large for its column \(int64 nanoseconds\)",
        ),
        Kind("missing ID", sandwich(drop("ID")), "reject", r"^missing field 'ID'$"),
        Kind("missing Payload", sandwich(drop("Payload")), "reject", r"missing field 'Payload'"),
        Kind(
            "missing ethAddress",
            sandwich(no_payload_key("ethAddress")),
            "reject",
            r"^transcode job-processed missing ethAddress$",
        ),
        Kind(
            "missing fees",
            sandwich(no_payload_key("fees")),
            "reject",
            r"^transcode job-processed missing fees$",
        ),
        Kind(
            "EventType of wrong type",
            sandwich(job(EventType=7)),
            "reject",
            r"'EventType' must be a string, got integer 7",
        ),
        Kind(
            "Version as a string",
            sandwich(job(Version="1")),
            "reject",
            r"'Version' must be an integer, got string",
        ),
        Kind(
            "address too short",
            sandwich(job(Payload={"ethAddress": "0x1234"})),
            "reject",
            r"is not a valid address",
        ),
        Kind(
            "address with a bad checksum",
            sandwich(job(Payload={"ethAddress": "0x" + ADDR[2:].swapcase()})),
            "reject",
            r"invalid EIP-55 checksum",
        ),
        Kind(
            "timestamp not RFC 3339",
            sandwich(job(DT="2026-10-03 09:00:00")),
            "reject",
            r"is not RFC 3339 UTC with second precision",
        ),
        Kind(
            "impossible date (Feb 30)",
            sandwich(job(DT="2026-02-30T09:00:00Z")),
            "reject",
            r"'2026-02-30T09:00:00Z' is not RFC 3339",
        ),
        Kind(
            "timestamp with a zone offset",
            sandwich(job(DT="2026-10-03T09:00:00+02:00")),
            "reject",
            r"is not RFC 3339 UTC",
        ),
        Kind(
            "event dated outside its file's key window",
            sandwich(job(DT="2026-10-02T09:00:00Z")),
            "reject",
            r"^DT 2026-10-02T09:00:00Z is outside its file's key window \[",
        ),
        Kind(
            "event of another region",
            sandwich(job(Region="eu-central")),
            "reject",
            r"^Region 'eu-central' does not match partition 'us-west'$",
        ),
        Kind(
            "event of another node type",
            sandwich(job(NodeType="ai")),
            "reject",
            r"^NodeType 'ai' does not match partition 'transcode'$",
        ),
        Kind("ID not a UUID", sandwich(job(ID="42")), "reject", r"^ID '42' is not a UUID$"),
        Kind(
            "element not an object",
            sandwich(42),
            "reject",
            r"^element is not an object, got integer 42$",
        ),
        Kind("null element", sandwich(None), "reject", r"not an object, got null"),
        Kind(
            "Payload not an object",
            sandwich(job() | {"Payload": [1, 2]}),
            "reject",
            r"'Payload' must be an object, got an array",
        ),
        Kind("empty EventType", sandwich(job(EventType="")), "reject", r"'EventType' is empty"),
        Kind(
            "deeply nested payload value",
            sandwich(job(Payload={"fees": nested(200)})),
            "reject",
            r"'fees' must be a non-negative integer, got an object",
        ),
    ]
    for k in kinds:
        if k.outcome == "reject":
            k.good, k.bad = 2, 1
    # A whole file of another partition's events, stored under this partition.
    foreign = [job(Region="oceania"), job(Region="oceania")]
    kinds.append(
        Kind("file of another partition", dumps(foreign), "reject", r"does not match", 0, 2)
    )
    kinds.append(
        Kind(
            "UTF-8 byte-order mark before a good file",
            b"\xef\xbb\xbf" + dumps([job(), job()]),
            "accept",
            good=2,
        )
    )
    # The same ID again, later: with other content a conflict, with the same a duplicate.
    first = job()
    kinds.append(Kind("first sighting of an ID", dumps([first, job()]), "accept", good=2))
    changed = dict(first, Payload=dict(first["Payload"], fees=FEES + 1))
    kinds.append(
        Kind(
            "duplicate ID with different content",
            dumps([changed, job()]),
            "reject",
            r"^conflict: event ID already ingested with different content$",
            good=1,
            bad=1,
        )
    )
    kinds.append(Kind("exact duplicate of an event", dumps([first, job()]), "duplicate", good=1))
    big = [job() for _ in range(large_events)]
    big.insert(large_events // 2, job(Payload={"fees": -1}))
    kinds.append(
        Kind(
            f"very large file ({large_events:,} events)",
            json.dumps(big).encode(),
            "reject",
            r"'fees' must be a non-negative integer, got -1",
            large_events,
            1,
        )
    )
    return kinds


def _matcher(pattern: str) -> Callable[[str], bool]:
    return lambda reason: re.search(pattern, reason) is not None


def _key(i: int) -> str:
    """Every file's events are dated 09:00:00, its first event; keys differ by their end."""
    stamp = f"20261003T{9 + i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}Z"
    return f"{PART.path}/{PART.region}-{PART.node_type}-20261003T090000Z_{stamp}.json"


def run(c: Campaign) -> list[Result]:
    res = Result("bad input corpus")
    started = time.monotonic()
    kinds = corpus(c.sizes.large_file_events)
    root = c.path("badinput")
    events, state = LocalStore(root / "events"), LocalStore(root / "state")
    keys = {}
    for i, k in enumerate(kinds):
        keys[k.name] = _key(i * 60)  # one minute apart: files are read in this order
        events.put(keys[k.name], k.body)
    env = c.env({"OPENPOOL_EVENTS_URI": events.uri, "OPENPOOL_STATE_URI": state.uri})
    # One batch per file, so the duplicate and the conflict meet an ID already committed.
    argv = [OPENPOOL, "-v", "ingest", "--node-type", PART.node_type, "--region", PART.region,
            "--max-files", "1"]  # fmt: skip
    child = c.run(argv, env, label="badinput")
    if not child.ok:
        res.violate(f"ingest of the corpus failed rc={child.returncode}: {child.stderr[-500:]}")
        return [res]
    snap = SnapshotStore(state, PART).latest()
    assert snap is not None
    quarantined = {r["source_key"]: r["reason"] for r in snap.read("quarantined_files").to_pylist()}
    rejected: dict[str, list[str]] = {}
    for r in snap.read("rejected_events", columns=["source_key", "reason"]).to_pylist():
        rejected.setdefault(r["source_key"], []).append(r["reason"])
    accepted: dict[str, int] = {}
    for key in snap.read("events", columns=["source_key"]).column("source_key").to_pylist():
        accepted[key] = accepted.get(key, 0) + 1
    examples: dict[str, str] = {}
    for k in kinds:
        key = keys[k.name]
        check = _matcher(k.reason)
        got_q, got_r, got_a = quarantined.get(key), rejected.get(key, []), accepted.get(key, 0)
        ok = True
        if k.outcome == "quarantine":
            ok = got_q is not None and check(got_q) and not got_r and got_a == 0
            examples[k.name] = got_q or "-"
        elif k.outcome == "reject":
            ok = got_q is None and len(got_r) == k.bad and all(map(check, got_r))
            ok = ok and got_a == k.good
            examples[k.name] = got_r[0] if got_r else "-"
        else:  # accept / duplicate
            ok = got_q is None and not got_r and got_a == k.good
            examples[k.name] = f"{got_a} accepted" + (
                " (its twin counted a duplicate)" if k.outcome == "duplicate" else ""
            )
        res.add(trials=1, faults=k.bad or int(k.outcome == "quarantine"))
        if not ok:
            res.violate(f"{k.name}: quarantined={got_q!r} rejected={got_r[:2]!r} accepted={got_a}")
    props = snap.manifest.properties
    good_expected = sum(k.good for k in kinds)
    if int(props["events_accepted"]) != good_expected:
        res.violate(f"accepted {props['events_accepted']} events, expected {good_expected}")
        res.add(data_lost=max(0, good_expected - int(props["events_accepted"])))
    read = int(props["events_read"])
    if read != int(props["events_accepted"]) + int(props["events_duplicate"]) + int(
        props["events_rejected"]
    ):
        res.violate("counts do not reconcile: read != accepted + duplicate + rejected")
    if int(props["events_duplicate"]) != 1:
        res.violate(f"expected exactly 1 duplicate, counted {props['events_duplicate']}")
        res.add(duplicates=abs(int(props["events_duplicate"]) - 1))
    res.notes["kinds"] = len(kinds)
    res.notes["bad-input kinds (quarantined or rejected)"] = sum(
        1 for k in kinds if k.outcome in ("quarantine", "reject")
    )
    res.notes["good events accepted beside them"] = int(props["events_accepted"])
    res.notes["reasons"] = examples
    res.seconds = time.monotonic() - started
    return [res]
