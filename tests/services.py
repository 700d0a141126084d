"""Real local services the tests talk to over their real protocols.

Each helper starts a separate process on a free loopback port, waits until it answers,
and stops it at the end. Used by conftest fixtures and by helper scripts alike.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from openpool.devstack.net import free_port, wait_http

REPO = Path(__file__).resolve().parents[1]

# The markers of the test pytest is running (set by tests/conftest.py); None outside pytest
# (the chaos campaign, the benches), where nothing is checked.
ACTIVE_MARKERS: frozenset[str] | None = None


class UnmarkedService(RuntimeError):
    """A test started a real service without the marker that says it does."""


def require(marker: str, what: str) -> None:
    """Refuse to start ``what`` inside a test that lacks ``marker`` (so ``-m "not ..."``
    really leaves it out); conftest derives the markers, this proves it missed none."""
    if ACTIVE_MARKERS is not None and marker not in ACTIVE_MARKERS:
        raise UnmarkedService(
            f"{what} needs the {marker!r} marker; teach tests/conftest.py (SERVICE_FIXTURES"
            f" or SERVICE_SOURCE) how to see it, or mark the test @pytest.mark.{marker}"
        )


@contextlib.contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """A moto S3 server process; yields its endpoint URL."""
    require("s3", "a moto S3 server")
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"moto-{port}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            endpoint = f"http://127.0.0.1:{port}"
            wait_http(endpoint + "/moto-api/", proc)
            yield endpoint
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment for boto3 to use the moto server with throwaway credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def airflow_env() -> dict[str, str]:
    """Settings for a real Airflow with a SQLite DB in a fresh temporary home."""
    import tempfile

    home = os.environ.get("OPENPOOL_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="op-airflow-")
    os.environ["OPENPOOL_TEST_AIRFLOW_HOME"] = home  # subprocesses share the same home
    return {
        "AIRFLOW_HOME": home,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def anvil(log_dir: Path, block_time: float | None = None) -> Iterator[str]:
    """An anvil chain (chain id 42161, Arbitrum One's) on a free port; yields its RPC URL.

    The product's own launcher (``openpool.devstack.anvil``), one account, automining
    unless ``block_time`` is given.
    """
    from openpool.devstack.anvil import anvil as launch

    require("chain", "an anvil chain")

    port = free_port()
    with launch(log_dir / f"anvil-{port}.log", port, block_time=block_time, accounts=1) as url:
        yield url
