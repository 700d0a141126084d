"""The reader's two paths give the same verdicts: on every file the fast path reads, forcing
the slow one gives an equal FileResult (same events table, digests and payload_json
included, same rejected rows, same quarantine), and the automatic choice equals both.

Inputs: the chaos fuzzer's generators (tests/chaos/fuzz.py, a bounded number of them), the
reader fixtures, generated traffic with every kind of mess, and a few hand-made edges.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openpool.errors import FastPathUnavailable
from openpool.ingest.reader import FileResult, read_file, verdicts
from openpool.partitions import Partition
from openpool.traffic import Mess, generate
from tests.chaos import fuzz

FIXTURES = Path(__file__).parent / "fixtures" / "events"
FUZZ_INPUTS = 3000  # a few seconds; the chaos campaign runs 100,000 with the reader's checks


def assert_same(got: FileResult, want: FileResult, data: bytes) -> None:
    shown = data[:200]
    assert got.quarantine_reason == want.quarantine_reason, shown
    assert got.events.equals(want.events), shown
    assert got.rejected.equals(want.rejected), shown
    assert got.element_count == want.element_count, shown
    # The decoder's count: every element it read lands in exactly one of the two tables.
    assert got.element_count == got.events.num_rows + got.rejected.num_rows, shown


@dataclass
class Tally:
    inputs: int = 0
    fast: int = 0  # the fast path read the file (so the slow one was compared with it)
    fast_rejections: int = 0  # ... and rejected some of its elements
    fast_accepted: int = 0  # ... and accepted some


def compare(data: bytes, node_type: str, region: str, tally: Tally) -> None:
    """Every path on ``data``; the fast one only counts where it could read the file."""
    key = f"{region}/{node_type}/paths.json"
    slow = verdicts(data, key, node_type, region, path="slow")
    auto = verdicts(data, key, node_type, region)
    tally.inputs += 1
    try:
        fast = verdicts(data, key, node_type, region, path="fast")
    except FastPathUnavailable:
        assert_same(auto, slow, data)  # read_file fell back to the slow path
        return
    assert_same(slow, fast, data)
    assert_same(auto, fast, data)
    tally.fast += 1
    tally.fast_rejections += fast.rejected.num_rows > 0
    tally.fast_accepted += fast.events.num_rows > 0


@pytest.mark.slow
def test_both_paths_agree_on_every_fuzz_input() -> None:
    tally = Tally()
    fuzz.run_generators(
        FUZZ_INPUTS,
        lambda data: compare(data, "transcode", "eu-central", tally),
        lambda f: compare(f.body, f.node_type, f.region, tally),
    )
    assert tally.inputs >= FUZZ_INPUTS
    # Not vacuous: many inputs really went through both paths, with both verdicts.
    assert tally.fast >= FUZZ_INPUTS // 20, tally
    assert tally.fast_rejections >= 5 and tally.fast_accepted >= 20, tally


def generated() -> list[tuple[str, str, bytes]]:
    """Files as orchestrators write them, clean and with every kind of mess; small files
    (a 10 s flush), so that many hold one bad event or none and the fast path reads them."""
    mess = Mess(
        duplicate_events=0.05,
        truncated_files=1,
        invalid_events=0.03,
        split_ai_jobs=0.2,
        resets=3,
        orphan_ai_jobs=0.1,
    )
    out = []
    for node_type in ("transcode", "ai"):
        for m in (Mess(), mess):
            files = generate(
                Partition(node_type, "us-west"),
                datetime(2026, 10, 1, tzinfo=UTC),
                timedelta(minutes=5),
                workers=5,
                events_per_second=4.0,
                flush_seconds=10,
                seed=7,
                mess=m,
            )
            out += [(node_type, "us-west", f.body) for f in files]
    return out


def test_both_paths_agree_on_the_fixtures_and_generated_traffic() -> None:
    fixtures = sorted(FIXTURES.rglob("*.json"))
    assert len(fixtures) == 2
    inputs = [(p.parent.name, p.parent.parent.name, p.read_bytes()) for p in fixtures]
    tally = Tally()
    for node_type, region, data in inputs:
        compare(data, node_type, region, tally)
    assert tally.fast == len(fixtures)  # clean files: the fast path read them
    for node_type, region, data in generated():
        compare(data, node_type, region, tally)
    assert tally.fast_rejections >= 5 and tally.inputs - tally.fast >= 5, tally


# Events that keep every field's JSON type (so the typed decode, hence the fast path, reads
# them) but may break its meaning: the column checks then reject them on either path.
NEAR_MISSES = {
    "DT": ["2026-02-30T08:00:00Z", "2026-10-03T08:00:00", "2026-10-03 08:00:00Z", ""],
    "ID": ["00000000-0000-4000-8000-00000000000G", "0" * 36, "", "00000000-0000-4000-8000-0"],
    "EventType": ["", "job-received", "worker-connected", "ticket-redeemed", "new-thing"],
    "ethAddress": [fuzz.ADDR.lower(), fuzz.ADDR.upper().replace("0X", "0x"), "0x12", ""],
}
STRINGS = {"DT", "ID", "EventType", "ethAddress", "connection", "requestID"}
INTS = ["Version", "computeUnits", "duration", "fees", "responseTime", "realTimeRatio"]


@st.composite
def typed_event(draw: st.DrawFn) -> dict[str, Any]:
    ev = fuzz.good_event(draw(st.integers(0, 10**6)))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*STRINGS, *INTS, "drop"]))
        target = ev if key in ("DT", "ID", "EventType", "Version") else ev["Payload"]
        if key == "drop":
            ev["Payload"].pop(draw(st.sampled_from(sorted(ev["Payload"]))), None)
        elif key in STRINGS:
            target[key] = draw(st.sampled_from(NEAR_MISSES.get(key, [""])) | st.text(max_size=40))
        else:
            low = -(2**63) if key == "Version" else 0
            target[key] = draw(st.integers(low, 2**63 - 1))
    return ev


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(typed_event(), max_size=6))
def test_both_paths_agree_on_typed_but_invalid_events(events: list[dict[str, Any]]) -> None:
    data = json.dumps(events, indent=2).encode()
    tally = Tally()
    compare(data, "transcode", "eu-central", tally)
    assert tally.fast == 1  # the typed decode read it: both paths really ran


def edge_bodies() -> list[bytes]:
    ev = fuzz.good_event
    non_ascii = ev(1) | {"EventType": "job-\u00e9t\u00e9"}
    delete = ev(2) | {"EventType": "job\x7f"}
    odd_payload = ev(3)
    odd_payload["Payload"] = odd_payload["Payload"] | {"ethAddress": "0xnot-an-address"}
    unknown = ev(4) | {"EventType": "node-reset", "Payload": {"deep": [[{"x": 1.5}]]}}
    return [
        json.dumps([non_ascii, delete, odd_payload]).encode(),
        b"\xef\xbb\xbf" + json.dumps([ev(5), odd_payload]).encode(),
        json.dumps([ev(6) | {"Extra": 1}]).encode(),  # unknown top-level key: slow path
        json.dumps([ev(7), unknown, ev(8) | {"Region": "us-west"}]).encode(),
        b"[]",
        b"  [ ]  ",
    ]


def test_both_paths_agree_on_hand_made_edges() -> None:
    tally = Tally()
    for data in edge_bodies():
        compare(data, "transcode", "eu-central", tally)
    assert tally.fast >= 4, tally


def test_forcing_the_fast_path_on_a_file_it_cannot_read_raises() -> None:
    data = json.dumps([fuzz.good_event(1), "not an event"]).encode()
    with pytest.raises(FastPathUnavailable, match=r"^k\.json: the reader's fast path cannot"):
        verdicts(data, "k.json", "transcode", "eu-central", path="fast")
    slow = verdicts(data, "k.json", "transcode", "eu-central", path="slow")
    assert slow.events.num_rows == 1 and slow.rejected.num_rows == 1
    assert_same(read_file(data, "k.json", "transcode", "eu-central"), slow, data)
    with pytest.raises(FastPathUnavailable):
        verdicts(b"", "k.json", "transcode", "eu-central", path="fast")


def test_an_unknown_path_is_refused() -> None:
    with pytest.raises(ValueError, match="path must be one of auto, fast, slow"):
        verdicts(b"[]", "k", "transcode", "eu-central", path="quick")  # type: ignore[arg-type]
