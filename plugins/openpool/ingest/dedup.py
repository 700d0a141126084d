"""Exact, bounded dedup: each event ID counts once over all history.

The ID index is kept in hourly slices by event time, so a run reads only the slices its
events fall in: cost follows the batch, not the history. No time window ever forgets an
ID. The same ID with the same content is a duplicate (counted, dropped); the same ID
with different content is a conflict (the newcomer is rejected with that reason).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from openpool.ingest.schema import REJECTED

ID_INDEX = pa.schema([("event_id", pa.string()), ("content_sha256", pa.string())])


def hour_slice(events: pa.Table) -> pa.Array:
    """The index slice label of each event: its event hour, ``YYYYMMDDHH``."""
    return pc.strftime(events.column("event_time"), format="%Y%m%d%H")


@dataclass
class DedupResult:
    fresh: pa.Table  # events never seen before, first occurrence in batch order
    duplicates: int  # exact re-sends (in the batch or already in history)
    conflicts: pa.Table  # REJECTED rows: same ID, different content


def _conflict_rows(events: pa.Table, reason: str) -> pa.Table:
    n = events.num_rows
    return pa.table(
        {
            "source_key": events.column("source_key"),
            "source_index": events.column("source_index"),
            "event_id": events.column("event_id"),
            "event_type": events.column("event_type"),
            "reason": pa.array([reason] * n, pa.string()),
            "raw_json": events.column("payload_json"),
            "rejected_at_version": pa.nulls(n, pa.int64()),
        },
        schema=REJECTED,
    )


def dedup(batch: pa.Table, known: pa.Table) -> DedupResult:
    """Split ``batch`` (in arrival order) against ``known`` (the relevant index slices)."""
    if batch.num_rows == 0:
        return DedupResult(batch, 0, REJECTED.empty_table())
    ordered = batch.append_column("_row", pa.array(range(batch.num_rows), pa.int64()))

    # 1. Within the batch: the first occurrence of each ID wins.
    firsts = ordered.group_by("event_id", use_threads=False).aggregate([("_row", "min")])
    first_rows = ordered.take(firsts.column("_row_min")).sort_by("_row")
    is_first = pc.is_in(ordered.column("_row"), value_set=first_rows.column("_row"))
    later = ordered.filter(pc.invert(is_first))
    winner_sha = later.join(
        first_rows.select(["event_id", "content_sha256"]).rename_columns(["event_id", "_win"]),
        "event_id",
        join_type="left outer",
        use_threads=False,
    )
    same = pc.equal(winner_sha.column("content_sha256"), winner_sha.column("_win"))
    dup_in_batch = pc.sum(same).as_py() or 0
    conflicts = [
        _conflict_rows(
            winner_sha.filter(pc.invert(same)).sort_by("_row"),
            "conflict: event ID already seen in this batch with different content",
        )
    ]

    # 2. Against history.
    if known.num_rows:
        joined = first_rows.join(
            known.rename_columns(["event_id", "_known"]),
            "event_id",
            join_type="left outer",
            use_threads=False,
        ).sort_by("_row")
        seen = pc.is_valid(joined.column("_known"))
        same_hist = pc.and_(
            seen, pc.equal(joined.column("content_sha256"), joined.column("_known"))
        )
        dup_hist = pc.sum(same_hist).as_py() or 0
        conflict_hist = pc.and_(seen, pc.invert(same_hist))
        conflicts.append(
            _conflict_rows(
                joined.filter(conflict_hist),
                "conflict: event ID already ingested with different content",
            )
        )
        fresh = joined.filter(pc.invert(seen)).drop_columns(["_known"])
    else:
        dup_hist = 0
        fresh = first_rows
    fresh = fresh.sort_by("_row").drop_columns(["_row"])
    return DedupResult(
        fresh=fresh.select(batch.column_names),
        duplicates=int(dup_in_batch) + int(dup_hist),
        conflicts=pa.concat_tables(conflicts).cast(REJECTED),
    )
