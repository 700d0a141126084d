"""Canonical event bytes, ``payload_json`` and the ``content_sha256`` digests.

``payload_json`` is ``json.dumps(payload, sort_keys=True, separators=(",", ":"))`` and
``content_sha256`` the XXH3-128 of the event's canonical text. The fast path cuts both
out of ONE msgspec encode of the whole file (:func:`_canonical_whole`); the row-by-row
form (:func:`_canonical`) is the fallback and what the slow path uses. They must give the
same bytes, which is why they live side by side.
"""

from __future__ import annotations

import binascii
import json
import threading
from collections.abc import Iterable, Sequence
from hashlib import sha256
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from xxhash import xxh3_128_digest, xxh3_128_hexdigest

from openpool.ingest.reader.checks import _DT_FORMAT
from openpool.ingest.reader.structs import _ENCODE, _ENCODER


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
        # memoryview.__getitem__ is overloaded (index | slice); mypy cannot pick for map
        hashes = _content_hashes(map(text.__getitem__, spans), n)  # type: ignore[arg-type]
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
