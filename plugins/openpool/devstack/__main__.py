"""``python -m openpool.devstack up|down|status`` (see ``commands``)."""

import sys

from openpool.devstack.commands import main

sys.exit(main())
