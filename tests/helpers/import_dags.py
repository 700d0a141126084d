"""Import every DAG file the way the DAG processor does, with the network and config cut off.

Prints one JSON line: import errors, warnings, DAG ids with their task ids, whether any
payout module was loaded, and the wall time. Run as a subprocess by tests/test_dags.py.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import warnings


def _forbidden(*_a: object, **_k: object) -> None:
    raise RuntimeError("DAG parsing must not touch the network, a connection or a Variable")


def main() -> None:
    socket.socket.connect = _forbidden  # type: ignore[method-assign]
    socket.create_connection = _forbidden  # type: ignore[assignment]
    from airflow.sdk import BaseHook, Variable

    BaseHook.get_connection = classmethod(_forbidden)  # type: ignore[method-assign,assignment]
    Variable.get = staticmethod(_forbidden)  # type: ignore[method-assign,assignment]
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=sys.argv[1])
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
                "warnings": [
                    f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
                    for w in caught
                    if "openpool" in w.filename or "/dags/" in w.filename
                ],
                "dags": {d: sorted(bag.dags[d].task_ids) for d in sorted(bag.dags)},
                "payout_modules": sorted(m for m in sys.modules if "payout" in m),
                "seconds": round(elapsed, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
