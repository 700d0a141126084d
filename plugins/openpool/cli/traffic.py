"""``openpool generate``: synthetic event files for demos, benchmarks and ``make up``.

A sub-command of the ``openpool`` CLI (``openpool.cli`` calls :func:`register`) that
writes generated traffic to the events bucket, so an operator can feed the sensors by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from openpool.partitions import Partition
from openpool.traffic.files import count_events, generate, write
from openpool.traffic.mess import Mess


def _iso(text: str) -> datetime:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1], got {text}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``generate`` sub-command (synthetic event files for demos and benchmarks)."""
    p = subparsers.add_parser(
        "generate",
        help="write synthetic orchestrator event files",
        description="Write realistic event files to OPENPOOL_EVENTS_URI (or --out).",
    )
    p.add_argument("--node-type", choices=("ai", "transcode"))
    p.add_argument("--region", default="us-central", help="default us-central")
    p.add_argument(
        "--all-partitions", action="store_true", help="every active partition (OPENPOOL_PARTITIONS)"
    )
    p.add_argument("--start", type=_iso, help="ISO time (UTC); default: --hours before this hour")
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--workers", type=int, default=10)
    p.add_argument("--rate", type=float, default=5.0, help="events per second (default 5)")
    p.add_argument("--events-per-file", type=int, default=10_000)
    p.add_argument("--flush-seconds", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="target URI or path (default: OPENPOOL_EVENTS_URI)")
    m = p.add_argument_group("mess (all off by default)")
    m.add_argument("--duplicates", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--late", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--reuploads", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--truncated", type=int, default=0, metavar="N")
    m.add_argument("--invalid", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--split-ai", type=_fraction, default=0.0, metavar="FRACTION")
    m.add_argument("--resets", type=int, default=0, metavar="N")
    m.add_argument("--orphan-ai", type=_fraction, default=0.0, metavar="FRACTION")
    p.set_defaults(handler=cmd_generate)


def cmd_generate(args: argparse.Namespace, settings: Any = None) -> int:
    """Generate, upload, and print ``{"files", "events", "bytes"}`` as one JSON line."""
    from openpool.config import load_settings, to_uri
    from openpool.storage import open_store

    settings = settings if settings is not None else load_settings()
    if args.all_partitions:
        parts = list(settings.partitions)
    elif args.node_type:
        parts = [Partition(args.node_type, args.region)]
    else:
        sys.stderr.write("openpool generate: give --node-type/--region or --all-partitions\n")
        return 2
    duration = timedelta(hours=args.hours)
    start = args.start
    if start is None:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = hour - duration
    mess = Mess(
        duplicate_events=args.duplicates,
        reupload_files=args.reuploads,
        late_files=args.late,
        truncated_files=args.truncated,
        invalid_events=args.invalid,
        split_ai_jobs=args.split_ai,
        resets=args.resets,
        orphan_ai_jobs=args.orphan_ai,
    )
    store = open_store(to_uri(args.out) if args.out else settings.events_uri)
    n_files = n_events = n_bytes = 0
    for part in parts:
        files = generate(
            part,
            start,
            duration,
            workers=args.workers,
            events_per_second=args.rate,
            events_per_file=args.events_per_file,
            flush_seconds=args.flush_seconds,
            seed=args.seed,
            mess=mess,
        )
        n_files += write(files, store)
        n_events += sum(count_events(f.body) for f in files)
        n_bytes += sum(len(f.body) for f in files)
    sys.stdout.write(json.dumps({"files": n_files, "events": n_events, "bytes": n_bytes}) + "\n")
    return 0
