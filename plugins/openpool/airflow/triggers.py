"""The deferred half of ``wait_for_events``: one trigger that fires on new files or at the deadline.

The Amazon provider's ``S3KeyTrigger`` fires as soon as *any* key matches, so with a
partition full of already-ingested files every poke woke the task in a fresh worker process
(imports and all) only for it to defer again, and the wait ended in the scheduler's trigger
timeout, logged as ``ERROR Trigger cancelled due to timeout``. This trigger asks the question
the task needs answered, "is any listed (key, ETag) not yet in the snapshot?", in the
triggerer itself, and ends on its own with one event: ``new`` (the task succeeds and ingest
runs) or ``idle`` at the deadline (the task ends skipped and says why). The deferral's own
timeout is only a backstop.

Each poke lists only the window after the partition's key-time watermark (the listing a
scheduled run makes, :mod:`openpool.ingest.window`), so its cost does not grow with the
bucket's age; when a full sweep is due it lists nothing and answers ``new`` at once: the
run it wakes sweeps, and its commit records the sweep.

The blocking S3 reads run in a worker thread (``asyncio.to_thread``), so the triggerer's
event loop keeps serving the other partitions' waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from openpool.ingest.steps import StepEnv
from openpool.ingest.window import poke
from openpool.partitions import Partition

NEW, IDLE = "new", "idle"


def count_new(env: StepEnv) -> tuple[int, int, bool]:
    """(files listed, files never ingested, sweep due): one snapshot read and the run's own
    windowed listing, or no listing at all when a sweep is due (the run does it). The
    sensor's first check and every poke of the trigger ask exactly this."""
    p = poke(env.events, env.partition, env.snapshots.latest(), env.window)
    return p.listed, p.pending, p.sweep_due


class NewEventFilesTrigger(BaseTrigger):
    """Poll the partition's event files until one was never ingested, or until ``deadline``."""

    def __init__(
        self,
        partition: str,
        deadline: str,
        poke_interval: float,
        aws_conn_id: str,
    ) -> None:
        super().__init__()
        self.partition = partition
        self.deadline = deadline
        self.poke_interval = poke_interval
        self.aws_conn_id = aws_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "partition": self.partition,
                "deadline": self.deadline,
                "poke_interval": self.poke_interval,
                "aws_conn_id": self.aws_conn_id,
            },
        )

    def _env(self) -> StepEnv:
        """The partition's stores, built once per wait (settings, connection, clients)."""
        from openpool.airflow import runtime

        return runtime.step_env(Partition.parse(self.partition), self.aws_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = datetime.fromisoformat(self.deadline)
        env = await asyncio.to_thread(self._env)
        polls = 0
        while True:
            listed, pending, sweep = await asyncio.to_thread(count_new, env)
            polls += 1
            if sweep:
                yield TriggerEvent({"status": NEW, "listed": 0, "pending": 0, "sweep": True})
                return
            if pending:
                yield TriggerEvent({"status": NEW, "listed": listed, "pending": pending})
                return
            remaining = (deadline - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                yield TriggerEvent({"status": IDLE, "listed": listed, "polls": polls})
                return
            await asyncio.sleep(min(self.poke_interval, remaining))
