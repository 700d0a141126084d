"""The ingest DAG's task path without a scheduler, for the crash campaign.

Runs DAG runs one after another, each ``parse → dedup → accrue → commit → archive`` with
the same step functions the DAG tasks call, until the partition has no new file (what the
sensor checks). Prints one JSON line when a step starts and one with its result (the
value the task would push to XCom), so the campaign knows which task a SIGKILL hit and
can retry that task, as Airflow does, with ``--resume-run``/``--resume-step``.

Usage: python -m tests.chaos.steps_child EVENTS STATE ARCHIVE NODE_TYPE REGION MAX_FILES
       PREFIX [RESUME_RUN RESUME_STEP]
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from openpool.ingest import steps
from openpool.ingest.discovery import list_partition
from openpool.partitions import Partition
from openpool.storage import open_store

STEPS = ("parse", "dedup", "accrue", "commit", "archive")


def _quiet(msg: dict[str, Any]) -> None:
    pass


def _print(msg: dict[str, Any]) -> None:
    print(json.dumps(msg), flush=True)


def run_dag(
    env: steps.StepEnv,
    prefix: str,
    resume_run: int = 0,
    resume_step: str = "parse",
    emit: Callable[[dict[str, Any]], None] = _quiet,
) -> int:
    """Run DAG runs until nothing is new; returns how many runs executed."""
    run = resume_run
    first = STEPS.index(resume_step)
    while True:
        if first == 0 and not steps.has_new_files(env, list_partition(env.events, env.partition)):
            emit({"run": run, "phase": "finished"})
            return run - resume_run
        key = f"{prefix}-run{run}"
        for step in STEPS[first:]:
            emit({"run": run, "step": step, "phase": "start"})
            result = getattr(steps, step)(env, key)
            emit({"run": run, "step": step, "phase": "done", "xcom": result})
        run, first = run + 1, 0


def main(argv: list[str]) -> None:
    events, state, archive, node_type, region, max_files, prefix = argv[:7]
    resume_run, resume_step = (int(argv[7]), argv[8]) if len(argv) > 8 else (0, "parse")
    env = steps.StepEnv(
        Partition(node_type, region),
        open_store(events),
        open_store(state),
        open_store(archive),
        Fraction(1, 4),
        max_files=int(max_files),
    )
    run_dag(env, prefix, resume_run, resume_step, emit=_print)


if __name__ == "__main__":
    main(sys.argv[1:])
