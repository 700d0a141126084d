"""The console script imports only the command group it runs.

Every ``openpool`` process (and every crash trial that starts one) pays its imports; web3
and eth-account alone cost about two seconds. ``openpool.cli.main`` registers only the
group of the command being run, so ingesting, reading balances or collecting garbage never
loads the payout stack. Checked in a fresh interpreter, by what ``sys.modules`` holds.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("web3", "eth_account", "airflow", "duckdb")

PROBE = """
import json, sys
from openpool.cli.main import build_parser
build_parser(sys.argv[1:])
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r))))
"""


def _loaded(*argv: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *argv],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize(
    "argv",
    [
        ("ingest", "--node-type", "ai", "--region", "us-west"),
        ("balances", "--node-type", "ai", "--region", "us-west"),
        ("status", "--node-type", "ai", "--region", "us-west"),
        ("snapshots", "--node-type", "ai", "--region", "us-west"),
        ("table", "events", "--node-type", "ai", "--region", "us-west"),
        ("gc",),
    ],
)
def test_a_command_outside_payouts_loads_no_payout_or_airflow_code(argv: tuple[str, ...]) -> None:
    assert _loaded(*argv) == []


@pytest.mark.slow
def test_the_payouts_group_loads_web3_and_help_loads_every_group() -> None:
    assert "web3" in _loaded("payouts", "status")
    assert set(_loaded("--help")) >= {"web3", "eth_account", "duckdb"}
