"""The CeleryExecutor devstack's pieces: ``make up EXECUTOR=celery`` and its servers.

``make -n`` shows what the targets run (nothing is installed or started by it). The
servers test starts Debian's PostgreSQL and Redis for real, as the Celery stack does (as
the ``postgres`` account when root), and checks they listen on loopback only and refuse
a wrong password; then stopping leaves nothing, and the data goes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg2
import pytest
import redis

from openpool.devstack import backends, procs
from openpool.devstack.commands import main
from tests.services import REPO


def _make_n(*args: str) -> str:
    done = subprocess.run(
        ["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def test_make_up_executor_celery_installs_the_servers_and_passes_the_flag() -> None:
    celery = _make_n("up", "EXECUTOR=celery")
    assert "openpool.devstack up --executor celery" in celery
    assert "apt-get install" in celery and "postgresql redis-server" in celery
    local = _make_n("up")
    assert "openpool.devstack up --executor local" in local
    assert "redis-server" not in local  # LocalExecutor needs neither server
    assert "postgresql redis-server" in _make_n("test")  # CI runs the Celery test


def test_an_unknown_executor_is_refused_naming_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["up", "--executor", "kubernetes"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--executor" in err and "'celery'" in err and "'local'" in err


# slow: not in make test-fast, which installs no PostgreSQL or Redis (make test does)
@pytest.mark.slow
def test_postgres_and_redis_listen_on_loopback_with_passwords_and_leave_nothing(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "stack"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    try:
        found = backends.start(run_dir, env)
        url = found.sql_alchemy_conn.removeprefix("postgresql+psycopg2://")
        creds, _, where = url.rpartition("@")
        user, _, password = creds.partition(":")
        host, _, rest = where.partition(":")
        port, _, db = rest.partition("/")
        assert host == "127.0.0.1" and int(port) == found.pg_port and db == "airflow"
        with (
            psycopg2.connect(host=host, port=port, user=user, password=password, dbname=db) as conn,
            conn.cursor() as cur,
        ):
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == ("airflow", "airflow")
            cur.execute("SHOW listen_addresses")
            assert cur.fetchone() == ("127.0.0.1",)
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host=host, port=port, user=user, password="wrong", dbname=db)
        assert found.result_backend == f"db+postgresql+psycopg2://{url}"

        redis_pw = found.broker_url.split("//:", 1)[1].split("@", 1)[0]
        assert found.broker_url.endswith(f"@127.0.0.1:{found.redis_port}/0")
        assert redis.Redis(port=found.redis_port, password=redis_pw).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=found.redis_port, password="wrong").ping()
        conf = run_dir / "redis" / "redis.conf"
        assert oct(conf.stat().st_mode & 0o777) == "0o600"
        assert {s.name for s in procs.services(run_dir)} == {"postgres", "redis"}
        assert found.airflow_env()["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    finally:
        procs.stop(run_dir, timeout=20)
    assert procs.members(run_dir.resolve()) == []
    link = run_dir / "postgres"
    real = link.resolve()
    assert backends.remove_postgres(run_dir)
    assert not link.exists() and not link.is_symlink() and not real.exists()
