"""Decisions on a plan, bound to its hash and recorded beside it: who approved or rejected.

A record is an audit trail and a veto, never authority. Anyone who can write to the state
bucket can drop a file into ``approvals/``, so ``execute`` pays only on the decision of a
person, made for that execution: the Human-in-the-loop answer of the same DAG run, or
``--i-approve HASH`` typed by whoever runs the CLI. A rejection, once recorded, is final:
no path executes that plan again. The first decision recorded for a hash wins.
"""

from __future__ import annotations

import json
import os
import pwd
from datetime import UTC, datetime
from typing import Any

from openpool.errors import ObjectExists, ObjectNotFound
from openpool.payouts.plan import PlanRefused
from openpool.storage import ObjectStore

APPROVED, REJECTED = "approved", "rejected"


def approval_key(plan_hash: str) -> str:
    return f"approvals/{plan_hash}.json"


def record_decision(
    state: ObjectStore, plan_hash: str, decision: str, approver: str, via: str
) -> dict[str, Any]:
    """Record ``decision`` on ``plan_hash`` unless one is recorded; returns the one in force."""
    if decision not in (APPROVED, REJECTED):
        raise ValueError(f"unknown decision {decision!r}")
    doc = {
        "plan_hash": plan_hash,
        "decision": decision,
        "approver": approver,
        "via": via,
        "decided_at": datetime.now(UTC).isoformat(),
    }
    try:
        state.put_if_absent(approval_key(plan_hash), json.dumps(doc).encode())
    except ObjectExists:
        return recorded(state, plan_hash) or doc
    return doc


def record_approval(state: ObjectStore, plan_hash: str, approver: str, via: str) -> dict[str, Any]:
    """Record an approval (audit only; see the module docstring)."""
    return record_decision(state, plan_hash, APPROVED, approver, via)


def recorded(state: ObjectStore, plan_hash: str) -> dict[str, Any] | None:
    """The recorded decision, if any. An unreadable record, or one naming another plan, is
    read as a rejection: a veto must never be lost to damage."""
    try:
        raw = state.get(approval_key(plan_hash))
    except ObjectNotFound:
        return None
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("plan_hash") != plan_hash:
            raise ValueError("names another plan")
    except ValueError as exc:
        return {"plan_hash": plan_hash, "decision": REJECTED, "approver": "?", "via": str(exc)}
    return doc


def refuse_if_rejected(state: ObjectStore, plan_hash: str) -> None:
    doc = recorded(state, plan_hash)
    if doc is not None and doc.get("decision") == REJECTED:
        raise PlanRefused(
            f"plan {plan_hash[:12]}… was rejected by {doc.get('approver')} "
            f"({doc.get('via')}); a rejected plan is never executed; nothing sent"
        )


def os_user() -> str:
    """The operating-system account running this process (never $USER and friends, which
    anyone can set)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid-{os.getuid()}"


def approve_on_cli(
    state: ObjectStore, plan_hash: str, typed: str | None, name: str | None = None
) -> str:
    """The CLI's authority: ``--i-approve`` repeating the full hash, typed by the person
    running it. Records the approval (audit) and returns who approved."""
    if not typed:
        raise PlanRefused(
            f"plan {plan_hash[:12]}…: no recorded approval is authority on the command line; "
            "pass --i-approve with its full hash (or approve it in the payout DAG); nothing sent"
        )
    if typed != plan_hash:
        raise PlanRefused("--i-approve must repeat the full plan hash; nothing sent")
    refuse_if_rejected(state, plan_hash)
    who = f"cli:{os_user()}" + (f" ({name})" if name else "")
    doc = record_decision(state, plan_hash, APPROVED, who, "openpool payouts execute --i-approve")
    if doc.get("decision") == REJECTED:  # a rejection recorded in the meantime
        refuse_if_rejected(state, plan_hash)
    return who
