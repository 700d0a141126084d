"""The plan that still waits for a person's answer, if any.

A plan is *awaiting approval* when it is the newest plan in the state store, it has no
approval record and no ledger row, and it is younger than the approval window: the payout
DAG runs one at a time and writes a fresh plan each run, so only the newest plan can still
have an open approval; an older one was approved, rejected or timed out. The OpenPool page
lists it and the alerts announce it, from this one rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from openpool.errors import OpenPoolError
from openpool.payouts.approvals import approval_key
from openpool.payouts.plan import load_plan
from openpool.storage import ObjectStore


def awaiting_plan(
    state: ObjectStore,
    records: Iterable[dict[str, Any]],
    now: datetime,
    window: timedelta,
    warnings: list[str],
) -> dict[str, Any] | None:
    """The newest plan if it is young, unanswered and unpaid (``records``: every wallet's
    current payment records); an unreadable plan is named in ``warnings``."""
    cutoff = now - window
    recent = [i for i in state.list("plans/") if i.last_modified >= cutoff - timedelta(hours=1)]
    plans = []
    for info in recent:
        plan_hash = info.key.removeprefix("plans/").removesuffix(".json")
        try:
            plans.append((plan_hash, load_plan(state, plan_hash)))
        except (OpenPoolError, ValueError) as exc:
            warnings.append(f"plan {plan_hash[:12]}… is unreadable: {exc}")
    if not plans:
        return None
    plan_hash, plan = max(plans, key=lambda p: (p[1]["created_at"], p[0]))
    created = datetime.fromisoformat(plan["created_at"])
    executed = any(r["plan_hash"] == plan_hash for r in records)
    if created < cutoff or executed or state.exists(approval_key(plan_hash)):
        return None
    return {
        "plan_hash": plan_hash,
        "created_at": created,
        "expires_at": created + window,
        "total_wei": int(plan["total_wei"]),
        "payments": [{**p, "amount_wei": int(p["amount_wei"])} for p in plan["payments"]],
        "deferred": len(plan["deferred"]),
    }
