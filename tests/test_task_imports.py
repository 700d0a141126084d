"""Each ingest DAG task loads only what its step needs, in a fresh interpreter.

Every Airflow task runs in a process of its own and pays its imports before it does any
work; at one task per step, five steps per run and a run every five minutes per partition,
a second of needless imports is most of a small run. Each task's code path runs here as
the task does: the DAG is built through the factory (so Airflow is loaded, as it is in a
worker), then the task's step runs for real against local stores, each step in a new
interpreter after the one before it (they hand data on through the staging area, as in
production). What ``sys.modules`` then holds is compared with the modules no ingest step
needs: the payout stack (web3, eth_account), DuckDB (analytics), pandas (notebooks) and
eth_utils (whose import alone costs ~0.15 s; the reader checks EIP-55 with keccak).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openpool.partitions import Partition
from openpool.storage import LocalStore
from openpool.traffic import Mess, generate, write

HEAVY = ("web3", "eth_account", "duckdb", "pandas", "eth_utils")
PART = Partition("ai", "us-central")
STEPS = ("parse", "dedup", "accrue", "commit", "archive")

PROBE = """
import json, sys
from fractions import Fraction
from openpool.airflow.factory import build_ingest_dag
from openpool.partitions import Partition
part = Partition(%(node_type)r, %(region)r)
dag = build_ingest_dag(part)  # what the DAG file does in the task's process
from openpool.airflow.runtime import step_env  # what every task's env() imports
from openpool.ingest import steps
from openpool.storage import LocalStore
root = %(root)r
env = steps.StepEnv(
    part, LocalStore(root + "/events"), LocalStore(root + "/state"),
    LocalStore(root + "/archive"), Fraction(1, 4),
)
result = getattr(steps, %(step)r)(env, "openpool_ingest/run-1")
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(%(heavy)r))
print(json.dumps({"loaded": loaded, "airflow": "airflow" in sys.modules, "result": result}))
"""


def _run_step(step: str, root: Path) -> dict:
    code = PROBE % {
        "node_type": PART.node_type,
        "region": PART.region,
        "root": str(root),
        "step": step,
        "heavy": HEAVY,
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_each_ingest_task_loads_airflow_but_no_payout_analytics_or_pandas_code(
    tmp_path: Path,
) -> None:
    files = generate(
        PART,
        datetime(2026, 11, 1, 12, tzinfo=UTC),
        timedelta(minutes=3),
        workers=5,
        events_per_second=20,
        seed=3,
        mess=Mess(resets=1, invalid_events=0.05, truncated_files=1),
    )
    write(files, LocalStore(tmp_path / "events"))
    seen = {}
    for step in STEPS:
        got = _run_step(step, tmp_path)
        assert got["airflow"], step  # the probe really ran in a task-like process
        seen[step] = got["loaded"]
        if step == "commit":
            assert got["result"]["committed"] and got["result"]["events_accepted"] > 0
        if step == "archive":
            assert got["result"]["archived"] == len({f.key for f in files})
    assert seen == {step: [] for step in STEPS}
