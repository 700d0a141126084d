"""CLI sub-commands of ingest: ``ingest``, ``balances``, ``status`` (names are a contract)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from typing import Any

from openpool.config import Settings
from openpool.ingest.accrue import BALANCES
from openpool.ingest.run import IngestReport, ingest, read_table
from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import open_store


def _partition(args: argparse.Namespace) -> Partition:
    return Partition(args.node_type, args.region)


def _latest(settings: Settings, partition: Partition) -> Snapshot | None:
    return SnapshotStore(open_store(settings.state_uri), partition).latest()


def balance_rows(snap: Snapshot | None) -> list[dict[str, Any]]:
    """Per-worker money as exact ints: fees, commission, earnings, paid, payable, jobs.

    Paid and in flight are every wallet's ledger in the snapshot's store (payouts.payable).
    """
    from openpool.money import payable
    from openpool.payouts.payable import settled_in

    table = read_table(snap, "balances", BALANCES)
    settled = settled_in(snap.snapshots.store, str(snap.snapshots.partition)) if snap else {}
    rows = []
    for r in table.to_pylist():
        earnings = int(r["worker_earnings_wei"])
        s = settled.get(r["eth_address"])
        paid = s.paid_wei if s else 0
        in_flight = s.in_flight_wei if s else 0
        rows.append(
            {
                "eth_address": r["eth_address"],
                "total_fees_wei": int(r["total_fees_wei"]),
                "pool_commission_wei": int(r["pool_commission_wei"]),
                "worker_earnings_wei": earnings,
                "paid_wei": paid,
                "in_flight_wei": in_flight,
                "payable_wei": payable(earnings, s),
                "job_count": int(r["job_count"]),
                "first_job_at": r["first_job_at"].isoformat() if r["first_job_at"] else None,
                "last_job_at": r["last_job_at"].isoformat() if r["last_job_at"] else None,
            }
        )
    return rows


def status_row(snap: Snapshot | None) -> dict[str, Any]:
    props = snap.manifest.properties if snap else {}
    return {
        "snapshot_version": snap.version if snap else 0,
        "created_at": snap.manifest.created_at if snap else None,
        "files_ingested": int(props.get("files_ingested", 0)),
        "files_quarantined": int(props.get("files_quarantined", 0)),
        "events_read": int(props.get("events_read", 0)),
        "events_accepted": int(props.get("events_accepted", 0)),
        "events_duplicate": int(props.get("events_duplicate", 0)),
        "events_rejected": int(props.get("events_rejected", 0)),
        "unattributed_fees_wei": int(props.get("unattributed_fees_wei", "0")),
        "pending_ai_jobs": int(props.get("pending_ai_jobs", 0)),
        "watermark": props.get("watermark"),
        "workers": snap.manifest.rows("balances") if snap else 0,
    }


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    part = _partition(args)
    source = settings.archive_uri if args.replay else settings.events_uri
    started = time.monotonic()
    tty = sys.stderr.isatty()

    def progress(r: IngestReport) -> None:
        if tty:
            el = max(time.monotonic() - started, 1e-9)
            c = r.counts
            sys.stderr.write(
                f"\r{part}: {c.files_ingested + c.files_quarantined} files, {c.events_read} events"
                f" ({c.events_read / el:,.0f}/s), v{r.snapshot_version}   "
            )

    report = ingest(
        part,
        open_store(source),
        open_store(settings.state_uri),
        settings.commission_rate,
        ttl=timedelta(hours=args.ai_ttl_hours),
        max_files=args.max_files,
        start=args.start,
        end=args.end,
        progress=progress,
        skew=timedelta(seconds=settings.clock_skew_seconds),
    )
    if tty and report.batches:
        sys.stderr.write("\n")
    print(json.dumps(report.summary()))
    return 0


def cmd_balances(args: argparse.Namespace, settings: Settings) -> int:
    from openpool.cli import emit

    emit(balance_rows(_latest(settings, _partition(args))), args.format)
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    row = status_row(_latest(settings, _partition(args)))
    if args.format == "json":
        print(json.dumps(row))
    else:
        from openpool.cli import emit

        emit([{"field": k, "value": v} for k, v in row.items()], "table")
    return 0


def duplicate_rows(report: Any) -> list[dict[str, Any]]:
    """One row per place an unresolved repeated event ID is held (first: the one kept)."""
    rows = []
    for d in report.unresolved:
        for n, o in enumerate(d.occurrences):
            rows.append(
                {
                    "event_id": d.event_id,
                    "occurrence": n + 1,
                    "counts": n == 0,
                    "partition": o.partition,
                    "hour": o.hour,
                    "event_type": o.event_type,
                    "event_time": o.event_time,
                    "worker": o.worker,
                    "fees_wei": o.fees_wei,
                    "source_key": o.source_key,
                    "source_index": o.source_index,
                    "ingested_in_version": o.version,
                }
            )
    return rows


def cmd_duplicates(args: argparse.Namespace, settings: Settings) -> int:
    """List (and with --resolve, set aside) event IDs held twice anywhere in history."""
    from openpool.cli import emit
    from openpool.ingest.history import find_duplicates, resolve_duplicates

    state = open_store(settings.state_uri)
    parts = list(settings.partitions)
    report = find_duplicates(state, parts)
    if args.resolve and report.unresolved:
        done = resolve_duplicates(state, parts, report, settings.commission_rate)
        sys.stderr.write(
            f"set aside {sum(done.values())} later occurrence(s): {json.dumps(done)}\n"
        )
        report = find_duplicates(state, parts)
    sys.stderr.write(
        f"{report.ids_checked} event IDs checked over {len(report.versions)} partition(s); "
        f"{len(report.unresolved)} unresolved repeat(s)\n"
    )
    emit(duplicate_rows(report), args.format)
    return 1 if report.unresolved else 0


def register(sub: Any, partition_args: Any, format_arg: Any) -> None:
    from datetime import datetime

    def when(text: str) -> datetime:
        from datetime import UTC

        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

    p = sub.add_parser("ingest", help="ingest every event file not yet ingested")
    partition_args(p)
    p.add_argument("--max-files", type=int, default=250, help="files per batch/commit")
    p.add_argument("--replay", action="store_true", help="read OPENPOOL_ARCHIVE_URI instead")
    p.add_argument("--from", dest="start", type=when, default=None, help="key time >= (ISO)")
    p.add_argument("--to", dest="end", type=when, default=None, help="key time < (ISO)")
    p.add_argument("--ai-ttl-hours", type=float, default=24.0)
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("balances", help="per-worker balances of a partition")
    partition_args(p)
    format_arg(p)
    p.set_defaults(handler=cmd_balances)

    p = sub.add_parser(
        "duplicates",
        help="event IDs held twice anywhere in history (exit 1 while any is unresolved)",
    )
    format_arg(p)
    p.add_argument(
        "--resolve",
        action="store_true",
        help="keep each ID's first committed occurrence, set the later ones aside as rejected",
    )
    p.set_defaults(handler=cmd_duplicates)

    p = sub.add_parser("status", help="a partition's ingest status")
    partition_args(p)
    format_arg(p)
    p.set_defaults(handler=cmd_status)
