"""``openpool`` run as ``python -m``, for the crash trials that kill the CLI handler.

The same entry point as the console script (``openpool.cli.main.main``), which imports
only the group of the command it runs (``ingest`` never loads web3 or DuckDB). Every
fourth CLI crash trial runs the installed console script instead.

Usage: python -m tests.chaos.ingest_cli ingest --node-type T --region R [--max-files N]
"""

from __future__ import annotations

import sys

from openpool.cli.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
