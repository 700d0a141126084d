"""Reading a backfill's batches in worker processes, handed back in the serial order.

Reading a batch (fetch, parse, validate, copy unreadable files aside) depends only on its
files' bytes and the wall clock, never on the snapshot. So a long backfill's batches can be
read ahead, in parallel, while dedup, accrual and the commit stay in this process and in
the serial path's order: the same commits, the same first copy of a repeated event ID.

Workers are started by ``spawn`` (no forked copy of the parent's threads, clients or
memory) and open the stores again from their URIs, with this environment's settings (as
the CLI opens them): only URIs, keys, ETags and sizes go to a worker, nothing secret, and
each batch comes back as Arrow IPC streams, not as Python objects per event. As with any
``spawn`` pool, a script that asks for workers must run under ``if __name__ == "__main__":``
(each worker imports the main module; the ``openpool`` console script is guarded).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta

import pyarrow as pa

from openpool.errors import ObjectNotFound, ParseWorkerLost
from openpool.ingest.batch import Parsed, parse_batch
from openpool.ingest.discovery import Candidate, key_start
from openpool.partitions import Partition
from openpool.storage import ObjectStore, open_store
from openpool.tables import EVENTS, INGESTED, QUARANTINED, REJECTED

log = logging.getLogger(__name__)

PARTS = {"events": EVENTS, "rejected": REJECTED, "quarantined": QUARANTINED, "files": INGESTED}
# A file as a worker is told of it: key, ETag, size (the key time is derived again).
FileRef = tuple[str, str, int]


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def quarantine_copier(
    state: ObjectStore, partition: Partition
) -> Callable[[Candidate, bytes], str]:
    """Copy an unparseable file under the partition's quarantine prefix (idempotent)."""

    def copy(cand: Candidate, data: bytes) -> str:
        key = f"{partition.path}/quarantine/{cand.etag}/{cand.key}"
        state.put(key, data)
        return key

    return copy


def read_batch(
    partition: Partition,
    events: ObjectStore,
    state: ObjectStore,
    batch: list[Candidate],
    skew: timedelta,
) -> Parsed:
    """Fetch and parse one batch, one file's bytes at a time; vanished files are skipped."""

    def fetch() -> Iterator[tuple[Candidate, bytes]]:
        for c in batch:  # read, parse, let go
            try:
                yield c, events.get(c.key)
            except ObjectNotFound:  # expired or deleted since the listing: not ours
                log.warning("%s vanished before it was read; skipping", events.url(c.key))

    return parse_batch(partition, fetch(), quarantine_copier(state, partition), skew=skew)


def _exit_with_parent() -> None:
    """A worker's initializer: end this process as soon as its parent is gone.

    A worker blocked on the pool's queue never sees its parent die (it holds both ends of
    the queue's pipe), so a killed backfill would leave its workers behind for good; this
    thread waits on the parent's sentinel (closed when the parent exits) instead.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def wait() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=wait, name="exit-with-parent", daemon=True).start()


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes, schema: pa.Schema) -> pa.Table:
    table = pa.ipc.open_stream(data).read_all()
    if not table.schema.equals(schema):
        raise ValueError(f"a worker sent a table of another schema: {table.schema}")
    return table


def _read_in_worker(
    node_type: str,
    region: str,
    events_uri: str,
    state_uri: str,
    refs: list[FileRef],
    skew_seconds: float,
) -> tuple[dict[str, bytes], str | None, int]:
    """A worker's job: one batch read, returned as IPC streams, its clock and this pid."""
    batch = [Candidate(k, e, s, key_start(k)) for k, e, s in refs]
    parsed = read_batch(
        Partition(node_type, region),
        open_store(events_uri),
        open_store(state_uri),
        batch,
        timedelta(seconds=skew_seconds),
    )
    tables = {name: _to_ipc(getattr(parsed, name)) for name in PARTS}
    return tables, parsed.clock.isoformat() if parsed.clock else None, os.getpid()


def _parsed(result: tuple[dict[str, bytes], str | None, int]) -> tuple[Parsed, int]:
    tables, clock, pid = result
    got = {name: _from_ipc(tables[name], schema) for name, schema in PARTS.items()}
    return Parsed(**got, clock=datetime.fromisoformat(clock) if clock else None), pid


def read_batches(
    partition: Partition,
    events: ObjectStore,
    state: ObjectStore,
    batches: list[list[Candidate]],
    skew: timedelta,
    workers: int = 1,
) -> Generator[tuple[Parsed, int], None, None]:
    """Each batch read, in order, with the pid of the process that read it.

    ``workers=1`` reads each batch here, only when the caller asks for it (the serial
    path: parse, commit, parse the next). More workers read up to twice their number of
    batches ahead; a worker that dies raises :class:`ParseWorkerLost`.
    """
    workers = min(workers, len(batches))
    if workers <= 1:
        for b in batches:
            yield read_batch(partition, events, state, b, skew), os.getpid()
        return
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_exit_with_parent
    )
    pending: deque[Future[tuple[dict[str, bytes], str | None, int]]] = deque()
    todo = iter(batches)

    def submit() -> None:
        b = next(todo, None)
        if b is not None:
            refs = [(c.key, c.etag, c.size) for c in b]
            pending.append(
                pool.submit(
                    _read_in_worker,
                    partition.node_type,
                    partition.region,
                    events.uri,
                    state.uri,
                    refs,
                    skew.total_seconds(),
                )
            )

    try:
        for _ in range(2 * workers):
            submit()
        while pending:
            future = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                raise ParseWorkerLost(str(partition), workers) from exc
            submit()
            yield _parsed(result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
