"""Typed events -> the EVENTS table and the rejections, one column at a time.

Shared by both paths: the fast path hands it every event of the file, the slow path the
elements it could type (reduced ones carry their canonical bytes). Each rule is a row mask
over the whole column, so no Python code runs per event on a clean file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from openpool.ingest.reader.canonical import _canonical, _canonical_whole, _content_hashes
from openpool.ingest.reader.checks import (
    _checksum_column,
    _parse_times,
    _shape_problem,
    _uuid_shaped,
    _value_problem,
)
from openpool.ingest.reader.rules import (
    _CHECKED_FIELDS,
    _COLUMNS,
    _COMMON_TYPES,
    _KIND,
    _OPTIONAL_FIELDS,
    _TYPES_BY_NODE,
    _UNCOLUMNED,
)
from openpool.ingest.reader.structs import _ABSENT_INT, _INT64_MAX, _INT_COLUMN_KEYS
from openpool.money import WEI
from openpool.tables import EVENTS

_MS_TO_NS = 1_000_000
_TRANSCODE_RT_MAX = _INT64_MAX // _MS_TO_NS  # largest ms response time whose ns fits int64


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
                    _mismatch(events, attr, want),
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
    dense: dict[str, tuple[Any, ...]] = {}  # column key -> its value on every row
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
        if key in _UNCOLUMNED:  # no column: presence, then each value (on its rows only)
            values = list(map(attrgetter(key), src))
            absent = [i for i, v in enumerate(values) if v is None]
            missing = np.zeros(n, dtype=bool)
            missing[rows[absent] if sparse else [i for i in absent if owned[i]]] = True
            checks.append(_value_check(key, values, rows if sparse else None, owned))
        else:
            if not sparse and not dense:  # every dense column's values in one pass
                owned_keys = {k for spec in types.values() for k in spec}
                dense = _transposed(payloads, [k for k in _COLUMNS if k in owned_keys])
            arr = _column(src, key, None if sparse else dense.get(key))
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
            if key == "connection":
                checks.append(_shape_check(key, arr))
        if missing.any() and key not in _OPTIONAL_FIELDS:
            checks.append((missing, _missing(events, node_type, key)))
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


_Check = tuple[np.ndarray, Callable[[int], str]]


def _value_check(key: str, values: list[Any], rows: np.ndarray | None, owned: np.ndarray) -> _Check:
    """Rows whose present ``key`` value is wrong, and why. ``values`` are the owning rows'
    (``rows`` their positions) or, when ``rows`` is None, every row's."""
    kind = _KIND[key]
    where = range(len(values)) if rows is None else rows.tolist()
    found = {
        at: problem
        for at, v in zip(where, values, strict=True)
        if v is not None
        and (rows is not None or owned[at])
        and (problem := _value_problem(key, kind, v)) is not None
    }
    mask = np.zeros(len(owned), dtype=bool)
    mask[list(found)] = True
    return mask, found.__getitem__


def _shape_check(key: str, arr: pa.Array) -> _Check:
    """Rows of the string column ``arr`` (null: not owned or absent) whose value does not
    have ``key``'s shape; judged once per distinct value (a file names few)."""
    distinct = pc.unique(arr.drop_null())
    problems = [_shape_problem(key, _KIND[key], v) for v in distinct.to_pylist()]
    if not any(problems):
        return np.zeros(len(arr), dtype=bool), str
    reasons = pc.take(pa.array(problems, pa.string()), pc.index_in(arr, value_set=distinct))
    mask = pc.is_valid(reasons).to_numpy(zero_copy_only=False)
    return mask, lambda i: reasons[i].as_py()


def _valid(arr: pa.Array) -> np.ndarray:
    """Row mask of the non-null values of ``arr``, read from its validity bitmap."""
    n = len(arr)
    if arr.null_count == 0:
        return np.ones(n, dtype=bool)
    if arr.null_count == n or arr.buffers()[0] is None:
        return np.zeros(n, dtype=bool)
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, count=arr.offset + n, bitorder="little")[arr.offset :].astype(bool)


def _transposed(payloads: Sequence[Any], keys: list[str]) -> dict[str, tuple[Any, ...]]:
    """Each of ``keys``' values on every payload, read in one C-level pass (one
    ``attrgetter`` call per payload for all keys, then transposed by ``zip``) instead of
    one pass per key."""
    if len(keys) == 1:
        return {keys[0]: tuple(map(attrgetter(keys[0]), payloads))}
    rows = map(attrgetter(*keys), payloads)
    return dict(zip(keys, zip(*rows, strict=True), strict=True))


def _column(payloads: Sequence[Any], key: str, read: tuple[Any, ...] | None = None) -> pa.Array:
    """The ``key`` values of ``payloads`` as the column's Arrow type (absent = null).

    ``read``: those values, when already read (:func:`_transposed`). Non-negative int64
    keys go through numpy (absent is -1, see ``_Payload``); a value beyond int64 (a
    slow-path fee up to decimal128) takes the exact Python path.
    """
    typ = _COLUMNS[key][1]
    n = len(payloads)
    if key not in _INT_COLUMN_KEYS:
        return pa.array(map(attrgetter(key), payloads) if read is None else read, typ, size=n)
    try:
        if read is None:
            ints = np.fromiter(map(attrgetter(key), payloads), np.int64, n)
        else:
            ints = np.array(read, dtype=np.int64)
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


def _mismatch(events: Sequence[Any], attr: str, want: str) -> Callable[[int], str]:
    """The reason for element ``i`` whose ``attr`` is not the partition's ``want``."""
    return lambda i: f"{attr} {getattr(events[i], attr)!r} does not match partition {want!r}"


def _missing(events: Sequence[Any], node_type: str, key: str) -> Callable[[int], str]:
    """The reason for element ``i`` whose event type requires ``key`` and lacks it."""
    return lambda i: f"{node_type} {events[i].EventType} missing {key}"
