"""The conditions an operator must hear about, evaluated from the state as it is now.

Each :class:`Condition` has a ``key`` naming one occurrence (a plan's hash, a partition, a
payment id, an event ID): an alert is sent once per key while it holds, and again only
after it cleared and recurred (:mod:`openpool.alerts.state`). Texts carry public facts only
-- partitions, counts, exact ETH, hashes, addresses, object keys -- never a setting's value,
a URL or an error message (which may hold an RPC key or a password).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from openpool.alerts.health import Health, partition_health
from openpool.analytics.summary import worker_summary
from openpool.duplicates import DuplicateReport, find_duplicates
from openpool.money import eth
from openpool.partitions import Partition
from openpool.payments import INVESTIGATE, OPEN, payout_log
from openpool.payments import current as current_records
from openpool.payouts.awaiting import awaiting_plan
from openpool.payouts.execute import GAS_MARGIN
from openpool.payouts.plan import TRANSFER_GAS
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import ObjectStore

log = logging.getLogger(__name__)

APPROVAL, STALE, WALLET_LOW, PAYMENT, QUARANTINE, REJECTED, DUPLICATE = (
    "approval_waiting",
    "partition_stale",
    "wallet_low",
    "payment_attention",
    "files_quarantined",
    "rejected_rate",
    "duplicate_id",
)
KINDS = (APPROVAL, STALE, WALLET_LOW, PAYMENT, QUARANTINE, REJECTED, DUPLICATE)
# worst-case gas per payment, as execute signs it: the transfer's gas plus its margin
GAS_PER_PAYMENT = -(-TRANSFER_GAS * GAS_MARGIN[0] // GAS_MARGIN[1])


@dataclass(frozen=True)
class Condition:
    key: str
    kind: str
    subject: str
    text: str
    partition: str | None = None
    link: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Inputs:
    """What the evaluation reads, and the thresholds it compares against."""

    state: ObjectStore
    partitions: tuple[Partition, ...]
    threshold_wei: int
    max_payment_wei: int
    max_run_wei: int
    max_gas_price_wei: int
    stale_after: timedelta
    rejected_rate: Fraction
    stuck_after: timedelta
    approval_window: timedelta = timedelta(hours=12)
    wallet: str | None = None
    balance: Callable[[str], int] | None = None  # the hot wallet's balance (the chain)
    ui_url: str | None = None  # the Airflow UI, for links


@dataclass
class Evaluation:
    active: list[Condition]
    unevaluated: set[str] = field(default_factory=set)  # kinds that could not be read
    health: list[Health] = field(default_factory=list)


def evaluate(src: Inputs, now: datetime) -> Evaluation:
    """Every condition that holds at ``now``. A kind that cannot be evaluated (the chain
    unreachable) is named in ``unevaluated``, so its open alerts are kept, not cleared."""
    out: list[Condition] = []
    unevaluated: set[str] = set()
    snaps = {p: SnapshotStore(src.state, p).latest() for p in src.partitions}
    health = [partition_health(src.state, p, snaps[p], now, src.stale_after) for p in snaps]
    for h in health:
        out.extend(_health_conditions(h, src))
    warnings: list[str] = []
    records = current_records(payout_log(src.state))
    plan = awaiting_plan(src.state, records, now, src.approval_window, warnings)
    for w in warnings:
        log.warning("%s", w)
    if plan is not None:
        out.append(_approval(plan, src))
    out.extend(_payments(records, now, src.stuck_after))
    out.extend(_duplicates(find_duplicates(src.state, list(snaps), pinned=_pins(snaps))))
    try:
        low = _wallet(src, snaps, plan)
    except Exception as exc:
        log.warning("hot wallet balance not read (%s); its alert is left as it was", type(exc))
        unevaluated.add(WALLET_LOW)
    else:
        out.extend(low)
    return Evaluation(out, unevaluated, health)


def _pins(snaps: dict[Partition, Snapshot | None]) -> dict[str, Snapshot | None]:
    return {str(p): s for p, s in snaps.items()}


def _when(t: datetime | None) -> str:
    return "never" if t is None else f"{t:%Y-%m-%d %H:%M} UTC"


def _health_conditions(h: Health, src: Inputs) -> list[Condition]:
    part, out = str(h.partition), []
    if h.stale:
        out.append(
            Condition(
                f"{STALE}:{part}",
                STALE,
                f"OpenPool: no new event file for {part}",
                f"{part} has received no new event file for more than "
                f"{int(src.stale_after.total_seconds())} s (OPENPOOL_ALERT_STALE_AFTER_SECONDS): "
                f"last file {h.last_file_key or 'none'} dated {_when(h.last_file_at)}, "
                f"last commit {_when(h.last_commit_at)}. Its orchestrator may be down, or its "
                "ingest DAG paused or failing.",
                part,
            )
        )
    if h.quarantined_day:
        out.append(
            Condition(
                f"{QUARANTINE}:{part}",
                QUARANTINE,
                f"OpenPool: {h.quarantined_day} file(s) quarantined in {part}",
                f"{part} quarantined {h.quarantined_day} unreadable event file(s) in the last "
                "day; see `openpool table quarantined_files` for each file's reason.",
                part,
            )
        )
    if h.read_day and Fraction(h.rejected_day, h.read_day) > src.rejected_rate:
        out.append(
            Condition(
                f"{REJECTED}:{part}",
                REJECTED,
                f"OpenPool: {h.rejected_day} rejected events in {part}",
                f"{part} rejected {h.rejected_day} of {h.read_day} events read in the last day, "
                f"above OPENPOOL_ALERT_REJECTED_RATE ({src.rejected_rate}); see "
                "`openpool table rejected_events` for the reasons.",
                part,
            )
        )
    return out


def _approval(plan: dict[str, Any], src: Inputs) -> Condition:
    link = f"{src.ui_url.rstrip('/')}/required_actions" if src.ui_url else None
    return Condition(
        f"{APPROVAL}:{plan['plan_hash']}",
        APPROVAL,
        f"OpenPool: payout plan {plan['plan_hash'][:12]} waits for approval",
        f"Payout plan {plan['plan_hash']} ({len(plan['payments'])} payments, "
        f"{eth(plan['total_wei'])} ETH) waits for a person's answer until "
        f"{_when(plan['expires_at'])}: approve or reject it under Required Actions"
        + (f" ({link})" if link else "")
        + ".",
        None,
        link,
    )


def _payments(records: list[dict[str, Any]], now: datetime, stuck: timedelta) -> list[Condition]:
    out = []
    for r in sorted(records, key=lambda r: r["payment_id"]):
        what = None
        if r["status"] == INVESTIGATE:
            what = "needs investigation (its nonce was used by another transaction)"
        elif r["status"] in OPEN and r["recorded_at"] is not None:
            at = (
                r["recorded_at"]
                if r["recorded_at"].tzinfo
                else r["recorded_at"].replace(tzinfo=UTC)
            )
            if now - at > stuck:
                what = f"is stuck: {r['status']} since {_when(at)}"
        if what is None:
            continue
        out.append(
            Condition(
                f"{PAYMENT}:{r['payment_id']}:{r['status']}",
                PAYMENT,
                f"OpenPool: payment {r['payment_id'][:12]} {r['status'].replace('_', ' ')}",
                f"Payment {r['payment_id']} of {eth(int(r['amount_wei']))} ETH to "
                f"{r['eth_address']} ({r['partition']}, tx {r['tx_hash'] or 'none'}) {what}; "
                "the worker is blocked from payouts. See `openpool payouts status`.",
                r["partition"],
            )
        )
    return out


def _duplicates(report: DuplicateReport) -> list[Condition]:
    out = []
    for d in report.unresolved:
        places = ", ".join(f"{o.partition} {o.hour}" for o in d.occurrences)
        workers = ", ".join(sorted({a for _, a in d.workers})) or "none"
        out.append(
            Condition(
                f"{DUPLICATE}:{d.event_id}",
                DUPLICATE,
                f"OpenPool: event ID {d.event_id} held {len(d.occurrences)} times",
                f"Event ID {d.event_id} is held {len(d.occurrences)} times ({places}); workers "
                f"held back from payouts: {workers}. Resolve with `openpool duplicates "
                "--resolve`.",
                d.occurrences[0].partition,
            )
        )
    return out


def next_plan_need(
    src: Inputs, snaps: dict[Partition, Snapshot | None], plan: dict[str, Any] | None
) -> tuple[int, int]:
    """(wei, payments) the next plan needs: the awaiting plan's, else what the planner
    would pay now (payable at or above the threshold, capped per payment and per run;
    holds and the minimum interval ignored, so the need is never under-estimated)."""
    if plan is not None:
        amounts = [p["amount_wei"] for p in plan["payments"]]
    else:
        owed = []
        for part, snap in snaps.items():
            for row in worker_summary(snap, part, src.threshold_wei).workers:
                if row["payout_due"]:
                    owed.append(min(row["payable_wei"], src.max_payment_wei))
        amounts, total = [], 0
        for a in sorted(owed, reverse=True):
            if total + a <= src.max_run_wei:
                amounts.append(a)
                total += a
    gas = len(amounts) * GAS_PER_PAYMENT * src.max_gas_price_wei
    return sum(amounts) + gas, len(amounts)


def _wallet(
    src: Inputs, snaps: dict[Partition, Snapshot | None], plan: dict[str, Any] | None
) -> list[Condition]:
    if src.wallet is None or src.balance is None:
        return []
    need, n = next_plan_need(src, snaps, plan)
    if n == 0:
        return []
    have = src.balance(src.wallet)
    if have >= need:
        return []
    return [
        Condition(
            f"{WALLET_LOW}:{src.wallet.lower()}",
            WALLET_LOW,
            "OpenPool: the hot wallet cannot fund the next payout",
            f"Hot wallet {src.wallet} holds {eth(have)} ETH; the next plan needs {eth(need)} ETH "
            f"({n} payments plus worst-case gas at MAX_GAS_PRICE_WEI), short by "
            f"{eth(need - have)} ETH. Fund the wallet before approving.",
        )
    ]
