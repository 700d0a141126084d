"""The ``openpool`` command line: everything the DAGs do, runnable without a scheduler.

Each sub-command reads its configuration from the environment (see ``config.py``),
prints machine-readable JSON or a table, and exits non-zero with a one-line reason on
stderr when it cannot do its job.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from openpool.config import Settings, load_settings
from openpool.errors import OpenPoolError
from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore, collect, utc_now
from openpool.storage import open_store

Handler = Callable[[argparse.Namespace, Settings], int]


def _partition_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--node-type", required=required, choices=("ai", "transcode"))
    p.add_argument("--region", required=required)


def _format_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json"), default="table")


def _partition(args: argparse.Namespace) -> Partition:
    return Partition(args.node_type, args.region)


def emit(rows: list[dict[str, Any]], fmt: str) -> None:
    """Print rows as a JSON array or an aligned table, every value exactly as given.

    tabulate would parse numeric strings as floats (``0.000122139`` for the ETH string
    ``0.000122138597753041``): money is shown as written, never re-rendered."""
    if fmt == "json":
        print(json.dumps(rows, default=str))
        return
    from tabulate import tabulate

    print(tabulate(rows, headers="keys", disable_numparse=True) if rows else "(none)")


def cmd_snapshots(args: argparse.Namespace, settings: Settings) -> int:
    snaps = SnapshotStore(open_store(settings.state_uri), _partition(args))
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


def cmd_gc(args: argparse.Namespace, settings: Settings) -> int:
    parts = [_partition(args)] if args.node_type else list(settings.partitions)
    grace = timedelta(
        seconds=settings.gc_grace_seconds if args.grace_hours is None else args.grace_hours * 3600
    )
    store = open_store(settings.state_uri)
    rows = []
    for part in parts:
        report = collect(
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openpool", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("snapshots", help="list a partition's snapshot versions")
    _partition_args(p)
    _format_arg(p)
    p.add_argument("--limit", type=int, default=50, help="newest N versions (default 50)")
    p.set_defaults(handler=cmd_snapshots)

    p = sub.add_parser("gc", help="delete data files no retained version needs")
    _partition_args(p, required=False)
    _format_arg(p)
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
    from openpool.analytics import athena
    from openpool.analytics import commands as analytics_commands
    from openpool.ingest import commands as ingest_commands
    from openpool.payouts import commands as payout_commands
    from openpool.traffic import command as generator

    ingest_commands.register(sub, _partition_args, _format_arg)
    analytics_commands.register(sub, _partition_args, _format_arg)
    athena.register(sub)
    generator.register(sub)
    payout_commands.register(sub, _format_arg)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if getattr(args, "node_type", None):
        try:
            _partition(args)
        except ValueError as exc:
            print(f"openpool: {exc}", file=sys.stderr)
            return 2
    try:
        settings = load_settings()
        handler: Handler = args.handler
        return handler(args, settings)
    except OpenPoolError as exc:
        print(f"openpool {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
