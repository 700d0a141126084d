"""Configuration: embedded defaults, and invalid values named at start-up."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from openpool.config import load_settings
from openpool.errors import ConfigError
from openpool.partitions import ACTIVE_PARTITIONS, Partition


def test_defaults_run_with_nothing_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("OPENPOOL_STATE_URI", "POOL_COMMISSION_RATE", "OPENPOOL_PARTITIONS"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.state_uri == f"file://{tmp_path}/var/state"
    assert s.commission_rate == Fraction(1, 4)
    assert s.payment_threshold_wei == 10**16
    assert s.chain_id == 42161
    assert [p.key for p in s.partitions] == list(ACTIVE_PARTITIONS)
    assert len(s.partitions) == 5


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENPOOL_STATE_URI", "s3://pool-state/prod/")
    monkeypatch.setenv("POOL_COMMISSION_RATE", "0.1")
    monkeypatch.setenv("PAYMENT_THRESHOLD_WEI", "123456789012345678901234567890")
    monkeypatch.setenv("OPENPOOL_PARTITIONS", "ai|us-central, transcode|ap-south")
    s = load_settings()
    assert s.state_uri == "s3://pool-state/prod"
    assert s.commission_rate == Fraction(1, 10)  # exact, not 0.1000000000000000055...
    assert s.payment_threshold_wei == 123456789012345678901234567890
    assert s.partitions == (Partition("ai", "us-central"), Partition("transcode", "ap-south"))


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("POOL_COMMISSION_RATE", "1.5", "must be in [0, 1)"),
        ("POOL_COMMISSION_RATE", "abc", "not a decimal number"),
        ("POOL_COMMISSION_RATE", "NaN", "not finite"),
        ("PAYMENT_THRESHOLD_WEI", "1e16", "integer number of wei"),
        ("PAYMENT_THRESHOLD_WEI", "-5", "integer number of wei"),
        ("MAX_GAS_PRICE_WEI", "0.5", "integer number of wei"),
        ("OPENPOOL_STATE_URI", "ftp://host/x", "unsupported URI scheme"),
        ("OPENPOOL_EVENTS_URI", "s3://", "needs a bucket"),
        ("ETH_RPC_ENDPOINT", "localhost:8545", "http(s)://"),
        ("CHAIN_ID", "zero", "CHAIN_ID"),
        ("OPENPOOL_PARTITIONS", "gpu|us-west", "unknown node type"),
        ("OPENPOOL_PARTITIONS", "ai|us-west,ai|us-west", "must not repeat"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert var in str(info.value)
    assert fragment in str(info.value)


def test_cli_refuses_to_start_on_bad_config_naming_the_variable() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "openpool.cli", "gc", "--dry-run"],
        env={"POOL_COMMISSION_RATE": "0.25.1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "POOL_COMMISSION_RATE" in proc.stderr
    assert proc.stdout == ""
