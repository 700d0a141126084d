"""Every event's ``content_sha256`` and ``payload_json`` stay what they were.

Event IDs' duplicate detection compares these digests with the ones already in state: if
the reader's canonical bytes changed for the same event, every re-sent event would look
new (or as a conflict). So a faster reader must give byte-identical output. The expected
values were recorded from the reader as it was before the speed work of issue 20 (commit
4a38b44), on the spec's sample files and on generated traffic of both node types with every
kind of mess (so both the fast and the slow path are exercised); each entry is (accepted
events, rejected events, SHA-256 over every accepted event's digest and payload_json).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from openpool.ingest.reader import read_file
from openpool.partitions import Partition
from openpool.traffic import Mess, generate
from tests.helpers.traffic import EVERY_KIND_OF_MESS

FIXTURES = Path(__file__).parent / "fixtures" / "events"


def corpus() -> dict[str, tuple[bytes, str, str]]:
    """name -> (file body, node type, region)."""
    out = {}
    for path in sorted(FIXTURES.rglob("*.json")):
        region, node_type = path.parts[-3], path.parts[-2]
        out[path.name] = (path.read_bytes(), node_type, region)
    for part, mess, seed in (
        (Partition("transcode", "eu-central"), Mess(resets=2), 1),
        (Partition("transcode", "us-west"), EVERY_KIND_OF_MESS, 2),
        (Partition("ai", "us-central"), Mess(resets=1, split_ai_jobs=0.2), 3),
        (Partition("ai", "us-central"), EVERY_KIND_OF_MESS, 4),
    ):
        files = generate(
            part,
            datetime(2026, 11, 1, 12, tzinfo=UTC),
            timedelta(minutes=4),
            workers=30,
            events_per_second=40,
            seed=seed,
            mess=mess,
        )
        for k, f in enumerate(files):
            out[f"{seed}-{k}-{f.key.rsplit('/', 1)[-1]}"] = (f.body, part.node_type, part.region)
    return out


def fingerprint(data: bytes, name: str, node_type: str, region: str) -> list[object]:
    r = read_file(data, name, node_type, region)
    h = hashlib.sha256()
    for d, p in zip(
        r.events.column("content_sha256").to_pylist(),
        r.events.column("payload_json").to_pylist(),
        strict=True,
    ):
        h.update(d.encode() + b"\0" + p.encode() + b"\n")
    return [r.events.num_rows, r.rejected.num_rows, h.hexdigest()]


EXPECTED: dict[str, list[object]] = {
    "eu-central-transcode-20261003T080000Z_20261003T080006Z.json": [
        9,
        0,
        "d6e984db3389574888be10472f1f79b83d11a8ca14b08798363a517245e597b8",
    ],
    "us-central-ai-20261003T080010Z_20261003T080013Z.json": [
        3,
        0,
        "54c705dcfd9d227eda95f4f284e48bd1177b0d3039d656a6b1d9d9c35defa05b",
    ],
    "1-0-eu-central-transcode-20261101T120000Z_20261101T120059Z.json": [
        2436,
        0,
        "a8e2d1418e57b244db5b81bef1fa4d562a89d06673a3166b1873ef09c7692045",
    ],
    "1-1-eu-central-transcode-20261101T120100Z_20261101T120159Z.json": [
        2385,
        0,
        "c65c9106c94cdff3324b4dababf62ee1387af77ac9876588908d4775afdd4a3b",
    ],
    "1-2-eu-central-transcode-20261101T120200Z_20261101T120259Z.json": [
        2368,
        0,
        "3e78b43c058f3050a72a332f66de65aae4bacb593778dbc8d56d017540c12a53",
    ],
    "1-3-eu-central-transcode-20261101T120300Z_20261101T120359Z.json": [
        2444,
        0,
        "316ed33a4d607ffe999fbb183f689b7847ab5b5fba709e26d489f0be8a59ee12",
    ],
    "2-0-us-west-transcode-20261101T120000Z_20261101T120059Z.json": [
        0,
        0,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ],
    "2-1-us-west-transcode-20261101T120100Z_20261101T120259Z.json": [
        2333,
        60,
        "4e6bb7361c146b23fbc3a62fefa7e7b84fddc917417c5c97aba676832ac240da",
    ],
    "2-2-us-west-transcode-20261101T120200Z_20261101T120359Z.json": [
        2370,
        48,
        "144107870f6fd6ab3e68476cd4018b3a9e590e6b63d806c615e463dfcf46f089",
    ],
    "2-3-us-west-transcode-20261101T120000Z_20261101T120159Z.json": [
        2465,
        41,
        "16743e88baf8b6ada1af95107115d1629067a5024353f1f720f402ec0b3f2f02",
    ],
    "2-4-us-west-transcode-20261101T120000Z_20261101T120059Z.json": [
        0,
        0,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ],
    "3-0-us-central-ai-20261101T120000Z_20261101T120059Z.json": [
        2151,
        0,
        "fe60f3e760e3e305acbb2241c60421f8bd82ca1befd0bf359ebf848a78257a5f",
    ],
    "3-1-us-central-ai-20261101T120001Z_20261101T120159Z.json": [
        2401,
        0,
        "490613a18acbb5e2af0cb4702536fbcc281aefeb39048d393abe436403ab3fe7",
    ],
    "3-2-us-central-ai-20261101T120100Z_20261101T120259Z.json": [
        2209,
        0,
        "f34f8a513c5cba569ef32a0f3ffe7bc94a89aa43b514258254367546d2f8e28b",
    ],
    "3-3-us-central-ai-20261101T120200Z_20261101T120359Z.json": [
        2612,
        0,
        "29120537b2a22addf055dc26351c3fc71525245d8508c02325b2c97bea22953f",
    ],
    "4-0-us-central-ai-20261101T120000Z_20261101T120059Z.json": [
        2027,
        39,
        "917592a2552f023004dac46561e52eb12e7a5d22c7ea0d472bc1f0d8af2631b5",
    ],
    "4-1-us-central-ai-20261101T120000Z_20261101T120159Z.json": [
        2427,
        47,
        "f0231a6fa39e34e0a2c4181ac977501169ca47c139b8fba936544e7e1950b824",
    ],
    "4-2-us-central-ai-20261101T120106Z_20261101T120359Z.json": [
        0,
        0,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ],
    "4-3-us-central-ai-20261101T120006Z_20261101T120259Z.json": [
        2389,
        60,
        "68997384ebf62ba03d25fbf3cd3f3e67b6de9ea05929ab711a60f0d97d41aa34",
    ],
    "4-4-us-central-ai-20261101T120006Z_20261101T120259Z.json": [
        2389,
        60,
        "68997384ebf62ba03d25fbf3cd3f3e67b6de9ea05929ab711a60f0d97d41aa34",
    ],
}


def test_the_corpus_is_the_recorded_one() -> None:
    assert sorted(corpus()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_content_digests_and_payload_json_are_unchanged(name: str) -> None:
    data, node_type, region = corpus_cached()[name]
    assert fingerprint(data, name, node_type, region) == EXPECTED[name]


_CACHE: dict[str, tuple[bytes, str, str]] = {}


def corpus_cached() -> dict[str, tuple[bytes, str, str]]:
    if not _CACHE:
        _CACHE.update(corpus())
    return _CACHE
