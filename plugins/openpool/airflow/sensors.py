"""``wait_for_events``: the Amazon provider's S3KeySensor, deferred, that fires only on new files.

The stock sensor fires when any key matches, and re-arms its full timeout each time its
``check_fn`` says no, so "files exist but all are ingested" would wait forever; its trigger
wakes the task on every poke that finds a key. This subclass checks once in the task, then
defers **once** to :class:`~openpool.airflow.triggers.NewEventFilesTrigger`, which asks "is
any listed (key, ETag) not yet in the snapshot?" in the triggerer and ends the wait itself:
the task succeeds when a new file is there, and ends *skipped* at the deadline with the
reason as its log line (no trigger-timeout ERROR). Real errors (bad credentials, missing
bucket) still fail the task.

It resolves the bucket, prefix and connection when it runs, never at DAG parse time; with
a ``file://`` events location (local demo) it checks the folder directly instead of
deferring. Backfill and replay runs do not wait: their files are already there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException

from openpool.airflow import runtime
from openpool.airflow.params import replay_interval, sweep_asked
from openpool.airflow.triggers import IDLE, NEW, NewEventFilesTrigger, count_new
from openpool.partitions import Partition
from openpool.storage import S3Store

BACKSTOP = timedelta(minutes=2)  # beyond the trigger's own deadline


class NewEventFilesSensor(S3KeySensor):
    """Wait (deferred) until the partition has a file that was never ingested."""

    def __init__(
        self,
        *,
        partition: Partition,
        wait_timeout: timedelta,
        aws_conn_id: str = runtime.DEFAULT_AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            bucket_key="",  # resolved at run time from OPENPOOL_EVENTS_URI
            wildcard_match=True,
            deferrable=True,
            aws_conn_id=aws_conn_id,
            timeout=wait_timeout.total_seconds(),
            **kwargs,
        )
        self.partition = partition
        self.wait_timeout = wait_timeout
        self.local = False

    # -- run-time configuration ----------------------------------------------------
    def _configure(self) -> None:
        """Bucket and key pattern from OPENPOOL_EVENTS_URI, on the instance that runs
        (shown in the task's rendered fields; never read at DAG parse time)."""
        events = runtime.settings().events_uri
        self.local = not events.startswith("s3://")
        if not self.local:
            store = S3Store(events)
            self.bucket_name, prefix = store.bucket, store.prefix
            lead = f"{prefix}/" if prefix else ""
            self.bucket_key = f"{lead}{self.partition.path}/*.json"

    # -- the wait ---------------------------------------------------------------------
    def execute(self, context: Any) -> None:
        if replay_interval(context) is not None:
            self.log.info("backfill/replay run: not waiting for new files")
            return
        if sweep_asked(context):
            self.log.info("sweep asked for: not waiting for new files")
            return
        self._configure()
        conn = self.aws_conn_id or runtime.DEFAULT_AWS_CONN_ID
        listed, pending, sweep = count_new(runtime.step_env(self.partition, conn))
        if sweep:
            self.log.info("a full sweep of %s is due: not waiting", self.partition)
            return
        if pending:  # the same question the trigger asks on every poke
            self.log.info(
                "%d new event file(s) for %s (%d listed)", pending, self.partition, listed
            )
            return
        if self.local:  # a folder (the local demo): nothing to defer to
            raise AirflowSkipException(f"idle: no new event files for {self.partition}")
        deadline = datetime.now(UTC) + self.wait_timeout
        self.defer(
            # a backstop only: the trigger ends the wait itself at the deadline
            timeout=self.wait_timeout + BACKSTOP,
            trigger=NewEventFilesTrigger(
                partition=str(self.partition),
                deadline=deadline.isoformat(),
                poke_interval=float(self.poke_interval),
                aws_conn_id=conn,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        if event["status"] == NEW and event.get("sweep"):
            self.log.info("a full sweep of %s is due", self.partition)
            return
        if event["status"] == NEW:
            self.log.info(
                "%d new event file(s) for %s (%d listed)",
                event["pending"],
                self.partition,
                event["listed"],
            )
            return
        if event["status"] == IDLE:
            reason = (
                f"idle: no new event files for {self.partition} within {self.wait_timeout} "
                f"({event['listed']} listed, all ingested)"
            )
            self.log.info(reason)
            raise AirflowSkipException(reason)
        raise AirflowException(f"wait_for_events: unexpected trigger event {event!r}")

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any
    ) -> Any:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as exc:  # the backstop: the trigger never answered
            raise AirflowSkipException(
                f"idle: no answer from the trigger for {self.partition} within "
                f"{self.wait_timeout + BACKSTOP}"
            ) from exc
