"""What reading one file yields: :class:`FileResult` and its rejected rows.

Its own module because both paths (``file`` and ``slow``) build results and neither may
import the other's whole machinery for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import pyarrow as pa

from openpool.tables import EVENTS, REJECTED

RAW_JSON_LIMIT = 10_000  # characters of an element's text kept with its rejection


@dataclass
class FileResult:
    """What one file yields. Every array element lands in exactly one of the two tables.

    ``element_count`` is counted by the decoder (the length of the array it decoded), not
    from the tables, so ``events + rejected == element_count`` is a check a caller can
    make, and the ingest's ``events_read`` is this count.
    """

    events: pa.Table  # schema EVENTS: accepted events of this file, in file order
    rejected: pa.Table  # schema REJECTED (rejected_at_version null; the caller fills it)
    element_count: int  # array elements the decoder read (0 when quarantined)
    quarantine_reason: str | None = None  # whole file unparseable; both tables then empty


def _quarantined(reason: str) -> FileResult:
    return FileResult(EVENTS.empty_table(), REJECTED.empty_table(), 0, reason)


def _rejection(
    source_key: str,
    index: int,
    raw: msgspec.Raw | bytes,
    event_id: str | None,
    event_type: str | None,
    reason: str,
) -> dict[str, Any]:
    return {
        "source_key": source_key,
        "source_index": index,
        "event_id": event_id,
        "event_type": event_type,
        "reason": reason,
        "raw_json": bytes(raw).decode("utf-8", "replace")[:RAW_JSON_LIMIT],
        "rejected_at_version": None,
    }


def _rejected_table(rows: list[dict[str, Any]]) -> pa.Table:
    if not rows:
        return REJECTED.empty_table()
    return pa.Table.from_pylist(rows, schema=REJECTED)
