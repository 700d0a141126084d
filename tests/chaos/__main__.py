"""``python -m tests.chaos``: see :mod:`tests.chaos.run`."""

import sys

from tests.chaos.run import main

sys.exit(main())
