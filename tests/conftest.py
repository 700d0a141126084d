"""Shared fixtures: a real moto S3 server for the session, and stores on both backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import REPO, airflow_env

# Airflow reads its configuration when first imported: point it at a throwaway home with a
# SQLite metadata DB before any test module imports it.
os.environ.update(airflow_env())

from openpool.storage import LocalStore, ObjectStore, S3Store, make_s3_client
from tests.services import moto_server, s3_env


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto server process for the session; the env points boto3 at it."""
    logs = tmp_path_factory.mktemp("moto-logs")
    with moto_server(logs) as endpoint:
        saved = {k: os.environ.get(k) for k in s3_env(endpoint)}
        os.environ.update(s3_env(endpoint))
        try:
            yield endpoint
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket on the moto server."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    make_s3_client().create_bucket(Bucket=name)
    return name


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> ObjectStore:
    if kind == "local":
        return LocalStore(tmp_path / "state")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(f"s3://{bucket}/state")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The same contract, run against the local backend and a real moto server."""
    return make_store(request.param, tmp_path, request)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Airflow's metadata DB (SQLite), migrated once per session by Airflow's own CLI."""
    import subprocess

    home = os.environ["AIRFLOW_HOME"]
    subprocess.run(
        [str(REPO / ".venv/bin/airflow"), "db", "migrate"],
        env=os.environ,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return home
