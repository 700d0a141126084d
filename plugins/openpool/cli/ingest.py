"""``openpool ingest``, ``balances``, ``duplicates``, ``status`` (the names are a contract)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from typing import Any

from openpool.cli.output import (
    emit,
    format_arg,
    partition,
    partition_args,
    snapshot,
    version_arg,
    when,
)
from openpool.config import Settings
from openpool.ingest.parallel import usable_cpus
from openpool.ingest.run import IngestReport, ingest
from openpool.ingest.service import balance_rows, status_row
from openpool.ingest.window import Window
from openpool.storage import open_store


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    part = partition(args)
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
        window=Window.of(settings),
        sweep=args.sweep,
        workers=parse_workers(args),
        replay=args.replay,
    )
    if tty and report.batches:
        sys.stderr.write("\n")
    if report.sweep is not None:
        s = report.sweep
        sys.stderr.write(
            f"{part}: sweep listed {s.listed} files; {s.missed} never ingested were outside "
            "the windowed listing\n"
        )
    print(json.dumps(report.summary()))
    return 0


def parse_workers(args: argparse.Namespace) -> int:
    """``--workers``, else every usable CPU for a replay or backfill and 1 for an ingest."""
    if args.workers is not None:
        return int(args.workers)
    backfill = args.replay or args.start is not None or args.end is not None
    return usable_cpus() if backfill else 1


def positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise ValueError(f"must be at least 1, got {n}")
    return n


def cmd_balances(args: argparse.Namespace, settings: Settings) -> int:
    emit(balance_rows(snapshot(settings, partition(args), args.version)), args.format)
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    row = status_row(snapshot(settings, partition(args)))
    if args.format == "json":
        print(json.dumps(row))
    else:
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
    from openpool.duplicates import find_duplicates
    from openpool.ingest.resolve import resolve_duplicates

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


def register(sub: Any) -> None:
    p = sub.add_parser("ingest", help="ingest every event file not yet ingested")
    partition_args(p)
    p.add_argument("--max-files", type=int, default=250, help="files per batch/commit")
    p.add_argument("--replay", action="store_true", help="read OPENPOOL_ARCHIVE_URI instead")
    p.add_argument("--from", dest="start", type=when, default=None, help="key time >= (ISO)")
    p.add_argument("--to", dest="end", type=when, default=None, help="key time < (ISO)")
    p.add_argument("--ai-ttl-hours", type=float, default=24.0)
    p.add_argument(
        "--sweep",
        action="store_true",
        help="list the whole partition, not only the window after the watermark",
    )
    p.add_argument(
        "--workers",
        type=positive,
        default=None,
        help="processes reading batches (commits stay in order, one per batch; 1 = serial); "
        "default: every usable CPU with --replay/--from/--to, else 1",
    )
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("balances", help="per-worker balances of a partition")
    partition_args(p)
    format_arg(p)
    version_arg(p)
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
