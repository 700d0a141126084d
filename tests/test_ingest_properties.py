"""Whatever happens to the files, the balances are the same: properties and crashes."""

from __future__ import annotations

import contextlib
import tempfile
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openpool.ingest.run import ingest
from openpool.ingest.service import status_row
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore, ObjectStore
from openpool.traffic import Mess, generate, write
from tests.helpers.ledger import balances_of, worker_oracle

pytestmark = pytest.mark.slow  # hypothesis runs of whole ingests: 10-20 s each

RATE = Fraction(1, 4)
START = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
MESS = Mess(
    duplicate_events=0.05, invalid_events=0.02, split_ai_jobs=0.3, resets=1, truncated_files=1
)


def _files(part: Partition, seed: int, span: timedelta = timedelta(hours=1)):
    return generate(
        part,
        START,
        span,
        workers=4,
        events_per_second=2,
        flush_seconds=300,
        seed=seed,
        mess=MESS,
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    part=st.sampled_from([Partition("ai", "us-central"), Partition("transcode", "oceania")]),
    seed=st.integers(0, 3),
    data=st.data(),
)
def test_any_arrival_order_split_and_replay_gives_the_oracle(
    part: Partition, seed: int, data: st.DataObject
) -> None:
    files = _files(part, seed)
    order = data.draw(st.permutations(range(len(files))), label="arrival order")
    cuts = sorted(data.draw(st.sets(st.integers(1, len(files)), max_size=4), label="run splits"))
    replays = data.draw(st.lists(st.integers(0, len(files) - 1), max_size=4), label="replays")
    batch = data.draw(st.integers(1, 5), label="max files per batch")
    with tempfile.TemporaryDirectory() as tmp:
        events, state = LocalStore(Path(tmp) / "e"), LocalStore(Path(tmp) / "s")
        arrived = [files[i] for i in order]
        prev = 0
        for cut in [*cuts, len(files)]:
            write(arrived[prev:cut], events)
            ingest(part, events, state, RATE, max_files=batch)
            prev = cut
        for i in replays:  # the same bytes uploaded again: a new ETag, nothing new counted
            write([files[i]], events)
        ingest(part, events, state, RATE, max_files=batch)
        assert balances_of(state, part) == worker_oracle(files, RATE)


class Crash(Exception):
    """Stands for the process dying at this exact call."""


class CrashingStore:
    """Forwards to a real store and raises :class:`Crash` on the k-th call."""

    def __init__(self, inner: ObjectStore, crash_at: int) -> None:
        self.inner, self.crash_at, self.calls = inner, crash_at, 0
        self.uri = inner.uri

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name == "url":
            return attr

        def call(*a: Any, **kw: Any) -> Any:
            self.calls += 1
            if self.calls == self.crash_at:
                raise Crash(f"crash at call {self.calls}: {name}")
            return attr(*a, **kw)

        return call


def _state_digest(state: ObjectStore, part: Partition) -> dict:
    snap = SnapshotStore(state, part).latest()
    st_row = status_row(snap)
    st_row.pop("created_at")
    ledger = sorted(snap.read("events").column("event_id").to_pylist()) if snap else []
    return {"balances": balances_of(state, part), "status": st_row, "ledger": ledger}


@pytest.mark.parametrize("part", [Partition("ai", "us-central")], ids=str)
def test_a_crash_at_every_step_then_a_rerun_gives_the_clean_state(
    tmp_path: Path, part: Partition
) -> None:
    files = _files(part, 1, timedelta(minutes=30))  # two batches of three files
    clean_events, clean_state = LocalStore(tmp_path / "ce"), LocalStore(tmp_path / "cs")
    write(files, clean_events)
    counting = CrashingStore(clean_state, 10**9)
    ingest(part, clean_events, counting, RATE, max_files=3)  # type: ignore[arg-type]
    state_calls = counting.calls
    clean = _state_digest(clean_state, part)
    assert clean["balances"] == worker_oracle(files, RATE)

    assert state_calls > 10
    for k in range(1, state_calls + 1):
        events, state = LocalStore(tmp_path / f"e{k}"), LocalStore(tmp_path / f"s{k}")
        write(files, events)
        crashing = CrashingStore(state, k)
        with contextlib.suppress(Crash):  # a best-effort write (the latest hint) may absorb it
            ingest(part, events, crashing, RATE, max_files=3)  # type: ignore[arg-type]
        assert crashing.calls >= k, f"state call {k} was never reached"
        ingest(part, events, state, RATE, max_files=3)  # the rerun
        assert _state_digest(state, part) == clean, f"differs after crash at state call {k}"
