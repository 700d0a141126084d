"""How deep the reader lets its decoders nest, now that it leaves the recursion limit alone.

Where a library raised the interpreter's recursion limit (py_ecc sets 100000), the slow
path cuts the text at the first bracket one level too deep (``reader.depth``); where the
limit is the default, msgspec's own RecursionError decides. Deep inputs get the same
verdicts either way, and the reader never calls ``sys.setrecursionlimit``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openpool.ingest.reader import FileResult, read_file
from openpool.ingest.reader.depth import _DEPTH_LIMIT, _nests_deeper, _too_deep_at
from tests.chaos.fuzz import good_event
from tests.services import REPO

RAISED = 100_000  # what py_ecc sets
DEFAULT = 1000
TOO_DEEP = "JSON nested too deeply to parse"
_SURROGATE = "invalid JSON: unexpected end of hex escape at byte {}"


def read_under(limit: int, data: bytes) -> FileResult:
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        return read_file(data, "eu-central/transcode/deep.json", "transcode", "eu-central")
    finally:
        sys.setrecursionlimit(saved)


def assert_same(got: FileResult, want: FileResult, data: bytes) -> None:
    assert got.quarantine_reason == want.quarantine_reason, data[:200]
    assert got.events.equals(want.events), data[:200]
    assert got.rejected.equals(want.rejected), data[:200]


def good() -> bytes:
    return json.dumps([good_event(1), good_event(2)]).encode()


CASES: list[tuple[str, bytes, str | None]] = [
    ("deep array", b"[" * 5000 + b"]" * 5000, TOO_DEEP),
    ("deep element", good()[:-1] + b"," + b"[" * 5000 + b"]" * 5000 + b"]", TOO_DEEP),
    ("deep object, not an array", b'{"a":' * 5000 + b"1" + b"}" * 5000, TOO_DEEP),
    ("deep and truncated", b"[" * 5000, TOO_DEEP),
    ("syntax error first", b"[1,}" + b"[" * 5000, "invalid JSON: invalid character at byte 3"),
    ("syntax error after", b"[" * 5000 + b"}", TOO_DEEP),
    ("scalar, then deep", b"1 " + b"[" * 5000, "invalid JSON: trailing characters at byte 3"),
    ("lone surrogate first", b'["\\ud800",' + b"[" * 5000, _SURROGATE.format(8)),
    ("brackets inside a string", b'["' + b"[{" * 5000 + b'"]', None),
    ("escaped quotes", b'["\\"' + b"[" * 5000 + b'\\\\", 1]', None),
    ("BOM, then deep", b"\xef\xbb\xbf" + b"[" * 5000, TOO_DEEP),
]


@pytest.mark.parametrize(("name", "data", "reason"), CASES, ids=[c[0] for c in CASES])
def test_deep_inputs_get_the_same_verdict_whatever_the_limit(
    name: str, data: bytes, reason: str | None
) -> None:
    raised = read_under(RAISED, data)
    assert raised.quarantine_reason == reason
    assert_same(raised, read_under(DEFAULT, data), data)


def test_a_deeply_nested_value_of_one_event_is_only_that_events_rejection() -> None:
    value: Any = 1
    for _ in range(200):
        value = {"x": value}
    bad = good_event(3)
    bad["Payload"]["fees"] = value
    data = json.dumps([good_event(1), bad, good_event(2)]).encode()
    raised = read_under(RAISED, data)
    assert raised.events.num_rows == 2
    assert raised.rejected.column("reason").to_pylist() == [
        "field 'fees' must be a non-negative integer, got an object"
    ]
    assert_same(raised, read_under(DEFAULT, data), data)


def test_the_cut_leaves_an_escape_just_before_it_as_the_whole_text_has_it() -> None:
    """msgspec reads 6 bytes past a high surrogate for its pair; here the cut falls 2 bytes
    after one, which must still read as the whole text does (not as "truncated")."""
    data = b"[" * _DEPTH_LIMIT + b'"\\ud800",[' + b"[" * 10
    assert _too_deep_at(data, _DEPTH_LIMIT) == _DEPTH_LIMIT + 9
    assert read_under(RAISED, data).quarantine_reason == _SURROGATE.format(_DEPTH_LIMIT + 7)


def test_the_reader_never_changes_the_recursion_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    saved, set_limit = sys.getrecursionlimit(), sys.setrecursionlimit

    def refuse(limit: int) -> None:
        raise AssertionError(f"the reader set the recursion limit to {limit}")

    for limit in (RAISED, DEFAULT):
        set_limit(limit)
        monkeypatch.setattr(sys, "setrecursionlimit", refuse)
        try:
            for _, data, reason in CASES:
                got = read_file(data, "k", "transcode", "eu-central")
                assert got.quarantine_reason == reason
            assert sys.getrecursionlimit() == limit
        finally:
            monkeypatch.undo()
            set_limit(saved)


def test_nesting_60000_deep_under_a_raised_limit_is_quarantined_not_a_crash() -> None:
    """The SIGSEGV of old (the C stack overflowed), in a child so a crash cannot take the
    test run with it."""
    code = (
        "import sys; sys.setrecursionlimit(100_000)\n"
        "from openpool.ingest.reader import read_file\n"
        "r = read_file(b'[' * 60_000 + b']' * 60_000, 'k', 'transcode', 'eu-central')\n"
        "print(r.quarantine_reason, sys.getrecursionlimit())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"{TOO_DEEP} 100000"


# Pieces of JSON (and of broken JSON) around a deep run: whatever they do (open a string,
# break the syntax, hold a lone surrogate), the verdict is the one the default limit gives.
FRAGMENTS = [
    *(b"[", b"{", b"]", b"}", b'"', b"\\", b"\\\\", b'\\"', b",", b":", b'"k":', b"1", b"-"),
    *(b"\\ud800", b"\\udc00", b"\\u00", b"x", b" ", b"null", b'"[', b'{"a":', b"\xc3\xa9"),
]
junk = st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(b"".join)
runs = st.sampled_from([b"[", b'{"k":', b'[{"k":', b"[1,"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk, runs, st.integers(1500, 3000), junk)
def test_a_raised_limit_gives_the_verdicts_of_the_default_one(
    before: bytes, unit: bytes, depth: int, after: bytes
) -> None:
    data = before + unit * depth + after
    assert_same(read_under(RAISED, data), read_under(DEFAULT, data), data)


def scan(text: bytes, limit: int) -> int | None:
    """_too_deep_at, one character at a time."""
    depth, in_string, escaped = 0, False, False
    for i, c in enumerate(text):
        if in_string:
            escaped, in_string = (False, True) if escaped else (c == 0x5C, c != 0x22)
        elif c == 0x22:
            in_string = True
        elif c in b"[{":
            depth += 1
            if depth > limit:
                return i
        elif c in b"]}":
            depth -= 1
    return None


tricky_text = st.text(alphabet='[]{}"\\a\u00e9\n', max_size=6)
values = st.recursive(
    st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(values, st.integers(0, 6), st.booleans())
def test_the_vectorised_scan_matches_a_character_scan(value: Any, limit: int, ascii: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii).encode()
    assert _too_deep_at(text, limit) == scan(text, limit)
    assert _nests_deeper(text, limit) == (scan(text, limit) is not None)
