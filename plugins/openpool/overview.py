"""The pool dashboard's read model: everything the OpenPool page shows, without Airflow.

Money comes live from the snapshot store and every hot wallet's payout ledger (the same
``worker_summary``/``pool_summary`` the CLI and the exports use, so the page can never
disagree with them); performance ranks come from the published ``worker_performance.json``
exports; fees over time are summed exactly (decimal128) from the events ledger's recent
day slices. Nothing here writes anything.

The plan *awaiting approval* is :func:`openpool.payouts.awaiting.awaiting_plan`'s (the alerts
announce the same one); the health section is :mod:`openpool.alerts.health`'s.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from openpool.alerts.health import Created, Facts, facts, partition_health
from openpool.alerts.state import alert_store
from openpool.alerts.state import rows as alert_rows
from openpool.analytics.refresh import export_keys
from openpool.analytics.summary import Summary, pool_summary, worker_summary
from openpool.config import Settings
from openpool.duplicates import DuplicateReport, find_duplicates
from openpool.errors import ObjectNotFound
from openpool.partitions import Partition
from openpool.payments import CONFIRMED, INVESTIGATE, payout_log
from openpool.payments import current as payable_current
from openpool.payouts.approvals import recorded
from openpool.payouts.awaiting import awaiting_plan
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import ObjectStore
from openpool.tables import EVENTS, TS

EXPLORERS = {42161: "https://arbiscan.io", 421614: "https://sepolia.arbiscan.io"}
RECENT_PAYMENTS = 50
RECENT_ANSWERS = 10
# online = connection open and an event this recent (the setting OPENPOOL_ONLINE_WINDOW_SECONDS)
ONLINE_WINDOW = timedelta(seconds=Settings.model_fields["online_window_seconds"].default)
# stale = no new file for this long (the setting OPENPOOL_ALERT_STALE_AFTER_SECONDS)
STALE_AFTER = timedelta(seconds=Settings.model_fields["alert_stale_after_seconds"].default)


def explorer(chain_id: int, configured: str | None = None) -> str | None:
    """The block explorer's base URL: ``configured`` when set ("" = none, for a local chain
    such as the devstack's anvil, which runs as 42161), else the chain's public explorer."""
    if configured is not None:
        return configured.rstrip("/") or None
    return EXPLORERS.get(chain_id)


def tx_url(base: str | None, tx_hash: str | None) -> str | None:
    """The explorer page of ``tx_hash``, when there is an explorer."""
    return f"{base}/tx/{tx_hash}" if base and tx_hash else None


def address_url(base: str | None, address: str | None) -> str | None:
    return f"{base}/address/{address}" if base and address else None


@dataclass(frozen=True)
class Sources:
    """Where the page reads from, and the settings that shape what it shows."""

    state: ObjectStore
    metrics: ObjectStore
    partitions: tuple[Partition, ...]
    threshold_wei: int
    chain_id: int
    wallet: str | None
    approval_window: timedelta = timedelta(hours=12)
    fee_hours: int = 48
    explorer_url: str | None = None  # None: the chain's public explorer; "": no links
    online_window: timedelta = ONLINE_WINDOW  # online = connection open, an event this recent
    stale_after: timedelta = STALE_AFTER  # a partition with no new file this long is stale


@dataclass
class PartitionView:
    partition: Partition
    snapshot_version: int
    summary: Summary
    transcode_ranks: list[dict[str, Any]]  # all-time, best first, then the unranked
    ai_ranks: dict[str, list[dict[str, Any]]]  # "pipeline|model" -> the same
    performance_as_of: str | None


@dataclass
class Dashboard:
    generated_at: datetime
    chain_id: int
    explorer: str | None
    wallet: str | None
    threshold_wei: int
    pool: Summary
    partitions: list[PartitionView]
    awaiting: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    fee_hours: list[datetime]
    fees: dict[str, list[int]]  # partition key -> wei per hour, aligned with fee_hours
    warnings: list[str] = field(default_factory=list)
    # The newest answers to approval requests (approvals/<hash>.json), newest first.
    answers: list[dict[str, Any]] = field(default_factory=list)
    # Event IDs held twice in history (openpool.duplicates), not yet resolved.
    repeats: list[dict[str, Any]] = field(default_factory=list)
    # Per partition: last file, last commit, set aside in the last day, stale, newest alert.
    health: list[dict[str, Any]] = field(default_factory=list)
    # Alerts sent whose condition still holds (openpool.alerts), newest first.
    open_alerts: list[dict[str, Any]] = field(default_factory=list)
    stale_after: timedelta = STALE_AFTER


def worker_status(
    row: dict[str, Any], investigating: set[str], now: datetime, window: timedelta
) -> list[str]:
    """Labels for a worker row: connection, then where its money stands.

    *Online* needs an open connection **and** an event within ``window`` of ``now``: a
    connection the events never closed (its orchestrator stopped writing) is *silent*."""
    seen = row["last_seen"]
    recent = seen is not None and now - seen <= window
    labels = ["online" if row["active"] and recent else "offline"]
    if row["active"] and not recent and seen is not None:
        labels.append(f"silent since {seen:%Y-%m-%d %H:%M} UTC")
    if row["eth_address"] in investigating:
        labels.append("needs investigation")
    elif row["in_flight_wei"] > 0:
        labels.append("payment in flight")
    elif row["payout_due"]:
        labels.append("payout due")
    return labels


class DashboardReader:
    """Builds a :class:`Dashboard`; caches per-snapshot-version work between page loads."""

    def __init__(self) -> None:
        # (store, partition) -> (snapshot version, window start, fees): the newest only
        self._fees: dict[tuple[str, str], tuple[int, datetime, dict[datetime, int]]] = {}
        # (store, (partition, version)...) -> the full-history duplicate check of those
        # versions: it reads every ID of history, so it runs only when a partition commits.
        self._repeats: tuple[tuple[Any, ...], DuplicateReport] | None = None
        # (store, partition) -> the newest version's health facts; manifests' times
        self._facts: dict[tuple[str, str], Facts] = {}
        self._created: Created = {}
        self._lock = threading.Lock()

    def read(self, src: Sources, now: datetime | None = None) -> Dashboard:
        now = now or datetime.now(UTC)
        warnings: list[str] = []
        log = payout_log(src.state)  # every wallet's ledger: a rotated wallet's payments count
        current = {(r["wallet"], r["payment_id"]): r for r in payable_current(log)}
        investigating = {r["eth_address"] for r in current.values() if r["status"] == INVESTIGATE}
        views, parts, props, snaps = [], [], [], {}
        for part in src.partitions:
            snap = SnapshotStore(src.state, part).latest()
            snaps[part] = snap
            mine = log.filter(pc.equal(log.column("partition"), str(part)))
            summ = worker_summary(snap, part, src.threshold_wei, mine)
            for row in summ.workers:
                row["status"] = worker_status(row, investigating, now, src.online_window)
            parts.append(summ)
            props.append(snap.manifest.properties if snap else {})
            tc, ai, as_of = _ranks(src.metrics, part, warnings)
            views.append(PartitionView(part, snap.version if snap else 0, summ, tc, ai, as_of))
        pool = pool_summary(parts, props)
        for row in pool.workers:
            row["status"] = worker_status(row, investigating, now, src.online_window)
        repeats = self._repeats_of(src, snaps)
        held = repeats.blocked()
        for view in views:
            for row in view.summary.workers:
                if (str(view.partition), row["eth_address"]) in held:
                    row["status"].append("held: repeated event ID")
        for row in pool.workers:
            if any(a == row["eth_address"] for _, a in held):
                row["status"].append("held: repeated event ID")
        for d in repeats.unresolved:
            places = ", ".join(f"{o.partition} {o.hour}" for o in d.occurrences)
            workers = ", ".join(sorted({a for _, a in d.workers})) or "none"
            warnings.append(
                f"event ID {d.event_id} is held {len(d.occurrences)} times ({places}); "
                f"workers held back from payouts: {workers}; resolve with "
                "`openpool duplicates --resolve`"
            )
        hours, fees = self._fee_series(src, snaps)
        links = explorer(src.chain_id, src.explorer_url)
        health, open_alerts = self._health(src, snaps, now)
        return Dashboard(
            generated_at=now,
            chain_id=src.chain_id,
            explorer=links,
            wallet=src.wallet,
            threshold_wei=src.threshold_wei,
            pool=pool,
            partitions=views,
            awaiting=_awaiting(src, current, now, warnings),
            payments=_recent_payments(current, links),
            answers=_answers(src),
            fee_hours=hours,
            fees=fees,
            warnings=warnings,
            repeats=repeats.as_dict()["unresolved"],
            health=health,
            open_alerts=open_alerts,
            stale_after=src.stale_after,
        )

    def _repeats_of(self, src: Sources, snaps: dict[Partition, Snapshot | None]) -> DuplicateReport:
        key = (
            src.state.url(""),
            *sorted((str(p), s.version if s else 0) for p, s in snaps.items()),
        )
        with self._lock:
            if self._repeats is not None and self._repeats[0] == key:
                return self._repeats[1]
        report = find_duplicates(
            src.state, list(snaps), pinned={str(p): s for p, s in snaps.items()}
        )
        with self._lock:
            self._repeats = (key, report)
        return report

    def _health(
        self, src: Sources, snaps: dict[Partition, Snapshot | None], now: datetime
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Each partition's health (openpool.alerts.health) with its newest alert, and the
        alerts still open, newest first."""
        sent = sorted(alert_rows(alert_store(src.state).latest()), key=lambda r: r["opened_at"])
        newest = {r["partition"]: {k: r[k] for k in ALERT_FIELDS} for r in sent if r["partition"]}
        out = []
        for part, snap in snaps.items():
            key = (src.state.uri, str(part))
            with self._lock:
                known = self._facts.get(key)
            if snap is not None and (known is None or known.version != snap.version):
                known = facts(snap)
                with self._lock:
                    self._facts[key] = known
            if len(self._created) > 100_000:  # manifests' times (immutable): bounded
                self._created.clear()
            h = partition_health(src.state, part, snap, now, src.stale_after, known, self._created)
            out.append(
                {
                    "partition": str(part),
                    "version": h.version,
                    "last_file_key": h.last_file_key,
                    "last_file_at": h.last_file_at,
                    "last_commit_at": h.last_commit_at,
                    "quarantined_day": h.quarantined_day,
                    "rejected_day": h.rejected_day,
                    "read_day": h.read_day,
                    "stale": h.stale,
                    "newest_alert": newest.get(str(part)),
                }
            )
        still = [{k: r[k] for k in ALERT_FIELDS} for r in sent if r["cleared_at"] is None]
        return out, still[::-1]

    def _fee_series(
        self, src: Sources, snaps: dict[Partition, Snapshot | None]
    ) -> tuple[list[datetime], dict[str, list[int]]]:
        """Fees per event hour over the last ``fee_hours`` before the newest watermark."""
        marks = [m for s in snaps.values() if s is not None and (m := _watermark(s)) is not None]
        if not marks:
            return [], {}
        end = max(marks).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        start = end - timedelta(hours=src.fee_hours)
        per: dict[str, dict[datetime, int]] = {}
        for part, snap in snaps.items():
            if snap is None:
                continue
            key = (src.state.uri, str(part))
            with self._lock:
                hit = self._fees.get(key)
            if hit is None or hit[:2] != (snap.version, start):
                hit = (snap.version, start, hourly_fees(snap, start, end))
                with self._lock:
                    self._fees[key] = hit
            per[str(part)] = hit[2]
        first = min((h for series in per.values() for h in series), default=end)
        hours = []
        h = first
        while h < end:
            hours.append(h)
            h += timedelta(hours=1)
        return hours, {k: [v.get(h, 0) for h in hours] for k, v in per.items()}


ALERT_FIELDS = ("key", "kind", "partition", "subject", "text", "opened_at", "cleared_at")


def _watermark(snap: Snapshot) -> datetime | None:
    mark = snap.manifest.properties.get("watermark")
    return datetime.fromisoformat(mark) if mark else None


def hourly_fees(snap: Snapshot, start: datetime, end: datetime) -> dict[datetime, int]:
    """Exact fees (wei) of processed jobs per event hour in ``[start, end)``."""
    first = start.date()
    days = {(first + timedelta(days=i)).isoformat() for i in range((end.date() - first).days + 1)}
    slices = sorted(days & snap.slices("events"))
    if not slices:
        return {}
    ev = snap.read(
        "events", slices=slices, schema=EVENTS, columns=["event_time", "event_type", "fees_wei"]
    )
    keep = pc.and_(
        pc.equal(ev.column("event_type"), "job-processed"),
        pc.and_(
            pc.greater_equal(ev.column("event_time"), pa.scalar(start, TS)),
            pc.less(ev.column("event_time"), pa.scalar(end, TS)),
        ),
    )
    ev = ev.filter(pc.and_(pc.fill_null(keep, False), pc.is_valid(ev.column("fees_wei"))))
    hour = pc.floor_temporal(ev.column("event_time"), unit="hour")
    agg = (
        pa.table({"hour": hour, "fees_wei": ev.column("fees_wei")})
        .group_by("hour", use_threads=False)
        .aggregate([("fees_wei", "sum")])
    )
    return {
        h.replace(tzinfo=UTC) if h.tzinfo is None else h: int(w)
        for h, w in zip(
            agg.column("hour").to_pylist(), agg.column("fees_wei_sum").to_pylist(), strict=True
        )
    }


def _recent_payments(current: dict[Any, dict[str, Any]], base: str | None) -> list[dict[str, Any]]:
    rows = sorted(current.values(), key=lambda r: (r["recorded_at"], r["payment_id"]), reverse=True)
    return [
        {
            "payment_id": r["payment_id"],
            "recorded_at": r["recorded_at"],
            "partition": r["partition"],
            "eth_address": r["eth_address"],
            "amount_wei": int(r["amount_wei"]),
            "status": r["status"],
            "tx_hash": r["tx_hash"],
            "tx_url": tx_url(base, r["tx_hash"]),
            "block_number": r["block_number"],
            "plan_hash": r["plan_hash"],
            "confirmed": r["status"] == CONFIRMED,
        }
        for r in rows[:RECENT_PAYMENTS]
    ]


def _awaiting(
    src: Sources, current: dict[Any, dict[str, Any]], now: datetime, warnings: list[str]
) -> list[dict[str, Any]]:
    """The newest plan, if it is young, unapproved and unpaid (openpool.payouts.awaiting)."""
    plan = awaiting_plan(src.state, current.values(), now, src.approval_window, warnings)
    return [plan] if plan else []


def _answers(src: Sources) -> list[dict[str, Any]]:
    """The :data:`RECENT_ANSWERS` newest recorded answers: decision, who, when, via. Read
    by :func:`~openpool.payouts.approvals.recorded`, as ``execute`` reads them: a damaged
    record shows as the veto it counts as."""
    infos = sorted(src.state.list("approvals/"), key=lambda i: i.last_modified, reverse=True)
    out = []
    for info in infos[:RECENT_ANSWERS]:
        plan_hash = info.key.removeprefix("approvals/").removesuffix(".json")
        doc = recorded(src.state, plan_hash) or {}
        try:
            when = datetime.fromisoformat(str(doc["decided_at"]))
        except (KeyError, ValueError):
            when = info.last_modified  # no readable time: when the record was written
        out.append(
            {
                "plan_hash": plan_hash,
                "decision": str(doc.get("decision", "?")),
                "approver": str(doc.get("approver", "?")),
                "decided_at": when,
                "via": str(doc.get("via", "")),
            }
        )
    return sorted(out, key=lambda a: a["decided_at"], reverse=True)


def _ranks(
    metrics: ObjectStore, part: Partition, warnings: list[str]
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], str | None]:
    """All-time ranks from the partition's published ``worker_performance.json``."""
    try:
        doc = json.loads(metrics.get(export_keys(part)[1]))
    except ObjectNotFound:
        return [], {}, None
    except ValueError as exc:
        warnings.append(f"{part}: worker_performance.json is not valid JSON ({exc})")
        return [], {}, None
    # Ranked workers best first, then the unranked (too few timed jobs: rank null), which
    # the page lists as such under each chart rather than leaving them out unseen.
    tc = [r for r in doc.get("transcode_performance", []) if r.get("window") == "all"]
    tc.sort(key=lambda r: (r.get("rank") is None, r.get("rank") or 0, r["eth_address"]))
    ai = {k: list(v) for k, v in doc.get("ai_model_pipeline_rankings", {}).items()}
    for r in doc.get("ai_performance", []):
        if r.get("window") == "all" and r.get("rank") is None:
            ai.setdefault(f"{r['pipeline']}|{r['model_id']}", []).append(
                {"eth_address": r["eth_address"], "rank": None, "timed_jobs": r["timed_jobs"]}
            )
    return tc, dict(sorted(ai.items())), doc.get("as_of")
