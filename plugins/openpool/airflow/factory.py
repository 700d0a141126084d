"""The DAG factories: one ingest DAG per active partition, and the pool summary DAG.

``wait_for_events → parse → dedup → accrue → commit → (analytics, archive)``. Tasks hand data on as
Parquet in a run-scoped staging area of the state bucket; XCom carries only small
summaries. ``commit`` is the only task with a visible effect and updates the partition's
state Asset. Building a DAG does no I/O and reads no Variable or connection.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, get_current_context, task
from airflow.sdk.definitions.asset import BaseAsset

from openpool.airflow.failures import unretried
from openpool.airflow.params import PARAMS, replay_interval, sweep_asked
from openpool.airflow.sensors import NewEventFilesSensor
from openpool.partitions import ACTIVE_PARTITIONS, Partition

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "openpool",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}

DOC = """\
### Ingest — {partition}

Turns the orchestrators' event files for **{partition}** (node type `{node_type}`, region
`{region}`) into exact per-worker balances, one snapshot commit per run.

Tasks, each safe to retry:
- `wait_for_events`: deferred wait for a file not yet ingested under `{path}/`; the run
  ends as *skipped* after {wait} with nothing new.
- `parse`: reads and validates the new files (at most {max_files} per run, oldest first).
  Bad events go to `rejected_events`, unreadable files to `quarantined_files`. It lists
  only the keys after the key-time watermark minus the lookback; once a day (or when the
  run's `sweep` box is ticked) it sweeps the whole partition and reports what the windowed
  listings had missed.
- `dedup`: drops events whose ID was already counted, ever; the same ID with new content
  is rejected as a conflict.
- `accrue`: fees, commission and earnings per worker; AI jobs matched by request ID.
- `commit`: the one visible step, one atomic snapshot; a repeat does nothing.
- `analytics`: refreshes the partition's performance and summary, and the dashboard JSON.
- `archive`: copies the processed files to the archive (same key) and verifies them.

**Backfill / replay**: trigger with `from`/`to` (UTC) or run a backfill over a period; files
with key times in the interval are re-scanned in the events and archive locations and any
not yet ingested are ingested. Repeating it changes nothing. Ingest never pays anyone:
payouts are the separate `openpool_payouts` DAG, after a person approves.
"""


def dag_id(partition: Partition) -> str:
    return f"openpool_ingest__{partition.node_type}__{partition.region}".replace("-", "_")


def state_asset(partition: Partition) -> Asset:
    """The Asset updated by each commit of the partition's state."""
    return Asset(
        name=f"openpool_state__{partition.slug}",
        uri=f"openpool://state/{partition.path}",
        group="openpool",
    )


def _run_key() -> str:
    ctx = get_current_context()
    return f"{ctx['dag'].dag_id}/{ctx['run_id']}"


def _timetable(schedule: timedelta | str | None) -> Any:
    """The schedule, with each run covering the period before it as its data interval.

    Airflow 3 turns a plain timedelta into a trigger timetable whose data interval is a
    single instant: a backfill of 16:00-16:15 then asks to redo nothing. Each run at ``t``
    covers ``[t - period, t)``, so the runs of a backfill cover exactly its range."""
    if isinstance(schedule, timedelta):
        from airflow.sdk.definitions.timetables.trigger import DeltaTriggerTimetable

        return DeltaTriggerTimetable(schedule, interval=schedule)
    return schedule


def build_ingest_dag(
    partition: Partition,
    schedule: timedelta | str | None = timedelta(minutes=5),
    wait_timeout: timedelta = timedelta(minutes=4),
    poke_interval: timedelta = timedelta(seconds=30),
    max_files: int = 250,
    aws_conn_id: str = "aws_default",
    start_date: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    default_args: dict[str, Any] | None = None,
) -> DAG:
    """One partition's ingest DAG (see the module docstring for its shape)."""
    from openpool.ingest import steps  # plain library: no I/O on import

    asset = state_asset(partition)

    def env() -> steps.StepEnv:
        from openpool.airflow.runtime import step_env

        return step_env(partition, aws_conn_id, max_files=max_files)

    with DAG(
        dag_id=dag_id(partition),
        schedule=_timetable(schedule),
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, **(default_args or {})},
        tags=["openpool", "ingest", partition.node_type, partition.region],
        params=PARAMS,
        doc_md=DOC.format(
            partition=partition,
            node_type=partition.node_type,
            region=partition.region,
            path=partition.path,
            wait=wait_timeout,
            max_files=max_files,
        ),
    ) as dag:
        wait = NewEventFilesSensor(
            task_id="wait_for_events",
            partition=partition,
            wait_timeout=wait_timeout,
            poke_interval=poke_interval.total_seconds(),
            aws_conn_id=aws_conn_id,
            retries=0,
        )

        @task
        @unretried
        def parse() -> dict[str, Any]:
            ctx = get_current_context()
            interval = replay_interval(ctx)
            start, end = interval if interval else (None, None)
            return steps.parse(env(), _run_key(), start, end, sweep=sweep_asked(ctx))

        @task
        @unretried
        def dedup(parsed: dict[str, Any]) -> dict[str, Any]:
            return steps.dedup(env(), _run_key())

        @task
        @unretried
        def accrue(deduped: dict[str, Any]) -> dict[str, Any]:
            return steps.accrue(env(), _run_key())

        @task(outlets=[asset])
        @unretried
        def commit(accrued: dict[str, Any]) -> dict[str, Any]:
            result = steps.commit(env(), _run_key())
            extra = get_current_context()["outlet_events"][asset].extra
            extra["snapshot_version"] = result["snapshot_version"]
            return result

        @task
        @unretried
        def archive(committed: dict[str, Any]) -> dict[str, Any]:
            return steps.archive(env(), _run_key())

        @task
        @unretried
        def analytics(committed: dict[str, Any]) -> dict[str, Any]:
            from openpool.airflow.runtime import settings, store
            from openpool.analytics.refresh import refresh

            s = settings()
            state = store(s.state_uri, aws_conn_id)
            metrics = store(s.metrics_uri, aws_conn_id)
            # paid and in flight: every wallet's ledger in the state store, read-only
            return refresh(
                partition,
                state,
                metrics,
                s.payment_threshold_wei,
                min_timed_jobs=s.rank_min_timed_jobs,
                commission_rate=s.commission_rate,
            ).report()

        # TaskFlow calls return an XComArg while the DAG is built; the task gets the dict.
        wait >> (parsed := parse())
        committed = commit(accrue(dedup(parsed)))  # type: ignore[arg-type]
        analytics(committed)  # type: ignore[arg-type]
        archive(committed)  # type: ignore[arg-type]
    return dag


def ingest_dags(partitions: tuple[str, ...] = ACTIVE_PARTITIONS, **kwargs: Any) -> dict[str, DAG]:
    """Every active partition's ingest DAG, keyed by DAG id."""
    dags = (build_ingest_dag(Partition.parse(p), **kwargs) for p in partitions)
    return {d.dag_id: d for d in dags}


SUMMARY_DAG_ID = "openpool_summary"
SUMMARY_DOC = """\
### Pool summary

Runs whenever any partition's state Asset is updated (an ingest commit): merges every
active partition's worker summary into one pool-wide view, where a worker active in two
regions appears once with its per-partition detail, and writes it to
`pool/worker_summary.json` under `OPENPOOL_METRICS_URI`. Read-only with respect to state.
"""


def build_summary_dag(
    partitions: tuple[str, ...] = ACTIVE_PARTITIONS,
    aws_conn_id: str = "aws_default",
    start_date: datetime = datetime(2026, 1, 1, tzinfo=UTC),
) -> DAG:
    """The pool-wide summary DAG, scheduled on the partitions' state Assets."""
    parts = [Partition.parse(p) for p in partitions]
    schedule: BaseAsset = state_asset(parts[0])
    for p in parts[1:]:
        schedule = schedule | state_asset(p)
    with DAG(
        dag_id=SUMMARY_DAG_ID,
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["openpool", "analytics"],
        doc_md=SUMMARY_DOC,
    ) as dag:

        @task
        @unretried
        def pool_summary() -> dict[str, Any]:
            from openpool.airflow.runtime import settings, store
            from openpool.analytics.pool import write_pool_summary

            s = settings()
            return write_pool_summary(
                parts,
                store(s.state_uri, aws_conn_id),
                store(s.metrics_uri, aws_conn_id),
                s.payment_threshold_wei,
            )

        pool_summary()
    return dag
