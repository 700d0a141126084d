"""Per-type payload rules: which payload keys an event type owns, and their columns.

A key a type owns is required (unless optional), validated and copied into a typed column;
keys it does not own stay only in ``payload_json``. The column checks and the slow path's
element examination both read these tables, so they judge the same keys the same way.
"""

from __future__ import annotations

import pyarrow as pa

from openpool.money import WEI

_TOP_KEYS = ("DT", "EventType", "ID", "NodeType", "Payload", "Region", "Version")

_STR, _ADDR, _REQ, _I64, _WEI_KIND, _BIG = "str", "addr", "req", "i64", "wei", "big"
# One event's fees: wei, but the spec says it fits int64 (only sums need more).
_FEE = "fee"
# Shaped strings (checked by ``checks._shape_problem``) and a bounded big integer.
_HOSTPORT, _HEX_ADDR, _TX_HASH, _RATIONAL = "hostport", "hexaddr", "txhash", "rational"
_PROB = "prob"  # 0 .. 2^256
_STRING_KINDS = frozenset({_STR, _ADDR, _REQ, _HOSTPORT, _HEX_ADDR, _TX_HASH, _RATIONAL})

_JOB_TRANSCODE = {
    "computeUnits": _I64,
    "duration": _I64,
    "ethAddress": _ADDR,
    "fees": _FEE,
    "pricePerComputeUnit": _WEI_KIND,
    "realTimeRatio": _I64,
    "responseTime": _I64,
}
_JOB_RECEIVED_AI = {"ethAddress": _ADDR, "modelID": _STR, "pipeline": _STR, "requestID": _REQ}
_JOB_AI = {
    "computeUnits": _I64,
    "fees": _FEE,
    "modelID": _STR,
    "pipeline": _STR,
    "pricePerComputeUnit": _WEI_KIND,
    "requestID": _REQ,
    "responseTime": _I64,
}
_CONNECTION = {"connection": _HOSTPORT, "ethAddress": _ADDR}
_TICKET = {
    "creationRound": _I64,
    "faceValue": _BIG,
    "pricePerPixel": _RATIONAL,
    "recipient": _HEX_ADDR,
    "sender": _HEX_ADDR,
    "txHash": _TX_HASH,
    "winProb": _PROB,
}
_COMMON_TYPES: dict[str, dict[str, str]] = {
    "worker-connected": _CONNECTION,
    "worker-disconnected": _CONNECTION,
    "orchestrator-reset": {},
    "ticket-redeemed": _TICKET,
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
# Owned keys with no column (a ticket's: kept for reconciliation in ``payload_json`` only):
# checked value by value on their (rare) rows.
_UNCOLUMNED = tuple(_TICKET)
_CHECKED_FIELDS = (*_COLUMNS, *_UNCOLUMNED)
# A key means the same under every type that owns it, so its kind is the key's.
_KIND: dict[str, str] = {
    k: kind
    for types in _TYPES_BY_NODE.values()
    for spec in types.values()
    for k, kind in spec.items()
}
# Keys a type owns (validated when present) that may be absent: a job with no response
# time was still done, so it is paid; analytics count it in ``excluded_jobs``.
_OPTIONAL_FIELDS = frozenset({"responseTime"})
