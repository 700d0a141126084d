"""The environment of a local Airflow 3: its own home, SQLite metadata, loopback only.

Used by ``make demo`` (``dag.test()`` in-process) and ``make up`` (api-server, scheduler,
dag-processor and triggerer as processes). Airflow reads this when first imported, so it
must be in ``os.environ`` (or a child's environment) before then. Users log in with
Airflow's SimpleAuthManager: ``user:role`` pairs, passwords in a JSON file (0600).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from openpool.devstack.net import LOOPBACK
from openpool.devstack.wallet import write_private

REPO = Path(__file__).resolve().parents[3]
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def write_users(path: Path, passwords: dict[str, str]) -> None:
    """SimpleAuthManager's passwords file, readable by its owner only."""
    write_private(path, json.dumps(passwords))


def airflow_env(
    home: Path,
    users: dict[str, str],
    api_port: int | None = None,
    log_level: str = "WARNING",
) -> dict[str, str]:
    """Settings for an Airflow whose state all lives under ``home``.

    ``users``: user name -> SimpleAuthManager role (``admin``, ``op``, ``user``...);
    their passwords go in ``home/passwords.json`` (see :func:`write_users`).
    ``api_port``: where the api-server listens (tasks reach its execution API there).
    """
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in users.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": log_level,
        # Shared by every component of this home; generated here, never printed.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
    }
    if api_port:
        base = f"http://{LOOPBACK}:{api_port}"
        env |= {
            "AIRFLOW__API__HOST": LOOPBACK,
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        }
    return env
