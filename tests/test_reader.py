"""The event-file reader: exact values from the samples, one test per kind of bad input, and
fuzzing that shows it never raises and always accounts for every array element."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openpool.ingest.dedup import dedup
from openpool.ingest.reader import (
    RAW_JSON_LIMIT,
    FileResult,
    content_digest,
    legacy_content_sha256,
    read_file,
)
from openpool.ingest.reader.canonical import _canonical_whole
from openpool.ingest.reader.checks import _DT_RE, _UUID_RE, _dt_shaped, _uuid_shaped
from openpool.ingest.reader.structs import _decoders
from openpool.tables import EVENTS, ID_INDEX, REJECTED

FIXTURES = Path(__file__).parent / "fixtures" / "events"
TRANSCODE_FILE = (
    FIXTURES / "eu-central/transcode/eu-central-transcode-20261003T080000Z_20261003T080006Z.json"
)
AI_FILE = FIXTURES / "us-central/ai/us-central-ai-20261003T080010Z_20261003T080013Z.json"

ADDR = "0xA4c123B1612dd272d1371C17149d439536b3216F"  # EIP-55 checksummed
ADDR2 = "0xdAeeb975729fAE923D5A4fd12aAbFe228F219e9C"
WIN_PROB = 57896044618658097711785492504343953926634992332820282019728792003956564819968


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def digest(value: Any) -> str:
    """content_sha256 of an event: XXH3-128 (hex) of its canonical JSON text."""
    return xxhash.xxh3_128_hexdigest(canonical(value).encode())


def body(events: list[Any]) -> bytes:
    """A file body as the orchestrators write it (Go MarshalIndent: 2 spaces, sorted keys)."""
    return json.dumps(events, indent=2, sort_keys=True).encode()


_ids = iter(range(1, 10**9))


def uid() -> str:
    return f"00000000-0000-4000-8000-{next(_ids):012d}"


def tc_job(**payload: Any) -> dict[str, Any]:
    """A valid transcode job-processed event (eu-central), payload keys overridable."""
    p: dict[str, Any] = {
        "computeUnits": 4623401,
        "duration": 2000,
        "ethAddress": ADDR,
        "fees": 36899363381,
        "pricePerComputeUnit": 7981,
        "realTimeRatio": 0,
        "responseTime": 2440,
    }
    p.update(payload)
    return event("job-processed", p)


def event(
    etype: str, payload: Any, node: str = "transcode", region: str = "eu-central"
) -> dict[str, Any]:
    return {
        "DT": "2026-10-03T08:00:02Z",
        "EventType": etype,
        "ID": uid(),
        "NodeType": node,
        "Payload": payload,
        "Region": region,
        "Version": 1,
    }


def ai_job(**payload: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "computeUnits": 1048576,
        "fees": 4999610368,
        "modelID": "ByteDance/SDXL-Lightning",
        "pipeline": "text-to-image",
        "pricePerComputeUnit": 4768,
        "requestID": "4f2a9c1e",
        "responseTime": 1874233110,
    }
    p.update(payload)
    return event("job-processed", p, "ai", "us-central")


def read_tc(events: list[Any] | bytes) -> FileResult:
    data = events if isinstance(events, bytes) else body(events)
    return read_file(data, "k/transcode.json", "transcode", "eu-central")


def read_ai(events: list[Any] | bytes) -> FileResult:
    data = events if isinstance(events, bytes) else body(events)
    return read_file(data, "k/ai.json", "ai", "us-central")


def check_shape(result: FileResult) -> None:
    assert result.events.schema == EVENTS
    assert result.rejected.schema == REJECTED
    assert result.rejected.column("rejected_at_version").null_count == result.rejected.num_rows


def quarantined(result: FileResult) -> str:
    check_shape(result)
    assert result.events.num_rows == 0 and result.rejected.num_rows == 0
    assert result.quarantine_reason is not None
    return result.quarantine_reason


def one_rejected(result: FileResult, at: int = 1, total: int = 3) -> dict[str, Any]:
    """The single rejection of a file whose other elements are all good; returns its row."""
    check_shape(result)
    assert result.quarantine_reason is None
    assert result.rejected.num_rows == 1, result.rejected.to_pylist()
    assert result.events.num_rows == total - 1
    assert result.events.column("source_index").to_pylist() == [i for i in range(total) if i != at]
    row = result.rejected.to_pylist()[0]
    assert row["source_index"] == at
    assert row["source_key"] in ("k/transcode.json", "k/ai.json")
    return row


def sandwich(bad: Any, good: Any = None) -> list[Any]:
    """A bad element between two good neighbours."""
    make = good or tc_job
    return [make(), bad, make()]


# --------------------------------------------------------------------------------------
# The sample files, value by value


def test_transcode_sample_exact_values() -> None:
    data = TRANSCODE_FILE.read_bytes()
    r = read_file(data, "eu-central/transcode/x.json", "transcode", "eu-central")
    check_shape(r)
    assert r.quarantine_reason is None and r.rejected.num_rows == 0
    rows = r.events.to_pylist()
    assert [x["event_type"] for x in rows] == [
        "orchestrator-reset",
        "worker-connected",
        "worker-connected",
        "job-processed",
        "job-processed",
        "job-processed",
        "job-processed",
        "worker-disconnected",
        "ticket-redeemed",
    ]
    assert [x["source_index"] for x in rows] == list(range(9))
    job = rows[3]
    assert job["event_id"] == "64e50cad-6623-4a04-a5e7-e4236472f1a3"
    assert job["event_time"].isoformat() == "2026-10-03T08:00:02+00:00"
    assert job["fees_wei"] == Decimal(36899363381)
    assert job["price_per_compute_unit_wei"] == Decimal(7981)
    assert job["compute_units"] == 4623401
    assert job["duration_ms"] == 2000
    assert job["response_time_ns"] == 2_440_000_000  # 2440 ms
    assert job["real_time_ratio"] == 0
    assert job["eth_address"] == ADDR
    assert job["node_type"] == "transcode" and job["region"] == "eu-central"
    assert job["schema_version"] == 1 and job["request_id"] is None
    assert [x["eth_address"] for x in rows[1:3]] == [ADDR, ADDR2]
    assert rows[1]["connection"] == "203.0.113.7:8935"
    assert rows[0]["payload_json"] == "{}" and rows[0]["eth_address"] is None
    ticket = rows[8]
    assert '"faceValue":25000000000000000000,' in ticket["payload_json"]
    payload = json.loads(ticket["payload_json"])
    assert payload["faceValue"] == 25000000000000000000
    assert payload["winProb"] == WIN_PROB
    assert payload["pricePerPixel"] == "1200/1"
    # payload_json is the canonical form of what the file holds; content_sha256 its digest.
    for raw, row in zip(json.loads(data), rows, strict=True):
        assert row["payload_json"] == canonical(raw["Payload"])
        expected = digest(raw)
        assert row["content_sha256"] == expected


def test_ai_sample_exact_values() -> None:
    data = AI_FILE.read_bytes()
    r = read_file(data, "us-central/ai/x.json", "ai", "us-central")
    check_shape(r)
    assert r.quarantine_reason is None and r.rejected.num_rows == 0
    received, processed, orphan = r.events.to_pylist()
    assert received["event_type"] == "job-received"
    assert received["eth_address"] == "0xb0EB53f16947CCF25eC84D8dbc74254770f58904"
    assert received["request_id"] == "4f2a9c1e" == processed["request_id"]
    assert received["model_id"] == "ByteDance/SDXL-Lightning"
    assert received["pipeline"] == "text-to-image"
    assert received["fees_wei"] is None
    assert processed["eth_address"] is None  # AI jobs name no worker
    assert processed["response_time_ns"] == 1874233110  # already nanoseconds
    assert processed["fees_wei"] == Decimal(4999610368)
    assert processed["price_per_compute_unit_wei"] == Decimal(4768)
    assert processed["compute_units"] == 1048576
    assert processed["duration_ms"] is None
    assert orphan["request_id"] == "77b0d3aa"
    assert orphan["response_time_ns"] == 911004562
    assert orphan["fees_wei"] == Decimal(1249902592)
    for raw, row in zip(json.loads(data), r.events.to_pylist(), strict=True):
        assert row["content_sha256"] == digest(raw)


def test_sample_read_with_a_bad_neighbour_gives_identical_rows() -> None:
    """The per-element path (forced by one bad element) yields the fast path's exact rows."""
    good = json.loads(TRANSCODE_FILE.read_bytes())
    fast = read_tc(good).events
    slow = read_tc([*good, {"oops": 1.5}])
    assert slow.rejected.num_rows == 1
    assert slow.events.equals(fast)


# --------------------------------------------------------------------------------------
# Whole files that are not a JSON array: quarantined, with a specific reason


def test_empty_bytes() -> None:
    assert quarantined(read_tc(b"")) == "empty file (0 bytes)"


def test_whitespace_only() -> None:
    assert quarantined(read_tc(b" \n\t\r\n")) == "empty file (only whitespace)"


def test_empty_array_is_a_valid_file() -> None:
    for data in (b"[]", b"[\n]\n", b"\xef\xbb\xbf[]"):
        r = read_tc(data)
        check_shape(r)
        assert r.quarantine_reason is None
        assert r.events.num_rows == 0 and r.rejected.num_rows == 0


def test_truncated_upload() -> None:
    data = body([tc_job(), tc_job()])
    cut = data[: len(data) // 2]
    assert (
        quarantined(read_tc(cut))
        == f"invalid JSON: input ends early (truncated at byte {len(cut)})"
    )


def test_syntax_error_reports_its_byte_offset() -> None:
    good = body([tc_job()])
    data = good[:-2] + b",\n]"  # a trailing comma
    reason = quarantined(read_tc(data))
    assert reason == f"invalid JSON: trailing comma in array at byte {len(data) - 1}"


def test_utf8_bom_is_stripped_and_accepted() -> None:
    events = [tc_job(), tc_job()]
    plain = read_tc(events)
    with_bom = read_tc(b"\xef\xbb\xbf" + body(events))
    assert with_bom.quarantine_reason is None
    assert with_bom.events.equals(plain.events)
    # Offsets in reasons count the BOM, so they point into the file as stored.
    assert (
        quarantined(read_tc(b"\xef\xbb\xbf[1,]"))
        == "invalid JSON: trailing comma in array at byte 6"
    )
    assert quarantined(read_tc(b"\xef\xbb\xbf")) == "empty file (only a byte-order mark)"


def test_not_utf8() -> None:
    data = body([tc_job(pipeline="cafe")]).replace(b'"cafe"', b'"caf\xe9"')  # Latin-1
    pos = data.index(b"\xe9")
    reason = quarantined(read_tc(data))
    assert reason == f"not valid UTF-8: invalid continuation byte at byte {pos}"


def test_utf16_file() -> None:
    text = body([tc_job()]).decode()
    bom = quarantined(read_tc(text.encode("utf-16")))
    assert bom == "file starts with a UTF-16/UTF-32 byte-order mark; expected UTF-8 JSON"
    no_bom = quarantined(read_tc(text.encode("utf-16-le")))
    assert no_bom.startswith("invalid JSON: invalid character at byte 1")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b'{"DT": "2026-10-03T08:00:00Z"}', "an object"),
        (b'"[]"', "a string"),
        (b"42", "a number"),
        (b"null", "null"),
        (b"true", "a boolean"),
    ],
)
def test_top_level_not_an_array(data: bytes, kind: str) -> None:
    assert quarantined(read_tc(data)) == f"top-level value is {kind}, expected an array"


def test_nan_is_not_json() -> None:
    data = body([tc_job()]).replace(b'"fees": 36899363381', b'"fees": NaN')
    assert quarantined(read_tc(data)).startswith("invalid JSON: invalid character at byte ")


def test_trailing_garbage_after_array() -> None:
    data = body([tc_job()]) + b"\n]"
    reason = quarantined(read_tc(data))
    prefix = "invalid JSON: trailing characters at byte "
    assert reason.startswith(prefix)
    assert abs(int(reason.removeprefix(prefix)) - (len(data) - 1)) <= 1  # msgspec's offset


def test_unpaired_surrogate_escape() -> None:
    """Strict JSON text is UTF-8; a lone surrogate escape cannot be decoded to it."""
    data = body([tc_job(pipeline="x")]).replace(b'"x"', b'"\\ud800"')
    assert quarantined(read_tc(data)).startswith("invalid JSON: ")
    assert read_tc(b'["\\udc00"]').quarantine_reason is not None


def test_nesting_too_deep_for_the_decoder() -> None:
    # msgspec's depth guard is Python's recursion limit, which libraries loaded by other
    # tests raise; pin the interpreter's default so the outcome is deterministic (under a
    # raised limit the reader's own bound decides: tests/test_reader_depth.py).
    import sys

    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        _check_too_deep()
    finally:
        sys.setrecursionlimit(saved)


def _check_too_deep() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    data = body([tc_job()])[:-2] + b",\n" + deep + b"\n]"
    assert quarantined(read_tc(data)) == "JSON nested too deeply to parse"


# --------------------------------------------------------------------------------------
# Bad elements: rejected with a specific reason; their neighbours are still accepted


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        (5, "element is not an object, got integer 5"),
        ("x", "element is not an object, got string 'x'"),
        (None, "element is not an object, got null"),
        ([1, 2], "element is not an object, got an array"),
    ],
)
def test_element_not_an_object(element: Any, reason: str) -> None:
    row = one_rejected(read_tc(sandwich(element)))
    assert row["reason"] == reason
    assert row["event_id"] is None and row["event_type"] is None
    assert json.loads(row["raw_json"]) == element


@pytest.mark.parametrize(
    "key", ["DT", "EventType", "ID", "NodeType", "Payload", "Region", "Version"]
)
def test_missing_top_level_field(key: str) -> None:
    bad = tc_job()
    del bad[key]
    row = one_rejected(read_tc(sandwich(bad)))
    assert row["reason"] == f"missing field {key!r}"
    assert json.loads(row["raw_json"]) == bad


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("DT", 1759478402, "field 'DT' must be a string, got integer 1759478402"),
        ("EventType", None, "field 'EventType' must be a string, got null"),
        ("ID", 7, "field 'ID' must be a string, got integer 7"),
        ("NodeType", ["transcode"], "field 'NodeType' must be a string, got an array"),
        ("Region", {"r": 1}, "field 'Region' must be a string, got an object"),
        ("Payload", [1, 2], "field 'Payload' must be an object, got an array"),
        ("Payload", "{}", "field 'Payload' must be an object, got string '{}'"),
        ("Version", 1.0, "field 'Version' must be an integer, got float 1.0"),
        ("Version", "1", "field 'Version' must be an integer, got string '1'"),
        ("Version", True, "field 'Version' must be an integer, got boolean true"),
        ("Version", 2**63, f"field 'Version' {2**63} is out of range for its column (int64)"),
    ],
)
def test_wrong_top_level_type(key: str, value: Any, reason: str) -> None:
    bad = tc_job()
    bad[key] = value
    row = one_rejected(read_tc(sandwich(bad)))
    assert row["reason"] == reason


@pytest.mark.parametrize(
    "dt",
    [
        "2026-13-01T00:00:00Z",  # month 13
        "2026-02-30T00:00:00Z",  # no such day
        "2026-10-03T24:00:00Z",
        "2026-10-03T23:59:60Z",
        "2026-10-03T08:00:02.5Z",  # sub-second
        "2026-10-03T08:00:02+00:00",  # offset instead of Z
        "2026-10-03 08:00:02Z",
        "2026-10-03T08:00Z",
        "0000-01-01T00:00:00Z",
        "",
    ],
)
def test_bad_dt(dt: str) -> None:
    bad = tc_job()
    bad["DT"] = dt
    row = one_rejected(read_tc(sandwich(bad)))
    assert row["reason"] == (
        f"DT {dt!r} is not RFC 3339 UTC with second precision (YYYY-MM-DDTHH:MM:SSZ)"
    )
    assert row["event_id"] == bad["ID"] and row["event_type"] == "job-processed"


def test_leap_day_is_valid() -> None:
    ok = tc_job()
    ok["DT"] = "2028-02-29T23:59:59Z"
    r = read_tc([ok])
    assert r.rejected.num_rows == 0
    assert r.events.column("event_time")[0].as_py().isoformat() == "2028-02-29T23:59:59+00:00"


@pytest.mark.parametrize(
    ("ident", "reason"),
    [
        ("", "field 'ID' is empty"),
        ("abc", "ID 'abc' is not a UUID"),
        ("64e50cad66234a04a5e7e4236472f1a3", "ID '64e50cad66234a04a5e7e4236472f1a3' is not a UUID"),
        (
            "64e50cad-6623-4a04-a5e7-e4236472f1a3 ",
            "ID '64e50cad-6623-4a04-a5e7-e4236472f1a3 ' is not a UUID",
        ),
    ],
)
def test_bad_id(ident: str, reason: str) -> None:
    bad = tc_job()
    bad["ID"] = ident
    assert one_rejected(read_tc(sandwich(bad)))["reason"] == reason


def test_uppercase_uuid_is_accepted_as_sent() -> None:
    ok = tc_job()
    ok["ID"] = "64E50CAD-6623-4A04-A5E7-E4236472F1A3"
    r = read_tc([ok])
    assert r.events.column("event_id").to_pylist() == [ok["ID"]]


def test_empty_event_type() -> None:
    bad = tc_job()
    bad["EventType"] = ""
    assert one_rejected(read_tc(sandwich(bad)))["reason"] == "field 'EventType' is empty"


def test_wrong_partition_node_type() -> None:
    bad = tc_job()
    bad["NodeType"] = "ai"
    row = one_rejected(read_tc(sandwich(bad)))
    assert row["reason"] == "NodeType 'ai' does not match partition 'transcode'"
    assert row["event_id"] == bad["ID"]


def test_wrong_partition_region() -> None:
    bad = tc_job()
    bad["Region"] = "us-west"
    row = one_rejected(read_tc(sandwich(bad)))
    assert row["reason"] == "Region 'us-west' does not match partition 'eu-central'"


def test_whole_file_from_another_partition_is_rejected_event_by_event() -> None:
    r = read_file(TRANSCODE_FILE.read_bytes(), "k", "transcode", "oceania")
    assert r.events.num_rows == 0 and r.rejected.num_rows == 9
    assert set(r.rejected.column("reason").to_pylist()) == {
        "Region 'eu-central' does not match partition 'oceania'"
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1.5, "field 'fees' is a float (1.5), expected an integer"),
        (1.0, "field 'fees' is a float (1.0), expected an integer"),
        (1e3, "field 'fees' is a float (1000.0), expected an integer"),
        (-5, "field 'fees' must be a non-negative integer, got -5"),
        ("100", "field 'fees' must be a non-negative integer, got string '100'"),
        (None, "field 'fees' must be a non-negative integer, got null"),
        (True, "field 'fees' must be a non-negative integer, got boolean true"),
        # The spec: one event's fees fit in int64 (only sums need more).
        (2**63, f"field 'fees' = {2**63} is too large for one event's fees (int64)"),
        (10**38, f"field 'fees' = {10**38} is too large for one event's fees (int64)"),
    ],
)
def test_bad_fees(value: Any, reason: str) -> None:
    row = one_rejected(read_tc(sandwich(tc_job(fees=value))))
    assert row["reason"] == reason


def test_exponent_literal_is_a_rejection_not_a_conversion() -> None:
    data = body(sandwich(tc_job(fees=12345)))
    data = data.replace(b'"fees": 12345', b'"fees": 1.2345e4', 1)
    row = one_rejected(read_tc(data))
    assert row["reason"] == "field 'fees' is a float (12345.0), expected an integer"
    assert '"fees": 1.2345e4' in row["raw_json"]  # the text as found


def test_prices_beyond_int64_are_kept_exactly() -> None:
    big = 2**63 - 1  # the largest fee one event can carry
    r = read_tc(sandwich(tc_job(fees=big, pricePerComputeUnit=10**38 - 1)))
    assert r.rejected.num_rows == 0
    assert r.events.column("fees_wei")[1].as_py() == Decimal(big)
    assert r.events.column("price_per_compute_unit_wei")[1].as_py() == Decimal(10**38 - 1)
    assert f'"fees":{big},' in r.events.column("payload_json")[1].as_py()


def test_int64_column_overflow() -> None:
    row = one_rejected(read_tc(sandwich(tc_job(computeUnits=2**63))))
    assert row["reason"] == f"field 'computeUnits' = {2**63} is too large for its column (int64)"


def test_transcode_response_time_too_large_for_nanoseconds() -> None:
    ms = 2**63 // 1_000_000 + 1
    row = one_rejected(read_tc(sandwich(tc_job(responseTime=ms))))
    assert row["reason"] == (
        f"field 'responseTime' = {ms} ms is too large for its column (int64 nanoseconds)"
    )


def test_wrong_string_field_type() -> None:
    bad = event("worker-connected", {"connection": 8935, "ethAddress": ADDR})
    row = one_rejected(read_tc(sandwich(bad)))
    assert row["reason"] == "field 'connection' must be a string, got integer 8935"


@pytest.mark.parametrize(
    "missing",
    [
        "computeUnits",
        "duration",
        "ethAddress",
        "fees",
        "pricePerComputeUnit",
        "realTimeRatio",
    ],
)
def test_transcode_job_missing_payload_field(missing: str) -> None:
    bad = tc_job()
    del bad["Payload"][missing]
    row = one_rejected(read_tc(sandwich(bad)))
    assert row["reason"] == f"transcode job-processed missing {missing}"


@pytest.mark.parametrize("node_type", ["transcode", "ai"])
def test_a_job_without_response_time_is_accepted_with_a_null_time(node_type: str) -> None:
    """The work was done, so it is paid; analytics count it in ``excluded_jobs``."""
    job = tc_job() if node_type == "transcode" else ai_job()
    del job["Payload"]["responseTime"]
    result = (read_tc if node_type == "transcode" else read_ai)(
        sandwich(job, tc_job if node_type == "transcode" else ai_job)
    )
    assert result.rejected.num_rows == 0 and result.events.num_rows == 3
    assert result.events.column("response_time_ns").to_pylist()[1] is None


def test_ai_job_processed_missing_request_id() -> None:
    bad = ai_job()
    del bad["Payload"]["requestID"]
    row = one_rejected(read_ai(sandwich(bad, ai_job)))
    assert row["reason"] == "ai job-processed missing requestID"


def test_ai_job_processed_empty_request_id() -> None:
    row = one_rejected(read_ai(sandwich(ai_job(requestID=""), ai_job)))
    assert row["reason"] == "ai job-processed has an empty requestID"


def test_ai_job_received_missing_eth_address() -> None:
    bad = event(
        "job-received",
        {"modelID": "m", "pipeline": "p", "requestID": "r1"},
        "ai",
        "us-central",
    )
    row = one_rejected(read_ai(sandwich(bad, ai_job)))
    assert row["reason"] == "ai job-received missing ethAddress"


def test_worker_connected_missing_connection() -> None:
    bad = event("worker-connected", {"ethAddress": ADDR})
    row = one_rejected(read_tc(sandwich(bad)))
    assert row["reason"] == "transcode worker-connected missing connection"


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        ("0x12", "ethAddress '0x12' is not a valid address"),
        (
            "A4c123B1612dd272d1371C17149d439536b3216F",
            "ethAddress 'A4c123B1612dd272d1371C17149d439536b3216F' is not a valid address",
        ),
        ("0x" + "g" * 40, f"ethAddress '0x{'g' * 40}' is not a valid address"),
        ("", "ethAddress '' is not a valid address"),
        (
            "0xa4C123B1612dd272d1371C17149d439536b3216F",  # one letter's case flipped
            "ethAddress '0xa4C123B1612dd272d1371C17149d439536b3216F' "
            "has an invalid EIP-55 checksum",
        ),
    ],
)
def test_bad_eth_address(addr: str, reason: str) -> None:
    row = one_rejected(read_tc(sandwich(tc_job(ethAddress=addr))))
    assert row["reason"] == reason


def test_unchecksummed_addresses_are_accepted_and_checksummed() -> None:
    r = read_tc([tc_job(ethAddress=ADDR.lower()), tc_job(ethAddress="0x" + ADDR[2:].upper())])
    assert r.rejected.num_rows == 0
    assert r.events.column("eth_address").to_pylist() == [ADDR, ADDR]
    # payload_json keeps the address as sent.
    assert ADDR.lower() in r.events.column("payload_json")[0].as_py()


@pytest.mark.parametrize(
    ("face", "reason"),
    [
        (-1, "field 'faceValue' must be a non-negative integer, got -1"),
        (2.5e19, "field 'faceValue' is a float (2.5e+19), expected an integer"),
        (
            "25000000000000000000",
            "field 'faceValue' must be a non-negative integer, got string '25000000000000000000'",
        ),
    ],
)
def test_bad_ticket_face_value(face: Any, reason: str) -> None:
    bad = event("ticket-redeemed", {"faceValue": face, "winProb": WIN_PROB})
    assert one_rejected(read_tc(sandwich(bad)))["reason"] == reason


def ticket(**payload: Any) -> dict[str, Any]:
    """A valid ticket-redeemed payload (as in the transcode fixture), keys overridable."""
    p: dict[str, Any] = {
        "creationRound": 3512,
        "faceValue": 25 * 10**18,
        "pricePerPixel": "1200/1",
        "recipient": "0x" + "3f2c" * 10,
        "sender": "0x" + "9a1b" * 10,
        "txHash": "0x" + "ab" * 32,
        "winProb": WIN_PROB,
    }
    return p | payload


@pytest.mark.parametrize("key", sorted(ticket()))
def test_ticket_missing_a_field(key: str) -> None:
    p = ticket()
    del p[key]
    reason = one_rejected(read_tc(sandwich(event("ticket-redeemed", p))))["reason"]
    assert reason == f"transcode ticket-redeemed missing {key}"


RATIONAL = "is not a rational 'numerator/denominator'"


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("creationRound", -1, "must be a non-negative integer, got -1"),
        ("creationRound", "7", "must be a non-negative integer, got string '7'"),
        ("creationRound", 2**63, f"= {2**63} is too large for its column (int64)"),
        ("winProb", 2**256 + 1, f"= {2**256 + 1} is too large for a probability (2^256)"),
        ("winProb", "x", "must be a non-negative integer, got string 'x'"),
        ("pricePerPixel", 5, "must be a string, got integer 5"),
        ("pricePerPixel", "1200/0", f"'1200/0' {RATIONAL}"),
        ("pricePerPixel", "1.5", f"'1.5' {RATIONAL}"),
        ("recipient", "0x12", "'0x12' is not a hex address (0x and 40 hex digits)"),
        ("sender", None, "must be a string, got null"),
        ("txHash", "0x", "'0x' is not a transaction hash (0x and 64 hex digits)"),
    ],
)
def test_ticket_field_of_wrong_type_or_shape(key: str, value: Any, why: str) -> None:
    bad = event("ticket-redeemed", ticket(**{key: value}))
    assert one_rejected(read_tc(sandwich(bad)))["reason"] == f"field {key!r} {why}"


def test_ticket_addresses_and_hash_in_any_case_are_accepted() -> None:
    p = ticket(recipient="0x" + "3F2C" * 10, txHash="0x" + "AB" * 32, winProb=2**256)
    assert read_tc([event("ticket-redeemed", p)]).rejected.num_rows == 0


@pytest.mark.parametrize(
    ("connection", "ok"),
    [("203.0.113.7:8935", True), ("[2001:db8::1]:8935", True), ("host:65535", True),
     ("203.0.113.7", False), ("h:0", False), ("h:70000", False), ("", False), (":80", False),
     ("a b:80", False)],
)  # fmt: skip
def test_connection_must_be_host_port(connection: str, ok: bool) -> None:
    ev = event("worker-connected", {"connection": connection, "ethAddress": ADDR})
    r = read_tc(sandwich(ev))
    if ok:
        assert r.rejected.num_rows == 0
    else:
        assert one_rejected(r)["reason"] == f"field 'connection' {connection!r} is not host:port"


def test_ticket_huge_integers_exact() -> None:
    p = ticket(faceValue=2**200, winProb=2**256 - 1, extra=[1.5, None])
    r = read_tc(sandwich(event("ticket-redeemed", p)))
    assert r.rejected.num_rows == 0
    assert r.events.column("payload_json")[1].as_py() == canonical(p)
    assert json.loads(r.events.column("payload_json")[1].as_py())["winProb"] == 2**256 - 1


def test_ticket_rows_never_fail_a_batch() -> None:
    """Tickets accepted before the reader checked every ticket field may hold anything in
    their payload_json; the tickets table takes it (nulls where a value does not fit)."""
    from openpool.ingest.tickets import tickets_from

    tx = "0x" + "ab" * 32
    first = {"creationRound": 7, "faceValue": 25 * 10**18, "pricePerPixel": "1200/1"}
    first |= {"recipient": "0x" + "1" * 40, "sender": "0x" + "2" * 40}
    first |= {"txHash": tx, "winProb": WIN_PROB}
    tickets = [
        first,
        {"creationRound": "7", "faceValue": 2**200, "txHash": "0x", "winProb": "x"},
        {"faceValue": 0, "txHash": "0x" + "0" * 64, "pricePerPixel": 5},
    ]
    r = read_tc([event("ticket-redeemed", first) for _ in tickets])
    assert r.rejected.num_rows == 0
    old = r.events.set_column(
        r.events.schema.get_field_index("payload_json"),
        "payload_json",
        pa.array([canonical(t) for t in tickets], pa.string()),
    )
    rows = tickets_from(old).to_pylist()
    faces = [x["face_value_wei"] for x in rows]
    # 2**200 does not fit decimal128: null there (the ledger's payload_json keeps the text)
    assert [int(f) if f is not None else None for f in faces] == [25 * 10**18, None, 0]
    assert [x["creation_round"] for x in rows] == [7, None, None]
    assert [x["tx_created"] for x in rows] == [True, False, False]
    assert [x["win_prob"] for x in rows] == [str(WIN_PROB), None, None]
    assert [x["price_per_pixel"] for x in rows] == ["1200/1", None, None]
    assert rows[0]["tx_hash"] == tx and rows[0]["recipient"] == "0x" + "1" * 40


def test_number_beyond_double_range() -> None:
    data = body(sandwich(tc_job(fees=7))).replace(b'"fees": 7', b'"fees": 1e999', 1)
    row = one_rejected(read_tc(data))
    assert row["reason"].startswith("element holds a number that cannot be represented exactly")


def test_integer_with_thousands_of_digits() -> None:
    data = body(sandwich(tc_job(fees=7))).replace(b'"fees": 7', b'"fees": ' + b"9" * 5000, 1)
    row = one_rejected(read_tc(data))
    assert row["reason"].startswith("element holds a number that cannot be represented exactly")
    assert row["raw_json"].count("9" * 100) >= 1


def test_nested_garbage_payload_on_known_type() -> None:
    bad = tc_job(fees={"a": [[{"b": None}]]})
    row = one_rejected(read_tc(sandwich(bad)))
    assert row["reason"] == "field 'fees' must be a non-negative integer, got an object"


def test_nested_garbage_in_unowned_payload_keys_is_kept() -> None:
    """Keys a type does not own are not validated, only kept (forward compatibility)."""
    ok = tc_job(extra={"deep": [[[{"x": 1.25e-7}]]], "s": "\u00e9\u2028"}, requestID=5)
    r = read_tc(sandwich(ok))
    assert r.rejected.num_rows == 0
    assert r.events.column("payload_json")[1].as_py() == canonical(ok["Payload"])
    assert r.events.column("request_id")[1].as_py() is None  # not a transcode field
    assert r.events.column("fees_wei")[1].as_py() == Decimal(36899363381)


@pytest.mark.parametrize("etype", ["node-reset", "gateway-reset", "something-new"])
def test_unknown_event_types_are_kept(etype: str) -> None:
    p = {"anything": [1, {"x": None}], "fees": -3, "ethAddress": "nope"}
    r = read_tc(sandwich(event(etype, p)))
    assert r.rejected.num_rows == 0
    row = r.events.to_pylist()[1]
    assert row["event_type"] == etype
    assert row["payload_json"] == canonical(p)
    assert row["fees_wei"] is None and row["eth_address"] is None


def test_transcode_job_received_is_an_unknown_type() -> None:
    """job-received is an AI event; on a transcode node it carries no typed columns."""
    p = {"ethAddress": ADDR, "requestID": "r"}
    r = read_tc([event("job-received", p)])
    assert r.rejected.num_rows == 0
    assert r.events.column("request_id").to_pylist() == [None]


def test_orchestrator_reset_with_a_payload() -> None:
    r = read_tc([event("orchestrator-reset", {"reason": "oom"})])
    assert r.events.column("payload_json").to_pylist() == ['{"reason":"oom"}']


def test_extra_top_level_key_is_tolerated_and_hashed() -> None:
    ok = tc_job()
    ok["Trace"] = "abc"
    r = read_tc(sandwich(ok))
    assert r.rejected.num_rows == 0
    sha = r.events.column("content_sha256")[1].as_py()
    assert sha == digest(ok)


def test_non_ascii_text_is_canonicalised_like_json_dumps() -> None:
    ok = ai_job(modelID="m\u00f6del/\U0001f600", pipeline="a\x7fb")
    r = read_ai([ok])
    row = r.events.to_pylist()[0]
    assert row["model_id"] == "m\u00f6del/\U0001f600"
    assert row["payload_json"] == canonical(ok["Payload"])
    assert row["content_sha256"] == digest(ok)


def test_content_digest_is_xxh3_128_of_the_canonical_text() -> None:
    r = read_file(TRANSCODE_FILE.read_bytes(), "k", "transcode", "eu-central")
    for raw, sha in zip(
        json.loads(TRANSCODE_FILE.read_bytes()),
        r.events.column("content_sha256").to_pylist(),
        strict=True,
    ):
        assert sha == content_digest(canonical(raw).encode()) == digest(raw)
        assert len(sha) == 32 and sha == sha.lower()


def tricky_events() -> list[Any]:
    """Valid events whose texts contain the markers the whole-file path looks for."""
    return [
        event("orchestrator-reset", {}),  # "{}": a 2-byte payload
        event("orchestrator-reset", {"fees": 123}),  # 12 bytes: the longest inline view
        event("orchestrator-reset", {"fees": 1234}),  # 13 bytes: the shortest out-of-line one
        event("worker-connected", {"connection": '},"Region":"x:1', "ethAddress": ADDR}),
        event("worker-connected", {"connection": '{"DT":"{:2', "ethAddress": ADDR2}),
        event("worker-disconnected", {"connection": '"Payload":{:3', "ethAddress": ADDR}),
        tc_job(ethAddress=ADDR.lower()),
        event("node-reset", {"connection": 'a\\b"c\n\u0001'}),
        {**tc_job(), "Version": -(2**63)},  # the event's end is computed from its Version
        {**tc_job(), "Version": 1234567890123},
        {**tc_job(), "Version": 0},
        tc_job(),
    ]


def test_whole_file_and_row_by_row_canonical_forms_agree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = tricky_events()
    fast = read_tc(events)
    assert fast.rejected.num_rows == 0
    for raw, row in zip(events, fast.events.to_pylist(), strict=True):
        assert row["payload_json"] == canonical(raw["Payload"])
        assert row["content_sha256"] == digest(raw)
    decoder, _ = _decoders("transcode", "eu-central")
    typed = decoder.decode(body(events))
    versions = pa.array([e.Version for e in typed], pa.int64())
    assert _canonical_whole(typed, versions, "eu-central") is not None  # fast path taken
    # where _build looks it up
    monkeypatch.setattr("openpool.ingest.reader.build._canonical_whole", lambda *_a: None)
    slow = read_tc(events)
    assert slow.events.equals(fast.events)


def test_dedup_recognises_sha256_digests_indexed_before_xxh3() -> None:
    events = tricky_events()
    table = read_tc(events).events
    legacy = [hashlib.sha256(canonical(e).encode()).hexdigest() for e in events]
    assert legacy_content_sha256(table) == legacy
    known = pa.table({"event_id": table.column("event_id"), "content_sha256": legacy})
    r = dedup(table, known.cast(ID_INDEX))
    assert r.duplicates == len(events) and r.fresh.num_rows == r.conflicts.num_rows == 0
    other = [("0" * 63 + "1"), *legacy[1:]]  # a different SHA-256: a conflict
    r = dedup(table, pa.table({"event_id": table.column("event_id"), "content_sha256": other}))
    assert r.duplicates == len(events) - 1
    assert r.conflicts.column("event_id").to_pylist() == [events[0]["ID"]]


DT_CHARS = "0123456789-T:Z x"
UUID_CHARS = "0123456789abcdefABCDEFgG-@`/:[{\x0d\xe9"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(DT_CHARS, min_size=20, max_size=20), min_size=1, max_size=20),
    st.lists(st.text(UUID_CHARS, min_size=36, max_size=36), min_size=1, max_size=20),
)
def test_vectorised_shape_checks_match_the_regexes(dts: list[str], ids: list[str]) -> None:
    """Fixed-width columns are checked byte-wise; the verdicts equal the regexes'."""
    dts += ["2026-10-03T08:00:02Z", "2026-13-03T08:00:02Z", "2026-02-30T23:59:59Z"]
    dts += ["0026-10-03T08:00:02Z", "2026-10-00T08:00:02Z", "2026-10-31T24:00:00Z"]
    ids += ["0123abcd-0123-4abc-8def-0123456789AB", "0123abcd-0123-4abc-8def-0123456789Ag"]
    want_dt = [re.fullmatch(_DT_RE.strip("^$"), d) is not None for d in dts]
    want_id = [re.fullmatch(_UUID_RE.strip("^$"), i) is not None for i in ids]
    assert _dt_shaped(pa.array(dts)).tolist() == want_dt
    assert _uuid_shaped(pa.array(ids)).tolist() == want_id
    assert _dt_shaped(pa.array(dts).slice(1)).tolist() == want_dt[1:]


def test_raw_json_is_truncated() -> None:
    bad = tc_job(fees=-1, junk="x" * 20_000)
    row = one_rejected(read_tc(sandwich(bad)))
    assert len(row["raw_json"]) == RAW_JSON_LIMIT
    assert row["raw_json"].startswith("{\n")


def test_several_bad_elements_keep_file_order() -> None:
    a, b = tc_job(fees=-1), tc_job()
    b["DT"] = "yesterday"
    events = [tc_job(), a, tc_job(), b, 3, tc_job()]
    r = read_tc(events)
    assert r.events.column("source_index").to_pylist() == [0, 2, 5]
    assert r.rejected.column("source_index").to_pylist() == [1, 3, 4]
    assert r.rejected.column("event_id").to_pylist() == [a["ID"], b["ID"], None]


def test_duplicate_ids_within_a_file_are_left_to_dedup() -> None:
    one = tc_job()
    r = read_tc([one, copy.deepcopy(one)])
    assert r.events.num_rows == 2
    assert len(set(r.events.column("content_sha256").to_pylist())) == 1


# --------------------------------------------------------------------------------------
# Fuzzing: never raises, always reconciles


def reconcile(data: bytes, result: FileResult) -> None:
    check_shape(result)
    if result.quarantine_reason is not None:
        assert result.events.num_rows == 0 and result.rejected.num_rows == 0
        return
    expected = json.loads(data.removeprefix(b"\xef\xbb\xbf"))
    assert isinstance(expected, list)
    assert result.events.num_rows + result.rejected.num_rows == len(expected)
    seen = sorted(
        result.events.column("source_index").to_pylist()
        + result.rejected.column("source_index").to_pylist()
    )
    assert seen == list(range(len(expected)))
    for row in result.events.select(["source_index", "payload_json", "content_sha256"]).to_pylist():
        element = expected[row["source_index"]]
        assert row["payload_json"] == canonical(element["Payload"])
        assert row["content_sha256"] == digest(element)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    reconcile(data, read_tc(data))


@FUZZ
@given(st.binary(max_size=40), st.integers(0, 2000))
def test_fuzz_damaged_real_file(patch: bytes, at: int) -> None:
    good = TRANSCODE_FILE.read_bytes()
    at = min(at, len(good))
    data = good[:at] + patch + good[at + len(patch) :]
    reconcile(data, read_tc(data))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.slow
@FUZZ
@given(st.lists(json_values, max_size=6))
def test_fuzz_arbitrary_json_arrays(elements: list[Any]) -> None:
    data = body(elements)
    reconcile(data, read_tc(data))


GOOD_MAKERS = [
    tc_job,
    lambda: event("worker-connected", {"connection": "1.2.3.4:1", "ethAddress": ADDR2}),
    lambda: event("ticket-redeemed", {"faceValue": 25 * 10**18, "winProb": WIN_PROB}),
    lambda: event("orchestrator-reset", {}),
    lambda: event("node-reset", {"x": 1}),
]
FIELDS = ["DT", "EventType", "ID", "NodeType", "Payload", "Region", "Version"]
PAYLOAD_KEYS = ["computeUnits", "duration", "ethAddress", "fees", "responseTime", "faceValue"]


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    ev = draw(st.sampled_from(GOOD_MAKERS))()
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()) and isinstance(ev.get("Payload"), dict):
            key = draw(st.sampled_from(PAYLOAD_KEYS))
            target = ev["Payload"]
        else:
            key = draw(st.sampled_from(FIELDS))
            target = ev
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return ev


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_events(), max_size=8))
def test_fuzz_near_valid_events_same_verdict_on_both_paths(events: list[Any]) -> None:
    """Every element gets the same verdict and row whether or not a poison element forces the
    per-element path, and each element alone gets the same verdict as in company."""
    data = body(events)
    together = read_tc(data)
    reconcile(data, together)
    poisoned = read_tc(body([*events, "poison"]))
    assert poisoned.quarantine_reason is None
    assert poisoned.events.equals(together.events)
    assert poisoned.rejected.slice(0, together.rejected.num_rows).equals(together.rejected)
    reasons = dict(
        zip(
            together.rejected.column("source_index").to_pylist(),
            together.rejected.column("reason").to_pylist(),
            strict=True,
        )
    )
    for i, ev in enumerate(events):
        alone = read_tc([ev])
        if i in reasons:
            assert alone.rejected.column("reason").to_pylist() == [reasons[i]]
        else:
            assert alone.events.num_rows == 1
            expected = together.events.filter(pa.compute.equal(together.events["source_index"], i))
            assert alone.events.drop_columns(["source_index"]).equals(
                expected.drop_columns(["source_index"])
            )
