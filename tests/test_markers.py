"""The markers mean something: s3, chain and airflow are on the tests that start those
services, the fast tier (``make test-fast``) holds none of them, and a test that starts a
service without its marker is stopped.

The classification is read from the session (``tests/conftest.py`` keeps every collected
test's markers before ``-m`` deselects any), so these checks hold in every tier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.conftest import CLASSIFIED, FAST, SERVICE_FIXTURES, SERVICE_MARKERS
from tests.helpers import hitl_api
from tests.services import REPO

TIERS = (*SERVICE_MARKERS, "slow")
# A test known to need each marker, and why.
KNOWN = {
    "s3": "tests/test_snapshots_crash.py::"  # the "s3" parameter of the store fixture
    "test_crash_before_manifest_leaves_previous_snapshot_and_gc_collects_orphans[s3]",
    "chain": "tests/test_payouts_chain.py::"  # pool fixture -> open_pool() -> anvil()
    "test_a_settled_record_never_moves_back",
    "airflow": "tests/test_dags.py::"  # runs the DagBag import helper in a child
    "test_dag_files_import_cleanly_without_network_or_config",
    "slow": "tests/test_chaos.py::"  # set by hand
    "test_the_reduced_campaign_injects_faults_everywhere_and_breaks_nothing",
}
# Tests that need none, next to ones that do.
PURE = [
    "tests/test_snapshots_crash.py::"
    "test_crash_before_manifest_leaves_previous_snapshot_and_gc_collects_orphans[local]",
    "tests/test_layout.py::test_console_script_is_installed_and_lists_snapshots",
    "tests/test_reader.py::test_empty_bytes",
]
# Named here, not called by name in a test body, so conftest's source scan does not mark
# the test that proves the guard.
STARTERS: dict[str, Any] = {
    "s3": lambda tmp: services.moto_server(tmp),
    "chain": lambda tmp: services.anvil(tmp),
    "airflow": lambda tmp: hitl_api.api_server(),
}


@pytest.fixture(scope="module")
def classified(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """Every test of the suite with its markers, fixtures and parameters: this session's
    own classification when it collected the whole suite (make test, make test-fast), else
    that of a collection-only child."""
    here = request.config.stash[CLASSIFIED]
    files = {n.split("::")[0] for n in here}
    if files >= {str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")}:
        return here
    out = tmp_path_factory.mktemp("markers") / "classified.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests"],
        cwd=REPO, env={**os.environ, "OPENPOOL_TEST_MARKERS_OUT": str(out)},
        capture_output=True, check=True, timeout=300,
    )  # fmt: skip
    return json.loads(out.read_text())


def test_each_marker_is_on_a_test_known_to_need_it(classified: dict[str, Any]) -> None:
    for marker, nodeid in KNOWN.items():
        assert marker in classified[nodeid]["markers"], nodeid
    for nodeid in PURE:
        assert not set(classified[nodeid]["markers"]) & set(TIERS), nodeid
    counts = {m: sum(m in c["markers"] for c in classified.values()) for m in TIERS}
    assert all(counts.values()), counts


def test_the_fast_tier_holds_no_test_that_uses_a_service(classified: dict[str, Any]) -> None:
    fast = {n: c for n, c in classified.items() if not set(c["markers"]) & set(TIERS)}
    assert len(fast) > len(classified) // 2  # the pure tier is most of the suite
    for nodeid, c in fast.items():
        for marker, fixtures in SERVICE_FIXTURES.items():
            assert not set(c["fixtures"]) & fixtures, (nodeid, marker)
        assert "s3" not in c["params"].values() or "marker" in c["params"], nodeid


def test_make_test_fast_runs_exactly_that_tier() -> None:
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("test-fast:"))
    prerequisites = lines[start].split(":", 1)[1].split()
    assert "lint" not in prerequisites and "browser" not in prerequisites
    recipe = lines[start + 1]
    assert recipe.startswith("\t") and f'-m "{FAST}"' in recipe
    assert FAST == " and ".join(f"not {m}" for m in TIERS)


@pytest.mark.parametrize("marker", SERVICE_MARKERS)
def test_a_test_without_the_marker_cannot_start_the_service(tmp_path: Path, marker: str) -> None:
    assert services.ACTIVE_MARKERS is not None and marker not in services.ACTIVE_MARKERS
    with pytest.raises(services.UnmarkedService, match=f"needs the '{marker}' marker"):
        with STARTERS[marker](tmp_path):
            pass
