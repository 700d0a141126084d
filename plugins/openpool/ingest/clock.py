"""Event times held to their file and to the ingest's wall clock.

The spec names a file's first and last event times in its key, so an event dated outside
that window is not what the orchestrator wrote there: it is rejected, which also ties each
accepted ID's hour (the ID index's slice) to the file that carried it. An event dated more
than the allowed skew past the ingest's wall clock is rejected too, so no single event can
push the partition's clock (the watermark behind the windows and the AI time-to-live) into
the future; and the watermark itself never passes the clock of the ingest that set it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from openpool.ingest.discovery import _KEY_RE
from openpool.tables import REJECTED, TS

DEFAULT_SKEW = timedelta(hours=1)
KEY_PATTERN = "{region}/{node_type}/{region}-{node_type}-{start}_{end}.json"
_DT = "%Y-%m-%dT%H:%M:%SZ"


def key_window(key: str) -> tuple[datetime, datetime] | None:
    """The [first, last] event times a key names, or None if it does not follow the scheme."""
    m = _KEY_RE.match(key)
    if not m:
        return None
    try:
        start, end = (_stamp(m[g]) for g in ("start", "end"))
    except ValueError:  # digits of the right shape that name no time (month 13, ...)
        return None
    return (start, end) if start <= end else None


def _stamp(text: str) -> datetime:
    """``YYYYMMDDTHHMMSSZ`` (already matched by the key pattern) as a UTC time; a tenth of
    what strptime costs, paid twice for every file."""
    return datetime(
        int(text[0:4]), int(text[4:6]), int(text[6:8]),
        int(text[9:11]), int(text[11:13]), int(text[13:15]), tzinfo=UTC,
    )  # fmt: skip


def no_window_reason(key: str) -> str:
    return (
        f"key does not name the file's time window ({KEY_PATTERN}, start <= end): {key!r}; "
        "its events cannot be tied to their hour"
    )


def check_times(
    events: pa.Table,
    window: tuple[datetime, datetime],
    clock: datetime,
    skew: timedelta = DEFAULT_SKEW,
) -> tuple[pa.Table, pa.Table]:
    """(events inside the window and not past ``clock + skew``, REJECTED rows for the rest)."""
    if events.num_rows == 0:
        return events, REJECTED.empty_table()
    times = events.column("event_time")
    mm = pc.min_max(times)  # the common case, every event inside: one pass, nothing else
    first, last = mm["min"].as_py(), mm["max"].as_py()
    if first is not None and window[0] <= first and last <= min(window[1], clock + skew):
        return events, REJECTED.empty_table()
    lo, hi = (pa.scalar(t, TS) for t in window)
    limit = pa.scalar(clock + skew, TS)
    outside = pc.or_(pc.less(times, lo), pc.greater(times, hi))
    ahead = pc.greater(times, limit)
    bad = pc.or_(outside, ahead)
    if not pc.any(bad).as_py():
        return events, REJECTED.empty_table()
    gone = events.filter(bad)
    span = f"[{window[0]:{_DT}}, {window[1]:{_DT}}]"
    reasons = [
        f"DT {t:{_DT}} is outside its file's key window {span}"
        if out
        else f"DT {t:{_DT}} is more than {skew} ahead of the ingest clock ({clock:{_DT}})"
        for t, out in zip(
            gone.column("event_time").to_pylist(),
            outside.filter(bad).to_pylist(),
            strict=True,
        )
    ]
    rejected = pa.table(
        {
            "source_key": gone.column("source_key"),
            "source_index": gone.column("source_index"),
            "event_id": gone.column("event_id"),
            "event_type": gone.column("event_type"),
            "reason": pa.array(reasons, pa.string()),
            "raw_json": gone.column("payload_json"),
            "rejected_at_version": pa.nulls(gone.num_rows, pa.int64()),
        },
        schema=REJECTED,
    )
    return events.filter(pc.invert(bad)), rejected


def bounded_watermark(
    fresh: pa.Table, previous: datetime | None, clock: datetime | None
) -> datetime | None:
    """The partition's clock after a batch: the newest accepted event time, never past the
    wall clock of the ingest that read it (``clock``), never going backwards — except that a
    clock already past ``clock`` (set before this bound existed, by one far-future event)
    is brought back to it."""
    if clock is not None and previous is not None and previous > clock:
        previous = clock
    if fresh.num_rows == 0:
        return previous
    newest = pc.max(fresh.column("event_time")).as_py()
    if clock is not None and newest > clock:
        newest = clock
    return newest if previous is None or newest > previous else previous
