"""Configuration: embedded defaults, and invalid values named at start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

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


def test_every_payout_setting_the_dag_reads_can_be_an_airflow_variable(tmp_path: Path) -> None:
    """The payout DAG's settings come from the environment with same-named Airflow
    Variables laid over them; the approval window, the stuck-send wait and the
    confirmation depth (issue 15) must be among them, as the README says. Variables are
    given here through Airflow's own environment backend (``AIRFLOW_VAR_<NAME>``)."""
    wanted = {
        "PLAN_MAX_AGE_SECONDS": ("plan_max_age_seconds", 600),
        "STUCK_AFTER_SECONDS": ("stuck_after_seconds", 45),
        "CONFIRMATIONS": ("confirmations", 3),
        "MAX_RUN_WEI": ("max_run_wei", 7 * 10**18),
    }
    code = (
        "import json\n"
        "from openpool.airflow.runtime import payout_settings\n"
        "s = payout_settings()\n"
        f"print(json.dumps({{k: getattr(s, k) for k in {[a for a, _ in wanted.values()]}}}))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "OPENPOOL_STATE_URI": str(tmp_path / "state"),
        **{f"AIRFLOW_VAR_{name}": str(v) for name, (_, v) in wanted.items()},
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {attr: v for attr, v in wanted.values()}


def test_the_readme_names_exactly_the_settings_airflow_variables_do_not_override() -> None:
    """Which settings a Variable may override is declared once, on each Settings field;
    the README's table documents every setting and names the two that are not."""
    from openpool.config import VARIABLE_SCOPES, Settings, env_name, variable_scope

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("| variable | default | meaning |", 1)[1].split("\n\n", 1)[0]
    names = {ln.split("`")[1] for ln in table.splitlines() if ln.startswith("| `")}
    declared = {env_name(n, f): variable_scope(n, f) for n, f in Settings.model_fields.items()}
    assert set(declared) <= names  # every setting is in the table
    assert names - set(declared) == {"AWS_ENDPOINT_URL"}  # boto3's, not a Settings field
    assert set(declared.values()) == {None, *VARIABLE_SCOPES}  # each reader has its own
    not_variables = {n for n in names if declared.get(n) is None}
    assert not_variables == {"OPENPOOL_GC_GRACE_SECONDS", "AWS_ENDPOINT_URL"}
    for name in not_variables:
        assert f"`{name}`" in readme.split("URIs are `s3://bucket/prefix`", 1)[1][:600]


def test_a_scope_outside_the_readers_is_refused() -> None:
    from pydantic import Field

    from openpool.config import variable_scope

    field = Field(1, validation_alias="X", json_schema_extra={"variable": "ingset"})
    with pytest.raises(TypeError, match="unknown variable scope 'ingset'"):
        variable_scope("x", field)


def test_explicit_overrides_beat_variables_beat_the_environment_beat_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The Airflow Variables source sits between init kwargs and the environment, and reads
    only the Variables its reader's fields declare (never OPENPOOL_GC_GRACE_SECONDS)."""
    from airflow.sdk import Variable

    from openpool.airflow.runtime import (
        PayoutSettings,
        dashboard_settings,
        payout_settings,
        settings,
    )
    from openpool.config import build_settings

    variables = {
        "POOL_COMMISSION_RATE": "0.2",
        "OPENPOOL_STATE_URI": "s3://from-variable/state",
        "CONFIRMATIONS": "3",
        "OPENPOOL_GC_GRACE_SECONDS": "5",
        "OPENPOOL_EXPLORER_URL": "",
    }
    asked: list[str] = []

    def get(key: str, default: Any = None) -> Any:
        asked.append(key)
        return variables.get(key, default)

    monkeypatch.setattr(Variable, "get", get)
    monkeypatch.chdir(tmp_path)
    for name in ("CHAIN_ID", "MAX_RUN_WEI", "OPENPOOL_EXPLORER_URL", "CONFIRMATIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POOL_COMMISSION_RATE", "0.1")  # a Variable too: the Variable wins
    monkeypatch.setenv("OPENPOOL_STATE_URI", str(tmp_path / "env-state"))  # likewise
    monkeypatch.setenv("PAYMENT_THRESHOLD_WEI", "5")  # environment only
    monkeypatch.setenv("OPENPOOL_GC_GRACE_SECONDS", "7")  # never a Variable

    s = payout_settings()
    assert s.commission_rate == Fraction(1, 5)  # Variable > environment
    assert s.state_uri == "s3://from-variable/state"
    assert s.payment_threshold_wei == 5  # environment > default
    assert s.chain_id == 42161 and s.max_run_wei == 10 * 10**18  # defaults
    assert s.confirmations == 3 and s.gc_grace_seconds == 7
    assert s.explorer_url is None  # the page's Variable is not the payout DAG's
    assert "OPENPOOL_GC_GRACE_SECONDS" not in asked and "OPENPOOL_EXPLORER_URL" not in asked

    for key in ("POOL_COMMISSION_RATE", "commission_rate"):  # by alias or by field name
        over = build_settings(PayoutSettings, **{key: "0.3", "CONFIRMATIONS": 2})
        assert over.commission_rate == Fraction(3, 10) and over.confirmations == 2

    ingest = settings()  # every task's: the payout Variables are not read
    assert ingest.commission_rate == Fraction(1, 5) and ingest.confirmations == 1
    page = dashboard_settings()
    assert page.explorer_url == "" and page.confirmations == 3

    variables["CHAIN_ID"] = "zero"
    with pytest.raises(ConfigError, match="CHAIN_ID"):
        payout_settings()
    settings()  # not one of every task's Variables
