"""Keep pyarrow from importing pandas in processes that never use it.

``pa.array(x)`` asks, the first time it is given anything but a numpy array, whether
pandas is installed, by importing it: ~0.3 s, paid by every ingest task's fresh process
(each builds Arrow arrays from Python lists) though the ingest never hands pandas objects
to Arrow. :func:`skip_pandas_probe` answers that first question with "no" when pandas is
not loaded yet. pyarrow still imports pandas when it is really asked for (``to_pandas``,
``Table.from_pandas``: they re-try the import), so notebooks and ``openpool.frames`` are
unaffected; tests/test_task_imports.py checks that ingest tasks no longer load it.
"""

from __future__ import annotations

import sys

import pyarrow as pa


def skip_pandas_probe() -> None:
    """Make pyarrow's first pandas probe find no pandas, unless pandas is already loaded."""
    if "pandas" in sys.modules:
        return
    sys.modules["pandas"] = None  # type: ignore[assignment]  # import pandas now fails
    try:
        # Two probes ask: the Cython one (pa.array's argument check, which may see the None
        # itself and raise, but remembers that it tried) and Arrow C++'s own (null checks
        # while inferring a Python sequence's type). Each asks once per process.
        for probe in (lambda: pa.array([0], pa.int8()), lambda: pa.array([0])):
            try:
                probe()
            except (ImportError, AttributeError):
                pass
    finally:
        del sys.modules["pandas"]
