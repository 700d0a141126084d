"""Ticket redemptions: the pool's actual on-chain revenue, kept for reconciliation."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from openpool.ingest.schema import TS, WEI

TICKETS = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", TS),
        ("face_value_wei", WEI),
        ("creation_round", pa.int64()),
        ("price_per_pixel", pa.string()),  # a rational as sent, e.g. "1200/1"
        ("recipient", pa.string()),
        ("sender", pa.string()),
        ("tx_hash", pa.string()),
        ("tx_created", pa.bool_()),  # False when txHash is all zeros
        ("win_prob", pa.string()),  # up to 2**256: kept as exact decimal text
    ]
)


def tickets_from(fresh: pa.Table) -> pa.Table:
    """Rows for the fresh ``ticket-redeemed`` events (few per file: parsed one by one)."""
    ev = fresh.select(["event_id", "event_time", "payload_json"]).filter(
        pc.equal(fresh.column("event_type"), "ticket-redeemed")
    )
    rows = []
    for e in ev.to_pylist():
        p = json.loads(e["payload_json"])
        tx = str(p.get("txHash", ""))
        rows.append(
            {
                "event_id": e["event_id"],
                "event_time": e["event_time"],
                "face_value_wei": Decimal(int(p["faceValue"])),
                "creation_round": p.get("creationRound"),
                "price_per_pixel": p.get("pricePerPixel"),
                "recipient": p.get("recipient"),
                "sender": p.get("sender"),
                "tx_hash": tx,
                "tx_created": bool(tx) and int(tx, 16) != 0 if tx.startswith("0x") else False,
                "win_prob": str(p.get("winProb")) if p.get("winProb") is not None else None,
            }
        )
    return pa.Table.from_pylist(rows, schema=TICKETS)
