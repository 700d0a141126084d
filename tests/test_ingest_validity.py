"""What the ingest accepts is valid by the spec; what it rejects, it says why (issue 18).

Inputs are files of valid events with one field mutated (tests/chaos/mutations.py), so
they all reach event validation. Each element is judged by tests/helpers/spec_rules.py,
the spec's rules written out plainly and independently of the reader. Properties:

* every element the reader accepts (on either path) breaks no rule of the spec;
* every element it rejects does break one, and the reason names a field that is wrong;
* through a whole ingest, with re-sent and conflicting copies, the counts reconcile:
  read = accepted + duplicate + rejected, each side counted on its own (elements from
  the files' JSON, duplicates and conflicts from what the test re-sent, accepted and
  rejected from the snapshot's tables) and equal to the ingest's counters.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openpool.ingest.reader import FileResult, verdicts
from openpool.ingest.run import ingest
from openpool.ingest.service import status_row
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from openpool.tables import EVENTS, REJECTED, read_table
from tests.chaos.mutations import (
    PARTITIONS,
    WINDOW,
    WINDOW_START,
    FuzzFile,
    key_for,
    mutated_file,
)
from tests.helpers.spec_rules import Problem, event_problems

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}


def elements(f: FuzzFile) -> list[Any]:
    return json.loads(f.body.removeprefix(b"\xef\xbb\xbf"))


def shown(element: Any) -> str:
    return json.dumps(element, sort_keys=True)[:600]


def names_a_problem(reason: str, problems: list[Problem]) -> bool:
    """The reason is about what is really wrong: it names one of the broken fields (or,
    for an element that is not an object, says so)."""
    fields = [p.field for p in problems]
    if None in fields:
        return "not an object" in reason
    return any(name in reason for name in fields if name is not None)


def judge(result: FileResult, items: list[Any], node_type: str, region: str) -> list[str]:
    """Every way ``result`` disagrees with the spec about ``items``; empty when it agrees."""
    wrong: list[str] = []
    if result.quarantine_reason is not None:
        return [f"quarantined a JSON array: {result.quarantine_reason}"]
    accepted = result.events.column("source_index").to_pylist()
    rejected = result.rejected.select(["source_index", "reason"]).to_pylist()
    seen = sorted(accepted + [r["source_index"] for r in rejected])
    if seen != list(range(len(items))):
        wrong.append(f"elements not accounted for exactly once: {seen} of {len(items)}")
    for i in accepted:
        problems = event_problems(items[i], node_type, region)
        if problems:
            wrong.append(f"accepted an invalid event ({problems}): {shown(items[i])}")
    for row in rejected:
        problems = event_problems(items[row["source_index"]], node_type, region)
        reason = row["reason"] or ""
        if not problems:
            wrong.append(
                f"rejected a valid event ({reason!r}): {shown(items[row['source_index']])}"
            )
        elif not names_a_problem(reason, problems):
            wrong.append(f"reason {reason!r} names none of {problems}")
    return wrong


def test_the_reader_accepts_only_valid_events_and_names_what_is_wrong_in_the_rest() -> None:
    tally: Counter[str] = Counter()
    wrong: list[str] = []

    @settings(max_examples=600, **SETTINGS)
    @given(mutated_file())
    def one_file(f: FuzzFile) -> None:
        items = elements(f)
        for path in ("auto", "slow"):
            result = verdicts(f.body, key_for(f.node_type, f.region), f.node_type, f.region, path)
            wrong.extend(f"{path}: {w}" for w in judge(result, items, f.node_type, f.region))
            if path == "auto":
                tally["accepted"] += result.events.num_rows
                tally["rejected"] += result.rejected.num_rows
                for i, m in f.mutated.items():
                    if event_problems(items[i], f.node_type, f.region):
                        tally[f"broken {'.'.join(m.path) or 'element'}"] += 1

    one_file()
    distinct = list(dict.fromkeys(wrong))
    assert not wrong, f"{len(wrong)} disagreements with the spec, e.g.:\n" + "\n".join(
        distinct[:15]
    )
    # Not vacuous: both verdicts were given often, and the broken fields range widely.
    assert tally["accepted"] >= 500 and tally["rejected"] >= 300, tally
    broken = [k for k in tally if k.startswith("broken ")]
    assert len(broken) >= 20, sorted(broken)


def _window_of(n: int) -> tuple[str, str]:
    end = WINDOW_START + WINDOW + timedelta(seconds=n)
    return f"{WINDOW_START:%Y-%m-%dT%H:%M:%SZ}", f"{end:%Y-%m-%dT%H:%M:%SZ}"


@settings(max_examples=15, **SETTINGS)
@given(part=st.sampled_from(PARTITIONS), data=st.data())
def test_read_is_accepted_plus_duplicate_plus_rejected_counted_independently(
    part: tuple[str, str], data: st.DataObject
) -> None:
    node_type, region = part
    partition = Partition(node_type, region)
    files = data.draw(st.lists(mutated_file(node_type, region), min_size=1, max_size=3))
    bodies = [f.body for f in files]
    # One more file re-sends some earlier elements as they were, and some changed
    # (the same ID with other content: a conflict when the first copy was accepted).
    earlier = [e for f in files for e in elements(f)]
    resent = data.draw(st.lists(st.sampled_from(earlier), max_size=4), label="re-sent")
    changed = data.draw(st.lists(st.sampled_from(earlier), max_size=2), label="changed")
    changed = [
        {**e, "Payload": {**e["Payload"], "extra": 1}}
        for e in {id(e): e for e in changed}.values()  # each changed once
        if isinstance(e, dict) and isinstance(e.get("Payload"), dict)
    ]
    if resent or changed:
        bodies.append(json.dumps([*resent, *changed], indent=2).encode())

    # The expected counts, from the bytes and the spec alone.
    expect: Counter[str] = Counter()
    first: dict[str, str] = {}  # accepted ID -> its canonical content
    for n, body in enumerate(bodies):
        lo, hi = _window_of(n)
        for e in json.loads(body.removeprefix(b"\xef\xbb\xbf")):
            expect["read"] += 1
            if event_problems(e, node_type, region) or not lo <= e["DT"] <= hi:
                expect["rejected"] += 1
                continue
            content = json.dumps(e, sort_keys=True)
            if e["ID"] not in first:
                first[e["ID"]] = content
                expect["accepted"] += 1
            elif first[e["ID"]] == content:
                expect["duplicate"] += 1
            else:
                expect["rejected"] += 1  # a conflict: set aside, not counted

    with tempfile.TemporaryDirectory() as tmp:
        events, state = LocalStore(Path(tmp) / "e"), LocalStore(Path(tmp) / "s")
        for n, body in enumerate(bodies):  # one run per file: arrival order is the list's
            events.put(key_for(node_type, region, n), body)
            ingest(partition, events, state, Fraction(1, 4))
        snap = SnapshotStore(state, partition).latest()
        assert snap is not None
        stored = read_table(snap, "events", EVENTS)
        rejected = read_table(snap, "rejected_events", REJECTED)
        counters = status_row(snap)

    got = {
        "read": expect["read"],  # the elements of the files, which none quarantines:
        "accepted": stored.num_rows,
        "rejected": rejected.num_rows,
        "duplicate": expect["read"] - stored.num_rows - rejected.num_rows,
    }
    assert counters["files_quarantined"] == 0
    assert got == {k: expect[k] for k in got}, (got, dict(expect))
    assert {k: counters[f"events_{k}"] for k in got} == got
    assert all(rejected.column("reason").to_pylist())
    by_key = {
        key_for(node_type, region, n): json.loads(b.removeprefix(b"\xef\xbb\xbf"))
        for n, b in enumerate(bodies)
    }
    for row in stored.select(["source_key", "source_index"]).to_pylist():
        e = by_key[row["source_key"]][row["source_index"]]
        assert event_problems(e, node_type, region) == [], shown(e)
