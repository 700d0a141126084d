"""One alerting round: evaluate, send what is new, record it.

Delivery is **at least once**: an alert is recorded only after every channel took it, so
a crash (or a failing channel) between sending and recording sends it again on the next
try, never loses it; a condition already recorded open is never sent again while it
holds. Order: evaluate -> send each new condition -> one commit of the sent and the
cleared (:func:`openpool.alerts.state.record`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from openpool.alerts.conditions import Condition, Evaluation, Inputs, evaluate
from openpool.alerts.state import alert_store, open_keys, record

log = logging.getLogger(__name__)

Deliver = Callable[[Condition], None]


@dataclass
class Round:
    active: list[str]
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # key -> the error's type
    already_open: list[str] = field(default_factory=list)
    unevaluated: list[str] = field(default_factory=list)
    recorded_version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "sent": self.sent,
            "failed": self.failed,
            "already_open": self.already_open,
            "unevaluated": self.unevaluated,
            "recorded_version": self.recorded_version,
        }


def run_round(
    src: Inputs,
    deliver: Deliver,
    run_id: str,
    now: datetime | None = None,
    evaluation: Evaluation | None = None,
) -> Round:
    """Evaluate at ``now``, send each condition not recorded open, record what was sent."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    ev = evaluation or evaluate(src, now)
    recorded = open_keys(alert_store(src.state).latest())
    active = {c.key for c in ev.active}
    rnd = Round(sorted(active), unevaluated=sorted(ev.unevaluated))
    sent: list[Condition] = []
    for c in ev.active:
        if c.key in recorded:
            rnd.already_open.append(c.key)
            continue
        try:
            deliver(c)
        except Exception as exc:
            log.error("alert %s not delivered (%s); it is sent again next round", c.key, exc)
            rnd.failed[c.key] = type(exc).__name__
            continue
        sent.append(c)
        rnd.sent.append(c.key)
    # a failed one stays active-but-unrecorded: keep any open row of it, add none
    snap = record(src.state, sent, active, set(ev.unevaluated), now, run_id)
    rnd.recorded_version = snap.version if snap else None
    return rnd
