"""Read one orchestrator event file (a JSON array) into Arrow tables, validating every event.

Design, because the reader sits on the hot path of every ingest run:

* Fast path: msgspec decodes the whole file straight into typed structs in one C call. The
  struct types carry the type rules (integers stay exact and never come from floats, no
  nulls, non-negative, int64 bounds, NodeType/Region equal to the partition's), so a clean
  file needs no Python-level check per field.
  Semantic rules (partition, RFC 3339 time, UUID shape, per-type required fields,
  addresses) are then checked column-wise with pyarrow.compute.
* Slow path, only when the typed decode fails: the file is split into raw element texts;
  each element is decoded typed on its own, and the ones that still fail are examined in
  Python to produce a specific reason (or accepted, e.g. unknown event types whose payload
  the typed structs cannot describe). The column-wise checks are shared by both paths, so
  a given element gets the same verdict whichever path it takes.
* ``payload_json`` is the canonical form ``json.dumps(obj, sort_keys=True,
  separators=(",", ":"))`` of the payload; ``content_sha256`` is the XXH3-128 digest (32
  hex digits, :func:`content_digest`) of the event's canonical form. (The column keeps its
  name from when it held SHA-256, whose per-event cost dominated the reader; dedup still
  recognises SHA-256 digests stored before the change, see :func:`legacy_content_sha256`.)
  On the fast path msgspec encodes the whole file's typed events once, which gives those
  exact bytes (struct fields are declared in sorted order, values are only ints and
  strings); the events and payloads are then located in that one buffer with vectorised
  byte comparisons, so no Python code runs per event. When a file contains non-ASCII text
  or DEL the events are re-serialised row by row with ``json.dumps`` so the bytes (and
  digests) are the same either way.

Choices: a UTF-8 byte-order mark is stripped and the file accepted (Go never writes one, but
re-uploads through other tools may add it; it carries no data). IDs must have UUID shape
(8-4-4-4-12 hex digits, any version, case kept as sent); anything else is rejected, since the
ID is the deduplication key. ``ethAddress`` is accepted when it is EIP-55 checksummed or
carries no checksum at all (all-lowercase or all-uppercase hex) and is stored checksummed; a
mixed-case address with a wrong checksum is rejected. Unknown top-level keys are tolerated
(they are part of ``content_sha256``), as are unknown payload keys (kept in
``payload_json``). A JSON syntax error, invalid UTF-8 or nesting deeper than the decoder's
limit anywhere in the file quarantines the whole file: it is not a JSON document.
"""

from __future__ import annotations

import binascii
import json
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from eth_utils import to_checksum_address
from xxhash import xxh3_128_digest, xxh3_128_hexdigest

from openpool.money import WEI
from openpool.tables import EVENTS, REJECTED, TS

__all__ = [
    "RAW_JSON_LIMIT",
    "FileResult",
    "content_digest",
    "legacy_content_sha256",
    "read_file",
]

RAW_JSON_LIMIT = 10_000  # characters of an element's text kept with its rejection

_INT64_MAX = 2**63 - 1
_WEI_MAX = 10**38 - 1  # decimal128(38, 0)
_MS_TO_NS = 1_000_000
_TRANSCODE_RT_MAX = _INT64_MAX // _MS_TO_NS  # largest ms response time whose ns fits int64

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
_TOP_KEYS = ("DT", "EventType", "ID", "NodeType", "Payload", "Region", "Version")

# ---------------------------------------------------------------------------------------
# Typed structs for the fast path. Every payload key the spec names is declared (sorted, so
# msgspec encodes canonical key order); a key that is absent decodes to its default and is
# omitted again on encode, and an explicit JSON null is a type error (sent to the slow path).
# The default is None, except -1 for the non-negative int64 columns: a value they can never
# hold, which lets those columns go to numpy without a Python-level None check.

_NonNegInt64 = Annotated[int, msgspec.Meta(ge=0, le=_INT64_MAX)]
_NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=_INT64_MAX)]

_FAST_PAYLOAD_TYPES: dict[str, Any] = {
    "computeUnits": _NonNegInt64,
    "connection": str,
    "creationRound": int,
    "duration": _NonNegInt64,
    "ethAddress": str,
    "faceValue": _NonNegInt,
    "fees": _NonNegInt64,  # larger fees (up to decimal128) are legal but take the slow path
    "modelID": str,
    "pipeline": str,
    "pricePerComputeUnit": _NonNegInt64,
    "pricePerPixel": str,
    "realTimeRatio": _NonNegInt64,
    "recipient": str,
    "requestID": str,
    "responseTime": _NonNegInt64,
    "sender": str,
    "txHash": str,
    "winProb": int,
}
_ABSENT_INT = -1
_INT_COLUMN_KEYS = frozenset(k for k, t in _FAST_PAYLOAD_TYPES.items() if t is _NonNegInt64)
_Payload = msgspec.defstruct(
    "_Payload",
    [
        (name, typ, _ABSENT_INT if name in _INT_COLUMN_KEYS else None)
        for name, typ in sorted(_FAST_PAYLOAD_TYPES.items())
    ],
    kw_only=True,
    omit_defaults=True,
    forbid_unknown_fields=True,
    gc=False,
)
_Event = msgspec.defstruct(
    "_Event",
    [
        ("DT", str),
        ("EventType", str),
        ("ID", str),
        ("NodeType", str),
        ("Payload", _Payload),
        ("Region", str),
        ("Version", _Int64),
    ],
    forbid_unknown_fields=True,
    gc=False,
)


@lru_cache(maxsize=64)
def _decoders(node_type: str, region: str) -> tuple[msgspec.json.Decoder, msgspec.json.Decoder]:
    """(file decoder, element decoder) for one partition.

    NodeType and Region are typed as the partition's literal values, so the fast path needs
    no per-event partition check: a mismatch fails the typed decode and is explained later.
    """
    event = msgspec.defstruct(
        "_PartitionEvent",
        [
            ("DT", str),
            ("EventType", str),
            ("ID", str),
            ("NodeType", Literal[node_type]),  # type: ignore[valid-type]
            ("Payload", _Payload),
            ("Region", Literal[region]),  # type: ignore[valid-type]
            ("Version", _Int64),
        ],
        forbid_unknown_fields=True,
        gc=False,
    )
    return msgspec.json.Decoder(list[event]), msgspec.json.Decoder(event)


_RAW_LIST_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_DECODER = msgspec.json.Decoder(msgspec.Raw)
_ANY_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
_ENCODE = _ENCODER.encode


class _Scratch(threading.local):
    """Per-thread buffers reused from file to file by the whole-file path.

    Fresh multi-megabyte buffers cost a page fault per 4 KiB on first touch, which is a
    noticeable share of the per-event cost; these are allocated once per thread.
    """

    def __init__(self) -> None:
        self.text = bytearray()
        self._mask = np.empty(0, dtype=bool)

    def mask(self, n: int) -> np.ndarray:
        if len(self._mask) < n:
            self._mask = np.empty(max(n, 2 * len(self._mask)), dtype=bool)
        return self._mask[:n]


_scratch = _Scratch()

# ---------------------------------------------------------------------------------------
# Per-type payload rules: which payload keys an event type owns (required, validated and
# copied into typed columns). Keys a type does not own stay only in payload_json.

_STR, _ADDR, _REQ, _I64, _WEI_KIND, _BIG = "str", "addr", "req", "i64", "wei", "big"

_JOB_TRANSCODE = {
    "computeUnits": _I64,
    "duration": _I64,
    "ethAddress": _ADDR,
    "fees": _WEI_KIND,
    "pricePerComputeUnit": _WEI_KIND,
    "realTimeRatio": _I64,
    "responseTime": _I64,
}
_JOB_RECEIVED_AI = {"ethAddress": _ADDR, "modelID": _STR, "pipeline": _STR, "requestID": _REQ}
_JOB_AI = {
    "computeUnits": _I64,
    "fees": _WEI_KIND,
    "modelID": _STR,
    "pipeline": _STR,
    "pricePerComputeUnit": _WEI_KIND,
    "requestID": _REQ,
    "responseTime": _I64,
}
_CONNECTION = {"connection": _STR, "ethAddress": _ADDR}
_COMMON_TYPES: dict[str, dict[str, str]] = {
    "worker-connected": _CONNECTION,
    "worker-disconnected": _CONNECTION,
    "orchestrator-reset": {},
    "ticket-redeemed": {"faceValue": _BIG},
}
_TYPES_BY_NODE: dict[str, dict[str, dict[str, str]]] = {
    "transcode": {"job-processed": _JOB_TRANSCODE, **_COMMON_TYPES},
    "ai": {"job-received": _JOB_RECEIVED_AI, "job-processed": _JOB_AI, **_COMMON_TYPES},
}

# payload key -> (column, Arrow type); responseTime is special-cased (unit depends on type).
_COLUMNS: dict[str, tuple[str, pa.DataType]] = {
    "ethAddress": ("eth_address", pa.string()),
    "requestID": ("request_id", pa.string()),
    "pipeline": ("pipeline", pa.string()),
    "modelID": ("model_id", pa.string()),
    "connection": ("connection", pa.string()),
    "fees": ("fees_wei", WEI),
    "pricePerComputeUnit": ("price_per_compute_unit_wei", WEI),
    "computeUnits": ("compute_units", pa.int64()),
    "duration": ("duration_ms", pa.int64()),
    "responseTime": ("response_time_ns", pa.int64()),
    "realTimeRatio": ("real_time_ratio", pa.int64()),
}
_CHECKED_FIELDS = (*_COLUMNS, "faceValue")
# Keys a type owns (validated when present) that may be absent: a job with no response
# time was still done, so it is paid; analytics count it in ``excluded_jobs``.
_OPTIONAL_FIELDS = frozenset({"responseTime"})


@dataclass
class FileResult:
    """What one file yields. Every array element lands in exactly one of the two tables."""

    events: pa.Table  # schema EVENTS: accepted events of this file, in file order
    rejected: pa.Table  # schema REJECTED (rejected_at_version null; the caller fills it)
    quarantine_reason: str | None = None  # whole file unparseable; both tables then empty

    @property
    def element_count(self) -> int:
        """Elements read from the array (accepted + rejected)."""
        return self.events.num_rows + self.rejected.num_rows


# msgspec and json bound nesting by the interpreter's recursion limit, which some libraries
# raise (py_ecc, imported with web3 by the CLI, sets 100000): deep enough for a 60,000-deep
# file to overflow the C stack and kill the process. While it decodes, the reader caps the
# limit at the interpreter's default, so such a file is quarantined instead.
_DEPTH_LIMIT = 1000
_limit_lock = threading.Lock()
_limit_state = {"users": 0, "saved": 0}


@contextmanager
def _bounded_recursion() -> Iterator[None]:
    with _limit_lock:
        if _limit_state["users"] == 0:
            _limit_state["saved"] = sys.getrecursionlimit()
            if _limit_state["saved"] > _DEPTH_LIMIT:
                sys.setrecursionlimit(_DEPTH_LIMIT)
        _limit_state["users"] += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_state["users"] -= 1
            if _limit_state["users"] == 0 and _limit_state["saved"] > _DEPTH_LIMIT:
                sys.setrecursionlimit(_limit_state["saved"])


def read_file(data: bytes, source_key: str, node_type: str, region: str) -> FileResult:
    """Parse and validate one event file from the ``node_type``/``region`` partition.

    Never raises on bad input: a file that is not a JSON array is reported through
    ``quarantine_reason``; a bad element is rejected with a reason while the rest of the
    file is still used.
    """
    with _bounded_recursion():
        return _read_file(data, source_key, node_type, region)


def _read_file(data: bytes, source_key: str, node_type: str, region: str) -> FileResult:
    data = bytes(data)
    offset = 0
    if data.startswith(b"\xef\xbb\xbf"):
        data, offset = data[3:], 3
    file_decoder, _ = _decoders(node_type, region)
    try:
        events = file_decoder.decode(data)
    except (msgspec.MsgspecError, UnicodeDecodeError, ValueError, RecursionError):
        return _read_elementwise(data, offset, source_key, node_type, region)
    n = len(events)
    table, bad = _build(events, range(n), None, source_key, node_type, region)
    if not bad:
        return FileResult(table, REJECTED.empty_table())
    raws = _RAW_LIST_DECODER.decode(data)  # cannot fail: the typed decode just succeeded
    rows = [
        _rejection(source_key, i, raws[i], events[i].ID, events[i].EventType, r) for i, r in bad
    ]
    return FileResult(table, _rejected_table(rows))


# ---------------------------------------------------------------------------------------
# Whole-file problems and the per-element path


def _read_elementwise(
    data: bytes, offset: int, source_key: str, node_type: str, region: str
) -> FileResult:
    """The typed decode failed: find out whether the file or some elements are at fault."""
    reason = _file_problem(data, offset)
    if reason is not None:
        return _quarantined(reason)
    raws = _RAW_LIST_DECODER.decode(data)  # _file_problem checked that this succeeds
    _, event_decoder = _decoders(node_type, region)
    events: list[Any] = []
    index: list[int] = []
    canon: list[tuple[bytes, bytes] | None] = []
    rows: list[dict[str, Any]] = []
    for i, raw in enumerate(raws):
        try:
            ev = event_decoder.decode(raw)
        except (msgspec.MsgspecError, UnicodeDecodeError, ValueError, RecursionError):
            pass
        else:
            events.append(ev)
            index.append(i)
            canon.append(None)
            continue
        verdict = _examine(raw)
        if isinstance(verdict, _Bad):
            rows.append(
                _rejection(source_key, i, raw, verdict.event_id, verdict.event_type, verdict.reason)
            )
        else:
            events.append(verdict[0])
            index.append(i)
            canon.append(verdict[1])
    table, bad = _build(events, index, canon, source_key, node_type, region)
    for pos, reason in bad:
        ev = events[pos]
        rows.append(
            _rejection(source_key, index[pos], raws[index[pos]], ev.ID, ev.EventType, reason)
        )
    rows.sort(key=lambda r: r["source_index"])
    return FileResult(table, _rejected_table(rows))


def _file_problem(data: bytes, offset: int) -> str | None:
    """Why the (BOM-stripped) body is not a JSON array, or None if it is one."""
    if not data:
        return "empty file (0 bytes)" if not offset else "empty file (only a byte-order mark)"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "file starts with a UTF-16/UTF-32 byte-order mark; expected UTF-8 JSON"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"not valid UTF-8: {e.reason} at byte {e.start + offset}"
    if not data.strip(b" \t\r\n"):
        return "empty file (only whitespace)"
    try:
        _RAW_LIST_DECODER.decode(data)
    except RecursionError:
        return "JSON nested too deeply to parse"
    except msgspec.ValidationError:
        pass  # valid JSON (checked below) but not an array
    except msgspec.DecodeError as e:
        return _syntax_reason(data, offset, str(e))
    else:
        return None
    try:
        value = _RAW_DECODER.decode(data)
    except msgspec.DecodeError as e:
        return _syntax_reason(data, offset, str(e))
    except RecursionError:
        return "JSON nested too deeply to parse"
    first = bytes(value)[:1]
    kind = {b"{": "an object", b'"': "a string", b"t": "a boolean", b"f": "a boolean"}.get(
        first, "null" if first == b"n" else "a number"
    )
    return f"top-level value is {kind}, expected an array"


def _syntax_reason(data: bytes, offset: int, message: str) -> str:
    """A readable JSON syntax error with byte offsets relative to the original file."""
    if "truncated" in message:
        try:
            json.loads(data)
        except (ValueError, RecursionError):
            return f"invalid JSON: input ends early (truncated at byte {len(data) + offset})"
        return "invalid JSON: contains an unpaired UTF-16 surrogate escape"
    message = re.sub(r"\(byte (\d+)\)", lambda m: f"at byte {int(m.group(1)) + offset}", message)
    return "invalid JSON: " + message.removeprefix("JSON is malformed: ")


def _quarantined(reason: str) -> FileResult:
    return FileResult(EVENTS.empty_table(), REJECTED.empty_table(), reason)


@dataclass
class _Bad:
    reason: str
    event_id: str | None = None
    event_type: str | None = None


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


def _examine(raw: msgspec.Raw) -> _Bad | tuple[Any, tuple[bytes, bytes]]:
    """Explain why one element fails the typed decode, or accept it in reduced typed form.

    Accepted elements come back as an ``_Event`` holding only the payload keys their type
    owns (already type-checked), plus the canonical payload and event bytes computed from
    the full element, so nothing the element carried is lost.
    """
    try:
        obj = _ANY_DECODER.decode(raw)
    except msgspec.ValidationError as e:
        return _Bad(f"element holds a number that cannot be represented exactly: {e}")
    except RecursionError:
        return _Bad("element is nested too deeply")
    if not isinstance(obj, dict):
        return _Bad(f"element is not an object, got {_describe(obj)}")
    ident = obj.get("ID") if isinstance(obj.get("ID"), str) else None
    etype = obj.get("EventType") if isinstance(obj.get("EventType"), str) else None
    for key in _TOP_KEYS:
        if key not in obj:
            return _Bad(f"missing field {key!r}", ident, etype)
    for key in ("DT", "EventType", "ID", "NodeType", "Region"):
        if not isinstance(obj[key], str):
            return _Bad(f"field {key!r} must be a string, got {_describe(obj[key])}", ident, etype)
    version = obj["Version"]
    if type(version) is not int:
        return _Bad(f"field 'Version' must be an integer, got {_describe(version)}", ident, etype)
    if not -(2**63) <= version <= _INT64_MAX:
        return _Bad(
            f"field 'Version' {version} is out of range for its column (int64)", ident, etype
        )
    payload = obj["Payload"]
    if not isinstance(payload, dict):
        return _Bad(f"field 'Payload' must be an object, got {_describe(payload)}", ident, etype)
    owned = _TYPES_BY_NODE.get(obj["NodeType"], {}).get(obj["EventType"], {})
    kept: dict[str, Any] = {}
    for key, kind in owned.items():
        if key not in payload:
            continue  # reported as missing by the column checks
        value = payload[key]
        problem = _field_problem(key, kind, value)
        if problem is not None:
            return _Bad(problem, ident, etype)
        kept[key] = value
    try:
        payload_json = _dumps(payload)
        event_json = _dumps(obj)
    except (ValueError, RecursionError) as e:
        return _Bad(f"element cannot be serialised canonically: {e}", ident, etype)
    top = {k: obj[k] for k in _TOP_KEYS if k != "Payload"}
    return _Event(Payload=_Payload(**kept), **top), (payload_json, event_json)


def _field_problem(key: str, kind: str, value: Any) -> str | None:
    """Why a payload value an event type owns has the wrong type or range, if it does."""
    if kind in (_STR, _ADDR, _REQ):
        if not isinstance(value, str):
            return f"field {key!r} must be a string, got {_describe(value)}"
        return None
    if isinstance(value, float):
        return f"field {key!r} is a float ({value!r}), expected an integer"
    if type(value) is not int or value < 0:
        shown = value if type(value) is int else _describe(value)
        return f"field {key!r} must be a non-negative integer, got {shown}"
    if kind == _I64 and value > _INT64_MAX:
        return f"field {key!r} = {value} is too large for its column (int64)"
    if kind == _WEI_KIND and value > _WEI_MAX:
        return f"field {key!r} = {value} is too large for its column (decimal128(38,0))"
    return None


# ---------------------------------------------------------------------------------------
# Column-wise validation and table building (shared by both paths)


def _build(
    events: Sequence[Any],
    index: Sequence[int],
    canon: list[tuple[bytes, bytes] | None] | None,
    source_key: str,
    node_type: str,
    region: str,
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """Typed events -> (accepted EVENTS table, [(position in ``events``, reason)]).

    Events decoded with the partition's decoder already match its NodeType and Region.
    ``canon`` marks the others (reduced by the slow path) and carries their precomputed
    (payload JSON, event JSON).
    """
    n = len(events)
    if n == 0:
        return EVENTS.empty_table(), []
    payloads = list(map(attrgetter("Payload"), events))
    dt_arr = pa.array(map(attrgetter("DT"), events), pa.string(), size=n)
    et_arr = pa.array(map(attrgetter("EventType"), events), pa.string(), size=n)
    id_arr = pa.array(map(attrgetter("ID"), events), pa.string(), size=n)
    ver_arr = pa.array(np.fromiter(map(attrgetter("Version"), events), np.int64, n))

    # Each check: (row mask, reason for a flagged row). The first failing check names it.
    checks: list[tuple[pa.Array | np.ndarray, Callable[[int], str]]] = []
    if canon is not None:
        examined = [pos for pos, c in enumerate(canon) if c is not None]
        for attr, want in (("NodeType", node_type), ("Region", region)):
            mask = np.zeros(n, dtype=bool)
            mask[[pos for pos in examined if getattr(events[pos], attr) != want]] = True
            checks.append(
                (
                    mask,
                    lambda i, attr=attr, want=want: (
                        f"{attr} {getattr(events[i], attr)!r} does not match partition {want!r}"
                    ),
                )
            )
    checks.append((pc.equal(pc.binary_length(et_arr), 0), lambda i: "field 'EventType' is empty"))
    checks.append(
        (
            ~_uuid_shaped(id_arr),
            lambda i: (
                f"ID {events[i].ID!r} is not a UUID" if events[i].ID else "field 'ID' is empty"
            ),
        )
    )
    ts, dt_ok = _parse_times(dt_arr)
    checks.append(
        (
            ~dt_ok,
            lambda i: (
                f"DT {events[i].DT!r} is not RFC 3339 UTC with second precision "
                "(YYYY-MM-DDTHH:MM:SSZ)"
            ),
        )
    )

    # Which known event type (of this partition's node type) each row is; null = unknown.
    types = _TYPES_BY_NODE.get(node_type, _COMMON_TYPES)
    type_idx = pc.index_in(et_arr, value_set=pa.array(list(types), pa.string()))
    type_codes = pc.fill_null(type_idx, -1).to_numpy(zero_copy_only=False)
    owned_by: dict[tuple[int, ...], np.ndarray] = {}
    columns: dict[str, pa.Array] = {}
    for key in _CHECKED_FIELDS:
        owners = tuple(t for t, spec in enumerate(types.values()) if key in spec)
        if not owners:  # no event type of this node type carries it
            if key in _COLUMNS:
                columns[key] = pa.nulls(n, _COLUMNS[key][1])
            continue
        if owners not in owned_by:
            lookup = np.zeros(len(types) + 1, dtype=bool)  # last entry: unknown types (-1)
            lookup[list(owners)] = True
            owned_by[owners] = lookup[type_codes]
        owned = owned_by[owners]
        # Values on rows whose type does not own the key stay only in payload_json. Keys
        # of rare types (connection, faceValue) are read from their owning rows only.
        rows = np.flatnonzero(owned)
        sparse = len(rows) < n // 4
        src = list(map(payloads.__getitem__, rows.tolist())) if sparse else payloads
        if key == "faceValue":  # no column (it may exceed decimal128); only presence
            absent = [i for i, v in enumerate(map(attrgetter(key), src)) if v is None]
            missing = np.zeros(n, dtype=bool)
            missing[rows[absent] if sparse else [i for i in absent if owned[i]]] = True
        else:
            arr = _column(src, key)
            if sparse:  # back to one row per event: null where the type does not own it
                where = np.full(n, -1, dtype=np.int64)
                where[rows] = np.arange(len(rows))
                arr = arr.take(pa.array(where, mask=~owned))
            present = _valid(arr)
            if not sparse and (present & ~owned).any():
                arr = pc.if_else(pa.array(owned), arr, pa.nulls(n, arr.type))
                present &= owned
            missing = owned & ~present
            columns[key] = arr
        if missing.any() and key not in _OPTIONAL_FIELDS:
            checks.append(
                (missing, lambda i, key=key: f"{node_type} {events[i].EventType} missing {key}")
            )
    checks.append(
        (
            pc.fill_null(pc.equal(pc.binary_length(columns["requestID"]), 0), False),
            lambda i: f"{node_type} {events[i].EventType} has an empty requestID",
        )
    )
    columns["ethAddress"], addr_bad = _checksum_column(columns["ethAddress"])
    checks.append((pc.is_valid(addr_bad), lambda i: addr_bad[i].as_py()))
    if node_type == "transcode":  # transcode sends milliseconds; the column is nanoseconds
        rt = columns["responseTime"]
        too_big = pc.fill_null(pc.greater(rt, _TRANSCODE_RT_MAX), False)
        checks.append(
            (
                too_big,
                lambda i: (
                    f"field 'responseTime' = {payloads[i].responseTime} ms is too large "
                    "for its column (int64 nanoseconds)"
                ),
            )
        )
        columns["responseTime"] = pc.multiply(pc.if_else(too_big, 0, rt), _MS_TO_NS)

    np_checks = [
        (m if isinstance(m, np.ndarray) else m.to_numpy(zero_copy_only=False), f) for m, f in checks
    ]
    bad_mask = np.zeros(n, dtype=bool)
    for m, _ in np_checks:
        bad_mask |= m
    bad = [
        (pos, next(f(pos) for m, f in np_checks if m[pos]))
        for pos in np.flatnonzero(bad_mask).tolist()
    ]

    whole = _canonical_whole(events, ver_arr, region) if canon is None else None
    if whole is not None:
        payload_json, hashes = whole
    else:
        payload_json, event_json = _canonical(
            payloads, canon, dt_arr, et_arr, id_arr, ver_arr, node_type, region
        )
        hashes = _content_hashes(event_json, n)
    table = pa.table(
        {
            "event_id": id_arr,
            "event_time": ts,
            "event_type": et_arr,
            "node_type": pa.repeat(pa.scalar(node_type, pa.string()), n),
            "region": pa.repeat(pa.scalar(region, pa.string()), n),
            "schema_version": ver_arr,
            "source_key": pa.repeat(pa.scalar(source_key, pa.string()), n),
            "source_index": pa.array(
                np.arange(n, dtype=np.int32) if isinstance(index, range) else index, pa.int32()
            ),
            **{_COLUMNS[key][0]: columns[key] for key in _COLUMNS},
            "payload_json": payload_json,
            "content_sha256": hashes,
        },
        schema=EVENTS,
    )
    if bad:
        table = table.filter(pa.array(~bad_mask))
    return table, bad


def _canonical_whole(
    events: Sequence[Any], versions: pa.Array, region: str
) -> tuple[pa.Array, pa.Array] | None:
    """(payload_json column, content_sha256 column) from ONE encode of the whole file.

    msgspec writes the typed events as ``[{...},{...}]`` in canonical form (fields in
    sorted order, absent payload keys omitted, no spaces): byte for byte what
    ``_canonical`` assembles row by row, without a Python call per event. Each event
    starts with ``{"DT":"`` and its payload with ``"Payload":{``; neither can occur
    inside a JSON string (the quote would be escaped) and fast-path payloads hold only
    scalars, so the spans are found with a few vectorised byte comparisons. An event
    ends with ``},"Region":<region>,"Version":<n>}``, whose length is known from the
    partition's region and the event's ``versions`` value, so the payload's end is
    computed and then checked. The payload texts are cut out through a string-view
    array over the encoded bytes; each event's span is hashed in place.

    Returns None (caller takes the row-by-row path) when the text holds non-ASCII bytes
    or DEL, which ``json.dumps`` escapes and msgspec does not, or if the spans do not
    line up one-to-one with the events.
    """
    n = len(events)
    whole = _scratch.text
    try:
        _ENCODER.encode_into(events, whole)
    except BufferError:  # a view of the previous text is still alive somewhere
        whole = _scratch.text = bytearray()
        _ENCODER.encode_into(events, whole)
    if not whole.isascii() or b"\x7f" in whole or len(whole) >= 2**31:
        return None
    buf = np.frombuffer(whole, dtype=np.uint8)
    if len(buf) < 16 or buf[0] != ord("["):
        return None
    # words[i] = the 8 bytes at i as one integer: a pattern is compared 8 bytes at a time.
    words = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=whole, strides=(1,))
    opens = np.flatnonzero(np.equal(buf, ord("{"), out=_scratch.mask(len(buf))))
    # A payload's "{" follows a colon, an event's a "[" or a comma: each marker is then
    # compared at its own candidates only.
    after_colon = buf[opens - 1] == ord(":")
    starts = opens[~after_colon]
    starts = starts[_matches(words, starts, b'{"DT":"')]
    p_open = opens[after_colon]
    p_open = p_open[_matches(words, p_open - 10, b'"Payload":{')]
    if not len(starts) == len(p_open) == n:
        return None
    # Event i is [starts[i], ends[i]): up to the comma before the next event, or the "]".
    ends = np.empty(n, dtype=np.int64)
    ends[:-1] = starts[1:] - 1
    ends[-1] = len(whole) - 1
    tail = len(b'},"Region":' + _ENCODE(region) + b',"Version":}')
    digits = pc.utf8_length(pc.cast(versions, pa.string())).to_numpy(zero_copy_only=False)
    p_close = ends - tail - digits
    matched = _matches(words, p_close, b'},"Region":"')
    del words  # release its view of the scratch buffer
    if not (
        matched.all()
        and np.all(starts < p_open)
        and np.all(p_open < p_close)
        and np.all(p_close < ends)
        and np.all(buf[ends - 1] == ord("}"))
        and np.all(buf[ends] == np.where(np.arange(n) == n - 1, ord("]"), ord(",")))
    ):
        return None
    payload_json = _views(buf, whole, p_open, p_close + 1).cast(pa.string())
    spans = map(slice, starts.tolist(), ends.tolist())
    # Memoryview slices hash the text in place (slicing the bytearray copies every event).
    with memoryview(whole) as text:
        hashes = _content_hashes(map(text.__getitem__, spans), n)
    return payload_json, hashes


def _matches(words: np.ndarray, at: np.ndarray, pattern: bytes) -> np.ndarray:
    """Mask of positions ``at`` where the text (``words``: 8-byte windows) holds ``pattern``.

    Positions too close to either end to hold a whole multiple of 8 bytes count as no match
    (no marker sits there: the text ends with the last event's Region and Version).
    """
    chunks = -(-len(pattern) // 8)
    ok = (at >= 0) & (at + 8 * (chunks - 1) < len(words))
    last = len(words) - 1
    for j in range(chunks):
        part = pattern[8 * j : 8 * j + 8]
        mask = (1 << (8 * len(part))) - 1
        word = words[np.clip(at + 8 * j, 0, last)]  # (np.take would copy ``words`` first)
        ok &= (word & np.uint64(mask)) == np.uint64(int.from_bytes(part, "little"))
    return ok


def _views(buf: np.ndarray, data: bytes | bytearray, lo: np.ndarray, hi: np.ndarray) -> pa.Array:
    """A string-view array of ``data[lo[i]:hi[i]]`` (``buf`` is ``data`` as uint8).

    Arrow's view layout, 16 bytes a row: int32 length, then either the value itself when
    it has at most 12 bytes (zero-padded), or its first 4 bytes, the data buffer's index
    (0) and the value's int32 offset in that buffer.
    """
    n = len(lo)
    lens = (hi - lo).astype(np.int32)
    views = np.zeros((n, 4), dtype=np.int32)
    views[:, 0] = lens
    if n and int(lo.max()) + 12 <= len(buf):
        # The 12 head bytes as two overlapping 8-byte words (bytes 0-7 and 4-11), the bytes
        # past a short value's end masked to zero.
        words = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=data, strides=(1,))
        nbits = 8 * np.clip(lens, 0, 12).astype(np.uint64)
        ones = ~np.uint64(0)
        first = words[lo] & np.where(nbits >= 64, ones, (np.uint64(1) << nbits) - np.uint64(1))
        rest = np.clip(nbits, 32, 96) - np.uint64(32)  # bits of the second word to keep
        second = words[lo + 4] & np.where(rest >= 64, ones, (np.uint64(1) << rest) - np.uint64(1))
        del words
        head = views.view(np.uint64).reshape(n, 2)  # [length | bytes 0-3], [bytes 4-11]
        head[:, 0] |= first << np.uint64(32)
        head[:, 1] = (first >> np.uint64(32)) | (second >> np.uint64(32) << np.uint64(32))
    else:
        at = lo[:, None] + np.arange(12)
        head = buf[np.minimum(at, len(buf) - 1)]
        head[np.arange(12)[None, :] >= lens[:, None]] = 0
        views.view(np.uint8)[:, 4:] = head
    long = lens > 12
    views[long, 2] = 0
    views[long, 3] = lo[long].astype(np.int32)
    return pa.Array.from_buffers(
        pa.string_view(), n, [None, pa.py_buffer(views), pa.py_buffer(data)]
    )


def _content_hashes(texts: Iterable[bytes | bytearray], n: int) -> pa.Array:
    """The ``content_sha256`` column: XXH3-128 of each canonical event text, in hex.

    One C-level pass (map over the texts, no Python frame per event), the digests
    joined and turned into hex digits vectorised; equal to ``content_digest(text)``.
    """
    digests = b"".join(map(xxh3_128_digest, texts))
    text = binascii.hexlify(digests)
    width = 2 * len(digests) // n if n else 0
    offsets = np.arange(n + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def content_digest(canonical_event: bytes) -> str:
    """The ``content_sha256`` value of an event, given its canonical JSON text."""
    return xxh3_128_hexdigest(canonical_event)


def legacy_content_sha256(events: pa.Table) -> list[str]:
    """SHA-256 (hex) of each accepted event's canonical text, rebuilt from its columns.

    The digest ``content_sha256`` held before it became XXH3-128, so that dedup can compare
    a newcomer with an index entry written by an older version. The canonical text is
    rebuilt from the EVENTS columns, which is exact for every event the reader accepts
    except those with unknown top-level keys (not kept in any column): such an event
    re-sent after the change counts as a conflict instead of a duplicate.
    """
    cols = ["event_time", "event_type", "event_id", "node_type", "payload_json", "region"]
    out = []
    for r in events.select([*cols, "schema_version"]).to_pylist():
        text = (
            b'{"DT":'
            + _dumps(r["event_time"].strftime(_DT_FORMAT))
            + b',"EventType":'
            + _dumps(r["event_type"])
            + b',"ID":'
            + _dumps(r["event_id"])
            + b',"NodeType":'
            + _dumps(r["node_type"])
            + b',"Payload":'
            + r["payload_json"].encode()
            + b',"Region":'
            + _dumps(r["region"])
            + b',"Version":'
            + str(r["schema_version"]).encode()
            + b"}"
        )
        out.append(sha256(text).hexdigest())
    return out


def _canonical(
    payloads: list[Any],
    canon: list[tuple[bytes, bytes] | None] | None,
    dt_arr: pa.Array,
    et_arr: pa.Array,
    id_arr: pa.Array,
    ver_arr: pa.Array,
    node_type: str,
    region: str,
) -> tuple[pa.Array, list[bytes]]:
    """(payload_json column, canonical event bytes per row) in ``json.dumps`` canonical form.

    msgspec encodes each payload struct (sorted fields, absent ones omitted); the event text
    is then assembled column-wise around it. Rows that fail validation get meaningless text
    here, but they are dropped. DT and ID need no escaping once valid, NodeType and Region
    equal the partition's, so only EventType may need JSON escaping.
    """
    pj = list(map(_ENCODE, payloads))
    joined_pj = b"".join(pj)
    if not joined_pj.isascii() or b"\x7f" in joined_pj:  # msgspec writes these raw
        for pos, b in enumerate(pj):
            if not b.isascii() or b"\x7f" in b:
                pj[pos] = _dumps(msgspec.to_builtins(payloads[pos]))
    if canon is not None:
        for pos, c in enumerate(canon):
            if c is not None:
                pj[pos] = c[0]
    pj_arr = pa.array(pj, pa.binary()).cast(pa.string())
    names = pc.unique(et_arr)
    quoted = [_dumps(s).decode() for s in names.to_pylist()]
    et_json = pc.take(pa.array(quoted, pa.string()), pc.index_in(et_arr, value_set=names))
    joined = pc.binary_join_element_wise(
        '{"DT":"',
        dt_arr,
        '","EventType":',
        et_json,
        ',"ID":"',
        id_arr,
        '","NodeType":' + _dumps(node_type).decode() + ',"Payload":',
        pj_arr,
        ',"Region":' + _dumps(region).decode() + ',"Version":',
        pc.cast(ver_arr, pa.string()),
        "}",
        "",
    )
    event_json = joined.cast(pa.binary()).to_pylist()
    if canon is not None:
        for pos, c in enumerate(canon):
            if c is not None:
                event_json[pos] = c[1]
    return pj_arr, event_json


def _dumps(value: Any) -> bytes:
    """The canonical JSON text of ``value``."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _valid(arr: pa.Array) -> np.ndarray:
    """Row mask of the non-null values of ``arr``, read from its validity bitmap."""
    n = len(arr)
    if arr.null_count == 0:
        return np.ones(n, dtype=bool)
    if arr.null_count == n or arr.buffers()[0] is None:
        return np.zeros(n, dtype=bool)
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, count=arr.offset + n, bitorder="little")[arr.offset :].astype(bool)


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


def _column(payloads: Sequence[Any], key: str) -> pa.Array:
    """The ``key`` values of ``payloads`` as the column's Arrow type (absent = null).

    Non-negative int64 keys go through numpy (absent is -1, see ``_Payload``); a value
    beyond int64 (a slow-path fee up to decimal128) takes the exact Python path.
    """
    typ = _COLUMNS[key][1]
    values = map(attrgetter(key), payloads)
    if key not in _INT_COLUMN_KEYS:
        return pa.array(values, typ, size=len(payloads))
    try:
        ints = np.fromiter(values, np.int64, len(payloads))
    except OverflowError:
        exact = [None if v == _ABSENT_INT else v for v in map(attrgetter(key), payloads)]
        return _to_arrow(exact, typ)
    arr = pa.array(ints, pa.int64(), mask=ints < 0)
    return arr if typ == pa.int64() else arr.cast(typ)


def _to_arrow(values: list[Any], typ: pa.DataType) -> pa.Array:
    """Python values (None = absent) as an Arrow array; wei exactly, even beyond int64."""
    if typ == WEI:
        try:
            return pa.array(values, pa.int64()).cast(WEI)
        except (OverflowError, pa.ArrowInvalid):
            return pa.array(values, WEI)
    return pa.array(values, typ)


def _checksum_column(addrs: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(EIP-55 checksummed addresses or null, rejection reason or null), row by row.

    Work is per distinct address (a file names few workers), so it stays cheap.
    """
    distinct = pc.unique(addrs.drop_null())
    names = distinct.to_pylist()
    verdicts = [_checksum(a) for a in names]
    reasons = [v[1] for v in verdicts]
    if all(v[0] == a for v, a in zip(verdicts, names, strict=True)):
        # The usual file: every address already checksummed, none bad; no per-row gather.
        return addrs, pa.nulls(len(addrs), pa.string())
    where = pc.index_in(addrs, value_set=distinct)
    good = pc.take(pa.array([v[0] for v in verdicts], pa.string()), where)
    if not any(reasons):
        return good, pa.nulls(len(addrs), pa.string())
    return good, pc.take(pa.array(reasons, pa.string()), where)


@lru_cache(maxsize=65_536)
def _checksum(addr: str) -> tuple[str | None, str | None]:
    """(checksummed address, None) or (None, reason)."""
    if not _ADDR_RE.fullmatch(addr):
        shown = addr if len(addr) <= 60 else addr[:57] + "..."
        return None, f"ethAddress {shown!r} is not a valid address"
    checksummed = to_checksum_address(addr)
    digits = addr[2:]
    if digits != checksummed[2:] and digits not in (digits.lower(), digits.upper()):
        return None, f"ethAddress {addr!r} has an invalid EIP-55 checksum"
    return checksummed, None


def _rejection(
    source_key: str,
    index: int,
    raw: msgspec.Raw | bytes,
    event_id: str | None,
    event_type: str | None,
    reason: str,
) -> dict[str, Any]:
    return {
        "source_key": source_key,
        "source_index": index,
        "event_id": event_id,
        "event_type": event_type,
        "reason": reason,
        "raw_json": bytes(raw).decode("utf-8", "replace")[:RAW_JSON_LIMIT],
        "rejected_at_version": None,
    }


def _rejected_table(rows: list[dict[str, Any]]) -> pa.Table:
    if not rows:
        return REJECTED.empty_table()
    return pa.Table.from_pylist(rows, schema=REJECTED)
