"""The package's shape: the core imports no Airflow; the console script is installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import REPO

CORE_MODULES = [
    "openpool",
    "openpool.config",
    "openpool.errors",
    "openpool.partitions",
    "openpool.storage",
    "openpool.snapshots",
    "openpool.cli",
    "openpool.demo",
]


def test_core_imports_without_airflow() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {CORE_MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert json.loads(out) == []


def test_no_pickle_anywhere_in_the_product() -> None:
    for root in ("plugins", "dags"):
        for path in (REPO / root).rglob("*.py"):
            text = path.read_text()
            for bad in ("import pickle", "from pickle", "import dill", "cloudpickle"):
                assert bad not in text, f"{path} uses {bad}"


def test_console_script_is_installed_and_lists_snapshots(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "openpool"
    assert script.exists(), "pip install -e . must expose .venv/bin/openpool"
    env = dict(
        os.environ, OPENPOOL_DEMO_DIR=str(tmp_path), OPENPOOL_STATE_URI=str(tmp_path / "state")
    )
    demo = subprocess.run(
        [sys.executable, "-m", "openpool.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "APPROVED BY THE DEMO" in demo.stdout and " confirmed" in demo.stdout
    assert "0 confirmed" not in demo.stdout and "0 failed, 0 pending" in demo.stdout
    proc = subprocess.run(
        [
            str(script),
            "snapshots",
            "--node-type",
            "transcode",
            "--region",
            "us-west",
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = json.loads(proc.stdout)
    assert [r["version"] for r in rows] == [1]  # the demo's rerun committed nothing
    assert rows[0]["rows"]["balances"] == 6


@pytest.mark.parametrize(
    "path",
    [
        "dags",
        "plugins/openpool",
        "tests",
        "docker-compose.yaml",
        "requirements.txt",
        "README.md",
        "Makefile",
        "pyproject.toml",
        ".ci/run",
        "constraints.txt",
    ],
)
def test_fixed_layout_exists(path: str) -> None:
    assert (REPO / path).exists()
