"""Approvals bound to a plan's hash, recorded next to the plan in the state store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from openpool.errors import ObjectExists, ObjectNotFound
from openpool.payouts.plan import PlanRefused
from openpool.storage import ObjectStore


def approval_key(plan_hash: str) -> str:
    return f"approvals/{plan_hash}.json"


def record_approval(state: ObjectStore, plan_hash: str, approver: str, via: str) -> dict[str, Any]:
    """Record who approved ``plan_hash`` (first approval wins; later ones change nothing)."""
    doc = {
        "plan_hash": plan_hash,
        "approver": approver,
        "via": via,
        "approved_at": datetime.now(UTC).isoformat(),
    }
    try:
        state.put_if_absent(approval_key(plan_hash), json.dumps(doc).encode())
    except ObjectExists:
        return json.loads(state.get(approval_key(plan_hash)))
    return doc


def require_approval(state: ObjectStore, plan_hash: str) -> dict[str, Any]:
    try:
        doc = json.loads(state.get(approval_key(plan_hash)))
    except ObjectNotFound:
        raise PlanRefused(
            f"plan {plan_hash[:12]}… has no recorded approval; approve it in the Airflow UI "
            "or pass --i-approve with its full hash"
        ) from None
    if doc.get("plan_hash") != plan_hash:
        raise PlanRefused(f"the approval record for {plan_hash[:12]}… names another plan")
    return doc
