"""Bounding how deep the decoders nest, without touching the interpreter's recursion limit.

msgspec and json bound nesting by the interpreter's recursion limit, which some libraries
raise (py_ecc, imported with web3 by the CLI, sets 100000): deep enough for a 60,000-deep
file to overflow the C stack and kill the process. The reader used to lower the limit,
process-wide and under a lock, while it decoded; that also cut the limit of every other
thread. Instead, where the limit is above :data:`_DEPTH_LIMIT`, the slow path has the
file's text scanned for the first bracket that opens one level too many and parses only
up to it, so the decoders never go deeper than that. Where the limit is the default (or
lower), the decoders' own RecursionError still decides, exactly as before. The scan costs
about 1 ns a byte, paid only by files the typed decode refused, in such a process.

The fast path needs none of this: its typed decode never descends below the structs (an
array or object where a scalar is due is a type error at once).
"""

from __future__ import annotations

import re
import sys

import numpy as np

# Nesting levels the decoders may reach, where the recursion limit would let them go deeper:
# the interpreter's default limit, which the reader used to impose while it decoded.
_DEPTH_LIMIT = 1000
# After the cut, spaces, so that an escape just before it is read as in the whole text
# (msgspec looks up to 6 bytes past a high surrogate for its pair).
_PAD = b" " * 8


def _bounded_text(data: bytes) -> tuple[bytes, bool]:
    """(text to parse, whether it was cut short) for the whole-file checks.

    The text is ``data``, or, when ``data`` nests deeper than the decoders may go, ``data``
    up to and including the bracket that opens level ``_DEPTH_LIMIT + 1``. A decoder reads
    that text as it would read ``data`` up to there, so a syntax error before the cut is
    reported as before, and a decoder that reaches the cut ("truncated") has found the
    file nested too deeply, where it would have raised RecursionError.
    """
    if sys.getrecursionlimit() <= _DEPTH_LIMIT:
        return data, False  # the decoders' own guard stops them in time
    at = _too_deep_at(data, _DEPTH_LIMIT)
    if at is None:
        return data, False
    return data[: at + 1] + _PAD, True


def _too_deep_at(data: bytes, limit: int) -> int | None:
    """Offset of the first bracket that opens nesting level ``limit + 1``, or None.

    Brackets inside strings do not count; a quote is escaped (not a string's end) when an
    odd run of backslashes precedes it. Exact wherever the text before the bracket is valid
    JSON, which is all a decoder reads before it stops at a syntax error. Vectorised: only
    called for files the typed decode refused, but those may be large; the cheaper
    :func:`_nests_deeper` first rules out the usual file, which nests a few levels.
    """
    if not _nests_deeper(data, limit):
        return None
    buf = np.frombuffer(data, np.uint8)
    quotes = np.flatnonzero(buf == ord('"'))
    after_slash = quotes[(quotes > 0) & (buf[quotes - 1] == ord("\\"))]
    if len(after_slash):
        slashes = np.flatnonzero(buf == ord("\\"))
        run_starts = np.flatnonzero(np.diff(slashes, prepend=-2) != 1)  # indexes in slashes
        last = np.searchsorted(slashes, after_slash - 1)  # the slash just before each quote
        first = slashes[run_starts[np.searchsorted(run_starts, last, side="right") - 1]]
        escaped = after_slash[(after_slash - first) % 2 == 1]
        quotes = np.setdiff1d(quotes, escaped, assume_unique=True)
    is_open = (buf == ord("[")) | (buf == ord("{"))
    brackets = np.flatnonzero(is_open | (buf == ord("]")) | (buf == ord("}")))
    brackets = brackets[np.searchsorted(quotes, brackets) % 2 == 0]  # outside strings
    depth = np.cumsum(np.where(is_open[brackets], 1, -1))
    over = np.flatnonzero(depth > limit)
    return int(brackets[over[0]]) if len(over) else None


_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


def _nests_deeper(data: bytes, limit: int) -> bool:
    """Whether a bracket outside strings opens nesting level ``limit + 1`` (exact where
    :func:`_too_deep_at` is), without finding where: under 1 ns a byte.

    Escapes are dropped (each backslash with the character it escapes), then everything but
    quotes and brackets. In what is left, the bracket at position ``p`` that is the ``j``-th
    bracket follows ``p - j`` quotes, so it is outside strings when ``p - j`` is even.
    """
    text = _ESCAPE.sub(b"", data) if b"\\" in data else data
    marks = np.frombuffer(text.translate(None, _NOT_STRUCTURE), np.uint8)
    at = np.flatnonzero(marks != ord('"'))
    at = at[(at - np.arange(len(at))) & 1 == 0]
    if len(at) <= limit:
        return False
    is_open = (marks[at] == ord("[")) | (marks[at] == ord("{"))
    return int(np.cumsum(np.where(is_open, 1, -1)).max()) > limit
