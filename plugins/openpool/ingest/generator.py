"""Synthetic orchestrator event files, byte-for-byte in the orchestrators' wire format.

Tests, benchmarks and the demo need traffic that looks exactly like what the go-livepeer
fork flushes to the bucket (``shared/spec/events.md``), plus the ways real traffic goes
wrong: re-sent events, re-uploaded and late files, truncated uploads, invalid events,
AI jobs split across flushes, orchestrator resets and AI jobs with no worker. Everything
is derived from one seed, so a failing test can be replayed exactly.

:func:`oracle_balances` is the deliberately plain reference the ingest is checked
against: a loop over parsed JSON with Python ints, no Arrow, no state, no cleverness.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import json
import math
import random
import re
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from json.encoder import encode_basestring as _encode_basestring
from typing import Any

from eth_utils import is_checksum_address, to_checksum_address

from openpool.partitions import Partition
from openpool.storage import ObjectStore

UNATTRIBUTED = "__unattributed__"
DT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
KEY_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
SCHEMA_VERSION = 1

_DT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_KEY_RE = re.compile(
    r"^(?P<region>[^/]+)/(?P<node_type>[^/]+)/(?P=region)-(?P=node_type)-"
    r"(?P<start>\d{8}T\d{6}Z)_(?P<end>\d{8}T\d{6}Z)\.json$"
)

# Pipelines served by the AI partition: (pipeline, model, weight, price/unit, output sizes,
# response time range in ns). Units are output pixels (tokens for the LLM), as go-livepeer
# prices them.
_AI_MODELS: tuple[tuple[str, str, int, int, tuple[int, ...], tuple[int, int]], ...] = (
    ("text-to-image", "ByteDance/SDXL-Lightning", 40, 4768,
     (262_144, 589_824, 1_048_576, 2_097_152), (200_000_000, 2_500_000_000)),
    ("text-to-image", "black-forest-labs/FLUX.1-dev", 15, 6200,
     (1_048_576, 2_097_152), (1_500_000_000, 5_000_000_000)),
    ("image-to-image", "timbrooks/instruct-pix2pix", 10, 3900,
     (262_144, 1_048_576), (400_000_000, 3_000_000_000)),
    ("image-to-video", "stabilityai/stable-video-diffusion-img2vid-xt-1-1", 8, 3390,
     (14_745_600,), (2_000_000_000, 5_000_000_000)),
    ("upscale", "stabilityai/stable-diffusion-x4-upscaler", 7, 1500,
     (4_194_304,), (500_000_000, 3_000_000_000)),
    ("llm", "meta-llama/Meta-Llama-3.1-8B-Instruct", 20, 9500,
     (64, 256, 512, 1024, 2048), (200_000_000, 4_000_000_000)),
)  # fmt: skip
_UNKNOWN_TYPES = ("node-reset", "gateway-reset")


@dataclass(frozen=True)
class Mess:
    """Optional realism: the ways real uploads go wrong. All off by default."""

    duplicate_events: float = 0.0  # fraction of events re-sent (same ID+content) in a later file
    reupload_files: float = 0.0  # fraction of files uploaded again: same key, same content
    late_files: float = 0.0  # fraction of files flushed late: key sorts before ones already up
    truncated_files: int = 0  # number of files cut short (invalid JSON)
    invalid_events: float = 0.0  # fraction of events made invalid (fees, address, field, region)
    split_ai_jobs: float = 0.0  # fraction of AI jobs with received/processed in different files
    resets: int = 0  # orchestrator-reset events sprinkled in
    orphan_ai_jobs: float = 0.0  # AI job-processed with no job-received ever (no worker)


@dataclass
class GeneratedFile:
    """One object as an orchestrator uploads it."""

    key: str  # {region}/{node_type}/{region}-{node_type}-{start}_{end}.json
    body: bytes


# --------------------------------------------------------------------------------------
# Go-compatible formatting


def marshal_indent(value: Any) -> bytes:
    """``json.MarshalIndent(v, "", "  ")`` as Go writes it: sorted keys, no trailing newline.

    Written out by hand (not ``json.dumps(indent=2)``) so Go's escaping is exact: HTML
    characters and U+2028/U+2029 become ``\\u`` escapes, non-ASCII text stays UTF-8, and
    floats use Go's notation. Integers of any size are written exactly.
    """
    return _encode(value, "").encode("utf-8")


_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


@functools.lru_cache(maxsize=1 << 14)
def _string(text: str) -> str:
    # The json module escapes quotes, backslashes and control characters as Go does (short
    # forms, lower-case \u00xx); Go also escapes the HTML-sensitive characters. Cached:
    # keys, event types, addresses and times repeat on every event.
    s = _encode_basestring(text)
    return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group()], s)


def _float(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"JSON cannot hold {x!r}")
    text = repr(x)
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))  # Go writes 3e+10 as 30000000000 and 2.0 as 2
    if "e" in text and 1e-6 <= abs(x) < 1e21:
        return format(Decimal(text), "f")  # Go switches to exponents only outside this range
    return re.sub(r"e-0(\d)$", r"e-\1", text)  # Go writes 1e-7, Python 1e-07


def _scalar(v: Any) -> str | None:
    """A scalar's JSON text, or ``None`` for containers."""
    t = type(v)
    if t is str:
        return _string(v)
    if t is int:
        return str(v)
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        return _string(str(v))
    if isinstance(v, dict | list | tuple):
        return None
    raise TypeError(f"cannot encode {t.__name__}")


def _encode(v: Any, indent: str) -> str:
    text = _scalar(v)
    if text is not None:
        return text
    if not v:
        return "{}" if isinstance(v, dict) else "[]"
    inner = indent + "  "
    parts = []
    if isinstance(v, dict):
        for k in sorted(v):
            if type(k) is not str:
                raise TypeError(f"object keys must be strings, got {k!r}")
            val = v[k]
            # Inline fast paths: nearly every value is an int or a str.
            if type(val) is int:
                text = str(val)
            elif type(val) is str:
                text = _string(val)
            else:
                text = _encode(val, inner)
            parts.append(f"{inner}{_string(k)}: {text}")
        return "{\n" + ",\n".join(parts) + "\n" + indent + "}"
    for item in v:
        parts.append(inner + _encode(item, inner))
    return "[\n" + ",\n".join(parts) + "\n" + indent + "]"


def format_dt(t: datetime) -> str:
    """An event's ``DT``: RFC 3339, UTC, whole seconds."""
    return t.astimezone(UTC).strftime(DT_FORMAT)


def object_key(partition: Partition, first_dt: str, last_dt: str) -> str:
    """The key an orchestrator gives a file whose first/last events have these ``DT``s."""

    def stamp(dt: str) -> str:
        return datetime.strptime(dt, DT_FORMAT).strftime(KEY_TIME_FORMAT)

    p = f"{partition.region}-{partition.node_type}"
    return f"{partition.path}/{p}-{stamp(first_dt)}_{stamp(last_dt)}.json"


def parse_key(key: str) -> tuple[Partition, datetime, datetime]:
    """Partition and first/last event times encoded in an event file's key."""
    m = _KEY_RE.match(key)
    if not m:
        raise ValueError(f"not an event file key: {key!r}")
    start = datetime.strptime(m["start"], KEY_TIME_FORMAT).replace(tzinfo=UTC)
    end = datetime.strptime(m["end"], KEY_TIME_FORMAT).replace(tzinfo=UTC)
    return Partition(m["node_type"], m["region"]), start, end


# --------------------------------------------------------------------------------------
# Simulation


@dataclass
class _Worker:
    address: str
    host: str
    speed: float  # response time factor: some workers are faster than real time, some not
    weight: float  # share of jobs the orchestrator routes to it
    connection: str = ""
    online: bool = False


@dataclass
class _Ev:
    t: float  # seconds after start; array order within a file is (t, seq)
    seq: int
    body: dict[str, Any]
    job: int | None = None  # AI job number, for received/processed correlation
    role: str = ""  # "received" / "processed" for AI jobs


@dataclass
class _Sim:
    partition: Partition
    start: datetime
    end: float
    rng: random.Random
    workers: list[_Worker]
    gateways: list[tuple[str, int]]  # (lower-case sender address, price per pixel)
    recipient: str
    events: list[_Ev] = field(default_factory=list)
    seq: int = 0
    jobs: int = 0
    request_ids: set[str] = field(default_factory=set)
    _cum: tuple[tuple[int, ...], list[float]] = ((), [])

    def emit(self, t: float, event_type: str, payload: dict[str, Any], **kw: Any) -> _Ev:
        body = {
            "DT": format_dt(self.start + timedelta(seconds=math.floor(t))),
            "EventType": event_type,
            "NodeType": self.partition.node_type,
            "Payload": payload,
            "Region": self.partition.region,
            "Version": SCHEMA_VERSION,
        }
        ev = _Ev(t, self.seq, body, **kw)
        self.seq += 1
        self.events.append(ev)
        return ev

    def connect(self, t: float, w: _Worker, port: int) -> None:
        w.connection = f"{w.host}:{port}"
        w.online = True
        self.emit(t, "worker-connected", {"connection": w.connection, "ethAddress": w.address})

    def pick_worker(self) -> _Worker | None:
        online = [w for w in self.workers if w.online]
        if not online:
            return None
        key = tuple(id(w) for w in online)
        if self._cum[0] != key:  # cumulative weights change only when workers come and go
            self._cum = (key, list(itertools.accumulate(w.weight for w in online)))
        return self.rng.choices(online, cum_weights=self._cum[1])[0]

    def request_id(self) -> str:
        while True:
            rid = f"{self.rng.getrandbits(32):08x}"
            if rid not in self.request_ids:
                self.request_ids.add(rid)
                return rid


def _rng(*parts: object) -> random.Random:
    # String seeds hash with SHA-512: stable across runs and PYTHONHASHSEED.
    return random.Random("|".join(str(p) for p in ("openpool-generator", *parts)))  # noqa: S311


def _address(rng: random.Random) -> str:
    return to_checksum_address(f"0x{rng.getrandbits(160):040x}")


def worker_addresses(seed: int, workers: int) -> list[str]:
    """The pool's workers for a seed; shared by every partition, as real workers serve several."""
    rng = _rng("workers", seed)
    return [_address(rng) for _ in range(workers)]


def _roster(seed: int, workers: int) -> list[_Worker]:
    rng = _rng("roster", seed)
    out = []
    for i, addr in enumerate(worker_addresses(seed, workers)):
        net = ("192.0.2", "198.51.100", "203.0.113")[i % 3]  # documentation ranges
        host = f"{net}.{rng.randint(1, 254)}"
        out.append(_Worker(addr, host, rng.uniform(0.3, 1.6), rng.uniform(0.5, 2.0)))
    return out


def _transcode_job(sim: _Sim, t: float) -> None:
    w = sim.pick_worker()
    if w is None:
        return
    rng = sim.rng
    _, price = rng.choice(sim.gateways)
    units = rng.randint(1_000_000, 20_000_000)
    response_ms = max(300, min(4000, int(rng.randint(300, 2600) * w.speed)))
    sim.emit(
        t,
        "job-processed",
        {
            "computeUnits": units,
            "duration": 2000,
            "ethAddress": w.address,
            "fees": price * units,
            "pricePerComputeUnit": price,
            "realTimeRatio": 2000 // response_ms,
            "responseTime": response_ms,
        },
    )


def _ai_job(sim: _Sim, t: float) -> None:
    w = sim.pick_worker()
    if w is None:
        return
    rng = sim.rng
    pipeline, model, _, price, sizes, (lo, hi) = rng.choices(
        _AI_MODELS, weights=[m[2] for m in _AI_MODELS]
    )[0]
    units = rng.choice(sizes)
    rid = sim.request_id()
    job = sim.jobs
    sim.jobs += 1
    received = {"ethAddress": w.address, "modelID": model, "pipeline": pipeline, "requestID": rid}
    sim.emit(t, "job-received", received, job=job, role="received")
    # The HTTP handler emits job-processed shortly after the worker returned the result.
    done = min(t + rng.uniform(0.05, 2.5), max(t, sim.end - 1e-6))
    processed = {
        "computeUnits": units,
        "fees": price * units,
        "modelID": model,
        "pipeline": pipeline,
        "pricePerComputeUnit": price,
        "requestID": rid,
        "responseTime": max(lo, int(rng.randint(lo, hi) * min(w.speed, 1.0))),
    }
    sim.emit(done, "job-processed", processed, job=job, role="processed")


def _ticket(sim: _Sim, t: float) -> None:
    rng = sim.rng
    sender, price = rng.choice(sim.gateways)
    zero = rng.random() < 0.05  # the redemption transaction could not be created
    sim.emit(
        t,
        "ticket-redeemed",
        {
            "creationRound": 3500 + int(t // 79_200),
            "faceValue": rng.randint(10**15, 6 * 10**19),  # often beyond 2^64
            "pricePerPixel": f"{price}/1",
            "recipient": sim.recipient,
            "sender": sender,
            "txHash": "0x" + ("0" * 64 if zero else f"{rng.getrandbits(256):064x}"),
            "winProb": rng.randint(2**200, 2**256 - 1),
        },
    )


def _simulate(
    partition: Partition,
    start: datetime,
    end: float,
    seed: int,
    n_workers: int,
    rate: float,
    resets: int,
) -> _Sim:
    rng = _rng("traffic", seed, partition.key)
    gateways = [(f"0x{rng.getrandbits(160):040x}", rng.randint(100, 10_000)) for _ in range(3)]
    pool = f"0x{_rng('pool', seed).getrandbits(160):040x}"
    sim = _Sim(partition, start, end, rng, _roster(seed, n_workers), gateways, pool)
    is_ai = partition.node_type == "ai"
    # (time, order, action, worker index)
    pending: list[tuple[float, int, str, int]] = []
    order = 0
    for i, w in enumerate(sim.workers):  # workers connect as the orchestrator starts
        heapq.heappush(pending, (rng.uniform(0, min(2.0, end / 2)), order, "connect", i))
        order += 1
        w.online = False
    for _ in range(resets):
        heapq.heappush(pending, (rng.uniform(0.1 * end, 0.9 * end), order, "reset", -1))
        order += 1

    def run_pending(until: float) -> None:
        nonlocal order
        while pending and pending[0][0] <= until:
            t, _, action, i = heapq.heappop(pending)
            if action == "reset":
                sim.emit(t, "orchestrator-reset", {})
                for j, w in enumerate(sim.workers):  # every connection is gone; they come back
                    w.online = False
                    heapq.heappush(pending, (t + rng.uniform(1, 15), order, "reconnect", j))
                    order += 1
            elif not sim.workers[i].online and t < end:
                port = 8935 if action == "connect" else rng.randint(32768, 60999)
                sim.connect(t, sim.workers[i], port)

    # Each arrival is one job (two events for AI: received then processed) or, rarely,
    # a disconnect, a ticket redemption or an event type the pipeline does not know.
    t = 0.0
    arrivals = rate / 2 if is_ai else rate
    while True:
        t += rng.expovariate(arrivals)
        if t >= end:
            break
        run_pending(t)
        r = rng.random()
        if r < 0.003:
            online = [w for w in sim.workers if w.online]
            if len(online) > 1:
                w = rng.choice(online)
                w.online = False
                sim.emit(
                    t, "worker-disconnected", {"connection": w.connection, "ethAddress": w.address}
                )
                back = t + rng.uniform(10, 300)
                heapq.heappush(pending, (back, order, "reconnect", sim.workers.index(w)))
                order += 1
        elif r < 0.010:
            _ticket(sim, t)
        elif r < 0.011:
            sim.emit(t, rng.choice(_UNKNOWN_TYPES), {})
        elif is_ai:
            _ai_job(sim, t)
        else:
            _transcode_job(sim, t)
    run_pending(end)
    sim.events.sort(key=lambda e: (e.t, e.seq))
    return sim


# --------------------------------------------------------------------------------------
# Mess


def _count(fraction: float, population: int) -> int:
    """How many of ``population`` a fraction selects: at least one when asked for any."""
    if fraction <= 0 or population <= 0:
        return 0
    return min(population, max(1, round(fraction * population)))


def _invalidate(ev: _Ev, rng: random.Random, regions: list[str]) -> None:
    """Break one event the way a buggy or foreign producer would."""
    payload = ev.body["Payload"]
    kinds = ["region"]
    if "fees" in payload:
        kinds += ["negative-fees", "float-fees", "string-fees", "missing-fees"]
    if "ethAddress" in payload:
        kinds += ["bad-address", "short-address", "missing-address"]
    if "requestID" in payload:
        kinds += ["missing-request"]
    kind = rng.choice(kinds)
    if kind == "region":
        ev.body["Region"] = rng.choice(regions)
    elif kind == "negative-fees":
        payload["fees"] = -payload["fees"]
    elif kind == "float-fees":
        payload["fees"] = payload["fees"] + 0.5
    elif kind == "string-fees":
        payload["fees"] = str(payload["fees"])
    elif kind == "missing-fees":
        del payload["fees"]
    elif kind == "bad-address":
        payload["ethAddress"] = "0x" + "zz" + payload["ethAddress"][4:]
    elif kind == "short-address":
        payload["ethAddress"] = payload["ethAddress"][:-6]
    elif kind == "missing-address":
        del payload["ethAddress"]
    else:
        del payload["requestID"]


def generate(
    partition: Partition,
    start: datetime,
    duration: timedelta,
    workers: int = 10,
    events_per_second: float = 5.0,
    events_per_file: int = 10_000,
    flush_seconds: int = 60,
    seed: int = 0,
    mess: Mess = Mess(),  # frozen, so one shared default is safe
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
    sim = _simulate(partition, start, end, seed, workers, events_per_second, max(0, mess.resets))
    rng = _rng("mess", seed, partition.key)
    events = sim.events

    # Orphans: jobs the orchestrator served itself, so no job-received exists.
    jobs = sorted({e.job for e in events if e.job is not None})
    orphans = set(rng.sample(jobs, _count(mess.orphan_ai_jobs, len(jobs))))
    events = [e for e in events if not (e.job in orphans and e.role == "received")]

    # Invalid events: only events whose validity matters to the money (jobs).
    eligible = [e for e in events if e.job is not None or "fees" in e.body["Payload"]]
    others = [
        r for r in ("us-central", "us-west", "eu-central", "oceania") if r != partition.region
    ]
    for ev in rng.sample(eligible, min(len(eligible), _count(mess.invalid_events, len(events)))):
        _invalidate(ev, rng, others)

    # Which jobs a flush will split, and which events the next flush will re-send.
    paired = [j for j in jobs if j not in orphans]
    split = set(rng.sample(paired, _count(mess.split_ai_jobs, len(paired))))
    resend = {id(e) for e in rng.sample(events, _count(mess.duplicate_events, len(events)))}
    received_of = {e.job: e for e in events if e.role == "received"}

    ids_rng = _rng("ids", seed, partition.key)
    chunks: list[list[dict[str, Any]]] = []
    buf: list[_Ev] = []

    def flush(final: bool) -> None:
        nonlocal buf
        if not buf:
            return
        in_buf = {id(e) for e in buf}
        carry: list[_Ev] = []
        keep: list[_Ev] = []
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
            _Ev(e.t, e.seq, json.loads(json.dumps(e.body))) for e in keep if id(e) in resend
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
    files = [GeneratedFile(k, marshal_indent(c)) for k, c in merged]
    if len({f.key for f in files}) != len(files):  # pragma: no cover - guarded above
        raise RuntimeError("generated two files with one key")

    for i in sorted(rng.sample(range(len(files)), min(len(files), max(0, mess.truncated_files)))):
        body = files[i].body
        files[i] = GeneratedFile(files[i].key, body[: rng.randint(len(body) // 4, len(body) - 2)])

    # Upload order: late files (never the newest) are written after everything else.
    order = list(range(len(files)))
    late = set(rng.sample(order[:-1], _count(mess.late_files, len(order) - 1)))
    order = [i for i in order if i not in late] + sorted(late)
    for i in sorted(rng.sample(range(len(files)), _count(mess.reupload_files, len(files)))):
        pos = order.index(i)
        order.insert(rng.randint(pos + 1, len(order)), i)
    return [GeneratedFile(files[i].key, files[i].body) for i in order]


def write(files: list[GeneratedFile], store: ObjectStore) -> int:
    """Upload ``files`` in order with plain puts (a re-upload replaces); returns the count."""
    for f in files:
        store.put(f.key, f.body)
    return len(files)


def count_events(body: bytes) -> int:
    """Top-level event objects in a body as formatted here, even a truncated one."""
    return body.count(b"\n  {")


# --------------------------------------------------------------------------------------
# Oracle


def _valid_address(value: Any) -> bool:
    return isinstance(value, str) and _address_ok(value)


@functools.lru_cache(maxsize=1 << 12)
def _address_ok(value: str) -> bool:
    # Hex of the right length; mixed case must carry a valid EIP-55 checksum. Cached: the
    # checksum is a keccak hash, and the same few worker addresses repeat on every job.
    if not _ADDRESS_RE.match(value):
        return False
    hexpart = value[2:]
    return hexpart in (hexpart.lower(), hexpart.upper()) or is_checksum_address(value)


@functools.lru_cache(maxsize=1 << 12)
def _checksummed(value: str) -> str:
    return to_checksum_address(value)


@functools.lru_cache(maxsize=1 << 16)
def _dt_ok(value: str) -> bool:
    if not _DT_RE.match(value):
        return False
    try:
        datetime.strptime(value, DT_FORMAT)
    except ValueError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_event(ev: Any, node_type: str, region: str) -> bool:
    """The spec's rules for an event worth counting, written out plainly."""
    if not isinstance(ev, dict):
        return False
    dt, etype, eid, payload = ev.get("DT"), ev.get("EventType"), ev.get("ID"), ev.get("Payload")
    if not (isinstance(dt, str) and _dt_ok(dt)):
        return False
    if not (isinstance(etype, str) and etype and isinstance(eid, str) and eid):
        return False
    if not isinstance(payload, dict) or not _is_int(ev.get("Version")):
        return False
    if ev.get("NodeType") != node_type or ev.get("Region") != region:
        return False
    fees_ok = _is_int(payload.get("fees")) and payload["fees"] >= 0
    rid_ok = isinstance(payload.get("requestID"), str) and bool(payload["requestID"])
    addr_ok = _valid_address(payload.get("ethAddress"))
    if etype == "job-processed":
        return fees_ok and (rid_ok if node_type == "ai" else addr_ok)
    if etype == "job-received":
        return rid_ok and addr_ok
    if etype in ("worker-connected", "worker-disconnected"):
        return addr_ok and isinstance(payload.get("connection"), str)
    return True


def oracle_balances(
    files: list[GeneratedFile], commission_rate: Fraction
) -> dict[str, dict[str, int]]:
    """Reference balances over ``files``: what a correct ingest of them must produce.

    Unparseable files are skipped whole; invalid events are dropped; each valid event ID
    counts once (the first occurrence wins, a later one with other content is ignored).
    AI jobs are credited through the earliest valid job-received with their requestID
    anywhere in the set; the rest go to ``__unattributed__`` (the pool keeps all of it).
    """
    p, q = commission_rate.numerator, commission_rate.denominator
    seen: set[str] = set()
    accepted: list[dict[str, Any]] = []
    for f in files:
        m = _KEY_RE.match(f.key)
        if not m:
            continue
        try:
            events = json.loads(f.body)
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(events, list):
            continue
        for ev in events:
            if not _valid_event(ev, m["node_type"], m["region"]):
                continue
            if ev["ID"] in seen:
                continue  # duplicate (same content) or conflict (other content): not counted
            seen.add(ev["ID"])
            accepted.append(ev)

    worker_of: dict[str, tuple[str, str]] = {}  # requestID -> (DT, checksummed address)
    for ev in accepted:
        if ev["EventType"] == "job-received" and ev["NodeType"] == "ai":
            rid = ev["Payload"]["requestID"]
            cand = (ev["DT"], _checksummed(ev["Payload"]["ethAddress"]))
            if rid not in worker_of or cand[0] < worker_of[rid][0]:
                worker_of[rid] = cand

    out: dict[str, dict[str, int]] = {}

    def credit(who: str, fees: int, commission: int) -> None:
        row = out.setdefault(
            who,
            {
                "total_fees_wei": 0,
                "pool_commission_wei": 0,
                "worker_earnings_wei": 0,
                "job_count": 0,
            },
        )
        row["total_fees_wei"] += fees
        row["pool_commission_wei"] += commission
        row["worker_earnings_wei"] += fees - commission
        row["job_count"] += 1

    for ev in accepted:
        if ev["EventType"] != "job-processed":
            continue
        fees = ev["Payload"]["fees"]
        if ev["NodeType"] == "ai":
            match = worker_of.get(ev["Payload"]["requestID"])
            if match is None:
                credit(UNATTRIBUTED, fees, fees)
                continue
            who = match[1]
        else:
            who = _checksummed(ev["Payload"]["ethAddress"])
        credit(who, fees, fees * p // q)
    return out


# --------------------------------------------------------------------------------------
# CLI


def _iso(text: str) -> datetime:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1], got {text}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``generate`` sub-command (synthetic event files for demos and benchmarks)."""
    p = subparsers.add_parser(
        "generate",
        help="write synthetic orchestrator event files",
        description="Write realistic event files to OPENPOOL_EVENTS_URI (or --out).",
    )
    p.add_argument("--node-type", choices=("ai", "transcode"))
    p.add_argument("--region", default="us-central", help="default us-central")
    p.add_argument(
        "--all-partitions", action="store_true", help="every active partition (OPENPOOL_PARTITIONS)"
    )
    p.add_argument("--start", type=_iso, help="ISO time (UTC); default: --hours before this hour")
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--workers", type=int, default=10)
    p.add_argument("--rate", type=float, default=5.0, help="events per second (default 5)")
    p.add_argument("--events-per-file", type=int, default=10_000)
    p.add_argument("--flush-seconds", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="target URI or path (default: OPENPOOL_EVENTS_URI)")
    m = p.add_argument_group("mess (all off by default)")
    m.add_argument("--duplicates", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--late", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--reuploads", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--truncated", type=int, default=0, metavar="N")
    m.add_argument("--invalid", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--split-ai", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--resets", type=int, default=0, metavar="N")
    m.add_argument("--orphan-ai", type=_fraction, default=0.0, metavar="FRACTION")
    p.set_defaults(handler=cmd_generate)


def cmd_generate(args: argparse.Namespace, settings: Any = None) -> int:
    """Generate, upload, and print ``{"files", "events", "bytes"}`` as one JSON line."""
    from openpool.config import load_settings, to_uri
    from openpool.storage import open_store

    settings = settings if settings is not None else load_settings()
    if args.all_partitions:
        parts = list(settings.partitions)
    elif args.node_type:
        parts = [Partition(args.node_type, args.region)]
    else:
        sys.stderr.write("openpool generate: give --node-type/--region or --all-partitions\n")
        return 2
    duration = timedelta(hours=args.hours)
    start = args.start
    if start is None:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = hour - duration
    mess = Mess(
        duplicate_events=args.duplicates,
        reupload_files=args.reuploads,
        late_files=args.late,
        truncated_files=args.truncated,
        invalid_events=args.invalid,
        split_ai_jobs=args.split_ai,
        resets=args.resets,
        orphan_ai_jobs=args.orphan_ai,
    )
    store = open_store(to_uri(args.out) if args.out else settings.events_uri)
    n_files = n_events = n_bytes = 0
    for part in parts:
        files = generate(
            part,
            start,
            duration,
            workers=args.workers,
            events_per_second=args.rate,
            events_per_file=args.events_per_file,
            flush_seconds=args.flush_seconds,
            seed=args.seed,
            mess=mess,
        )
        n_files += write(files, store)
        n_events += sum(count_events(f.body) for f in files)
        n_bytes += sum(len(f.body) for f in files)
    sys.stdout.write(json.dumps({"files": n_files, "events": n_events, "bytes": n_bytes}) + "\n")
    return 0
