"""The pipeline steps the DAG runs as tasks, without a scheduler: staging, rebase, repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest

from openpool.errors import CorruptDataFile
from openpool.ingest import steps
from openpool.ingest.run import ingest
from openpool.ingest.staging import MissingStep
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from openpool.traffic import Mess, generate, write
from tests.helpers.ledger import balances_of, worker_oracle

PART = Partition("ai", "us-central")
RATE = Fraction(1, 4)
START = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)


def _env(tmp_path: Path, max_files: int = 250) -> steps.StepEnv:
    return steps.StepEnv(
        PART,
        LocalStore(tmp_path / "events"),
        LocalStore(tmp_path / "state"),
        LocalStore(tmp_path / "archive"),
        RATE,
        max_files=max_files,
    )


def _files():
    return generate(
        PART,
        START,
        timedelta(hours=1),
        workers=4,
        events_per_second=2,
        flush_seconds=300,
        seed=11,
        mess=Mess(duplicate_events=0.05, invalid_events=0.02, split_ai_jobs=0.3),
    )


def _prepare(env: steps.StepEnv, key: str) -> None:
    """Everything before the commit."""
    steps.parse(env, key)
    steps.dedup(env, key)
    steps.accrue(env, key)


def _run_all(env: steps.StepEnv, key: str) -> dict:
    _prepare(env, key)
    out = steps.commit(env, key)
    steps.archive(env, key)
    return out


def test_steps_in_sequence_equal_the_oracle_and_archive_every_file(tmp_path: Path) -> None:
    env, files = _env(tmp_path, max_files=5), _files()
    write(files, env.events)
    runs = 0
    while _run_all(env, f"run-{runs}")["committed"]:  # 5 files per run until none is left
        runs += 1
    assert runs == -(-len(files) // 5)
    assert balances_of(env.state, PART) == worker_oracle(files, RATE)
    assert {i.key for i in env.archive.list(PART.path + "/")} == {f.key for f in files}
    assert not list(env.state.list("staging/"))


def test_commit_rebases_when_another_writer_committed_first(tmp_path: Path) -> None:
    env, files = _env(tmp_path), _files()
    write(files[:6], env.events)
    _prepare(env, "dag-run")
    write(files[6:], env.events)
    ingest(PART, env.events, env.state, RATE, max_files=2)  # the CLI commits everything first
    v = SnapshotStore(env.state, PART).latest_version()
    out = steps.commit(env, "dag-run")  # all its files are in already: a no-op
    assert out["committed"] is False and out["snapshot_version"] == v
    assert balances_of(env.state, PART) == worker_oracle(files, RATE)


def test_commit_rebases_onto_a_newer_base(tmp_path: Path) -> None:
    env, files = _env(tmp_path), _files()
    write(files[:6], env.events)
    _prepare(env, "dag-run")
    other = LocalStore(tmp_path / "other")
    write(files[6:], other)
    ingest(PART, other, env.state, RATE)  # a concurrent writer with other files moves the base
    out = steps.commit(env, "dag-run")
    assert out["committed"] is True and out["snapshot_version"] == 2
    assert balances_of(env.state, PART) == worker_oracle(files, RATE)


def test_a_step_without_its_input_or_with_torn_input_refuses(tmp_path: Path) -> None:
    env = _env(tmp_path)
    write(_files()[:2], env.events)
    with pytest.raises(MissingStep, match="parse"):
        steps.dedup(env, "r")
    steps.parse(env, "r")
    key = next(i.key for i in env.state.list("staging/") if i.key.endswith("events.parquet"))
    env.state.put(key, env.state.get(key)[:-10])
    with pytest.raises(CorruptDataFile):
        steps.dedup(env, "r")
    steps.parse(env, "r")  # the retry of parse repairs it
    assert steps.dedup(env, "r")["fresh"] > 0
