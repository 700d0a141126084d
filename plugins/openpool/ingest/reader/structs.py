"""The msgspec structs and decoders both paths decode with.

The struct types carry the type rules (integers stay exact and never come from floats, no
nulls, non-negative, int64 bounds, NodeType/Region equal to the partition's), so a clean
file is checked field by field in C, in the one typed decode of the fast path; the slow
path decodes each element with the same types, so the two agree on what a type error is.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal

import msgspec

_INT64_MAX = 2**63 - 1
_WEI_MAX = 10**38 - 1  # decimal128(38, 0)

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
            ("NodeType", Literal[node_type]),
            ("Payload", _Payload),
            ("Region", Literal[region]),
            ("Version", _Int64),
        ],
        forbid_unknown_fields=True,
        gc=False,
    )
    # a struct type made at run time (defstruct): a value to mypy, a type to msgspec
    return msgspec.json.Decoder(list[event]), msgspec.json.Decoder(event)  # type: ignore[valid-type]


_RAW_LIST_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
_RAW_DECODER = msgspec.json.Decoder(msgspec.Raw)
_ANY_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
_ENCODE = _ENCODER.encode
# What the decoders raise on input they cannot take (RecursionError: nested too deeply).
_DECODE_ERRORS = (msgspec.MsgspecError, UnicodeDecodeError, ValueError, RecursionError)
