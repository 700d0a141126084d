"""Ticket redemptions: the pool's actual on-chain revenue, kept for reconciliation."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from openpool.money import WEI
from openpool.tables import TICKETS

_WEI_MAX = 10**38 - 1
_INT64 = (-(2**63), 2**63 - 1)
# A transaction hash that names a real transaction: hex digits, not all zeros.
_TX_CREATED = r"^0x[0-9a-fA-F]*[1-9a-fA-F][0-9a-fA-F]*$"


class _Ticket(msgspec.Struct, gc=False):
    """The ticket fields of a payload; any JSON type is accepted (the reader checks only
    ``faceValue``, so a field of an unexpected type becomes null here, never a crash)."""

    faceValue: Any = None
    creationRound: Any = None
    pricePerPixel: Any = None
    recipient: Any = None
    sender: Any = None
    txHash: Any = None
    winProb: Any = None


_DECODER = msgspec.json.Decoder(list[_Ticket])


def tickets_from(fresh: pa.Table) -> pa.Table:
    """Rows for the fresh ``ticket-redeemed`` events.

    The batch's ticket payloads are decoded in one call; only the (few) tickets become
    Python objects, never the batch's other events.
    """
    ev = fresh.select(["event_id", "event_time", "payload_json"]).filter(
        pc.equal(fresh.column("event_type"), "ticket-redeemed")
    )
    if ev.num_rows == 0:
        return TICKETS.empty_table()
    payloads = ev.column("payload_json").cast(pa.binary()).to_pylist()
    tickets = _DECODER.decode(b"[" + b",".join(payloads) + b"]")

    def column(name: str) -> list[Any]:
        return list(map(attrgetter(name), tickets))

    def ints(values: list[Any], lo: int, hi: int) -> list[int | None]:
        return [v if type(v) is int and lo <= v <= hi else None for v in values]

    def texts(values: list[Any]) -> list[str | None]:
        return [v if isinstance(v, str) else None for v in values]

    tx = pa.array(texts(column("txHash")), pa.string())
    win = column("winProb")
    return pa.table(
        {
            "event_id": ev.column("event_id"),
            "event_time": ev.column("event_time"),
            "face_value_wei": pa.array(ints(column("faceValue"), 0, _WEI_MAX), WEI),
            "creation_round": pa.array(ints(column("creationRound"), *_INT64), pa.int64()),
            "price_per_pixel": pa.array(texts(column("pricePerPixel")), pa.string()),
            "recipient": pa.array(texts(column("recipient")), pa.string()),
            "sender": pa.array(texts(column("sender")), pa.string()),
            "tx_hash": tx,
            "tx_created": pc.fill_null(pc.match_substring_regex(tx, _TX_CREATED), False),
            "win_prob": pa.array([str(v) if type(v) is int else None for v in win], pa.string()),
        },
        schema=TICKETS,
    )
