"""Any snapshot's tables as pandas DataFrames, for analysts' notebooks (no Airflow).

Every frame is read through the snapshot store, so a missing or damaged file is a named
error (:class:`~openpool.errors.MissingDataFile`, :class:`~openpool.errors.CorruptObject`),
never an empty frame, and a partition with nothing committed is
:class:`~openpool.errors.SnapshotNotFound`. Each reads the partition's latest version or,
with ``version=``, exactly what that version committed (time travel); ``df.attrs`` says
which (``partition``, ``version``, ``created_at``, ``state_uri``).

Types: wei columns are ``decimal128(38,0)`` (``pd.ArrowDtype``): exact integers up to 38
digits, never float; :func:`eth` turns one into exact ETH. Integer and boolean columns are
Arrow-backed too, so a null stays null instead of turning the column into float. Times are
tz-aware UTC (``datetime64[s, UTC]``). Only the columns and the day slices asked for are
read.

``state`` is a ``file://`` or ``s3://`` URI, an open :class:`~openpool.storage.ObjectStore`,
or (default) the configured ``OPENPOOL_STATE_URI``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from openpool.analytics.performance import WINDOWS
from openpool.analytics.performance import performance as _performance
from openpool.errors import SnapshotNotFound
from openpool.money import WEI, payable, to_wei_array, wei_sum
from openpool.money import eth as eth_text
from openpool.partitions import Partition, WalletKey
from openpool.payments import current_rows, payment_log, settled_in, wallets
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import ObjectStore, open_store
from openpool.tables import BALANCES, EVENTS, QUARANTINED, REJECTED, WALLET_LOG, read_table

State: TypeAlias = str | ObjectStore | None
Moment: TypeAlias = datetime | str | pd.Timestamp

# Events' true order: event time, then file key, then position in the file.
TRUE_ORDER = ("event_time", "source_key", "source_index")
ETH = pa.decimal128(38, 18)  # 10**38 - 1 wei is 99999999999999999999.999999999999999999


# -- reading --------------------------------------------------------------------------------


def _store(state: State) -> ObjectStore:
    if isinstance(state, ObjectStore):
        return state
    if state is None:
        from openpool.config import load_settings

        state = load_settings().state_uri
    return open_store(state)


def _partition(partition: Partition | str) -> Partition:
    return partition if isinstance(partition, Partition) else Partition.parse(partition)


def _snapshot(store: ObjectStore, key: Partition | WalletKey, version: int | None) -> Snapshot:
    snaps = SnapshotStore(store, key)
    if version is not None:
        return snaps.at(version)
    snap = snaps.latest()
    if snap is None:
        raise SnapshotNotFound(f"{key}: nothing committed under {store.uri}")
    return snap


def _arrow_dtype(t: pa.DataType) -> pd.ArrowDtype | None:
    """Decimals, integers and booleans stay Arrow (exact, nullable); the rest is pandas'."""
    if pa.types.is_decimal(t) or pa.types.is_integer(t) or pa.types.is_boolean(t):
        return pd.ArrowDtype(t)
    return None


def to_frame(table: pa.Table, **attrs: Any) -> pd.DataFrame:
    """``table`` as a DataFrame in this module's types, with ``attrs`` saying what it is."""
    df = table.to_pandas(types_mapper=_arrow_dtype)
    df.attrs.update(attrs)
    return df


def _about(snap: Snapshot) -> dict[str, Any]:
    return {
        "partition": str(snap.snapshots.partition),
        "version": snap.version,
        "created_at": datetime.fromisoformat(snap.manifest.created_at),
        "state_uri": snap.snapshots.store.uri,
    }


# -- the frames -----------------------------------------------------------------------------


def balances(
    partition: Partition | str, version: int | None = None, state: State = None
) -> pd.DataFrame:
    """Per worker: fees, commission, earnings (at the version read), and paid, in flight and
    payable from every hot wallet's ledger as it stands now -- the same figures as
    ``openpool balances``."""
    store = _store(state)
    snap = _snapshot(store, _partition(partition), version)
    table = read_table(snap, "balances", BALANCES)
    settled = settled_in(store, str(snap.snapshots.partition))
    addresses = table.column("eth_address").to_pylist()
    earned = [int(v) for v in table.column("worker_earnings_wei").to_pylist()]
    mine = [settled.get(a) for a in addresses]
    paid = [s.paid_wei if s else 0 for s in mine]
    flight = [s.in_flight_wei if s else 0 for s in mine]
    due = [payable(e, s) for e, s in zip(earned, mine, strict=True)]
    at = table.schema.get_field_index("job_count")
    for i, (name, values) in enumerate(
        (("paid_wei", paid), ("in_flight_wei", flight), ("payable_wei", due))
    ):
        table = table.add_column(at + i, pa.field(name, WEI), to_wei_array(values))
    return to_frame(table, **_about(snap))


def payments(
    wallet: str | None = None,
    version: int | None = None,
    state: State = None,
    history: bool = False,
) -> pd.DataFrame:
    """Each payment's current record (``history=True``: every record, in commit order) over
    every hot wallet's ledger, or one wallet's (``version`` pins that wallet's ledger).

    A ``wallet`` column says whose ledger holds it; ``attrs["versions"]`` maps each wallet
    read to its ledger version."""
    if version is not None and wallet is None:
        raise ValueError("version= pins one wallet's ledger: give wallet= too")
    store = _store(state)
    logs, versions = [], {}
    found = [wallet.lower()] if wallet else wallets(store)
    if not found and next(iter(store.list("")), None) is None:
        raise SnapshotNotFound(f"nothing at all under {store.uri}: is that the state store?")
    for w in found:
        snap = _snapshot(store, WalletKey(w), version)
        log = payment_log(snap)
        logs.append(log.append_column("wallet", pa.array([w] * log.num_rows, pa.string())))
        versions[w] = snap.version
    table = pa.concat_tables(logs) if logs else WALLET_LOG.empty_table()
    if not history:
        table = current_rows(table)
    return to_frame(table, versions=versions, state_uri=store.uri)


def _moment(value: Moment) -> datetime:
    """UTC, rounded up to a whole second: event times are whole seconds, so for them
    ``t >= ceil(x)`` is ``t >= x`` and ``t < ceil(x)`` is ``t < x``."""
    ts = pd.Timestamp(value)
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    return ts.ceil("s").to_pydatetime()


def events(
    partition: Partition | str,
    start: Moment | None = None,
    end: Moment | None = None,
    columns: Sequence[str] | None = None,
    version: int | None = None,
    state: State = None,
) -> pd.DataFrame:
    """The ledger's accepted events with ``start <= event_time < end`` (naive times are
    UTC), in their true order (time, file key, position in the file, as connections are
    replayed); only the day slices that window touches and only
    ``columns`` (default all) are read."""
    wanted = list(columns) if columns is not None else EVENTS.names
    unknown = [c for c in wanted if c not in EVENTS.names]
    if unknown:
        raise ValueError(f"no such event column(s) {unknown}; the ledger has {EVENTS.names}")
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"a column is asked for twice: {wanted}")
    lo = _moment(start) if start is not None else None
    hi = _moment(end) if end is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"start {lo} is after end {hi}")
    snap = _snapshot(_store(state), _partition(partition), version)
    first = f"{lo:%Y-%m-%d}" if lo else None
    last = f"{hi - timedelta(microseconds=1):%Y-%m-%d}" if hi else None
    days = [
        d
        for d in snap.slices("events")
        if (first is None or d >= first) and (last is None or d <= last)
    ]
    read = wanted + [c for c in TRUE_ORDER if c not in wanted]
    table = snap.read("events", slices=[None, *days], schema=EVENTS, columns=read)
    t = table.column("event_time")
    bounds: list[Any] = [pc.greater_equal(t, pa.scalar(lo, t.type))] if lo else []
    bounds += [pc.less(t, pa.scalar(hi, t.type))] if hi else []
    if bounds:
        table = table.filter(bounds[0] if len(bounds) == 1 else pc.and_(*bounds))
    order = pc.sort_indices(table, sort_keys=[(c, "ascending") for c in TRUE_ORDER])
    table = table.take(order).select(wanted)
    return to_frame(table, **_about(snap), start=lo, end=hi, days_read=sorted(days))


def performance(
    partition: Partition | str,
    window: str = "all",
    version: int | None = None,
    state: State = None,
) -> pd.DataFrame:
    """Per-worker speed and earnings over ``window`` (``all``, ``24h``, ``7d``, ending at the
    version's latest event time), as ``openpool performance`` computes them."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r} (one of {', '.join(WINDOWS)})")
    part = _partition(partition)
    snap = _snapshot(_store(state), part, version)
    perf = _performance(snap, windows=(window,))
    table = perf.ai if part.node_type == "ai" else perf.transcode
    return to_frame(table, **_about(snap), window=window, as_of=perf.as_of)


def rejected(
    partition: Partition | str, version: int | None = None, state: State = None
) -> pd.DataFrame:
    """Every event set aside, with its reason and the text found (the ``rejected_events``
    table)."""
    snap = _snapshot(_store(state), _partition(partition), version)
    return to_frame(read_table(snap, "rejected_events", REJECTED), **_about(snap))


def quarantined(
    partition: Partition | str, version: int | None = None, state: State = None
) -> pd.DataFrame:
    """Every whole file set aside, with its reason and where it was copied."""
    snap = _snapshot(_store(state), _partition(partition), version)
    return to_frame(read_table(snap, "quarantined_files", QUARANTINED), **_about(snap))


def versions(partition: Partition | str, state: State = None) -> pd.DataFrame:
    """A partition's committed versions, newest first: what ``version=`` can name."""
    store = _store(state)
    part = _partition(partition)
    rows = [
        {"version": m.version, "created_at": m.created_at, "run_id": m.run_id, **m.row_counts()}
        for m in SnapshotStore(store, part).history()
    ]
    if not rows:
        raise SnapshotNotFound(f"{part}: nothing committed under {store.uri}")
    df = pd.DataFrame(rows)
    if rows:
        df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    df.attrs.update(partition=str(part), state_uri=store.uri)
    return df


# -- display --------------------------------------------------------------------------------


def eth(wei: pd.Series, text: bool = False) -> pd.Series:
    """A wei column as exact ETH: ``decimal128(38,18)``, the same 128-bit integers read with
    18 decimals (no division, no rounding; every decimal128(38,0) amount fits). With
    ``text=True``, the strings ``openpool`` prints (``0.00000000000000001``, never ``1E-17``)."""
    name = wei.name.removesuffix("_wei") + "_eth" if isinstance(wei.name, str) else wei.name
    chunks = _chunks(wei)
    if text:
        shown = [None if v is None else eth_text(int(v)) for c in chunks for v in c.to_pylist()]
        return pd.Series(shown, index=wei.index, name=name, dtype=pd.ArrowDtype(pa.string()))
    as_eth = pa.chunked_array([c.view(ETH) for c in chunks], ETH)  # no copy; offsets kept
    return pd.Series(pd.arrays.ArrowExtensionArray(as_eth), index=wei.index, name=name)


def total(wei: pd.Series) -> int:
    """The exact sum of a wei column as a Python int. pandas' ``.sum()`` on decimal128 is
    Arrow's 128-bit sum, which wraps silently past 10**38; this sums in decimal256."""
    return wei_sum(pa.chunked_array(_chunks(wei), WEI))


def _chunks(wei: pd.Series) -> list[pa.Array]:
    dtype = getattr(wei, "dtype", None)
    if not isinstance(dtype, pd.ArrowDtype) or dtype.pyarrow_dtype != WEI:
        raise TypeError(f"takes a decimal128(38, 0) wei column, not {dtype}")
    arr = wei.array.__arrow_array__()
    return list(arr.chunks) if isinstance(arr, pa.ChunkedArray) else [arr]
