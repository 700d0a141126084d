"""The ``openpool`` console script: one module per command group, sharing :mod:`.output`.

Command modules only parse arguments and print; the work is done by library functions
that the DAG tasks call too (e.g. :mod:`openpool.payouts.service`), never by CLI code.
"""

from openpool.cli.main import main

__all__ = ["main"]
