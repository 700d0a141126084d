"""CLI: ``openpool performance``, ``openpool summary`` and ``openpool analytics``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from openpool.analytics.athena import ddl, grid_regions, upgrade
from openpool.analytics.performance import WINDOWS, performance
from openpool.analytics.pool import build_pool_summary
from openpool.analytics.refresh import refresh
from openpool.analytics.summary import Summary, worker_summary
from openpool.cli.output import emit, format_arg, partition_args, snapshot, version_arg
from openpool.config import Settings
from openpool.errors import AthenaUpgradeRefused
from openpool.money import eth
from openpool.partitions import Partition
from openpool.storage import open_store


def _json_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        out.append({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()})
    return out


def cmd_performance(args: argparse.Namespace, settings: Settings) -> int:
    part = Partition(args.node_type, args.region)
    snap = snapshot(settings, part, args.version)
    if snap is None:
        emit([], args.format)
        return 0
    perf = performance(snap, windows=(args.window,), min_timed_jobs=settings.rank_min_timed_jobs)
    table = perf.ai if part.node_type == "ai" else perf.transcode
    rows = table.to_pylist()
    for r in rows:
        r["fees_wei"] = int(r["fees_wei"]) if r["fees_wei"] is not None else None
        if args.format == "table" and not r["ranked"]:  # a word, never an empty or -1 rank
            r["rank"] = f"unranked (<{settings.rank_min_timed_jobs} timed)"
    emit(rows, args.format)
    return 0


def _summary(args: argparse.Namespace, settings: Settings) -> Summary:
    """Paid and in flight come from every wallet's ledger (no wallet setting needed)."""
    threshold = settings.payment_threshold_wei
    if args.node_type:
        part = Partition(args.node_type, args.region)
        return worker_summary(snapshot(settings, part), part, threshold)
    state = open_store(settings.state_uri)
    summary, _ = build_pool_summary(list(settings.partitions), state, threshold)
    return summary


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    s = _summary(args, settings)
    if args.format == "json":
        doc = {
            "partition": str(s.partition) if s.partition else "pool",
            "workers": _json_rows(s.workers),
            "aggregates": s.aggregates,
        }
        print(json.dumps(doc, default=str))
        return 0
    emit(
        [
            {
                "worker": r["eth_address"],
                "earnings_eth": eth(r["worker_earnings_wei"]),
                "paid_eth": eth(r["paid_wei"]),
                "payable_eth": eth(r["payable_wei"]),
                "jobs": r["job_count"],
                "active": r["active"],
                "due": r["payout_due"],
            }
            for r in s.workers
        ],
        "table",
    )
    emit([{"aggregate": k, "value": v} for k, v in s.aggregates.items()], "table")
    return 0


def cmd_athena_ddl(args: argparse.Namespace, settings: Any) -> int:
    if args.upgrade != bool(args.from_file):
        sys.stderr.write("openpool athena-ddl: --upgrade and --from FILE go together\n")
        return 2
    location = args.location or settings.state_uri
    if not location.startswith("s3://"):
        sys.stderr.write(
            f"openpool athena-ddl: warning: Athena reads only s3:// locations, not {location}\n"
        )
    regions = grid_regions(settings.partitions)
    if not args.upgrade:
        statements = list(ddl(location, args.database, regions).values())
    else:
        try:
            deployed = Path(args.from_file).read_text()
        except OSError as exc:
            raise AthenaUpgradeRefused(f"cannot read --from {args.from_file}: {exc}") from None
        statements = upgrade(deployed, location, args.database, regions)
        if not statements:
            sys.stderr.write("openpool athena-ddl: the deployed tables are up to date\n")
            return 0
    sys.stdout.write("\n\n".join(statements) + "\n")
    return 0


def cmd_analytics(args: argparse.Namespace, settings: Settings) -> int:
    part = Partition(args.node_type, args.region)
    state = open_store(settings.state_uri)
    done = refresh(
        part,
        state,
        open_store(settings.metrics_uri),
        settings.payment_threshold_wei,
        min_timed_jobs=settings.rank_min_timed_jobs,
        commission_rate=settings.commission_rate,
    )
    print(json.dumps(done.report()))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("performance", help="exact worker performance of a partition")
    partition_args(p)
    p.add_argument("--window", choices=tuple(WINDOWS), default="all")
    format_arg(p)
    version_arg(p)
    p.set_defaults(handler=cmd_performance)

    p = sub.add_parser("summary", help="worker summary of a partition, or pool-wide")
    partition_args(p, required=False)
    format_arg(p)
    p.set_defaults(handler=cmd_summary)

    p = sub.add_parser("analytics", help="refresh a partition's analytics and JSON exports")
    partition_args(p)
    p.set_defaults(handler=cmd_analytics)

    p = sub.add_parser("athena-ddl", help="print CREATE EXTERNAL TABLE statements for Athena")
    p.add_argument("--database", default="openpool", help="Athena database (default openpool)")
    p.add_argument(
        "--location",
        default=None,
        help="state root as s3://bucket/prefix (default: OPENPOOL_STATE_URI)",
    )
    p.add_argument(
        "--upgrade",
        action="store_true",
        help="print only the statements (CREATE, ALTER TABLE) taking the deployed tables to "
        "these; needs --from",
    )
    p.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="the DDL deployed in Athena (an earlier athena-ddl output, plus the upgrades "
        "applied since)",
    )
    p.set_defaults(handler=cmd_athena_ddl)
