"""The ``openpool`` command line: everything the DAGs do, runnable without a scheduler.

Each sub-command reads its configuration from the environment (see ``config.py``),
prints machine-readable JSON or a table, and exits non-zero with a one-line reason on
stderr when it cannot do its job.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from openpool.cli.output import Handler, partition
from openpool.config import load_settings
from openpool.errors import OpenPoolError

# Sub-command -> the module of its group. Only the group of the command being run is
# imported (``openpool ingest`` never loads web3); help and unknown commands load all.
GROUPS: dict[str, str] = {
    "snapshots": "openpool.cli.state",
    "table": "openpool.cli.state",
    "gc": "openpool.cli.state",
    "ingest": "openpool.cli.ingest",
    "balances": "openpool.cli.ingest",
    "duplicates": "openpool.cli.ingest",
    "status": "openpool.cli.ingest",
    "performance": "openpool.cli.analytics",
    "summary": "openpool.cli.analytics",
    "analytics": "openpool.cli.analytics",
    "athena-ddl": "openpool.cli.analytics",
    "statement": "openpool.cli.statement",
    "generate": "openpool.cli.traffic",
    "payouts": "openpool.cli.payouts",
}


def _command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every group, or (given ``argv``) with only the group it runs."""
    parser = argparse.ArgumentParser(prog="openpool", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    command = _command(argv) if argv is not None else None
    wanted = {GROUPS[command]} if command in GROUPS else set(GROUPS.values())
    for module in dict.fromkeys(GROUPS.values()):
        if module in wanted:
            importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if getattr(args, "node_type", None):
        try:
            partition(args)
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
