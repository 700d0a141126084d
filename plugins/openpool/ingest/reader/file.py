"""Reading one file: the fast path, and the fallback to the slow path when it cannot.

Fast path: msgspec decodes the whole file straight into typed structs in one C call; the
semantic rules are then checked column-wise (``build``). Only when that typed decode fails
does the file go element by element (``slow``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from openpool.ingest.reader.build import _build
from openpool.ingest.reader.result import FileResult, _rejected_table, _rejection
from openpool.ingest.reader.slow import _read_elementwise
from openpool.ingest.reader.structs import _DECODE_ERRORS, _RAW_LIST_DECODER, _decoders
from openpool.ingest.schema import REJECTED

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
    except _DECODE_ERRORS:
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
