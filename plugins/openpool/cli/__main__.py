"""``python -m openpool.cli``: the console script without its entry point."""

import sys

from openpool.cli.main import main

sys.exit(main())
