"""Parse DAG files in a fresh process with a minimal environment and everything cut off.

The subprocess (tests/helpers/import_dags.py) sees only these variables, nothing inherited:

- ``PATH``: a fixed system PATH, for anything that looks up a command; no tool of ours.
- ``PYTHONPATH``: the repo's ``plugins/`` folder, where Airflow's plugins folder puts
  ``openpool`` on ``sys.path`` in a deployment.
- ``HOME``: a fresh temporary folder, so no ``~/.aws``, ``~/.config`` or ``~/airflow`` of
  the machine can supply credentials or configuration.
- ``AIRFLOW_HOME``: the same temporary folder: Airflow needs a home; this one holds no
  ``airflow.cfg``, no DB and no secrets, and must hold no DB afterwards.
- ``LANG=C.UTF-8``: UTF-8 text I/O, and keeps Python from adding ``LC_CTYPE`` itself.

No ``OPENPOOL_*``, ``AWS_*``, ``AIRFLOW__*``, ``AIRFLOW_CONN_*`` or ``AIRFLOW_VAR_*``: a DAG
file that needs configuration, a connection or a Variable to parse fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.services import REPO

ENV_KEPT = ["AIRFLOW_HOME", "HOME", "LANG", "PATH", "PYTHONPATH"]

# Each guard import_dags.py must prove live (it calls each once and sees it raise)
GUARDS = [
    "dns",
    "gethostbyname",
    "inet socket",
    "inet6 socket",
    "create_connection",
    "sqlite3",
    "sqlalchemy engine",
    "sqlalchemy session",
    "airflow session",
    "airflow settings.Session",
    "airflow configure_orm",
    "sdk Variable.get",
    "models Variable.get",
    "sdk Connection.get",
    "BaseHook.get_connection",
    "models Connection.get_connection_from_secrets",
    "env secrets backend",
]


def parse_dags(path: Path) -> dict[str, Any]:
    """The JSON report of import_dags.py for ``path`` (a DAG folder or file), checked for
    isolation: only the minimal environment, every guard armed, no call blocked, no DB made."""
    with tempfile.TemporaryDirectory(prefix="op-dagparse-") as home:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(REPO / "plugins"),
            "HOME": home,
            "AIRFLOW_HOME": home,
            "LANG": "C.UTF-8",
        }
        out = subprocess.run(
            [sys.executable, str(REPO / "tests/helpers/import_dags.py"), str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=home,
        )
        assert out.returncode == 0, out.stderr[-4000:]
        report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        made = sorted(p.name for p in Path(home).rglob("*") if p.suffix in (".db", ".sqlite"))
    assert report["env"] == ENV_KEPT
    assert report["armed"] == GUARDS
    assert report["blocked"] == [], report["blocked"]
    # only urllib3's IPv6 probe at import (a socket bound to ::1, never connected) may be seen
    assert {t["api"] for t in report["tolerated"]} <= {"socket.socket(family=AF_INET6)"}
    assert made == [], made
    return report
