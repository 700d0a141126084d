"""Every job's credit to a worker, as rows an analyst reads without a join.

The ledger's AI ``job-processed`` events name no worker (the worker is on the request's
``job-received``); ingest records which worker each AI job was credited to in
``ai_credits``. :func:`ai_credit_rows` puts each credit beside its job's request, pipeline
and model, so per-worker AI fees are one ``GROUP BY`` over the published ``ai_credits``.
:func:`credited_jobs` is the same for both node types, as statements need it (transcode
jobs name their worker directly).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from openpool.money import WEI
from openpool.snapshots import Snapshot
from openpool.tables import AI_CREDITS, EVENTS, TS, read_table

# The published ``ai_credits``: one row per AI job credited to a worker.
AI_CREDITED = pa.schema(
    [
        ("event_id", pa.string()),  # the job-processed event's ID
        ("request_id", pa.string()),
        ("pipeline", pa.string()),
        ("model_id", pa.string()),
        ("eth_address", pa.string()),  # the worker it was credited to
        ("fees_wei", WEI),
        ("event_time", TS),
    ]
)
_JOB_COLUMNS = ["event_id", "event_type", "request_id", "pipeline", "model_id"]


def ai_credit_rows(snap: Snapshot | None) -> pa.Table:
    """Each AI credit of ``snap`` with its job's request, pipeline and model.

    A credit whose job is not in the ledger (it never should be) keeps its row with a
    null request: nothing credited disappears from the table."""
    credits = read_table(snap, "ai_credits", AI_CREDITS)
    if snap is None or credits.num_rows == 0:
        return AI_CREDITED.empty_table()
    jobs = snap.read("events", schema=EVENTS, columns=_JOB_COLUMNS)
    jobs = jobs.filter(pc.equal(jobs["event_type"], "job-processed")).drop_columns(["event_type"])
    out = credits.join(jobs, "event_id", join_type="left outer", use_threads=False)
    return out.select(AI_CREDITED.names).cast(AI_CREDITED).sort_by("event_time")


def credited_jobs(snap: Snapshot | None) -> Iterator[pa.Table]:
    """(eth_address, event_time, fees_wei) of every job credited to a worker, in batches
    (one ledger day, or one ``ai_credits`` file: memory follows a batch, not the history):
    what the partition's balances were accrued from (AI jobs not yet credited are no
    worker's)."""
    if snap is None:
        return
    keep = ["eth_address", "event_time", "fees_wei"]
    if getattr(snap.snapshots.partition, "node_type", None) == "ai":
        if snap.has_table("ai_credits"):
            for t in snap.iter_files("ai_credits"):
                yield t.select(keep)
        return
    if not snap.has_table("events"):
        return
    cols = ["event_type", "node_type", *keep]
    for day in sorted(s for s in snap.slices("events") if s is not None):
        ev = snap.read("events", slices=[day], schema=EVENTS, columns=cols)
        jobs = pc.and_(
            pc.equal(ev["event_type"], "job-processed"), pc.equal(ev["node_type"], "transcode")
        )
        yield ev.filter(jobs).select(keep)


__all__ = ["AI_CREDITED", "ai_credit_rows", "credited_jobs"]
