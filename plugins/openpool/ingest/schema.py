"""Arrow schemas of the ingest tables: the contract between reader, state and snapshot.

Units are normalised on read: every response time is integer nanoseconds (AI sends ns,
transcode sends ms), durations are integer milliseconds, money is decimal128(38,0) wei.
"""

from __future__ import annotations

import pyarrow as pa

from openpool.money import WEI  # the one definition of the money type

TS = pa.timestamp("s", tz="UTC")

# One row per accepted event (the ledger). Payload fields an event type does not carry are
# null. ``payload_json`` keeps the payload exactly as sent (canonical: sorted keys, no
# spaces), so unknown event types and ticket fields lose nothing.
EVENTS = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", TS),
        ("event_type", pa.string()),
        ("node_type", pa.string()),
        ("region", pa.string()),
        ("schema_version", pa.int64()),
        ("source_key", pa.string()),
        ("source_index", pa.int32()),  # position in its file: the true order within a second
        ("eth_address", pa.string()),  # EIP-55 checksummed
        ("request_id", pa.string()),
        ("pipeline", pa.string()),
        ("model_id", pa.string()),
        ("connection", pa.string()),
        ("fees_wei", WEI),
        ("price_per_compute_unit_wei", WEI),
        ("compute_units", pa.int64()),
        ("duration_ms", pa.int64()),
        ("response_time_ns", pa.int64()),
        ("real_time_ratio", pa.int64()),
        ("payload_json", pa.string()),
        ("content_sha256", pa.string()),  # of the canonical event; same ID + other hash = conflict
    ]
)

# An event set aside, with why. ``raw_json`` is the event's text as found (or a prefix).
REJECTED = pa.schema(
    [
        ("source_key", pa.string()),
        ("source_index", pa.int32()),
        ("event_id", pa.string()),
        ("event_type", pa.string()),
        ("reason", pa.string()),
        ("raw_json", pa.string()),
        ("rejected_at_version", pa.int64()),
    ]
)

# A whole file that could not be parsed.
QUARANTINED = pa.schema(
    [
        ("source_key", pa.string()),
        ("etag", pa.string()),
        ("size", pa.int64()),
        ("reason", pa.string()),
        ("quarantine_key", pa.string()),
        ("quarantined_at_version", pa.int64()),
    ]
)
