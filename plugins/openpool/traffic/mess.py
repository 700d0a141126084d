"""The ways real uploads go wrong, applied to clean simulated traffic.

Kept apart from the simulator, which sees only ``Mess.resets`` (a reset is an event the
orchestrator itself emits). Every kind is off by default; all draw, in a fixed order, from
one generator seeded per partition, so a seed and a ``Mess`` always give the same bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

from openpool.traffic.simulate import SimEvent

# Regions an event can be mis-labelled with (any but its file's own).
_REGIONS = ("us-central", "us-west", "eu-central", "oceania")


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


class MessedEvents(NamedTuple):
    """Events after the event-level mess, and what the flushes must do to them."""

    events: list[SimEvent]  # orphans' job-received removed, some events made invalid
    split: set[int]  # AI job numbers whose job-processed goes in a later file
    resend: set[int]  # id() of events the next flush sends again


def _count(fraction: float, population: int) -> int:
    """How many of ``population`` a fraction selects: at least one when asked for any."""
    if fraction <= 0 or population <= 0:
        return 0
    return min(population, max(1, round(fraction * population)))


def _invalidate(ev: SimEvent, rng: random.Random, regions: list[str]) -> None:
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


def mess_events(
    events: list[SimEvent], mess: Mess, rng: random.Random, region: str
) -> MessedEvents:
    """Orphan AI jobs, break events in place, and pick the splits and re-sends.

    ``rng`` is also used by :func:`mess_files` afterwards: call this first.
    """
    # Orphans: jobs the orchestrator served itself, so no job-received exists.
    jobs = sorted({e.job for e in events if e.job is not None})
    orphans = set(rng.sample(jobs, _count(mess.orphan_ai_jobs, len(jobs))))
    events = [e for e in events if not (e.job in orphans and e.role == "received")]

    # Invalid events: only events whose validity matters to the money (jobs).
    eligible = [e for e in events if e.job is not None or "fees" in e.body["Payload"]]
    others = [r for r in _REGIONS if r != region]
    for ev in rng.sample(eligible, min(len(eligible), _count(mess.invalid_events, len(events)))):
        _invalidate(ev, rng, others)

    # Which jobs a flush will split, and which events the next flush will re-send.
    paired = [j for j in jobs if j not in orphans]
    split = set(rng.sample(paired, _count(mess.split_ai_jobs, len(paired))))
    resend = {id(e) for e in rng.sample(events, _count(mess.duplicate_events, len(events)))}
    return MessedEvents(events, split, resend)


def mess_files(
    bodies: list[bytes], mess: Mess, rng: random.Random
) -> tuple[list[bytes], list[int]]:
    """Truncate some bodies; return the bodies and the upload order (indexes into them).

    Late files (never the newest) are uploaded after everything else; a re-upload repeats
    an index later in the order.
    """
    bodies = list(bodies)
    n = len(bodies)
    for i in sorted(rng.sample(range(n), min(n, max(0, mess.truncated_files)))):
        body = bodies[i]
        bodies[i] = body[: rng.randint(len(body) // 4, len(body) - 2)]

    order = list(range(n))
    late = set(rng.sample(order[:-1], _count(mess.late_files, len(order) - 1)))
    order = [i for i in order if i not in late] + sorted(late)
    for i in sorted(rng.sample(range(n), _count(mess.reupload_files, n))):
        pos = order.index(i)
        order.insert(rng.randint(pos + 1, len(order)), i)
    return bodies, order
