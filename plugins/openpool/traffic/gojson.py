"""Go's ``json.MarshalIndent``, byte for byte, so generated files match the orchestrators'.

Synthetic traffic is only worth testing against if its bytes are what go-livepeer writes
(``tests/fixtures/events``); ``json.dumps(indent=2)`` differs from Go in escaping and in
floats, so the encoder is written out here.
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal
from json.encoder import encode_basestring as _encode_basestring
from typing import Any


def marshal_indent(value: Any) -> bytes:
    """``json.MarshalIndent(v, "", "  ")`` as Go writes it: sorted keys, no trailing newline.

    Written out by hand (not ``json.dumps(indent=2)``) so Go's escaping is exact: HTML
    characters and U+2028/U+2029 become ``\\u`` escapes, non-ASCII text stays UTF-8, and
    floats use Go's notation. Integers of any size are written exactly.
    """
    return _encode(value, "").encode("utf-8")


_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


@functools.lru_cache(maxsize=1 << 14)
def _string(text: str) -> str:
    # The json module escapes quotes, backslashes and control characters as Go does (short
    # forms, lower-case \u00xx); Go also escapes the HTML-sensitive characters. Cached:
    # keys, event types, addresses and times repeat on every event.
    s = _encode_basestring(text)
    return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], s)


def _float(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"JSON cannot hold {x!r}")
    text = repr(x)
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))  # Go writes 3e+10 as 30000000000 and 2.0 as 2
    if "e" in text and 1e-6 <= abs(x) < 1e21:
        return format(Decimal(text), "f")  # Go switches to exponents only outside this range
    return re.sub(r"e-0(\d)$", r"e-\1", text)  # Go writes 1e-7, Python 1e-07


def _scalar(v: Any) -> str | None:
    """A scalar's JSON text, or ``None`` for containers."""
    t = type(v)
    if t is str:
        return _string(v)
    if t is int:
        return str(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        return _string(str(v))
    if isinstance(v, dict | list | tuple):
        return None
    raise TypeError(f"cannot encode {t.__name__}")


def _encode(v: Any, indent: str) -> str:
    text = _scalar(v)
    if text is not None:
        return text
    if not v:
        return "{}" if isinstance(v, dict) else "[]"
    inner = indent + "  "
    parts = []
    if isinstance(v, dict):
        for k in sorted(v):
            if type(k) is not str:
                raise TypeError(f"object keys must be strings, got {k!r}")
            val = v[k]
            # Inline fast paths: nearly every value is an int or a str.
            if type(val) is int:
                text = str(val)
            elif type(val) is str:
                text = _string(val)
            else:
                text = _encode(val, inner)
            parts.append(f"{inner}{_string(k)}: {text}")
        return "{\n" + ",\n".join(parts) + "\n" + indent + "}"
    for item in v:
        parts.append(inner + _encode(item, inner))
    return "[\n" + ",\n".join(parts) + "\n" + indent + "]"
