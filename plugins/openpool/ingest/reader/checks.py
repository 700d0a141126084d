"""Column-wise checks of shapes and addresses, vectorised over a whole file's events.

Both paths validate through these (called from ``build``), so an RFC 3339 time, a UUID or
an address gets the same verdict whichever path its element took. Fixed-width columns are
checked byte-wise with numpy; the regexes stay the definition and the fallback.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpool.ingest.reader.eip55 import checksummed
from openpool.ingest.reader.rules import (
    _BIG,
    _FEE,
    _HEX_ADDR,
    _HOSTPORT,
    _I64,
    _PROB,
    _RATIONAL,
    _STRING_KINDS,
    _TX_HASH,
    _WEI_KIND,
)
from openpool.ingest.reader.structs import _INT64_MAX, _WEI_MAX
from openpool.tables import TS

_DT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Field ranges here; days past a month's end (Feb 30) are caught by re-reading the day.
_DT_RE = (
    r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"
)
_UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_ADDR_RE = re.compile(r"0x[0-9a-fA-F]{40}")
# The same shapes as byte templates for the vectorised checks of fixed-width columns: a
# position either takes a hex / decimal digit (0xFF in the template: never in UTF-8 text)
# or must hold the template's character.
_UUID_TEMPLATE = np.frombuffer(
    b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".replace(b"x", b"\xff"), np.uint8
)
_UUID_IS_HEX = _UUID_TEMPLATE == 0xFF
_DT_TEMPLATE = np.frombuffer(b"dddd-dd-ddTdd:dd:ddZ".replace(b"d", b"\xff"), np.uint8)
_DT_IS_DIGIT = _DT_TEMPLATE == 0xFF


def _fixed_width(arr: pa.Array, width: int) -> np.ndarray | None:
    """The strings of ``arr`` as an (n, width) byte matrix, if each has ``width`` bytes."""
    n = len(arr)
    if arr.null_count or arr.type != pa.string() or n == 0:
        return None
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi - lo != width * n or not np.all(np.diff(offsets) == width):
        return None
    return np.frombuffer(arr.buffers()[2], dtype=np.uint8)[lo:hi].reshape(n, width)


def _uuid_shaped(ids: pa.Array) -> np.ndarray:
    """Row mask: the ID matches ``_UUID_RE`` (vectorised when all IDs have 36 bytes)."""
    m = _fixed_width(ids, 36)
    if m is None:
        return pc.match_substring_regex(ids, _UUID_RE).to_numpy(zero_copy_only=False)
    lower = m | 0x20  # ASCII letters to lower case (digits and "-" have the bit already)
    hexdigit = ((m >= ord("0")) & (m <= ord("9"))) | ((lower >= ord("a")) & (lower <= ord("f")))
    return ((hexdigit & _UUID_IS_HEX) | (m == _UUID_TEMPLATE)).all(axis=1)


def _dt_shaped(dts: pa.Array) -> np.ndarray:
    """Row mask: the DT matches ``_DT_RE`` (vectorised when all DTs have 20 bytes)."""
    m = _fixed_width(dts, 20)
    if m is None:
        return pc.match_substring_regex(dts, _DT_RE).to_numpy(zero_copy_only=False)
    digit = (m >= ord("0")) & (m <= ord("9"))
    ok = ((digit & _DT_IS_DIGIT) | (m == _DT_TEMPLATE)).all(axis=1)
    d = m.astype(np.int16) - ord("0")
    ok &= d[:, 0] >= 1

    def two(at: int) -> np.ndarray:
        return d[:, at] * 10 + d[:, at + 1]

    month, day, hour, minute, second = two(5), two(8), two(11), two(14), two(17)
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31) & (hour <= 23)
    return ok & (minute <= 59) & (second <= 59)


def _parse_times(dt_arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(timestamps, valid mask) for DT strings; invalid ones are null / False.

    The regex pins the exact shape and field ranges; Arrow's ISO 8601 cast then rejects
    days past a month's end. The cast fails as a whole on such a day, so that rare case
    re-parses row-wise with strptime (which rolls Feb 30 over) and compares the day.
    """
    shape_ok = _dt_shaped(dt_arr)
    masked = dt_arr
    if not shape_ok.all():
        masked = pc.if_else(pa.array(shape_ok), dt_arr, "1970-01-01T00:00:00Z")
    try:
        return pc.cast(masked, TS), shape_ok
    except pa.ArrowInvalid:
        pass
    ts = pc.strptime(masked, format=_DT_FORMAT, unit="s", error_is_null=True)
    day = pc.cast(pc.utf8_slice_codeunits(masked, 8, 10), pa.int64())
    ok = pc.fill_null(pc.and_(pa.array(shape_ok), pc.equal(pc.day(ts), day)), False)
    return pc.cast(pc.if_else(ok, ts, pa.scalar(None, ts.type)), TS), ok.to_numpy(
        zero_copy_only=False
    )


def _checksum_column(addrs: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(EIP-55 checksummed addresses or null, rejection reason or null), row by row.

    Work is per distinct address (a file names few workers), so it stays cheap.
    """
    distinct = pc.unique(addrs.drop_null())
    names = distinct.to_pylist()
    verdicts = _checksums(names)
    reasons = [v[1] for v in verdicts]
    if all(v[0] == a for v, a in zip(verdicts, names, strict=True)):
        # The usual file: every address already checksummed, none bad; no per-row gather.
        return addrs, pa.nulls(len(addrs), pa.string())
    where = pc.index_in(addrs, value_set=distinct)
    good = pc.take(pa.array([v[0] for v in verdicts], pa.string()), where)
    if not any(reasons):
        return good, pa.nulls(len(addrs), pa.string())
    return good, pc.take(pa.array(reasons, pa.string()), where)


_VERDICTS: dict[str, tuple[str | None, str | None]] = {}  # per process: workers recur


def _checksums(addrs: list[str]) -> list[tuple[str | None, str | None]]:
    """(checksummed address, None) or (None, reason) for each address; the hashes of the
    ones not seen before in this process are computed together."""
    known = {a: v for a in dict.fromkeys(addrs) if (v := _VERDICTS.get(a)) is not None}
    new = [a for a in dict.fromkeys(addrs) if a not in known]
    shaped = [a for a in new if _ADDR_RE.fullmatch(a)]
    for addr in new:
        if not _ADDR_RE.fullmatch(addr):
            shown = addr if len(addr) <= 60 else addr[:57] + "..."
            known[addr] = (None, f"ethAddress {shown!r} is not a valid address")
    for addr, good in zip(shaped, checksummed(shaped), strict=True):
        digits = addr[2:]
        if digits != good[2:] and digits not in (digits.lower(), digits.upper()):
            known[addr] = (None, f"ethAddress {addr!r} has an invalid EIP-55 checksum")
        else:
            known[addr] = (good, None)
    if len(_VERDICTS) > 65_536:  # bounded, as the lru_cache it replaces was
        _VERDICTS.clear()
    _VERDICTS.update(known)
    return [known[a] for a in addrs]


# Shaped strings the spec names: a worker's ``host:port`` (port 1-65535), a ticket's
# addresses (hex, not checksummed: any case), its transaction hash and its price.
_SHAPES = {
    _HOSTPORT: (re.compile(r"\S+:([0-9]{1,5})"), "host:port"),
    _HEX_ADDR: (re.compile(r"0x[0-9a-fA-F]{40}"), "a hex address (0x and 40 hex digits)"),
    _TX_HASH: (re.compile(r"0x[0-9a-fA-F]{64}"), "a transaction hash (0x and 64 hex digits)"),
    _RATIONAL: (re.compile(r"[0-9]+/0*[1-9][0-9]*"), "a rational 'numerator/denominator'"),
}
_PROB_MAX = 2**256
_INT_LIMITS = {
    _I64: (_INT64_MAX, "its column (int64)"),
    _FEE: (_INT64_MAX, "one event's fees (int64)"),
    _WEI_KIND: (_WEI_MAX, "its column (decimal128(38,0))"),
    _PROB: (_PROB_MAX, "a probability (2^256)"),
}


def _describe(value: Any) -> str:
    """A short JSON-flavoured description of a value, for reasons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean " + ("true" if value else "false")
    if isinstance(value, int):
        text = str(value)
        return "integer " + (text if len(text) <= 60 else text[:57] + "...")
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return "string " + repr(value if len(value) <= 60 else value[:57] + "...")
    return "an array" if isinstance(value, list) else "an object"


def _value_problem(key: str, kind: str, value: Any) -> str | None:
    """Why a payload value an event type owns has the wrong type, range or shape, if it
    does (``ethAddress`` checksums aside: :func:`_checksum_column`)."""
    if kind in _STRING_KINDS:
        if not isinstance(value, str):
            return f"field {key!r} must be a string, got {_describe(value)}"
        return _shape_problem(key, kind, value)
    if isinstance(value, float):
        return f"field {key!r} is a float ({value!r}), expected an integer"
    if type(value) is not int or value < 0:
        shown = value if type(value) is int else _describe(value)
        return f"field {key!r} must be a non-negative integer, got {shown}"
    if kind != _BIG and value > _INT_LIMITS[kind][0]:
        return f"field {key!r} = {value} is too large for {_INT_LIMITS[kind][1]}"
    return None


@lru_cache(maxsize=65_536)
def _shape_problem(key: str, kind: str, value: str) -> str | None:
    """Why a string value does not have its kind's shape (None for unshaped kinds)."""
    if kind not in _SHAPES:
        return None
    pattern, what = _SHAPES[kind]
    m = pattern.fullmatch(value)
    if m is not None and (kind != _HOSTPORT or 1 <= int(m[1]) <= 65535):
        return None
    shown = value if len(value) <= 60 else value[:57] + "..."
    return f"field {key!r} {shown!r} is not {what}"
