"""What every ``openpool`` sub-command shares: its arguments and how it prints rows."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from openpool.config import Settings
from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import open_store

Handler = Callable[[argparse.Namespace, Settings], int]


def partition_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--node-type", required=required, choices=("ai", "transcode"))
    p.add_argument("--region", required=required)


def format_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json"), default="table")


def partition(args: argparse.Namespace) -> Partition:
    return Partition(args.node_type, args.region)


def version_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--version", type=int, default=None, help="read this snapshot version (default latest)"
    )


def snapshot(settings: Settings, part: Partition, version: int | None = None) -> Snapshot | None:
    """``part``'s snapshot at ``version`` (SnapshotNotFound if never committed), else its
    latest (None before the first commit)."""
    snaps = SnapshotStore(open_store(settings.state_uri), part)
    return snaps.latest() if version is None else snaps.at(version)


def when(text: str) -> datetime:
    """An ISO 8601 time argument; naive means UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def emit(rows: list[dict[str, Any]], fmt: str) -> None:
    """Print rows as a JSON array or an aligned table, every value exactly as given.

    tabulate would parse numeric strings as floats (``0.000122139`` for the ETH string
    ``0.000122138597753041``): money is shown as written, never re-rendered."""
    if fmt == "json":
        print(json.dumps(rows, default=str))
        return
    from tabulate import tabulate

    print(tabulate(rows, headers="keys", disable_numparse=True) if rows else "(none)")
