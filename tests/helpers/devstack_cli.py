"""``python -m openpool.devstack`` (what ``make up`` / ``make down`` run), as a child.

The child gets this environment without Airflow's or AWS's settings (the stack makes its
own); ``pythonpath`` goes in front of ``PYTHONPATH`` (a test's cluster policy, say).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.services import REPO


def run_devstack(
    directory: Path, *args: str, timeout: float = 600, pythonpath: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
    paths = [*map(str, pythonpath), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return subprocess.run(
        [sys.executable, "-m", "openpool.devstack", "--dir", str(directory), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
