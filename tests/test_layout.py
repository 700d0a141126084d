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
    """The installed ``openpool`` script, run as a user runs it, lists the versions a few
    ingest runs committed (made here with the library: the script is what is tested)."""
    from datetime import UTC, datetime, timedelta
    from fractions import Fraction

    from openpool.ingest.run import ingest
    from openpool.partitions import Partition
    from openpool.snapshots import SnapshotStore
    from openpool.storage import LocalStore
    from openpool.traffic import generate, write

    script = Path(sys.executable).parent / "openpool"
    assert script.exists(), "pip install -e . must expose .venv/bin/openpool"
    part = Partition("transcode", "us-west")
    events, state = LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state")
    start = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
    write(generate(part, start, timedelta(minutes=40), workers=3, seed=2), events)
    for _ in range(3):  # one snapshot per run, two files each
        ingest(part, events, state, Fraction(1, 4), max_files=2)
    history = {m.version: m for m in SnapshotStore(state, part).history()}
    assert len(history) >= 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPOOL_")}
    env["OPENPOOL_STATE_URI"] = state.uri
    proc = subprocess.run(
        [str(script), "snapshots", "--node-type", "transcode", "--region", "us-west",
         "--format", "json"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert sorted(r["version"] for r in rows) == sorted(history)
    for r in rows:
        assert r["rows"] == history[r["version"]].row_counts(), r["version"]
        assert r["run_id"] == history[r["version"]].run_id


# The demo runs Airflow (dag.test), anvil and every DAG in a child process: the markers
# conftest derives from fixtures cannot see that, so they are set here. The child's own
# timeout is under the test's, so a hung demo fails with its output, not a bare timeout.
@pytest.mark.slow
@pytest.mark.airflow
@pytest.mark.chain
@pytest.mark.timeout(1200)
def test_the_demo_runs_every_dag_in_airflow_and_pays_through_the_approval(tmp_path: Path) -> None:
    from openpool.partitions import Partition
    from openpool.snapshots import SnapshotStore
    from openpool.storage import LocalStore

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
    snaps = SnapshotStore(LocalStore(tmp_path / "state"), Partition("transcode", "us-west"))
    history = list(snaps.history())
    # one snapshot per ingest run that committed; the final rerun (skipped) added none
    assert sorted(m.version for m in history) == list(range(1, commits + 1))
    latest = max(history, key=lambda m: m.version)
    assert latest.row_counts()["balances"] == TRAFFIC["workers"]


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
