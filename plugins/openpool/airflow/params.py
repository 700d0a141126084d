"""The run form: an optional ``from``/``to`` interval that turns a run into a replay, and
``sweep``, which makes a run list the whole partition (:mod:`openpool.ingest.window`).

A manual trigger with ``from`` and/or ``to`` set, or a backfill run from the UI (whose data
interval is the period to redo), re-scans the events and archive locations for files
whose key time falls in the interval and ingests any not yet ingested.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import Param

PARAMS = {
    "from": Param(
        None,
        type=["null", "string"],
        format="date-time",
        title="Replay from (UTC, inclusive) -- instead of a backfill",
        description="Leave empty for a normal run and for a backfill (a backfill redoes "
        "each run's own 5-minute interval; these fields are ignored then). For a one-run "
        "replay instead, files whose key time is at or after it are re-scanned in the "
        "events and archive locations.",
    ),
    "to": Param(
        None,
        type=["null", "string"],
        format="date-time",
        title="Replay to (UTC, exclusive) -- instead of a backfill",
        description="End of the one-run replay interval; empty means up to now.",
    ),
    "sweep": Param(
        False,
        type="boolean",
        title="Sweep the whole partition",
        description="List every file of the partition (not only those after the key-time "
        "watermark minus the lookback) and ingest any never ingested; the run reports how "
        "many the windowed listings had missed. Runs also sweep on their own once "
        "OPENPOOL_DISCOVERY_SWEEP_SECONDS have passed since the last sweep.",
    ),
}


def _dt(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def replay_interval(context: Any) -> tuple[datetime | None, datetime | None] | None:
    """``(start, end)`` when this run is a backfill or replay, else ``None``."""
    dag_run = context.get("dag_run")
    if dag_run is not None and run_type(dag_run) == "backfill":  # its own interval, always
        return context.get("data_interval_start"), context.get("data_interval_end")
    params = context.get("params") or {}
    start, end = _dt(params.get("from")), _dt(params.get("to"))
    if start is not None or end is not None:
        return start, end
    return None


def sweep_asked(context: Any) -> bool:
    """Whether the run's form asks for a full sweep (a backfill never sweeps)."""
    return bool((context.get("params") or {}).get("sweep")) and replay_interval(context) is None


def run_type(dag_run: Any) -> str:
    """The run's type as Airflow stores it ("backfill", "manual", "scheduled"...).

    The task SDK hands over an enum whose ``str()`` is ``DagRunType.BACKFILL``: compare its
    value, never its rendering."""
    kind = getattr(dag_run, "run_type", None)
    return str(getattr(kind, "value", kind) or "").lower()
