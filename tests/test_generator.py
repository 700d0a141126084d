"""The synthetic event generator: wire format, determinism, each kind of mess, the oracle."""

from __future__ import annotations

import argparse
import functools
import json
import re
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_utils import is_checksum_address, to_checksum_address

from openpool.cli.traffic import register
from openpool.config import load_settings
from openpool.partitions import Partition
from openpool.storage import LocalStore
from openpool.traffic import (
    GeneratedFile,
    Mess,
    count_events,
    generate,
    marshal_indent,
    parse_key,
    worker_addresses,
    write,
)
from tests.helpers.oracle import UNATTRIBUTED, oracle_balances
from tests.services import REPO

FIXTURES = REPO / "tests" / "fixtures" / "events"
AI = Partition("ai", "us-central")
TC = Partition("transcode", "eu-central")
START = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
NO_MESS = Mess()
TOP_KEYS = ["DT", "EventType", "ID", "NodeType", "Payload", "Region", "Version"]


@functools.cache
def gen(part: Partition, seed: int = 1, mess: Mess = NO_MESS, **kw: Any) -> list[GeneratedFile]:
    """Small, cached traffic: one hour at 2 events/s, flushed every 5 minutes."""
    args: dict[str, Any] = {"workers": 5, "events_per_second": 2.0, "flush_seconds": 300}
    args.update(kw)
    return generate(part, START, HOUR, seed=seed, mess=mess, **args)


def parsed(files: list[GeneratedFile]) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(f.key, json.loads(f.body)) for f in files]


def all_events(files: list[GeneratedFile]) -> list[dict[str, Any]]:
    return [e for _, events in parsed(files) for e in events]


def fixture_files() -> list[Path]:
    paths = sorted(FIXTURES.rglob("*.json"))
    assert len(paths) == 2
    return paths


# ------------------------------------------------------------------------------ format


def test_the_formatter_reproduces_the_fixture_bytes_exactly() -> None:
    for path in fixture_files():
        raw = path.read_bytes()
        assert not raw.endswith(b"\n")  # Go's MarshalIndent writes no trailing newline
        assert marshal_indent(json.loads(raw)) == raw


def test_the_formatter_escapes_like_go_and_keeps_big_integers_exact() -> None:
    big = {"winProb": 2**256 - 1, "faceValue": 2**64 + 7, "neg": -(2**70)}
    assert json.loads(marshal_indent(big)) == big
    assert b"115792089237316195423570985008687907853269984665640564039457584007913129639935" in (
        marshal_indent(big)
    )
    text = marshal_indent({"s": 'a<b>&c\u2028é\n\t\x01"\\', "e": {}, "l": []}).decode()
    assert text == (
        '{\n  "e": {},\n  "l": [],\n'
        '  "s": "a\\u003cb\\u003e\\u0026c\\u2028é\\n\\t\\u0001\\"\\\\"\n}'
    )
    assert marshal_indent([1.5, 2.0, 3e16, 1e-7, True, None]) == (
        b"[\n  1.5,\n  2,\n  30000000000000000,\n  1e-7,\n  true,\n  null\n]"
    )


def _payload_keys_of_fixtures() -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for path in fixture_files():
        for e in json.loads(path.read_bytes()):
            out[(e["NodeType"], e["EventType"])] = list(e["Payload"])
    return out


@pytest.mark.parametrize("part", [AI, TC], ids=str)
def test_generated_files_are_laid_out_exactly_like_the_fixtures(part: Partition) -> None:
    files = gen(part)
    fixture_payloads = _payload_keys_of_fixtures()
    assert len(files) == 12  # one per 5-minute flush
    for f in files:
        assert marshal_indent(json.loads(f.body)) == f.body  # same formatter, same bytes
        assert f.body.startswith(b'[\n  {\n    "DT": ') and f.body.endswith(b"\n  }\n]")
        for line in f.body.decode().splitlines():
            indent = len(line) - len(line.lstrip(" "))
            assert indent in (0, 2, 4, 6) and "\t" not in line
        for e in json.loads(f.body):
            assert list(e) == TOP_KEYS
            assert list(e["Payload"]) == sorted(e["Payload"])
            assert DT_RE.match(e["DT"])
            assert uuid.UUID(e["ID"]).version == 4 and str(uuid.UUID(e["ID"])) == e["ID"]
            assert (e["NodeType"], e["Region"], e["Version"]) == (part.node_type, part.region, 1)
            expected_keys = fixture_payloads.get((e["NodeType"], e["EventType"]))
            if expected_keys is not None:  # the same payload keys as the orchestrators write
                assert list(e["Payload"]) == expected_keys, e
    # Every event type a partition of this kind emits shows up in an hour of traffic.
    types = Counter(e["EventType"] for e in all_events(files))
    assert types["job-processed"] > 3000
    assert types["worker-connected"] >= 5 and types["ticket-redeemed"] > 0
    if part.node_type == "ai":
        assert types["job-received"] > 3000


def test_transcode_payloads_are_realistic() -> None:
    events = all_events(gen(TC))
    jobs = [e["Payload"] for e in events if e["EventType"] == "job-processed"]
    workers = set(worker_addresses(1, 5))
    for p in jobs:
        assert all(type(v) is int for k, v in p.items() if k != "ethAddress")
        assert p["duration"] == 2000
        assert 300 <= p["responseTime"] <= 4000
        assert p["realTimeRatio"] == p["duration"] // p["responseTime"]
        assert 100 <= p["pricePerComputeUnit"] <= 10_000
        assert 1_000_000 <= p["computeUnits"] <= 20_000_000
        assert p["fees"] == p["pricePerComputeUnit"] * p["computeUnits"] < 2**63
        assert p["ethAddress"] in workers and is_checksum_address(p["ethAddress"])
    assert {p["realTimeRatio"] for p in jobs} >= {0, 1, 2}
    conns = [e["Payload"] for e in events if e["EventType"] == "worker-connected"]
    assert all(re.match(r"^\d+\.\d+\.\d+\.\d+:\d+$", c["connection"]) for c in conns)
    assert any(e["EventType"] == "worker-disconnected" for e in events)
    # Jobs go only to workers connected at the time (connect, disconnect, reset).
    assert events[0]["EventType"] == "worker-connected"
    online: set[str] = set()
    for e in events:
        if e["EventType"] == "worker-connected":
            online.add(e["Payload"]["ethAddress"])
        elif e["EventType"] == "worker-disconnected":
            online.remove(e["Payload"]["ethAddress"])
        elif e["EventType"] == "orchestrator-reset":
            online.clear()
        elif e["EventType"] == "job-processed":
            assert e["Payload"]["ethAddress"] in online


def test_ai_payloads_are_realistic() -> None:
    events = all_events(gen(AI))
    received = {e["Payload"]["requestID"]: e for e in events if e["EventType"] == "job-received"}
    processed = [e for e in events if e["EventType"] == "job-processed"]
    assert len(received) == len(processed)  # request IDs are unique
    for e in processed:
        p = e["Payload"]
        assert "ethAddress" not in p
        assert re.match(r"^[0-9a-f]{8}$", p["requestID"])
        assert 10**8 <= p["responseTime"] <= 5 * 10**9  # nanoseconds
        assert p["fees"] == p["pricePerComputeUnit"] * p["computeUnits"] < 2**63
        r = received[p["requestID"]]
        assert (r["Payload"]["pipeline"], r["Payload"]["modelID"]) == (p["pipeline"], p["modelID"])
        assert r["DT"] <= e["DT"]
        assert is_checksum_address(r["Payload"]["ethAddress"])
    assert {"text-to-image", "image-to-video", "llm"} <= {
        e["Payload"]["pipeline"] for e in processed
    }


def test_tickets_carry_integers_far_beyond_64_bits_exactly() -> None:
    files = gen(TC)
    tickets = [e for e in all_events(files) if e["EventType"] == "ticket-redeemed"]
    assert tickets
    body = b"".join(f.body for f in files)
    for t in tickets:
        p = t["Payload"]
        assert type(p["faceValue"]) is int and type(p["winProb"]) is int
        assert 0 < p["winProb"] < 2**256
        assert re.match(r"^\d+/1$", p["pricePerPixel"])
        assert p["sender"] == p["sender"].lower() and ADDRESS_RE.match(p["sender"])
        assert re.match(r"^0x[0-9a-f]{64}$", p["txHash"])
        assert f'"winProb": {p["winProb"]}'.encode() in body
    assert any(t["Payload"]["faceValue"] > 2**64 for t in tickets)
    assert any(t["Payload"]["winProb"] > 2**250 for t in tickets)


def test_unknown_event_types_appear_now_and_then() -> None:
    events = all_events(gen(TC))
    known = {"job-processed", "job-received", "worker-connected", "worker-disconnected",
             "orchestrator-reset", "ticket-redeemed"}  # fmt: skip
    unknown = [e for e in events if e["EventType"] not in known]
    assert 0 < len(unknown) < 0.01 * len(events)


# ------------------------------------------------------------------------ keys, flushes


@pytest.mark.parametrize("part", [AI, TC], ids=str)
def test_keys_name_the_partition_and_the_first_and_last_event(part: Partition) -> None:
    files = gen(part, mess=Mess(duplicate_events=0.05, split_ai_jobs=0.3))
    for key, events in parsed(files):
        got, first, last = parse_key(key)
        assert got == part
        assert key.startswith(f"{part.region}/{part.node_type}/{part.region}-{part.node_type}-")
        assert first.strftime("%Y-%m-%dT%H:%M:%SZ") == events[0]["DT"]
        assert last.strftime("%Y-%m-%dT%H:%M:%SZ") == events[-1]["DT"]
        assert [e["DT"] for e in events] == sorted(e["DT"] for e in events)  # array = true order
        assert all(START <= datetime.fromisoformat(e["DT"]) < START + HOUR for e in events)


def test_files_flush_on_the_ticker_without_mess() -> None:
    files = gen(TC)
    assert [f.key for f in files] == sorted(f.key for f in files)
    for i, (_, events) in enumerate(parsed(files)):
        lo, hi = START + i * timedelta(minutes=5), START + (i + 1) * timedelta(minutes=5)
        assert all(lo <= datetime.fromisoformat(e["DT"]) < hi for e in events)


def test_files_flush_at_events_per_file() -> None:
    files = generate(TC, START, timedelta(minutes=10), workers=3, events_per_second=20,
                     events_per_file=500, flush_seconds=3600, seed=2)  # fmt: skip
    sizes = [len(events) for _, events in parsed(files)]
    assert max(sizes) == 500 and sizes[:-1] == [500] * (len(sizes) - 1)
    assert sum(sizes) > 10_000
    assert len({f.key for f in files}) == len(files)


def test_generation_is_deterministic_for_a_seed() -> None:
    mess = Mess(duplicate_events=0.05, reupload_files=0.2, late_files=0.2, truncated_files=1,
                invalid_events=0.02, split_ai_jobs=0.2, resets=1, orphan_ai_jobs=0.05)  # fmt: skip
    a = generate(AI, START, HOUR, workers=3, events_per_second=1, flush_seconds=300, seed=9,
                 mess=mess)  # fmt: skip
    b = generate(AI, START, HOUR, workers=3, events_per_second=1, flush_seconds=300, seed=9,
                 mess=mess)  # fmt: skip
    c = generate(AI, START, HOUR, workers=3, events_per_second=1, flush_seconds=300, seed=10,
                 mess=mess)  # fmt: skip
    assert a == b
    assert [f.body for f in a] != [f.body for f in c]
    # Other partitions get other traffic from the same seed, but the same pool of workers.
    other = generate(Partition("transcode", "us-central"), START, HOUR, workers=3,
                     events_per_second=1, flush_seconds=300, seed=9)  # fmt: skip
    assert {f.body for f in other}.isdisjoint({f.body for f in a})
    assert set(oracle_balances(other, Fraction(1, 4))) == set(worker_addresses(9, 3))


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        generate(TC, datetime(2026, 10, 3), HOUR)
    with pytest.raises(ValueError):
        generate(TC, START, timedelta(0))
    with pytest.raises(ValueError):
        generate(TC, START, HOUR, workers=0)


# -------------------------------------------------------------------------------- mess


def test_duplicates_repeat_id_and_content_in_a_later_file() -> None:
    clean, messy = gen(TC), gen(TC, mess=Mess(duplicate_events=0.05))
    n = sum(len(e) for _, e in parsed(clean))
    where: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for key, events in parsed(messy):
        for e in events:
            where[e["ID"]].append((key, e))
    repeats = {i: occ for i, occ in where.items() if len(occ) > 1}
    # 5% of events are re-sent; those in the last flush have no later flush to ride along.
    assert 0.045 * n <= len(repeats) <= 0.05 * n + 1
    for occ in repeats.values():
        assert len(occ) == 2
        (k1, e1), (k2, e2) = occ
        assert e1 == e2 and k1 < k2
    assert oracle_balances(messy, Fraction(1, 4)) == oracle_balances(clean, Fraction(1, 4))


def test_reuploads_repeat_a_key_with_the_same_bytes_later() -> None:
    clean, messy = gen(TC), gen(TC, mess=Mess(reupload_files=0.25))
    keys = [f.key for f in messy]
    assert len(messy) == len(clean) + 3  # 25% of 12 files
    counts = Counter(keys)
    for key in (k for k, c in counts.items() if c > 1):
        bodies = {f.body for f in messy if f.key == key}
        assert len(bodies) == 1
    assert {f.key: f.body for f in messy} == {f.key: f.body for f in clean}


def test_late_files_sort_before_keys_already_written() -> None:
    clean, messy = gen(TC), gen(TC, mess=Mess(late_files=0.2))
    assert sorted(f.key for f in messy) == [f.key for f in clean]
    late = [i for i, f in enumerate(messy) if any(f.key < g.key for g in messy[:i])]
    assert len(late) == 2  # 20% of the 11 files that can be late
    assert late == list(range(len(messy) - 2, len(messy)))  # written last


def test_truncated_files_fail_to_parse_and_are_prefixes_of_the_real_file() -> None:
    clean = {f.key: f.body for f in gen(TC)}
    messy = gen(TC, mess=Mess(truncated_files=2))
    broken = []
    for f in messy:
        try:
            json.loads(f.body)
        except ValueError:
            broken.append(f)
    assert len(broken) == 2
    for f in broken:
        assert clean[f.key].startswith(f.body) and len(f.body) < len(clean[f.key])
        assert 0 < count_events(f.body) <= count_events(clean[f.key])


def test_invalid_events_are_broken_in_one_recognisable_way() -> None:
    clean = {e["ID"]: e for e in all_events(gen(TC))}
    messy = {e["ID"]: e for e in all_events(gen(TC, mess=Mess(invalid_events=0.02)))}
    assert clean.keys() == messy.keys()
    changed = [(clean[i], messy[i]) for i in clean if clean[i] != messy[i]]
    assert len(changed) == round(0.02 * len(clean))
    kinds = Counter()
    for before, after in changed:
        assert before["EventType"] == "job-processed"
        p = after["Payload"]
        if after["Region"] != before["Region"]:
            kinds["region"] += 1
        elif "fees" not in p:
            kinds["missing fees"] += 1
        elif type(p["fees"]) is not int:
            kinds["non-integer fees"] += 1
        elif p["fees"] < 0:
            kinds["negative fees"] += 1
        else:
            assert "ethAddress" not in p or not ADDRESS_RE.match(p["ethAddress"])
            kinds["address"] += 1
    assert len(kinds) >= 4
    oracle_clean = oracle_balances(gen(TC), Fraction(1, 4))
    oracle_messy = oracle_balances(gen(TC, mess=Mess(invalid_events=0.02)), Fraction(1, 4))
    assert sum(r["job_count"] for r in oracle_clean.values()) - sum(
        r["job_count"] for r in oracle_messy.values()
    ) == len(changed)


def _job_files(files: list[GeneratedFile]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for key, events in parsed(files):
        for e in events:
            if e["EventType"] in ("job-received", "job-processed"):
                out[e["Payload"]["requestID"]][e["EventType"]].append(key)
    return out


def test_split_ai_jobs_land_in_different_files() -> None:
    def split_count(mess: Mess) -> tuple[int, int]:
        jobs = _job_files(gen(AI, mess=mess))
        split = 0
        for j in jobs.values():
            (rk,), (pk,) = j["job-received"], j["job-processed"]
            assert rk <= pk  # received is flushed first
            split += rk != pk
        return split, len(jobs)

    natural, n = split_count(Mess())
    forced, n2 = split_count(Mess(split_ai_jobs=0.3))
    assert n == n2
    assert natural < 0.01 * n  # only jobs straddling a flush
    # 30% are chosen; those in the last flush have no next file to be split into.
    assert 0.3 * n * 11 / 12 * 0.95 <= forced <= 0.3 * n + natural
    same = oracle_balances(gen(AI), Fraction(1, 4))
    assert oracle_balances(gen(AI, mess=Mess(split_ai_jobs=0.3)), Fraction(1, 4)) == same


def test_orphan_ai_jobs_have_no_received_and_no_worker() -> None:
    clean, messy = gen(AI), gen(AI, mess=Mess(orphan_ai_jobs=0.1))
    jobs = _job_files(messy)
    orphans = [r for r, j in jobs.items() if not j["job-received"]]
    assert len(orphans) == round(0.1 * len(jobs))
    assert UNATTRIBUTED not in oracle_balances(clean, Fraction(1, 4))
    o = oracle_balances(messy, Fraction(1, 4))
    assert o[UNATTRIBUTED]["job_count"] == len(orphans)
    assert o[UNATTRIBUTED]["worker_earnings_wei"] == 0
    assert o[UNATTRIBUTED]["pool_commission_wei"] == o[UNATTRIBUTED]["total_fees_wei"]


def test_resets_drop_every_connection_and_workers_come_back() -> None:
    events = all_events(gen(TC, mess=Mess(resets=2)))
    resets = [i for i, e in enumerate(events) if e["EventType"] == "orchestrator-reset"]
    assert len(resets) == 2
    assert all(e["Payload"] == {} for e in (events[i] for i in resets))
    for i in resets:
        after = events[i + 1 : i + 200]
        back = {e["Payload"]["ethAddress"] for e in after if e["EventType"] == "worker-connected"}
        assert back == set(worker_addresses(1, 5))
    assert not any(e["EventType"] == "orchestrator-reset" for e in all_events(gen(TC)))


def test_all_the_mess_at_once_still_matches_its_own_format() -> None:
    mess = Mess(duplicate_events=0.05, reupload_files=0.1, late_files=0.1, truncated_files=1,
                invalid_events=0.02, split_ai_jobs=0.2, resets=2, orphan_ai_jobs=0.02)  # fmt: skip
    files = gen(AI, seed=7, mess=mess)
    broken = set()
    for f in files:
        try:
            events = json.loads(f.body)
        except ValueError:
            broken.add(f.key)
            continue
        assert marshal_indent(events) == f.body
        parse_key(f.key)
    assert len(broken) == 1  # the one truncated file (perhaps uploaded twice)
    assert set(oracle_balances(files, Fraction(1, 4))) - {UNATTRIBUTED} <= set(
        worker_addresses(7, 5)
    )


# ------------------------------------------------------------------------------ oracle

A = "0xA4c123B1612dd272d1371C17149d439536b3216F"
B = "0xdAeeb975729fAE923D5A4fd12aAbFe228F219e9C"
W = "0xb0EB53f16947CCF25eC84D8dbc74254770f58904"


def ev(eid: str, etype: str, payload: dict[str, Any], dt: str = "2026-10-03T08:00:01Z",
       node: str = "transcode", region: str = "us-west") -> dict[str, Any]:  # fmt: skip
    # A readable name in the test, a UUID on the wire (the spec's ID: the oracle checks it).
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, eid))
    return {"DT": dt, "EventType": etype, "ID": eid, "NodeType": node, "Payload": payload,
            "Region": region, "Version": 1}  # fmt: skip


def tjob(eid: str, who: Any, fees: Any, **kw: Any) -> dict[str, Any]:
    payload = {"computeUnits": 1, "duration": 2000, "ethAddress": who, "fees": fees,
               "pricePerComputeUnit": 1, "realTimeRatio": 1, "responseTime": 900}  # fmt: skip
    return ev(eid, "job-processed", payload, **kw)


def file(part: Partition, stamp: str, events: list[dict[str, Any]]) -> GeneratedFile:
    name = f"{part.region}-{part.node_type}-{stamp}_{stamp}.json"
    return GeneratedFile(f"{part.path}/{name}", marshal_indent(events))


def test_oracle_on_a_hand_built_transcode_set() -> None:
    part = Partition("transcode", "us-west")
    f1 = file(part, "20261003T080001Z", [
        tjob("e1", A, 101),
        tjob("e2", B, 7),
        tjob("e3", A.lower(), 10),  # lower-case is a valid address; credited checksummed
        tjob("bad-neg", A, -5),
        tjob("bad-float", A, 5.5),
        tjob("bad-str", A, "5"),
        tjob("bad-bool", A, True),
        tjob("bad-addr", "0xzz" + A[4:], 5),
        tjob("bad-checksum", A[:2] + A[2:].swapcase(), 5),
        tjob("bad-region", A, 5, region="us-central"),
        tjob("bad-node", A, 5, node="ai"),
        ev("bad-missing", "job-processed", {"ethAddress": A}),
        {"DT": "2026-10-03T08:00:01Z", "EventType": "job-processed"},  # no ID, no payload
        "not an object",
        ev("c1", "worker-connected", {"connection": "1.2.3.4:8935", "ethAddress": A}),
        ev("x1", "node-reset", {}),
    ])  # fmt: skip
    f2 = file(part, "20261003T080002Z", [
        tjob("e1", A, 101),  # exact duplicate: counted once
        tjob("e2", B, 10**6),  # same ID, other content: the newcomer is ignored
        tjob("e4", B, 2**70),  # one event's fees fit int64 (the spec): invalid
        tjob("bad-neg", A, 9),  # the first copy was invalid, so this one counts
    ])  # fmt: skip
    truncated = file(part, "20261003T080003Z", [tjob("e5", A, 1000)])
    truncated = GeneratedFile(truncated.key, truncated.body[:-3])
    rate = Fraction(1, 3)
    got = oracle_balances([f1, f2, truncated], rate)
    assert got == {
        A: {"total_fees_wei": 101 + 10 + 9, "pool_commission_wei": 33 + 3 + 3,
            "worker_earnings_wei": 120 - 39, "job_count": 3},
        B: {"total_fees_wei": 7, "pool_commission_wei": 2, "worker_earnings_wei": 5,
            "job_count": 1},
    }  # fmt: skip
    # The order of files decides which of two conflicting copies is first.
    assert oracle_balances([f2, f1], rate)[B]["total_fees_wei"] == 10**6


def test_oracle_on_a_hand_built_ai_set() -> None:
    def received(eid: str, rid: str, who: str, dt: str = "2026-10-03T08:00:01Z") -> dict:
        payload = {"ethAddress": who, "modelID": "m", "pipeline": "llm", "requestID": rid}
        return ev(eid, "job-received", payload, dt=dt, node="ai", region="us-central")

    def processed(eid: str, rid: str, fees: Any) -> dict:
        return ev(eid, "job-processed", {"computeUnits": 1, "fees": fees, "modelID": "m",
                                         "pipeline": "llm", "pricePerComputeUnit": 1,
                                         "requestID": rid, "responseTime": 10**9},
                  node="ai", region="us-central")  # fmt: skip

    f1 = file(AI, "20261003T080001Z", [
        received("r1", "aa", W),
        processed("p1", "aa", 1000),  # same file
        received("r2", "bb", A),  # its processed is in the next file
        processed("p3", "cc", 400),  # its received comes later
        processed("p4", "dd", 999),  # never received: the pool's
        received("r5", "ee", "0x123"),  # invalid received: its job is unattributed
        processed("p5", "ee", 50),
        processed("p6", "ff", -1),  # invalid: counted nowhere
    ])  # fmt: skip
    f2 = file(AI, "20261003T080002Z", [
        processed("p2", "bb", 2000),
        received("r3", "cc", B),
        received("r3b", "cc", A, dt="2026-10-03T08:00:05Z"),  # a later re-send loses
        processed("p1", "aa", 1000),  # duplicate
    ])  # fmt: skip
    got = oracle_balances([f1, f2], Fraction("0.25"))
    assert got == {
        W: {"total_fees_wei": 1000, "pool_commission_wei": 250, "worker_earnings_wei": 750,
            "job_count": 1},
        A: {"total_fees_wei": 2000, "pool_commission_wei": 500, "worker_earnings_wei": 1500,
            "job_count": 1},
        B: {"total_fees_wei": 400, "pool_commission_wei": 100, "worker_earnings_wei": 300,
            "job_count": 1},
        UNATTRIBUTED: {"total_fees_wei": 999 + 50, "pool_commission_wei": 999 + 50,
                       "worker_earnings_wei": 0, "job_count": 2},
    }  # fmt: skip


def test_oracle_matches_the_fixture_files() -> None:
    files = [
        GeneratedFile(p.relative_to(FIXTURES).as_posix(), p.read_bytes()) for p in fixture_files()
    ]
    got = oracle_balances(files, Fraction(1, 4))
    assert got[A]["total_fees_wei"] == 36899363381 + 115861109340
    assert got[B]["pool_commission_wei"] == 66677919584 // 4 + 3958900734 // 4
    assert got[W]["job_count"] == 1
    assert got[UNATTRIBUTED]["total_fees_wei"] == 1249902592  # 77b0d3aa: no received in the set
    assert all(is_checksum_address(k) for k in got if k != UNATTRIBUTED)


# ------------------------------------------------------------------------ write and CLI


def test_write_puts_every_body_at_its_key(tmp_path: Path) -> None:
    files = gen(TC, mess=Mess(reupload_files=0.25))
    store = LocalStore(tmp_path / "events")
    assert write(files, store) == len(files)
    listed = [i.key for i in store.list(TC.path + "/")]
    assert listed == sorted({f.key for f in files})
    for f in files:
        assert store.get(f.key) == f.body


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_generate_writes_to_the_events_uri_and_prints_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENPOOL_EVENTS_URI", str(tmp_path / "events"))
    args = _cli(["generate", "--node-type", "ai", "--region", "us-central",
                 "--start", "2026-10-03T08:00:00Z", "--hours", "0.5", "--workers", "3",
                 "--rate", "2", "--seed", "4", "--flush-seconds", "300", "--duplicates", "0.05",
                 "--late", "0.2", "--reuploads", "0.2", "--truncated", "1", "--invalid", "0.02",
                 "--split-ai", "0.2", "--resets", "1", "--orphan-ai", "0.05"])  # fmt: skip
    assert args.handler(args, load_settings()) == 0
    summary = json.loads(capsys.readouterr().out.strip())
    expected = generate(AI, START, timedelta(hours=0.5), workers=3, events_per_second=2,
                        flush_seconds=300, seed=4,
                        mess=Mess(duplicate_events=0.05, late_files=0.2, reupload_files=0.2,
                                  truncated_files=1, invalid_events=0.02, split_ai_jobs=0.2,
                                  resets=1, orphan_ai_jobs=0.05))  # fmt: skip
    assert summary == {
        "files": len(expected),
        "events": sum(count_events(f.body) for f in expected),
        "bytes": sum(len(f.body) for f in expected),
    }
    store = LocalStore(tmp_path / "events")
    assert {i.key for i in store.list()} == {f.key for f in expected}


def test_cli_generate_all_partitions_to_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "elsewhere"
    args = _cli(["generate", "--all-partitions", "--start", "2026-10-03T08:00:00+00:00",
                 "--hours", "0.1", "--rate", "1", "--out", str(out)])  # fmt: skip
    settings = load_settings()
    assert args.handler(args, settings) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] > 0 and summary["events"] > 0 and summary["bytes"] > 0
    store = LocalStore(out)
    written = {parse_key(i.key)[0] for i in store.list()}
    assert written == set(settings.partitions)
    assert _cli(["generate"]).handler(_cli(["generate"]), settings) == 2


def test_checksummed_addresses_come_from_the_seed() -> None:
    a = worker_addresses(3, 4)
    assert a == worker_addresses(3, 4) != worker_addresses(4, 4)
    assert all(is_checksum_address(x) and to_checksum_address(x) == x for x in a)
