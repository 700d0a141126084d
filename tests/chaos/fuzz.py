"""Part 4b: fuzzing the reader with hypothesis, at least 100,000 inputs in the full campaign.

Most of the budget goes to files that parse as JSON, so that the inputs reach event
validation: valid events of every type with one field mutated (tests/chaos/mutations.py,
70%) and near-valid events (fields removed or replaced by arbitrary JSON values, 10%). A
minority is byte-level: arbitrary bytes, a real file with bytes overwritten, truncations,
arbitrary JSON arrays. Properties, for every input: ``read_file`` never raises; a file is
either quarantined with a non-empty reason (and nothing else) or every array element is
accounted for exactly once, accepted or rejected with a non-empty reason; every accepted
element obeys the spec (tests/helpers/spec_rules.py, independent of the reader) and
every rejected one breaks a rule; accepted fees are exact integers equal to the input's;
the canonical payload is the input's. The report says how many inputs were quarantined
at the JSON parse and how many reached event validation. Runs in a child process with
the interpreter's default recursion limit (where a library raised it, the reader bounds
nesting itself: ``openpool.ingest.reader.depth``).
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
from tests.chaos.mutations import FuzzFile, mutated_file
from tests.helpers.spec_rules import event_problems

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

    @classmethod
    def summary(cls) -> dict[str, Any]:
        reached = cls.inputs - cls.quarantined
        return {
            "inputs": cls.inputs,
            "quarantined": cls.quarantined,
            "quarantined_share": round(cls.quarantined / max(cls.inputs, 1), 4),
            "reached_event_validation": reached,
            "reached_share": round(reached / max(cls.inputs, 1), 4),
            "elements_accepted": cls.accepted,
            "elements_rejected": cls.rejected,
        }


def check(data: bytes, node_type: str = "transcode", region: str = "eu-central") -> None:
    Stats.inputs += 1
    try:
        r = read_file(data, f"{region}/{node_type}/fuzz.json", node_type, region)
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
    for i in r.events.column("source_index").to_pylist():
        if problems := event_problems(expected[i], node_type, region):
            Stats.failures.append(f"accepted an invalid event {problems}: {expected[i]!r:.300}")
    for i in r.rejected.column("source_index").to_pylist():
        if not event_problems(expected[i], node_type, region):
            Stats.failures.append(f"rejected a valid event: {expected[i]!r:.300}")
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


def run_generators(
    total: int,
    per_input: Callable[[bytes], None] = check,
    per_file: Callable[[FuzzFile], None] | None = None,
) -> None:
    """At least ``total`` inputs over six generators, each handed to ``per_input`` (the
    campaign's :func:`check`; tests pass their own), or, for the mutated files (of either
    partition), to ``per_file`` when given: a caller that takes only transcode
    (eu-central) bytes gets the transcode ones."""
    base = FIXTURE.read_bytes()
    # arbitrary bytes, damaged file, JSON arrays, near-valid, truncated, mutated files
    weights = (0.05, 0.07, 0.05, 0.10, 0.03, 0.70)
    examples = [max(1, -(-int(total * w) // BATCH)) for w in weights]
    examples[5] = max(1, int(total * weights[5]))  # one file a draw
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

    def hand_over(f: FuzzFile) -> None:
        if per_file is not None:
            per_file(f)
        elif per_input is check:
            check(f.body, f.node_type, f.region)
        elif (f.node_type, f.region) == ("transcode", "eu-central"):
            per_input(f.body)

    @settings(max_examples=examples[5], **common)
    @given(st.one_of(mutated_file("transcode", "eu-central"), mutated_file("ai", "us-central")))
    def mutated_files(f: FuzzFile) -> None:  # one a draw: each file is several events
        hand_over(f)

    for gen in (
        arbitrary_bytes,
        damaged_file,
        json_arrays,
        near_valid_events,
        truncated,
        mutated_files,
    ):
        gen()


def main() -> None:
    total = int(sys.argv[1])
    started = time.monotonic()
    run_generators(total)
    print(
        json.dumps(
            {
                **Stats.summary(),
                "failures": Stats.failures[:20],
                "failure_count": len(Stats.failures),
                "seconds": time.monotonic() - started,
            }
        )
    )


if __name__ == "__main__":
    main()
