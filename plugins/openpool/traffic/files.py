"""Simulated, messed-up events flushed into files and uploaded, as an orchestrator does.

The orchestrator buffers events and flushes a file every ``flush_seconds`` or at
``events_per_file`` events, assigning event IDs at flush time; this module reproduces that
and the resulting keys and upload order.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from openpool.partitions import Partition
from openpool.storage import ObjectStore
from openpool.traffic.gojson import marshal_indent
from openpool.traffic.keys import object_key
from openpool.traffic.mess import Mess, mess_events, mess_files
from openpool.traffic.simulate import SimEvent, seeded_rng, simulate


@dataclass
class GeneratedFile:
    """One object as an orchestrator uploads it."""

    key: str  # {region}/{node_type}/{region}-{node_type}-{start}_{end}.json
    body: bytes


def generate(
    partition: Partition,
    start: datetime,
    duration: timedelta,
    workers: int = 10,
    events_per_second: float = 5.0,
    events_per_file: int = 10_000,
    flush_seconds: int = 60,
    seed: int = 0,
    mess: Mess = Mess(),  # noqa: B008 - frozen, so one shared default is safe
) -> list[GeneratedFile]:
    """Event files for ``partition`` over ``[start, start + duration)``, in upload order.

    Deterministic for a seed. Files are flushed every ``flush_seconds`` (a ticker from
    ``start``) or when ``events_per_file`` events are buffered, as the orchestrator does.
    Late files come last; a re-upload repeats its key and bytes later in the list.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware (UTC)")
    if duration <= timedelta(0):
        raise ValueError("duration must be positive")
    if workers < 1 or events_per_second <= 0 or events_per_file < 1 or flush_seconds < 1:
        raise ValueError("workers, events_per_second, events_per_file, flush_seconds must be > 0")
    start = start.astimezone(UTC)
    end = duration.total_seconds()
    sim = simulate(partition, start, end, seed, workers, events_per_second, max(0, mess.resets))
    rng = seeded_rng("mess", seed, partition.key)
    events, split, resend = mess_events(sim.events, mess, rng, partition.region)
    received_of = {e.job: e for e in events if e.role == "received"}

    ids_rng = seeded_rng("ids", seed, partition.key)
    chunks: list[list[dict[str, Any]]] = []
    buf: list[SimEvent] = []

    def flush(final: bool) -> None:
        nonlocal buf
        if not buf:
            return
        in_buf = {id(e) for e in buf}
        carry: list[SimEvent] = []
        keep: list[SimEvent] = []
        for e in buf:
            if (
                not final
                and e.role == "processed"
                and e.job in split
                and id(received_of.get(e.job)) in in_buf
            ):
                carry.append(e)  # the flush fires between received and processed
            else:
                keep.append(e)
        for e in keep:  # IDs are assigned when the file is flushed
            if "ID" not in e.body:
                e.body["ID"] = str(uuid.UUID(int=ids_rng.getrandbits(128), version=4))
        chunks.append([e.body for e in keep])
        # An upload whose acknowledgement was lost is sent again with the next flush.
        copies = [] if final else [
            SimEvent(e.t, e.seq, json.loads(json.dumps(e.body))) for e in keep if id(e) in resend
        ]  # fmt: skip
        buf = sorted(carry + copies, key=lambda e: (e.t, e.seq))  # older than what comes next

    next_tick = float(flush_seconds)
    for ev in events:
        if ev.t >= next_tick:
            flush(False)
            next_tick = (math.floor(ev.t / flush_seconds) + 1) * flush_seconds
        buf.append(ev)
        if len(buf) >= events_per_file:
            flush(False)
    flush(True)
    chunks = [c for c in chunks if c]

    # Two files cannot share a key (the second upload would replace the first): files that
    # would (only possible when more than events_per_file events share one second) merge.
    merged: list[tuple[str, list[dict[str, Any]]]] = []
    for c in chunks:
        key = object_key(partition, c[0]["DT"], c[-1]["DT"])
        if merged and merged[-1][0] == key:
            merged[-1][1].extend(c)
        else:
            merged.append((key, c))
    if len({k for k, _ in merged}) != len(merged):  # pragma: no cover - guarded above
        raise RuntimeError("generated two files with one key")

    keys = [k for k, _ in merged]
    bodies, order = mess_files([marshal_indent(c) for _, c in merged], mess, rng)
    return [GeneratedFile(keys[i], bodies[i]) for i in order]


def write(files: list[GeneratedFile], store: ObjectStore) -> int:
    """Upload ``files`` in order with plain puts (a re-upload replaces); returns the count."""
    for f in files:
        store.put(f.key, f.body)
    return len(files)


def count_events(body: bytes) -> int:
    """Top-level event objects in a body as formatted here, even a truncated one."""
    return body.count(b"\n  {")
