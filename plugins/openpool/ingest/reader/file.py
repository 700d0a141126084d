"""Reading one file: the one verdict function, and the fast path behind it.

Fast path: msgspec decodes the whole file straight into typed structs in one C call; the
semantic rules are then checked column-wise (``build``). Only when that typed decode fails
does the file go element by element (``slow``). Both sit behind :func:`verdicts`, so a
caller (a test, a benchmark) can force either one and compare them. The typed decode needs
no depth guard: it never descends below the structs (see ``depth``).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from openpool.errors import FastPathUnavailable
from openpool.ingest.reader.build import _build
from openpool.ingest.reader.result import FileResult, _rejected_table, _rejection
from openpool.ingest.reader.slow import _read_elementwise
from openpool.ingest.reader.structs import _DECODE_ERRORS, _RAW_LIST_DECODER, _decoders
from openpool.tables import REJECTED

ReadPath = Literal["auto", "fast", "slow"]
_PATHS = get_args(ReadPath)
_BOM = b"\xef\xbb\xbf"


def read_file(data: bytes, source_key: str, node_type: str, region: str) -> FileResult:
    """Parse and validate one event file from the ``node_type``/``region`` partition.

    Never raises on bad input: a file that is not a JSON array is reported through
    ``quarantine_reason``; a bad element is rejected with a reason while the rest of the
    file is still used.
    """
    return verdicts(data, source_key, node_type, region)


def verdicts(
    data: bytes, source_key: str, node_type: str, region: str, path: ReadPath = "auto"
) -> FileResult:
    """Every element's verdict (accepted row or rejection), or the file's quarantine.

    ``path`` picks who judges: ``"auto"`` (what :func:`read_file` does) takes the fast path
    and falls back to the slow one only when the typed decode of the whole file fails;
    ``"slow"`` goes element by element whatever the file; ``"fast"`` takes only the fast
    path and raises :class:`~openpool.errors.FastPathUnavailable` where ``"auto"`` would
    fall back, so a caller comparing the paths knows the fast one really ran. On any file
    the fast path reads, ``"slow"`` gives an equal FileResult (tests/test_reader_paths.py).
    """
    if path not in _PATHS:
        raise ValueError(f"path must be one of {', '.join(_PATHS)}, got {path!r}")
    data = bytes(data)
    offset = 0
    if data.startswith(_BOM):
        data, offset = data[len(_BOM) :], len(_BOM)
    if path != "slow":
        file_decoder, _ = _decoders(node_type, region)
        try:
            events = file_decoder.decode(data)
        except _DECODE_ERRORS as e:
            if path == "fast":
                raise FastPathUnavailable(source_key, f"{type(e).__name__}: {e}") from e
        else:
            return _read_typed(events, data, source_key, node_type, region)
    return _read_elementwise(data, offset, source_key, node_type, region)


def _read_typed(
    events: list[Any], data: bytes, source_key: str, node_type: str, region: str
) -> FileResult:
    """The fast path, once the whole (BOM-stripped) file ``data`` decoded as ``events``."""
    n = len(events)
    table, bad = _build(events, range(n), None, source_key, node_type, region)
    if not bad:
        return FileResult(table, REJECTED.empty_table(), n)
    raws = _RAW_LIST_DECODER.decode(data)  # cannot fail: the typed decode just succeeded
    rows = [
        _rejection(source_key, i, raws[i], events[i].ID, events[i].EventType, r) for i, r in bad
    ]
    return FileResult(table, _rejected_table(rows), n)
