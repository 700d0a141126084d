"""``make up`` / ``make down``: Airflow 3, an S3 server and anvil, in the background, on loopback.

``up`` starts, each as its own background service under ``var/up/`` (see ``procs``):

- a moto S3 server with the four buckets and a few hours of generated events (with mess)
  for every active partition, ending at the current hour;
- anvil (chain id 42161, 1 s blocks) and a hot wallet funded with 100 ETH, its keystore and
  password file in ``var/up/wallet/`` (0600, gitignored);
- Airflow 3 as api-server, scheduler, dag-processor and triggerer on one SQLite metadata
  DB (LocalExecutor), with ``dags/`` loaded and one admin user whose generated password is
  kept in ``var/up/airflow/passwords.json`` (0600).
- or, with ``executor="celery"``, the same on CeleryExecutor: PostgreSQL for the metadata
  and Celery's results and Redis as broker (``backends``), and two Celery workers, each in
  its own working directory (``workers/worker-N/``: cwd, ``TMPDIR`` and ``HOME``), so no
  task can rely on a file another task left on local disk. Each worker takes the
  ``default`` queue and its own (``worker-N``), so a task can be pinned to one.

It waits until the api-server lists the DAGs, unpauses the ingest, summary and alerts DAGs (the
payouts DAG stays paused: trigger it, then approve under Required Actions) and records
the ports in ``stack.json``. ``down`` stops everything it started, by pid file.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openpool.airflow.rest import AirflowAPI
from openpool.devstack import backends, procs
from openpool.devstack.airflow_home import airflow_env, write_users
from openpool.devstack.anvil import CHAIN_ID, anvil_argv
from openpool.devstack.net import LOOPBACK, choose_port, wait_http, wait_rpc
from openpool.devstack.wallet import funded_hot_wallet, write_private
from openpool.partitions import ACTIVE_PARTITIONS, Partition

REPO = Path(__file__).resolve().parents[3]
BUCKETS = ("openpool-events", "openpool-archive", "openpool-state", "openpool-metrics")
ADMIN = "admin"
# The moto server accepts any key pair; these only keep boto3 from looking for real ones.
S3_KEY = "openpool-local"
# A few hours of local traffic earn each worker about 1e-5 ETH: pay from 1e12 wei.
THRESHOLD_WEI = 10**12
AIRFLOW = ("api-server", "scheduler", "dag-processor", "triggerer")
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
CELERY_WORKERS = ("worker-1", "worker-2")
WORKER_CONCURRENCY = 2


@dataclass(frozen=True)
class Stack:
    """What ``up`` started; saved (without secrets) as ``<dir>/stack.json``."""

    directory: str
    airflow_url: str
    s3_url: str
    rpc_url: str
    username: str
    password_file: str
    hot_wallet: str
    dags: list[str]
    unpaused: list[str]
    executor: str = "LocalExecutor"
    workers: list[str] = field(default_factory=list)  # Celery workers' working directories

    def password(self) -> str:
        return json.loads(Path(self.password_file).read_text())[self.username]


def ingest_dag_ids() -> list[str]:
    """As ``openpool.airflow.factory.dag_id`` names them (that module imports Airflow)."""
    return [f"openpool_ingest__{Partition.parse(p).slug}" for p in ACTIVE_PARTITIONS]


def expected_dags() -> set[str]:
    return {*ingest_dag_ids(), "openpool_summary", "openpool_alerts", "openpool_payouts"}


def _airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _seed_events(s3_url: str, hours: int, start: datetime | None = None) -> int:
    """The buckets, and ``hours`` of messy traffic per partition from ``start`` (default:
    ending at this hour)."""
    import boto3

    from openpool.storage import S3Store
    from openpool.traffic import Mess, generate, write

    client = boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_KEY,
        region_name="us-east-1",
    )
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket)
    events = S3Store(f"s3://{BUCKETS[0]}", client=client)
    mess = Mess(
        duplicate_events=0.02, late_files=0.05, reupload_files=0.05, truncated_files=1,
        invalid_events=0.005, split_ai_jobs=0.2, resets=1,
    )  # fmt: skip
    if start is None:
        this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = this_hour - timedelta(hours=hours)
    files = 0
    for i, part in enumerate(ACTIVE_PARTITIONS):
        files += write(
            generate(
                Partition.parse(part),
                start,
                timedelta(hours=hours),
                workers=6,
                events_per_second=0.5,
                flush_seconds=300,
                seed=200 + i,
                mess=mess,
            ),
            events,
        )
    return files


def _openpool_env(s3_url: str, rpc_url: str, wallet_env: dict[str, str]) -> dict[str, str]:
    """Settings for tasks and for the ``openpool`` CLI against this stack (no secrets)."""
    conn = {
        "conn_type": "aws",
        "login": S3_KEY,
        "password": S3_KEY,
        "extra": {"endpoint_url": s3_url, "region_name": "us-east-1"},
    }
    return {
        "OPENPOOL_EVENTS_URI": f"s3://{BUCKETS[0]}",
        "OPENPOOL_ARCHIVE_URI": f"s3://{BUCKETS[1]}",
        "OPENPOOL_STATE_URI": f"s3://{BUCKETS[2]}",
        "OPENPOOL_METRICS_URI": f"s3://{BUCKETS[3]}",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn),
        "AWS_ENDPOINT_URL": s3_url,
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "ETH_RPC_ENDPOINT": rpc_url,
        "CHAIN_ID": str(CHAIN_ID),
        "OPENPOOL_EXPLORER_URL": "",  # anvil, not Arbitrum One: no public explorer links
        "PAYMENT_THRESHOLD_WEI": str(THRESHOLD_WEI),
        **wallet_env,
    }


def load(directory: Path) -> Stack | None:
    try:
        return Stack(**json.loads((directory / "stack.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def running(directory: Path) -> list[procs.Service]:
    return [s for s in procs.services(directory) if procs.is_running(s.pid, s.started)]


def up(
    directory: Path,
    airflow_port: int = 8080,
    s3_port: int = 9000,
    rpc_port: int = 8545,
    hours: int = 6,
    unpause: bool = True,
    timeout: float = 300,
    say: Callable[[str], None] = lambda _: None,
    executor: str = "local",
    traffic_start: datetime | None = None,
) -> Stack:
    """Start the stack under ``directory`` (see the module docstring); ports 0 = any free.

    ``executor``: ``local`` or ``celery`` (:data:`EXECUTORS`). ``traffic_start``: the first
    hour of generated traffic (default: ``hours`` before this hour). A wanted port that is
    taken is replaced by a free one. Raises if the stack is already running there; on any
    failure, stops whatever it started.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {sorted(EXECUTORS)}, not {executor!r}")
    directory = directory.resolve()
    if running(directory):
        raise RuntimeError(f"already running under {directory} (make down stops it)")
    procs.stop(directory, timeout=5)  # pid files of a stack that died: clean up
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "stack.json").unlink(missing_ok=True)
    _remove_data(directory)
    try:
        return _start(
            directory,
            airflow_port,
            s3_port,
            rpc_port,
            hours,
            unpause,
            timeout,
            say,
            executor,
            traffic_start,
        )
    except BaseException:
        procs.stop(directory, timeout=10)
        _remove_data(directory)
        raise


def _start(
    directory: Path,
    airflow_port: int,
    s3_port: int,
    rpc_port: int,
    hours: int,
    unpause: bool,
    timeout: float,
    say: Callable[[str], None],
    executor: str,
    traffic_start: datetime | None,
) -> Stack:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}

    s3_port = choose_port(s3_port)
    s3_url = f"http://{LOOPBACK}:{s3_port}"
    say(f"S3 (moto server) on {s3_url} ...")
    argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(s3_port)]
    procs.spawn(directory, "s3", argv, base_env)
    wait_http(f"{s3_url}/moto-api/", timeout=60)
    files = _seed_events(s3_url, hours, traffic_start)
    say(f"  {files} event files ({hours} h per partition, with mess) in s3://{BUCKETS[0]}")

    rpc_port = choose_port(rpc_port)
    rpc_url = f"http://{LOOPBACK}:{rpc_port}"
    say(f"anvil (chain id {CHAIN_ID}) on {rpc_url} and a funded hot wallet ...")
    procs.spawn(directory, "anvil", anvil_argv(rpc_port, block_time=1), base_env)
    wait_rpc(rpc_url, timeout=30)
    wallet = funded_hot_wallet(directory / "wallet", rpc_url)

    airflow_port = choose_port(airflow_port)
    home = directory / "airflow"
    home.mkdir(exist_ok=True)
    write_users(home / "passwords.json", {ADMIN: secrets.token_urlsafe(12)})
    env = {
        **base_env,
        **airflow_env(home, {ADMIN: "admin"}, api_port=airflow_port, log_level="INFO"),
        **_openpool_env(s3_url, rpc_url, wallet.env()),
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__WORKERS": "1",
    }
    if executor == "celery":
        say("PostgreSQL (metadata, Celery results) and Redis (broker) on loopback ...")
        found = backends.start(directory, base_env)
        env |= found.airflow_env()
        say(f"  PostgreSQL on port {found.pg_port}, Redis on port {found.redis_port}")
    cli = [f"export {k}={shlex.quote(v)}" for k, v in _openpool_env(s3_url, rpc_url, {}).items()]
    cli += [f"export {k}={shlex.quote(v)}" for k, v in wallet.env().items()]
    write_private(directory / "env.sh", "\n".join(cli) + "\n")
    say(f"Airflow 3 in {home}: migrating its metadata DB ...")
    with (directory / "logs").joinpath("airflow-db-migrate.log").open("wb") as log:
        subprocess.run(
            [_airflow_bin(), "db", "migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=600,
        )
    for component in AIRFLOW:
        argv = [_airflow_bin(), component]
        if component == "api-server":
            argv += ["--host", LOOPBACK, "--port", str(airflow_port), "--workers", "1"]
        if component in ("scheduler", "triggerer"):
            argv.append("--skip-serve-logs")  # log servers would listen on every interface
        procs.spawn(directory, f"airflow-{component}", argv, env)
    workers = _start_workers(directory, env) if executor == "celery" else []
    airflow_url = f"http://{LOOPBACK}:{airflow_port}"
    started = ", ".join([*AIRFLOW, *(f"celery {w}" for w in CELERY_WORKERS[: len(workers)])])
    say(f"  {started} started; waiting for {airflow_url}")
    wait_http(f"{airflow_url}/api/v2/version", timeout=timeout)
    stack = Stack(
        directory=str(directory),
        airflow_url=airflow_url,
        s3_url=s3_url,
        rpc_url=rpc_url,
        username=ADMIN,
        password_file=str(home / "passwords.json"),
        hot_wallet=wallet.address,
        dags=[],
        unpaused=[],
        executor=EXECUTORS[executor],
        workers=[str(w) for w in workers],
    )
    api = AirflowAPI(airflow_url, ADMIN, stack.password())
    dags = api.wait_for_dags(expected_dags(), timeout=timeout)
    _check_alive(directory)
    switched = [*ingest_dag_ids(), "openpool_summary", "openpool_alerts"] if unpause else []
    for dag_id in switched:
        api.set_paused(dag_id, False)
    stack = Stack(**{**asdict(stack), "dags": dags, "unpaused": switched})
    (directory / "stack.json").write_text(json.dumps(asdict(stack), indent=2))
    return stack


def _check_alive(directory: Path) -> None:
    """Every service started is still running (a worker that died at start would leave
    its tasks queued for ever); else the end of its log, in the error."""
    for svc in procs.services(directory):
        if not procs.is_running(svc.pid, svc.started):
            log = directory / "logs" / f"{svc.name}.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{svc.name} exited at start; the end of {log}:\n{tail}")


def _start_workers(directory: Path, env: dict[str, str]) -> list[Path]:
    """Two Celery workers, each in its own working directory; returns those directories.

    Each takes ``default`` and its own queue. Their log servers would listen on every
    interface, so they serve none: task logs go to the home's log folder, which the
    api-server reads (as it would read remote logs)."""
    dirs = []
    for name in CELERY_WORKERS:
        work = directory / "workers" / name
        (work / "tmp").mkdir(parents=True, exist_ok=True)
        argv = [_airflow_bin(), "celery", "worker", "--queues", f"default,{name}"]
        argv += ["--concurrency", str(WORKER_CONCURRENCY), "--celery-hostname", f"{name}@%h"]
        argv += ["--skip-serve-logs", "--without-mingle", "--without-gossip"]
        own = {"TMPDIR": str(work / "tmp"), "HOME": str(work)}
        procs.spawn(directory, f"celery-{name}", argv, {**env, **own}, cwd=work)
        dirs.append(work)
    return dirs


def _remove_data(directory: Path) -> list[tuple[str, str]]:
    """The Celery stack's PostgreSQL cluster and Redis directory, if any."""
    done = []
    if backends.remove_postgres(directory):
        done.append(("postgres data", "removed (the metadata DB goes with S3 and the chain)"))
    if (directory / "redis").exists():
        shutil.rmtree(directory / "redis")
        done.append(("redis data", "removed"))
    return done


def down(directory: Path) -> list[tuple[str, str]]:
    """Stop what ``up`` started under ``directory``; repeating it does nothing.

    S3 (moto) and the chain (anvil) live in memory and end with their processes, so the
    Airflow metadata DB goes too: the next ``up`` must not remember runs, approvals and
    Variables of a world that no longer exists."""
    directory = directory.resolve()
    done = procs.stop(directory)
    (directory / "stack.json").unlink(missing_ok=True)
    db = directory / "airflow" / "airflow.db"
    if db.exists():
        for leftover in (db, db.with_name("airflow.db-wal"), db.with_name("airflow.db-shm")):
            leftover.unlink(missing_ok=True)
        done.append(("airflow metadata DB", "removed (S3 and the chain start empty next up)"))
    return done + _remove_data(directory)
