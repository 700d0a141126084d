"""Part 4b: fuzzing the reader with hypothesis, at least 100,000 inputs in the full campaign.

Five generators share the budget (each hypothesis example draws four inputs):
arbitrary bytes; a real wire-format file with bytes
overwritten at random places; arbitrary JSON arrays; near-valid events (a valid event
with fields removed or replaced by arbitrary JSON values); and truncations of valid
files. Properties, for every input: ``read_file`` never raises; a file is either
quarantined with a non-empty reason (and nothing else) or every array element is
accounted for exactly once, accepted or rejected with a non-empty reason; accepted fees
are exact non-negative integers equal to the input's; the canonical payload is the
input's. Runs in a child process with the interpreter's default recursion limit (where a
library raised it, the reader bounds nesting itself: ``openpool.ingest.reader.depth``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openpool.ingest.reader import read_file

FIXTURE = (
    Path(__file__).resolve().parents[1]
    / "fixtures/events/eu-central/transcode"
    / "eu-central-transcode-20261003T080000Z_20261003T080006Z.json"
)
ADDR = "0xA4c123B1612dd272d1371C17149d439536b3216F"


class Stats:
    inputs = 0
    quarantined = 0
    accepted = 0
    rejected = 0
    failures: ClassVar[list[str]] = []


def read(data: bytes) -> Any:
    return read_file(data, "eu-central/transcode/fuzz.json", "transcode", "eu-central")


def check(data: bytes) -> None:
    Stats.inputs += 1
    try:
        r = read(data)
    except Exception as exc:  # the property: never raises
        Stats.failures.append(f"raised {type(exc).__name__}: {exc} on {data[:120]!r}")
        return
    if r.quarantine_reason is not None:
        Stats.quarantined += 1
        if not r.quarantine_reason or r.events.num_rows or r.rejected.num_rows:
            Stats.failures.append(f"bad quarantine on {data[:120]!r}")
        return
    try:
        expected = json.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except (ValueError, RecursionError):
        Stats.failures.append(f"accepted a file json rejects: {data[:120]!r}")
        return
    if not isinstance(expected, list):
        Stats.failures.append(f"accepted a non-array: {data[:120]!r}")
        return
    indices = sorted(
        r.events.column("source_index").to_pylist() + r.rejected.column("source_index").to_pylist()
    )
    if indices != list(range(len(expected))):
        Stats.failures.append(f"elements not accounted once: {data[:120]!r}")
        return
    Stats.accepted += r.events.num_rows
    Stats.rejected += r.rejected.num_rows
    if any(not reason for reason in r.rejected.column("reason").to_pylist()):
        Stats.failures.append(f"empty rejection reason: {data[:120]!r}")
    cols = ["source_index", "fees_wei", "payload_json", "event_type"]
    for row in r.events.select(cols).to_pylist():
        element = expected[row["source_index"]]
        payload = element["Payload"]
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        if row["payload_json"] != canonical:
            Stats.failures.append(f"payload not kept exactly: {data[:120]!r}")
        if row["event_type"] == "job-processed" and row["fees_wei"] is not None:
            fees = payload.get("fees")
            if type(fees) is not int or fees < 0 or int(row["fees_wei"]) != fees:
                Stats.failures.append(f"fees not exact: {fees!r} -> {row['fees_wei']}")


def good_event(i: int = 0) -> dict[str, Any]:
    return {
        "DT": "2026-10-03T08:00:00Z",
        "EventType": "job-processed",
        "ID": f"00000000-0000-4000-8000-{i:012d}",
        "NodeType": "transcode",
        "Payload": {
            "computeUnits": 4623401,
            "duration": 2000,
            "ethAddress": ADDR,
            "fees": 36899363381,
            "pricePerComputeUnit": 7981,
            "realTimeRatio": 0,
            "responseTime": 2440,
        },
        "Region": "eu-central",
        "Version": 1,
    }


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = ["DT", "EventType", "ID", "NodeType", "Payload", "Region", "Version"]
PAYLOAD = ["computeUnits", "duration", "ethAddress", "fees", "responseTime", "pricePerComputeUnit"]


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    ev = good_event(draw(st.integers(0, 10**6)))
    for _ in range(draw(st.integers(0, 3))):
        target = (
            ev["Payload"] if draw(st.booleans()) and isinstance(ev.get("Payload"), dict) else ev
        )
        key = draw(st.sampled_from(PAYLOAD if target is not ev else FIELDS))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(JSON)
    return ev


BATCH = 4  # inputs drawn per hypothesis example: its per-example bookkeeping is amortised


def run_generators(total: int, per_input: Callable[[bytes], None] = check) -> None:
    """At least ``total`` inputs over five generators (shares by cost), each handed to
    ``per_input`` (the campaign's :func:`check`; tests pass their own)."""
    base = FIXTURE.read_bytes()
    weights = (0.35, 0.30, 0.10, 0.10, 0.15)
    examples = [max(1, -(-int(total * w) // BATCH)) for w in weights]
    common = {
        "deadline": None,
        "database": None,
        "suppress_health_check": list(HealthCheck),
    }

    def batch(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
        return st.lists(strategy, min_size=BATCH, max_size=BATCH)

    @settings(max_examples=examples[0], **common)
    @given(batch(st.binary(max_size=400)))
    def arbitrary_bytes(inputs: list[bytes]) -> None:
        for data in inputs:
            per_input(data)

    @settings(max_examples=examples[1], **common)
    @given(batch(st.tuples(st.binary(min_size=1, max_size=24), st.integers(0, len(base)))))
    def damaged_file(inputs: list[tuple[bytes, int]]) -> None:
        for patch, at in inputs:
            per_input(base[:at] + patch + base[at + len(patch) :])

    @settings(max_examples=examples[2], **common)
    @given(batch(st.lists(JSON, max_size=5)))
    def json_arrays(inputs: list[list[Any]]) -> None:
        for elements in inputs:
            per_input(json.dumps(elements).encode())

    @settings(max_examples=examples[3], **common)
    @given(batch(st.lists(near_valid(), max_size=5)))
    def near_valid_events(inputs: list[list[Any]]) -> None:
        for events in inputs:
            per_input(json.dumps(events, indent=2).encode())

    @settings(max_examples=examples[4], **common)
    @given(batch(st.tuples(st.integers(0, len(base)), st.booleans())))
    def truncated(inputs: list[tuple[int, bool]]) -> None:
        for at, bom in inputs:
            per_input((b"\xef\xbb\xbf" if bom else b"") + base[:at])

    for gen in (arbitrary_bytes, damaged_file, json_arrays, near_valid_events, truncated):
        gen()


def main() -> None:
    total = int(sys.argv[1])
    started = time.monotonic()
    run_generators(total)
    print(
        json.dumps(
            {
                "inputs": Stats.inputs,
                "quarantined": Stats.quarantined,
                "elements_accepted": Stats.accepted,
                "elements_rejected": Stats.rejected,
                "failures": Stats.failures[:20],
                "failure_count": len(Stats.failures),
                "seconds": time.monotonic() - started,
            }
        )
    )


if __name__ == "__main__":
    main()
