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
from openpool.airflow.params import replay_interval
from openpool.airflow.triggers import IDLE, NEW, NewEventFilesTrigger
from openpool.ingest.discovery import list_partition
from openpool.ingest.steps import has_new_files
from openpool.partitions import Partition
from openpool.storage import ObjectInfo, S3Store

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
            metadata_keys=["Key", "Size", "ETag"],
            timeout=wait_timeout.total_seconds(),
            **kwargs,
        )
        self.partition = partition
        self.wait_timeout = wait_timeout
        self._prefix = ""
        self.local = False

    # -- run-time configuration ----------------------------------------------------
    def _configure(self) -> None:
        events = runtime.settings().events_uri
        self.local = not events.startswith("s3://")
        if not self.local:
            store = S3Store(events)
            self.bucket_name, self._prefix = store.bucket, store.prefix
            lead = f"{self._prefix}/" if self._prefix else ""
            self.bucket_key = f"{lead}{self.partition.path}/*.json"
        # Bound here, on the instance that runs (Airflow copies operators before running).
        self.check_fn = self._has_new

    def _has_new(self, files: list[dict[str, Any]], **_context: Any) -> bool:
        cut = len(self._prefix) + 1 if self._prefix else 0
        listing = [
            ObjectInfo(
                key=f["Key"][cut:],
                size=int(f.get("Size") or 0),
                etag=str(f.get("ETag") or "").strip('"'),
                last_modified=datetime.now(UTC),
            )
            for f in files
        ]
        env = runtime.step_env(self.partition, self.aws_conn_id or runtime.DEFAULT_AWS_CONN_ID)
        return has_new_files(env, listing)

    # -- the wait ---------------------------------------------------------------------
    def execute(self, context: Any) -> None:
        if replay_interval(context) is not None:
            self.log.info("backfill/replay run: not waiting for new files")
            return
        self._configure()
        if self.local:
            self._poke_local()
            return
        if self.poke(context):
            return
        deadline = datetime.now(UTC) + self.wait_timeout
        self.defer(
            # a backstop only: the trigger ends the wait itself at the deadline
            timeout=self.wait_timeout + BACKSTOP,
            trigger=NewEventFilesTrigger(
                partition=str(self.partition),
                deadline=deadline.isoformat(),
                poke_interval=float(self.poke_interval),
                aws_conn_id=self.aws_conn_id or runtime.DEFAULT_AWS_CONN_ID,
            ),
            method_name="execute_complete",
        )

    def _poke_local(self) -> None:
        env = runtime.step_env(self.partition)
        if not has_new_files(env, list_partition(env.events, self.partition)):
            raise AirflowSkipException(f"idle: no new event files for {self.partition}")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
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
