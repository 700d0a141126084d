"""The ``openpool ingest`` sub-command without the rest of the CLI, for cheap crash trials.

Builds the same argument parser entry (``openpool.cli.ingest.register``) and runs the
same handler ``cmd_ingest`` with the same error handling as ``openpool.cli.main``, but
skips importing every other sub-command (web3, DuckDB, ...), which is most of the console
script's start-up time. A third of the CLI crash trials use the real console script.

Usage: python -m tests.chaos.ingest_cli ingest --node-type T --region R [--max-files N]
"""

from __future__ import annotations

import argparse
import logging
import sys

from openpool.cli import ingest as commands
from openpool.config import load_settings
from openpool.errors import OpenPoolError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="openpool")
    parser.add_argument("-v", "--verbose", action="store_true")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args, load_settings()))
    except OpenPoolError as exc:
        print(f"openpool {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
