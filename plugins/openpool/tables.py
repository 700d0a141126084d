"""Every state table: its name in a snapshot and its Arrow schema, in one place.

Ingest writes most of these, payouts writes ``payouts``, analytics and the dashboard read
them all. Keeping the contract here (below all three) means none of them imports another
for a schema. Units are normalised on read: every response time is integer nanoseconds (AI
sends ns, transcode sends ms), durations are integer milliseconds, money is
decimal128(38,0) wei (:data:`openpool.money.WEI`).
"""

from __future__ import annotations

import pyarrow as pa

from openpool.money import WEI
from openpool.snapshots import Snapshot

TS = pa.timestamp("s", tz="UTC")

# --- a partition's ledger and what was set aside ----------------------------------------

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
        # The canonical event's digest; same ID + other digest = conflict. The stored name
        # is from when it held SHA-256; it now holds XXH3-128 (32 hex digits), and dedup
        # still recognises the 64-digit SHA-256 of older rows. Renaming a stored column
        # would need every snapshot and Athena table rewritten, so the name stays.
        ("content_sha256", pa.string()),
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

# Every file ever read (with ETag and size): what discovery compares a listing against.
INGESTED = pa.schema(
    [
        ("source_key", pa.string()),
        ("etag", pa.string()),
        ("size", pa.int64()),
        ("status", pa.string()),  # ingested | quarantined
        ("events_read", pa.int64()),
        ("snapshot_version", pa.int64()),
    ]
)

# Every accepted event ID with its digest, sliced by the hour it is dated in.
ID_INDEX = pa.schema([("event_id", pa.string()), ("content_sha256", pa.string())])

# Each duplicate ID the full-history check found and a person resolved.
RESOLUTIONS = pa.schema(
    [
        ("event_id", pa.string()),
        ("hour", pa.string()),  # the ID index slice of the occurrence set aside
        ("source_key", pa.string()),
        ("source_index", pa.int32()),
        ("kept_partition", pa.string()),
        ("kept_hour", pa.string()),
        ("resolved_at_version", pa.int64()),
    ]
)

# --- what accrual derives ----------------------------------------------------------------

BALANCES = pa.schema(
    [
        ("eth_address", pa.string()),
        ("total_fees_wei", WEI),
        ("pool_commission_wei", WEI),
        ("worker_earnings_wei", WEI),
        ("job_count", pa.int64()),
        ("first_job_at", TS),
        ("last_job_at", TS),
    ]
)
AI_REQUESTS = pa.schema(
    [("request_id", pa.string()), ("eth_address", pa.string()), ("event_time", TS)]
)
PENDING_AI = pa.schema(
    [
        ("event_id", pa.string()),
        ("request_id", pa.string()),
        ("event_time", TS),
        ("fees_wei", WEI),
        ("pipeline", pa.string()),
        ("model_id", pa.string()),
    ]
)
UNATTRIBUTED = PENDING_AI.append(pa.field("reason", pa.string()))
# Which worker each AI job was credited to (the ledger's AI job-processed events carry no
# address), for per-worker AI performance.
AI_CREDITS = pa.schema(
    [
        ("event_id", pa.string()),
        ("eth_address", pa.string()),
        ("event_time", TS),
        ("fees_wei", WEI),
    ]
)
# Ticket redemptions: the pool's actual on-chain revenue, kept for reconciliation.
TICKETS = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", TS),
        ("face_value_wei", WEI),  # null only beyond decimal128 (the ledger keeps the text)
        ("creation_round", pa.int64()),
        ("price_per_pixel", pa.string()),  # a rational as sent, e.g. "1200/1"
        ("recipient", pa.string()),
        ("sender", pa.string()),
        ("tx_hash", pa.string()),
        ("tx_created", pa.bool_()),  # False when txHash is all zeros (or not hex)
        ("win_prob", pa.string()),  # up to 2**256: kept as exact decimal text
    ]
)
CONNECTIONS = pa.schema(
    [
        ("eth_address", pa.string()),
        ("connection", pa.string()),
        ("connected_at", TS),
        ("disconnected_at", TS),
        ("close_reason", pa.string()),
    ]
)
WORKERS = pa.schema(
    [
        ("eth_address", pa.string()),
        ("first_seen", TS),
        ("last_seen", TS),
        ("connection_count", pa.int64()),
        ("active", pa.bool_()),
    ]
)
# The connection events of every commit (few beside the jobs), by event day: what a late
# event is replayed with, so the jobs of the ledger are never re-read for it.
CONNECTION_LOG = pa.schema(
    [
        ("event_time", TS),
        ("source_key", pa.string()),
        ("source_index", pa.int32()),
        ("event_type", pa.string()),
        ("eth_address", pa.string()),
        ("connection", pa.string()),
    ]
)

# --- a hot wallet's payout ledger ---------------------------------------------------------

# Append-only: a payment's status is its latest row (see openpool.payments).
PAYOUTS = pa.schema(
    [
        ("payment_id", pa.string()),
        ("plan_hash", pa.string()),
        ("partition", pa.string()),
        ("eth_address", pa.string()),
        ("amount_wei", WEI),
        ("status", pa.string()),
        ("nonce", pa.int64()),
        ("tx_hash", pa.string()),
        ("raw_tx", pa.string()),
        ("max_fee_per_gas", WEI),
        ("gas", pa.int64()),
        ("block_number", pa.int64()),
        ("note", pa.string()),
        ("recorded_at", TS),
    ]
)
# The payout log of several wallets: the ledger's columns plus the wallet that sent it.
WALLET_LOG = PAYOUTS.append(pa.field("wallet", pa.string()))

# --- the pool's record of sent alerts (openpool.alerts.state) ------------------------------

# One row per alert sent: a condition (``key``) that became true, was announced once, and
# stays open until the condition clears (``cleared_at``); the same key recurring is a new row.
ALERTS = pa.schema(
    [
        ("key", pa.string()),
        ("kind", pa.string()),
        ("partition", pa.string()),  # null for pool-wide conditions
        ("subject", pa.string()),
        ("text", pa.string()),
        ("opened_at", TS),  # when it was sent (and recorded)
        ("cleared_at", TS),  # null while the condition holds
    ]
)

# Table name in a snapshot -> its schema. ``tickets`` has one; ``connections_closed`` is
# the closed slices of ``connections``.
STATE: dict[str, pa.Schema] = {
    "events": EVENTS,
    "rejected_events": REJECTED,
    "quarantined_files": QUARANTINED,
    "ingested_files": INGESTED,
    "event_ids": ID_INDEX,
    "duplicate_resolutions": RESOLUTIONS,
    "balances": BALANCES,
    "ai_requests": AI_REQUESTS,
    "pending_ai": PENDING_AI,
    "unattributed": UNATTRIBUTED,
    "ai_credits": AI_CREDITS,
    "tickets": TICKETS,
    "connections": CONNECTIONS,
    "connections_closed": CONNECTIONS,
    "connection_events": CONNECTION_LOG,
    "workers": WORKERS,
    "payouts": PAYOUTS,
    "alerts": ALERTS,
}


def read_table(base: Snapshot | None, name: str, schema: pa.Schema | None = None) -> pa.Table:
    """Table ``name`` of ``base`` (in its :data:`STATE` schema unless given), or an empty
    table when ``base`` has none yet."""
    schema = schema if schema is not None else STATE[name]
    if base is None or not base.has_table(name):
        return schema.empty_table()
    return base.read(name, schema=schema)
