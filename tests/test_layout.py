"""The package's shape: the core imports no Airflow; the console script is installed."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from openpool.devstack.demo import TRAFFIC
from tests.services import REPO

CORE_MODULES = [
    "openpool",
    "openpool.config",
    "openpool.errors",
    "openpool.partitions",
    "openpool.storage",
    "openpool.snapshots",
    "openpool.cli",
    "openpool.devstack.demo",
    "openpool.devstack.stack",
    "openpool.devstack.commands",
    "openpool.traffic",
    "openpool.cli.traffic",
    "openpool.frames",
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


def test_every_error_type_lives_in_errors_py_and_the_terminal_ones_say_so() -> None:
    """Issue 17: callers branch on error types, and a DAG task fails unretried on the
    terminal ones (openpool.airflow.failures), so they are all in one module."""
    import ast
    import inspect

    from openpool import errors

    names = {n for n, c in vars(errors).items() if inspect.isclass(c) and issubclass(c, Exception)}
    outside = []
    for path in sorted((REPO / "plugins/openpool").rglob("*.py")):
        if path.name == "errors.py" and path.parent.name == "openpool":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {
                    b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases
                }
                if bases & (names | {"Exception", "ValueError", "RuntimeError"}):
                    outside.append(f"{path.relative_to(REPO)}:{node.name}")
    assert outside == []
    terminal = {n for n in names if getattr(getattr(errors, n), "terminal", False)}
    assert terminal == {
        "ConfigError",  # bad configuration
        "CorruptObject", "CorruptManifest", "CorruptDataFile", "MissingDataFile",
        "CorruptState",  # damaged state
        "PlanRefused", "InvalidPlan", "LedgerBehindChain",  # a plan that must not be paid
    }  # fmt: skip


def test_no_pickle_anywhere_in_the_product() -> None:
    for root in ("plugins", "dags"):
        for path in (REPO / root).rglob("*.py"):
            text = path.read_text()
            for bad in ("import pickle", "from pickle", "import dill", "cloudpickle"):
                assert bad not in text, f"{path} uses {bad}"


def test_the_ingest_never_imports_the_traffic_generator_and_the_product_has_no_oracle() -> None:
    """The generator is tooling for tests, benches and the demo, and the reference balances
    are test code (tests/helpers/oracle.py): the pipeline depends on neither."""
    import ast

    for path in sorted((REPO / "plugins/openpool/ingest").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):  # from openpool import traffic, too
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not [n for n in names if n.startswith("openpool.traffic")], path
    for root in ("plugins", "dags"):
        for path in (REPO / root).rglob("*.py"):
            assert "oracle_balances" not in path.read_text(), path


def test_console_script_is_installed_and_lists_snapshots(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "openpool"
    assert script.exists(), "pip install -e . must expose .venv/bin/openpool"
    env = dict(
        os.environ, OPENPOOL_DEMO_DIR=str(tmp_path), OPENPOOL_STATE_URI=str(tmp_path / "state")
    )
    demo = subprocess.run(
        [sys.executable, "-m", "openpool.devstack.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "APPROVED BY THE DEMO" in demo.stdout and " confirmed" in demo.stdout
    assert re.search(r"\b[1-9]\d* confirmed, 0 failed, 0 pending", demo.stdout)
    assert "make up" in demo.stdout.splitlines()[-2]  # it ends by saying how to open the UI
    commits = _demo_went_through_airflow(tmp_path)
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
    # one snapshot per ingest run that committed; the final rerun (skipped) added none
    assert sorted(r["version"] for r in rows) == list(range(1, commits + 1))
    latest = max(rows, key=lambda r: r["version"])
    assert latest["rows"]["balances"] == TRAFFIC["workers"]


def _demo_went_through_airflow(demo_dir: Path) -> int:
    """The demo's Airflow metadata DB: every ingest DAG ran, the payout was approved by the
    demo's user through the HITL API, and paid. Returns transcode|us-west's commit count."""
    from openpool.devstack.demo import APPROVER
    from openpool.partitions import ACTIVE_PARTITIONS, Partition

    db = sqlite3.connect(demo_dir / "airflow" / "airflow.db")
    runs = dict(db.execute("SELECT dag_id, group_concat(state) FROM dag_run GROUP BY dag_id"))
    tasks = db.execute("SELECT dag_id, task_id, state FROM task_instance").fetchall()
    ingest = {
        f"openpool_ingest__{p.node_type}__{p.region}".replace("-", "_")
        for p in map(Partition.parse, ACTIVE_PARTITIONS)
    }
    assert set(runs) == ingest | {"openpool_summary", "openpool_payouts"}
    assert all(set(states.split(",")) == {"success"} for states in runs.values()), runs
    commits = {d: 0 for d in ingest}
    for dag_id, task_id, state in tasks:
        if dag_id in ingest and task_id == "commit" and state == "success":
            commits[dag_id] += 1
    assert all(n >= 1 for n in commits.values()), commits
    payout_tasks = {t: s for d, t, s in tasks if d == "openpool_payouts"}
    assert payout_tasks == dict.fromkeys(
        ["recover", "plan", "approve", "execute", "confirm", "report"], "success"
    )
    ((by, chosen),) = db.execute("SELECT responded_by, chosen_options FROM hitl_detail")
    assert json.loads(by)["name"] == APPROVER and json.loads(chosen) == ["Approve"]
    (approval,) = (demo_dir / "state" / "approvals").glob("*.json")
    record = json.loads(approval.read_text())
    assert record["approver"] == f"airflow:{APPROVER}"
    assert record["via"].startswith("HITL openpool_payouts/")
    return commits["openpool_ingest__transcode__us_west"]


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
