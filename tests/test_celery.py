"""The pool on CeleryExecutor ends in the same state as on LocalExecutor.

The same stack is started twice by the devstack (``python -m openpool.devstack up``, what
``make up`` runs), on the same generated hour of traffic: once with LocalExecutor on SQLite,
once with ``--executor celery``: a real scheduler, dag-processor, triggerer and api-server
on PostgreSQL, Redis as broker and two Celery workers in separate working directories, a
moto S3 server and anvil. In each, one ingest DAG runs, then the payouts DAG, whose
approval is answered through the REST API as the demo does. A cluster policy
(``tests/helpers/alternate_workers``) sends every task to the other worker than the task
before it, so no task can lean on another's local disk. The committed snapshot (every
table's rows), the balances, the ledger's payments and the transfers read from the chain
over RPC must be equal under both executors, and on chain equal to the ledger.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import boto3
import pytest

from openpool.airflow.rest import AirflowAPI
from openpool.devstack import procs
from openpool.devstack.stack import BUCKETS, CELERY_WORKERS, ingest_dag_ids
from openpool.partitions import ACTIVE_PARTITIONS, Partition
from openpool.payouts.chain import Chain
from openpool.payouts.ledger import Ledger
from openpool.snapshots import SnapshotStore
from openpool.storage import S3Store
from tests.chaos.chain_audit import wallet_transfers
from tests.chaos.state import table_digest
from tests.helpers.devstack_cli import run_devstack
from tests.helpers.ledger import balances_of
from tests.services import REPO

# The stacks run in child processes, where conftest cannot see what they start.
pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.s3, pytest.mark.chain]

POLICY = REPO / "tests" / "helpers" / "alternate_workers"
PAYOUTS = "openpool_payouts"
INGEST = ingest_dag_ids()[0]
PART = Partition.parse(ACTIVE_PARTITIONS[0])
# a Celery worker's log line for each task it takes off the queue
RECEIVED = re.compile(r"Task execute_workload\[[0-9a-f-]+\] received")


@dataclass
class Pool:
    """What one stack ended with."""

    tables: dict[str, str]  # table -> digest of its rows in the committed snapshot
    version: int
    balances: dict[str, dict[str, int]]
    payments: Counter[tuple[str, str, int, str]]  # partition, worker, wei, status
    on_chain: Counter[tuple[str, int]]  # worker, wei: the wallet's mined transfers
    tasks: dict[str, list[dict[str, Any]]]  # dag_id -> its run's task instances
    celery_dirs: list[Path]
    received: dict[str, int]  # Celery worker -> tasks its log says it received


def _devstack(directory: Path, *args: str, timeout: float = 600) -> CompletedProcess[str]:
    return run_devstack(directory, *args, timeout=timeout, pythonpath=(POLICY,))


def _finished_run(api: AirflowAPI, dag_id: str, timeout: float = 420) -> dict[str, Any]:
    """The DAG's first run, once it has ended (success or failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api.get(f"/dags/{dag_id}/dagRuns", order_by="run_after", limit=1)["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(2)
    raise AssertionError(f"{dag_id}: no run ended within {timeout:.0f}s")


def _approve(api: AirflowAPI, timeout: float = 420) -> None:
    """Answer the payouts run's request with Approve, as a person in the UI does."""
    from openpool.airflow.demo import Approver

    deadline = time.monotonic() + timeout
    while not (pending := api.pending_hitl(PAYOUTS)):
        assert time.monotonic() < deadline, "the payouts DAG asked for no approval"
        time.sleep(2)
    Approver(lambda: api, PAYOUTS, "Approve", lambda _: None).answer(api, pending[0])


def _task_instances(api: AirflowAPI, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from urllib.parse import quote

    doc = api.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
    return doc["task_instances"]


def _run_pool(directory: Path, executor: str, traffic_start: datetime) -> Pool:
    up = _devstack(
        directory,
        "up",
        "--executor",
        executor,
        "--paused",
        "--hours",
        "1",
        "--traffic-start",
        traffic_start.isoformat(),
        *("--airflow-port", "0", "--s3-port", "0", "--rpc-port", "0"),
    )
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        stack = json.loads((directory / "stack.json").read_text())
        password = json.loads(Path(stack["password_file"]).read_text())[stack["username"]]
        api = AirflowAPI(stack["airflow_url"], stack["username"], password)
        tasks = {}
        api.set_paused(INGEST, False)
        run = _finished_run(api, INGEST)
        tasks[INGEST] = _task_instances(api, INGEST, run["dag_run_id"])
        assert run["state"] == "success", tasks[INGEST]
        api.set_paused(INGEST, True)  # its next runs would find nothing new anyway
        api.set_paused(PAYOUTS, False)
        _approve(api)
        run = _finished_run(api, PAYOUTS)
        tasks[PAYOUTS] = _task_instances(api, PAYOUTS, run["dag_run_id"])
        assert run["state"] == "success", tasks[PAYOUTS]

        client = boto3.client(
            "s3",
            endpoint_url=stack["s3_url"],
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name="us-east-1",
        )
        state = S3Store(f"s3://{BUCKETS[2]}", client=client)
        snap = SnapshotStore(state, PART).latest()
        wallet = stack["hot_wallet"]
        payments = Ledger(state, wallet).payments().values()
        chain = wallet_transfers(Chain(stack["rpc_url"]), stack["rpc_url"], wallet)
        return Pool(
            tables={t: table_digest(snap, t, drop_versions=False) for t in snap.manifest.tables},
            version=snap.version,
            balances=balances_of(state, PART),
            payments=Counter(
                (p["partition"], p["eth_address"].lower(), int(p["amount_wei"]), p["status"])
                for p in payments
            ),
            on_chain=Counter((t.to, t.value) for t in chain if t.ok),
            tasks=tasks,
            celery_dirs=[Path(w) for w in stack["workers"]],
            received={
                w: len(RECEIVED.findall((directory / "logs" / f"celery-{w}.log").read_text()))
                for w in CELERY_WORKERS
                if stack["workers"]
            },
        )
    finally:
        down = _devstack(directory, "down", timeout=180)
        assert down.returncode == 0, down.stderr[-3000:]
        assert procs.members(directory.resolve()) == []  # no worker or server left behind


# two stacks one after the other: 163 s on an idle 2-core machine, 10+ min on a busy one
@pytest.mark.timeout(1500)
def test_celery_with_two_workers_ends_in_the_state_local_executor_does(tmp_path: Path) -> None:
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = this_hour - timedelta(hours=1)
    local = _run_pool(tmp_path / "local", "local", start)
    celery = _run_pool(tmp_path / "celery", "celery", start)

    # something was ingested and paid, under both
    assert local.version >= 1 and local.balances
    assert local.payments and set(local.payments) == {
        (str(PART), w, wei, "confirmed") for (_, w, wei, _) in local.payments
    }
    # the same committed state, balances and ledger under both executors
    assert celery.version == local.version
    assert celery.tables == local.tables
    assert celery.balances == local.balances
    assert celery.payments == local.payments
    # and the same payments on chain, each one the ledger recorded, once
    for pool in (local, celery):
        assert pool.on_chain == Counter((w, wei) for (_, w, wei, _) in pool.payments.elements())
    assert celery.on_chain == local.on_chain

    # under Celery every task ran, on the other worker than the task before it
    for dag_id, tis in celery.tasks.items():
        queues = {ti["task_id"]: ti["queue"] for ti in tis}
        assert set(queues.values()) == set(CELERY_WORKERS), (dag_id, queues)
        for ti in tis:
            assert ti.get("executor") in (None, "CeleryExecutor") and ti["state"] in (
                "success",
                "skipped",
            ), ti
    ingest = {ti["task_id"]: ti["queue"] for ti in celery.tasks[INGEST]}
    for up, down in (("parse", "dedup"), ("dedup", "accrue"), ("accrue", "commit")):
        assert ingest[up] != ingest[down], ingest
    # both workers took tasks off Redis: at least the tasks pinned to each
    pinned = Counter(ti["queue"] for tis in celery.tasks.values() for ti in tis)
    for worker in CELERY_WORKERS:
        assert celery.received[worker] >= pinned[worker] > 0, (celery.received, pinned)
    assert local.received == {}
    # in two separate working directories
    assert [d.name for d in celery.celery_dirs] == list(CELERY_WORKERS)
    assert len({d.resolve() for d in celery.celery_dirs}) == 2
