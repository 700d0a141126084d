"""The reduced chaos campaign (``python -m tests.chaos --size quick``), inside ``make test``.

It runs as a separate process, as ``make chaos`` does (the campaign installs an audit hook
and starts moto, anvil and many children of its own), and its report is checked here:
every part ran, injected faults, and broke no invariant.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import REPO

PARTS = {
    "crash: ingest CLI (SIGKILL)",
    "crash: ingest DAG tasks",
    "crash: payouts execute (anvil)",
    "payouts: race, rollback, stuck (anvil)",
    "S3 faults: ingest",
    "S3 faults: analytics",
    "S3 faults: payouts",
    "moto restarted mid-run",
    "bad input corpus",
    "fuzz: reader (hypothesis)",
    "concurrency",
    "trust: refused plans (CLI)",
    "secrets & pickle scan",
}


# The campaign starts moto and anvil in its own process, where conftest cannot see them.
@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.chain
@pytest.mark.timeout(1800)
def test_the_reduced_campaign_injects_faults_everywhere_and_breaks_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.chaos",
            "--size",
            "quick",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert out.exists(), proc.stderr[-3000:]
    report = json.loads(out.read_text())
    parts = {p["part"]: p for p in report["parts"]}
    assert set(parts) == PARTS, proc.stdout[-3000:]
    for name, p in parts.items():
        assert p["violations"] == [] and p["invariant_violations"] == 0, (name, p["violations"])
        assert p["faults_injected"] > 0 and p["trials"] > 0, name
        assert p["data_lost"] == 0 and p["duplicates"] == 0, name
    assert report["parts_without_faults"] == []
    # The kill points really landed in the work, not only before it started.
    assert parts["crash: ingest CLI (SIGKILL)"]["notes"]["byte_identical"] >= 1
    # Every ingest end state was judged against the oracle and the clean run (re-hashed),
    # and the judges were shown broken states and saw them.
    for name in ("crash: ingest CLI (SIGKILL)", "crash: ingest DAG tasks"):
        notes = parts[name]["notes"]
        for against in ("vs oracle", "vs clean run"):
            assert notes[f"end states checked {against}"] == parts[name]["trials"], name
            assert notes[f"violations {against}"] == 0, name
        assert notes["byte_identical"] == parts[name]["trials"], name
    ingest = parts["crash: ingest CLI (SIGKILL)"]["notes"]
    assert ingest["oracle self-test (cross-hour duplicate)"] == "ok"
    assert ingest["identity self-test (damaged copies)"] == "ok"
    assert parts["bad input corpus"]["notes"]["bad-input kinds (quarantined or rejected)"] >= 30
    judged = parts["payouts: race, rollback, stuck (anvil)"]["notes"]
    assert judged["race trials"] >= 1 and judged["rollback trials"] >= 1
    assert judged["stuck trials"] >= 1 and judged["stuck: priced out"] >= 1
    assert judged["double payments (from chain balances)"] == 0
    assert judged["detector self-test"] == "ok"
    scan = parts["secrets & pickle scan"]["notes"]
    assert scan["secret hits"] == 0 and scan["pickle.find_class events (all processes)"] == 0
    assert scan["detector self-test"] == "ok" and scan["Parquet files decoded and scanned"] > 0
    assert proc.returncode == 0, proc.stdout[-3000:]
