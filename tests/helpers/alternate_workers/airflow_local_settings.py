"""A cluster policy for the CeleryExecutor test: tasks alternate between the two workers.

Put on the scheduler's ``PYTHONPATH``, Airflow loads it as ``airflow_local_settings``.
Each task instance of an ``openpool_`` DAG goes to the queue of ``worker-1`` or
``worker-2`` by the parity of its depth in the DAG (the longest path from a root), so
every task runs on the other worker than the task it follows: a task that relied on a
file its upstream left on local disk would fail. The devstack's workers each take their
own queue besides ``default`` (``openpool.devstack.stack.CELERY_WORKERS``).
"""

from __future__ import annotations

from typing import Any

WORKERS = ("worker-1", "worker-2")


def _depth(dag: Any, task_id: str, seen: dict[str, int]) -> int:
    if task_id not in seen:
        ups = dag.get_task(task_id).upstream_task_ids
        seen[task_id] = 1 + max((_depth(dag, u, seen) for u in ups), default=-1)
    return seen[task_id]


def task_instance_mutation_hook(task_instance: Any, dag_run: Any = None) -> None:
    if dag_run is None or not task_instance.dag_id.startswith("openpool_"):
        return
    depth = _depth(dag_run.get_dag(), task_instance.task_id, {})
    task_instance.queue = WORKERS[depth % 2]
