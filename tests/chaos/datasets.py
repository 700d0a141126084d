"""Messy event data sets and the clean single runs every crashed run is compared with.

Each data set is written once (local directory or a moto bucket) and shared read-only by
its reference runs and all its trials, so object ETags, and with them every table, are
the same in all of them. The reference runs count their object store writes (the
targeted kill points) and record which object each write touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from openpool.ingest import steps
from openpool.ingest.run import ingest
from openpool.partitions import Partition
from openpool.storage import LocalStore, ObjectInfo, ObjectStore, S3Store
from openpool.traffic import GeneratedFile, generate, write
from tests.chaos import identity
from tests.chaos.oracle_check import Expected, expected
from tests.chaos.state import State, capture
from tests.chaos.steps_child import run_dag
from tests.helpers.traffic import EVERY_KIND_OF_MESS

RATE = Fraction(1, 4)
MAX_FILES = 2
START = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
AI = Partition("ai", "us-central")
TC = Partition("transcode", "us-west")
MESS = EVERY_KIND_OF_MESS


class CountingStore(ObjectStore):
    """Delegates to a store and records every write (kind, key) in order."""

    def __init__(self, inner: ObjectStore, log: list[tuple[str, str]]) -> None:
        self.inner, self.log, self.uri = inner, log, inner.uri

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        self.log.append(("put", self.uri + "/" + key))
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> None:
        self.log.append(("create", self.uri + "/" + key))
        self.inner.put_if_absent(key, data)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, start_after)

    def delete(self, key: str) -> None:
        self.log.append(("delete", self.uri + "/" + key))
        self.inner.delete(key)


def write_kind(key: str) -> str:
    """Where in the pipeline a write sits (for the kill-point figures)."""
    if "/staging/" in key:
        return "staging (DAG hand-over)"
    if "/archive/" in key:
        return "archive copy"
    if "/quarantine/" in key:
        return "quarantine copy"
    if "/manifests/" in key:
        return "manifest create (the commit point)"
    if key.endswith("_latest.json"):
        return "after the commit, before the hint"
    if "/data/" in key:
        return "inside a commit (data files written, no manifest)"
    return "other"


@dataclass
class Dataset:
    name: str
    part: Partition
    events_uri: str
    files: list[GeneratedFile]
    s3_env: dict[str, str]
    root: str  # where this data set's stores live (a directory or s3://bucket)
    client: Any = None  # boto3 client for s3 roots
    final: dict[str, State] = field(default_factory=dict)  # path ("cli"/"dag") -> state
    ref_state: dict[str, ObjectStore] = field(default_factory=dict)
    writes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    _versions: dict[tuple[str, int], State] = field(default_factory=dict)
    _images: dict[str, identity.Image] = field(default_factory=dict)
    _oracle: list[Expected] = field(default_factory=list)

    def store(self, rel: str) -> ObjectStore:
        if self.root.startswith("s3://"):
            return S3Store(f"{self.root}/{rel}", client=self.client)
        return LocalStore(Path(self.root) / rel)

    def at(self, path: str, version: int) -> State:
        key = (path, version)
        if key not in self._versions:
            got = capture(self.ref_state[path], self.part, version, copies=False)
            assert got is not None
            self._versions[key] = got
        return self._versions[key]

    def image(self, path: str) -> identity.Image:
        """The clean run's state, every object re-hashed (:mod:`tests.chaos.identity`)."""
        if path not in self._images:
            self._images[path] = identity.take(self.ref_state[path], self.part)
        return self._images[path]

    @property
    def oracle(self) -> Expected:
        """What the generated files alone say the end state holds (``oracle_check``)."""
        if not self._oracle:
            self._oracle.append(expected(self.files, RATE))
        return self._oracle[0]


def make_dataset(
    name: str, part: Partition, seed: int, root: str, s3_env: dict[str, str], client: Any = None
) -> Dataset:
    files = generate(
        part,
        START,
        timedelta(minutes=40),
        workers=5,
        events_per_second=1,
        flush_seconds=300,
        seed=seed,
        mess=MESS,
    )
    ds = Dataset(name, part, "", files, s3_env, root, client)
    events = ds.store("events")
    write(files, events)
    ds.events_uri = events.uri
    return ds


def reference_runs(ds: Dataset, paths: tuple[str, ...] = ("cli", "dag")) -> None:
    """The clean single runs (CLI library path, DAG step path), in this process."""
    events = ds.store("events")
    log: list[tuple[str, str]] = []
    state = ds.store("ref-cli/state")
    t = time.monotonic()
    ingest(ds.part, events, CountingStore(state, log), RATE, max_files=MAX_FILES)
    ds.seconds["cli-lib"] = time.monotonic() - t
    ds.writes["cli"], ds.ref_state["cli"] = log, state
    final = capture(state, ds.part)
    assert final is not None
    ds.final["cli"] = final
    if "dag" not in paths:
        return

    log = []
    state, archive = ds.store("ref-dag/state"), ds.store("ref-dag/archive")
    env = steps.StepEnv(
        ds.part, events, CountingStore(state, log), CountingStore(archive, log), RATE,
        max_files=MAX_FILES,
    )  # fmt: skip
    run_dag(env, "ref")
    ds.writes["dag"], ds.ref_state["dag"] = log, state
    final = capture(state, ds.part)
    assert final is not None
    ds.final["dag"] = final
