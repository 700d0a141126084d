"""The slow path: whole-file problems and the per-element examination.

Taken only when the fast path's typed decode of the whole file fails. It first asks
whether the file is a JSON array at all (else: quarantine, with a reason an operator can
act on), then decodes each element typed on its own; the elements that still fail are
examined in Python to name what is wrong, or accepted in reduced form (e.g. unknown event
types, whose payload the typed structs cannot describe). Everything it types goes through
the same column checks as the fast path, so an element's verdict does not depend on its
neighbours.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from openpool.ingest.reader.build import _build
from openpool.ingest.reader.canonical import _dumps
from openpool.ingest.reader.checks import _describe, _value_problem
from openpool.ingest.reader.depth import _bounded_text
from openpool.ingest.reader.result import (
    FileResult,
    _quarantined,
    _rejected_table,
    _rejection,
)
from openpool.ingest.reader.rules import _TOP_KEYS, _TYPES_BY_NODE
from openpool.ingest.reader.structs import (
    _ANY_DECODER,
    _DECODE_ERRORS,
    _INT64_MAX,
    _RAW_DECODER,
    _RAW_LIST_DECODER,
    _decoders,
    _Event,
    _Payload,
)


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
        except _DECODE_ERRORS:
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
    return FileResult(table, _rejected_table(rows), len(raws))


_TOO_DEEP = "JSON nested too deeply to parse"


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
    text, cut = _bounded_text(data)
    try:
        _RAW_LIST_DECODER.decode(text)
    except RecursionError:
        return _TOO_DEEP
    except msgspec.ValidationError:
        pass  # valid JSON (checked below) but not an array
    except msgspec.DecodeError as e:
        return _syntax_reason(data, offset, str(e), cut)
    else:
        return None
    try:
        value = _RAW_DECODER.decode(text)
    except msgspec.DecodeError as e:
        return _syntax_reason(data, offset, str(e), cut)
    except RecursionError:
        return _TOO_DEEP
    first = bytes(value)[:1]
    kind = {b"{": "an object", b'"': "a string", b"t": "a boolean", b"f": "a boolean"}.get(
        first, "null" if first == b"n" else "a number"
    )
    return f"top-level value is {kind}, expected an array"


def _syntax_reason(data: bytes, offset: int, message: str, cut: bool = False) -> str:
    """A readable JSON syntax error with byte offsets relative to the original file.

    ``cut``: the message is about ``data`` cut where it nests too deeply (``depth``), so
    running out of input there means the decoder reached the cut.
    """
    if "truncated" in message:
        if cut:
            return _TOO_DEEP
        try:
            json.loads(data)
        except (ValueError, RecursionError):
            return f"invalid JSON: input ends early (truncated at byte {len(data) + offset})"
        return "invalid JSON: contains an unpaired UTF-16 surrogate escape"
    message = re.sub(r"\(byte (\d+)\)", lambda m: f"at byte {int(m.group(1)) + offset}", message)
    return "invalid JSON: " + message.removeprefix("JSON is malformed: ")


@dataclass
class _Bad:
    reason: str
    event_id: str | None = None
    event_type: str | None = None


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
        problem = _value_problem(key, kind, value)
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
