"""``openpool snapshots``, ``table`` and ``gc``: a partition's versions, any table of one,
and the collector."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from openpool.cli.output import emit, format_arg, partition, partition_args, snapshot, version_arg
from openpool.config import Settings
from openpool.snapshots import SnapshotStore, collect_garbage, utc_now
from openpool.storage import open_store
from openpool.tables import STATE, read_table


def cmd_snapshots(args: argparse.Namespace, settings: Settings) -> int:
    snaps = SnapshotStore(open_store(settings.state_uri), partition(args))
    rows = [
        {
            "version": m.version,
            "created_at": m.created_at,
            "run_id": m.run_id,
            "rows": m.row_counts()
            if args.format == "json"
            else ", ".join(f"{k}={v}" for k, v in m.row_counts().items()),
        }
        for m in snaps.history(limit=args.limit)
    ]
    emit(rows, args.format)
    return 0


def _plain(value: Any) -> Any:
    """Wei as an exact int, a time as ISO 8601, the rest as stored."""
    if isinstance(value, Decimal):
        return int(value)
    return value.isoformat() if isinstance(value, datetime) else value


def cmd_table(args: argparse.Namespace, settings: Settings) -> int:
    table = read_table(snapshot(settings, partition(args), args.version), args.name)
    emit([{k: _plain(v) for k, v in r.items()} for r in table.to_pylist()], args.format)
    return 0


def cmd_gc(args: argparse.Namespace, settings: Settings) -> int:
    parts = [partition(args)] if args.node_type else list(settings.partitions)
    grace = timedelta(
        seconds=settings.gc_grace_seconds if args.grace_hours is None else args.grace_hours * 3600
    )
    store = open_store(settings.state_uri)
    rows = []
    for part in parts:
        report = collect_garbage(
            SnapshotStore(store, part),
            now=utc_now(),
            grace=grace,
            keep_versions=args.keep_versions,
            dry_run=args.dry_run,
        )
        rows.append(
            {
                "partition": report.partition,
                "latest_version": report.latest_version,
                "retained_versions": len(report.retained_versions),
                "deleted_files": len(report.deleted),
                "young_orphans_kept": report.kept_young_orphans,
                "dry_run": report.dry_run,
            }
        )
    emit(rows, args.format)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("snapshots", help="list a partition's snapshot versions")
    partition_args(p)
    format_arg(p)
    p.add_argument("--limit", type=int, default=50, help="newest N versions (default 50)")
    p.set_defaults(handler=cmd_snapshots)

    p = sub.add_parser("table", help="every row of one state table of a partition's snapshot")
    p.add_argument("name", choices=sorted(STATE), help="the table")
    partition_args(p)
    format_arg(p)
    version_arg(p)
    p.set_defaults(handler=cmd_table)

    p = sub.add_parser("gc", help="delete data files no retained version needs")
    partition_args(p, required=False)
    format_arg(p)
    p.add_argument(
        "--grace-hours", type=float, default=None, help="override OPENPOOL_GC_GRACE_SECONDS"
    )
    p.add_argument(
        "--keep-versions",
        type=int,
        default=1,
        help="always retain the newest N versions (default 1)",
    )
    p.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    p.set_defaults(handler=cmd_gc)
