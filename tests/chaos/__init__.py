"""The fault, bad-input and security campaign behind ``make chaos`` (issue 7).

Each module runs one part and returns a :class:`~tests.chaos.common.Result`; ``run.py``
runs them all at a size (``full`` for ``make chaos``, ``quick`` inside ``make test``),
prints the table and writes ``reports/chaos.json``.
"""
