"""PostgreSQL and Redis for the CeleryExecutor stack, from Debian's packages, on loopback.

PostgreSQL holds Airflow's metadata and Celery's results; Redis is Celery's broker. Both
listen on 127.0.0.1 only (PostgreSQL with no Unix socket), with passwords generated per
stack, and keep nothing worth keeping: ``down`` removes their data with the metadata.
PostgreSQL refuses to run as root, so as root its cluster belongs to the ``postgres``
account the Debian package creates, in a private directory under the system's temporary
directory (the stack's own directory may sit where that account cannot reach) linked
from ``<dir>/postgres``. ``make test`` and ``make up EXECUTOR=celery`` install the
packages when missing (Makefile target ``celery-services``).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from openpool.devstack import procs
from openpool.devstack.net import LOOPBACK, free_port
from openpool.devstack.wallet import write_private
from openpool.errors import MissingBinary

PG_USER = "airflow"
PG_DB = "airflow"
ROOT_PG_ACCOUNT = "postgres"  # created by Debian's postgresql-common


def _need(path: str | None, what: str) -> str:
    if not path:
        raise MissingBinary(
            f"{what} not found: install Debian's postgresql and redis-server packages "
            "(make celery-services does)"
        )
    return path


def pg_bindir() -> Path:
    """PostgreSQL's server binaries: ``OPENPOOL_PG_BINDIR``, else Debian's newest major."""
    if os.environ.get("OPENPOOL_PG_BINDIR"):
        return Path(os.environ["OPENPOOL_PG_BINDIR"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(_need(found[-1] if found else shutil.which("postgres"), "postgres")).parent


def redis_bin() -> str:
    return _need(shutil.which("redis-server") or _exists("/usr/bin/redis-server"), "redis-server")


def _exists(path: str) -> str | None:
    return path if Path(path).exists() else None


@dataclass(frozen=True)
class Backends:
    """Where the Celery stack's PostgreSQL and Redis listen (URLs carry the passwords)."""

    sql_alchemy_conn: str
    result_backend: str
    broker_url: str
    pg_port: int
    redis_port: int

    def airflow_env(self) -> dict[str, str]:
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
            "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": self.result_backend,
        }


def _pg_account() -> pwd.struct_passwd | None:
    """The account the cluster runs as when we are root (None: as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(ROOT_PG_ACCOUNT)
    except KeyError:
        raise MissingBinary(
            f"as root, PostgreSQL must run as the {ROOT_PG_ACCOUNT!r} account, which Debian's "
            "postgresql package creates (make celery-services installs it)"
        ) from None


def _pg_dir(directory: Path, account: pwd.struct_passwd | None) -> Path:
    link = directory / "postgres"
    remove_postgres(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if account is None:
        link.mkdir(parents=True)
        return link
    real = Path(tempfile.mkdtemp(prefix="openpool-pg-"))
    os.chown(real, account.pw_uid, account.pw_gid)
    link.symlink_to(real)
    return real


def remove_postgres(directory: Path) -> bool:
    """Remove the cluster under ``directory`` (also the private one a link points to)."""
    link = directory / "postgres"
    if link.is_symlink():
        shutil.rmtree(link.resolve(), ignore_errors=True)
        link.unlink()
        return True
    if link.exists():
        shutil.rmtree(link)
        return True
    return False


def start_postgres(directory: Path, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """initdb + postgres on a free loopback port; returns (port, password)."""
    import psycopg2

    account = _pg_account()
    bindir = pg_bindir()
    home = _pg_dir(directory, account)
    password = secrets.token_urlsafe(18)
    pwfile = home / "pwfile"
    write_private(pwfile, password)
    uid, gid = (None, None) if account is None else (account.pw_uid, account.pw_gid)
    if account is not None:
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    log = directory / "logs" / "postgres-initdb.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        subprocess.run(
            [
                *(str(bindir / "initdb"), "-D", str(home / "data"), "-U", PG_USER, "-E", "UTF8"),
                *("-A", "scram-sha-256", "--pwfile", str(pwfile), "--no-instructions"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=120,
            user=uid,
            group=gid,
        )
    pwfile.unlink()
    port = free_port()
    argv = [str(bindir / "postgres"), "-D", str(home / "data"), "-h", LOOPBACK, "-p", str(port)]
    # no Unix socket; a throwaway cluster needs no durability
    argv += ["-k", "", "-c", "fsync=off", "-c", "synchronous_commit=off"]
    argv += ["-c", "full_page_writes=off", "-c", "max_connections=200"]
    # SIGINT: a fast shutdown (SIGTERM would wait for every client to leave)
    procs.spawn(directory, "postgres", argv, env, user=uid, group=gid, stop_signal=signal.SIGINT)

    def connect() -> object:
        return psycopg2.connect(
            host=LOOPBACK, port=port, user=PG_USER, password=password, dbname="postgres"
        )

    conn = _retry(connect, timeout, f"PostgreSQL on {LOOPBACK}:{port}")
    conn.autocommit = True  # type: ignore[attr-defined]
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(f"CREATE DATABASE {PG_DB}")
    conn.close()  # type: ignore[attr-defined]
    return port, password


def start_redis(directory: Path, env: dict[str, str], timeout: float = 30) -> tuple[int, str]:
    """redis-server on a free loopback port, password in its 0600 config; (port, password)."""
    import redis

    home = directory / "redis"
    home.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    port = free_port()
    conf = home / "redis.conf"
    write_private(
        conf,
        f"bind {LOOPBACK}\nport {port}\nrequirepass {password}\nprotected-mode yes\n"
        f'dir {home}\nsave ""\nappendonly no\ndaemonize no\n',
    )
    procs.spawn(directory, "redis", [redis_bin(), str(conf)], env)
    client = redis.Redis(host=LOOPBACK, port=port, password=password)
    _retry(lambda: client.ping() or None, timeout, f"Redis on {LOOPBACK}:{port}")
    return port, password


def _retry(attempt: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except Exception as exc:  # not up yet: any connection error
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer within {timeout:.0f}s: {exc}") from None
            time.sleep(0.2)


def start(directory: Path, env: dict[str, str]) -> Backends:
    """PostgreSQL, then Redis, for a Celery stack under ``directory``."""
    pg_port, pg_pw = start_postgres(directory, env)
    redis_port, redis_pw = start_redis(directory, env)
    db = f"{PG_USER}:{pg_pw}@{LOOPBACK}:{pg_port}/{PG_DB}"
    return Backends(
        sql_alchemy_conn=f"postgresql+psycopg2://{db}",
        result_backend=f"db+postgresql+psycopg2://{db}",
        broker_url=f"redis://:{redis_pw}@{LOOPBACK}:{redis_port}/0",
        pg_port=pg_port,
        redis_port=redis_port,
    )
