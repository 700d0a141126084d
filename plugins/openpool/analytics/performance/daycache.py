"""Per-day shares of the "all time" performance window, kept so a refresh reads only new days.

Exact quantiles need every value, so a day's share (:class:`~.share.Share`, its groups
named) is its values themselves, per group, with the group's jobs, excluded jobs and fees:
merged with the other days' shares it gives exactly what reading that day's ledger files
would. A share is stored under a key that hashes everything it was computed from: the
format (bump :data:`FORMAT` when the figures' definitions change), the partition, the day,
the SHA-256 of each of the day's ledger files and, for AI, of each credit file whose event
times reach that day. A day whose files change (a late file, a job credited later) gets a
new key; nothing is ever taken from a share computed from other inputs.

Layout under the state store, beside the snapshots::

    analytics-cache/<region>/<node_type>/<YYYY-MM-DD>/<key>.parquet

An object holds a magic line, the SHA-256 of the rest, then Parquet. One that is missing,
damaged or unreadable is never used; the caller recomputes the day from the ledger and
writes it again. Writing is best effort: a failed write only costs time next refresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from openpool.analytics.performance.share import Group, Share
from openpool.errors import CorruptDataFile, ObjectNotFound, OpenPoolError
from openpool.money import WEI, to_wei_array
from openpool.partitions import StateKey
from openpool.snapshots import DataFile
from openpool.snapshots.parquet import arrow_reader
from openpool.storage import ObjectStore

log = logging.getLogger(__name__)

FORMAT = "openpool-performance-day/1"
PREFIX = "analytics-cache"
_MAGIC = b"openpool-day-share\n"
_EPOCH = date(1970, 1, 1)
_NONE = np.empty(0)  # the values of a group that has none


def folder(partition: StateKey) -> str:
    return f"{PREFIX}/{partition.region}/{partition.node_type}/"


def object_key(partition: StateKey, day: int, key: str) -> str:
    return f"{folder(partition)}{_EPOCH + timedelta(days=day)}/{key}.parquet"


def input_key(
    partition: StateKey, day: int, events: Iterable[DataFile], credits: Iterable[DataFile]
) -> str:
    """The hash of everything a day's share is computed from."""
    doc = [
        FORMAT,
        partition.key,
        day,
        sorted(f.sha256 for f in events),
        sorted(f.sha256 for f in credits),
    ]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


def present(store: ObjectStore, partition: StateKey) -> dict[int, set[str]]:
    """Day -> keys of the shares stored for the partition (one listing)."""
    out: dict[int, set[str]] = {}
    base = folder(partition)
    for info in store.list(base):
        day_text, _, name = info.key[len(base) :].partition("/")
        if not name.endswith(".parquet"):
            continue
        try:
            day = (date.fromisoformat(day_text) - _EPOCH).days
        except ValueError:
            continue
        out.setdefault(day, set()).add(name.removesuffix(".parquet"))
    return out


def encode(shares: dict[str, Share[Group]]) -> bytes:
    """``shares`` (by table: "transcode", "ai") as one self-checking object."""
    names = sorted({n for s in shares.values() for n in s.values})
    kinds, groups, jobs, excluded, fees = [], [], [], [], []
    values: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for kind, s in shares.items():
        kinds += [kind] * len(s.groups)
        groups += s.groups
        jobs += s.jobs
        excluded += s.excluded
        fees += s.fees
        for n in names:
            per = s.values.get(n, {})
            values[n] += [per.get(g, _NONE) for g in s.groups]
    cols: dict[str, pa.Array] = {
        "kind": pa.array(kinds, pa.string()),
        "eth_address": pa.array([g[0] for g in groups], pa.string()),
        "pipeline": pa.array([g[1] for g in groups], pa.string()),
        "model_id": pa.array([g[2] for g in groups], pa.string()),
        "jobs": pa.array(jobs, pa.int64()),
        "excluded_jobs": pa.array(excluded, pa.int64()),
        "fees_wei": to_wei_array(fees),
    }
    for n in names:
        lengths = np.array([len(v) for v in values[n]], dtype=np.int64)
        offsets = np.r_[0, np.cumsum(lengths)].astype(np.int32)
        flat = np.concatenate(values[n]) if values[n] else np.empty(0)
        cols[f"v_{n}"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float64()))
    sink = pa.BufferOutputStream()
    # Doubles barely compress, and nearly every value is distinct: Parquet's default
    # dictionary encoding would only be built to be thrown away (most of a write's time).
    pq.write_table(pa.table(cols), sink, compression="none", use_dictionary=False)
    payload = sink.getvalue().to_pybytes()
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def decode(data: bytes, uri: str) -> dict[str, Share[Group]]:
    """The shares of an object :func:`encode` wrote; :class:`CorruptDataFile` otherwise."""
    head = len(_MAGIC) + 32
    if (
        not data.startswith(_MAGIC)
        or hashlib.sha256(data[head:]).digest() != data[len(_MAGIC) : head]
    ):
        raise CorruptDataFile(uri, "not a day share, or its SHA-256 does not match")
    try:
        t = pq.ParquetFile(arrow_reader(data[head:])).read()
        kinds = t["kind"].to_pylist()
        groups = list(
            zip(
                t["eth_address"].to_pylist(),
                t["pipeline"].to_pylist(),
                t["model_id"].to_pylist(),
                strict=True,
            )
        )
        jobs, excluded = t["jobs"].to_pylist(), t["excluded_jobs"].to_pylist()
        fees = [int(v) for v in t["fees_wei"].cast(WEI).to_pylist()]
        lists = {}
        for c in t.column_names:
            if c.startswith("v_"):
                arr = t[c].combine_chunks()
                off = arr.offsets.to_numpy()
                flat = arr.values.to_numpy(zero_copy_only=False)
                lists[c[2:]] = [flat[off[i] : off[i + 1]] for i in range(len(arr))]
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptDataFile(uri, f"unreadable day share: {exc}") from None
    out: dict[str, Share[Group]] = {}
    for i, kind in enumerate(kinds):
        s = out.setdefault(kind, Share(values={n: {} for n in lists}))
        s.groups.append(groups[i])
        s.jobs.append(jobs[i])
        s.excluded.append(excluded[i])
        s.fees.append(fees[i])
        for n, per in lists.items():
            if len(per[i]):  # stored empty for a group without values: it has no entry
                s.values[n][groups[i]] = per[i]
    return out


def load(
    store: ObjectStore, partition: StateKey, day: int, key: str
) -> dict[str, Share[Group]] | None:
    """The stored shares of ``day`` under ``key``; ``None`` if absent or not usable."""
    okey = object_key(partition, day, key)
    try:
        return decode(store.get(okey), store.url(okey))
    except ObjectNotFound:
        return None
    except (CorruptDataFile, OpenPoolError, OSError) as exc:
        log.warning("ignoring day share %s: %s", store.url(okey), exc)
        return None


def save(
    store: ObjectStore,
    partition: StateKey,
    day: int,
    key: str,
    shares: dict[str, Share[Group]],
    stale: Iterable[str] = (),
) -> None:
    """Store ``day``'s shares under ``key``, then delete its shares under ``stale`` keys."""
    try:
        store.put(object_key(partition, day, key), encode(shares))
        for old in stale:
            if old != key:
                store.delete(object_key(partition, day, old))
    except (OpenPoolError, OSError) as exc:  # only speed is lost
        log.warning("could not store the day share of %s day %d: %s", partition, day, exc)
