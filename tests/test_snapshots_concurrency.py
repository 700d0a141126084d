"""Many writers, one partition: every successful commit is applied exactly once.

Writers run as threads and as separate processes at the same time, each doing
read-modify-commit of a counter through ``commit_with_retry``. The final counter must
equal the number of commits the writers report, and each version must hold exactly its
own number (a lost update would show as a repeated or skipped value).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import ObjectStore, open_store
from tests.helpers.counter_writer import run
from tests.services import REPO

PART = Partition("ai", "us-central")
THREADS = 8
PROCESSES = 8
COMMITS_EACH = 4


@pytest.mark.slow
def test_concurrent_writers_threads_and_processes_lose_nothing(store: ObjectStore) -> None:
    uri = store.uri
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.helpers.counter_writer",
                uri,
                PART.node_type,
                PART.region,
                f"proc{i}",
                str(COMMITS_EACH),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        for i in range(PROCESSES)
    ]
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [
            pool.submit(run, uri, PART.node_type, PART.region, f"thread{i}", COMMITS_EACH)
            for i in range(THREADS)
        ]
        thread_versions = [v for f in futures for v in f.result()]
    proc_versions = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
        proc_versions.extend(json.loads(out.decode().strip().splitlines()[-1]))

    committed = sorted(thread_versions + proc_versions)
    total = (THREADS + PROCESSES) * COMMITS_EACH
    assert committed == list(range(1, total + 1))  # each commit got its own version

    snaps = SnapshotStore(open_store(uri), PART)
    assert snaps.latest_version() == total
    latest = snaps.latest()
    assert latest is not None
    assert latest.read("counter").column("value").to_pylist() == [total]
    for v in range(1, total + 1):  # no lost update anywhere in the chain
        assert snaps.at(v).read("counter").column("value").to_pylist() == [v]
