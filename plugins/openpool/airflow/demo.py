"""The Airflow half of ``make demo``: the real DAGs of ``dags/`` run by ``dag.test()``.

The demo's environment (``openpool.devstack.airflow_home``) must be in ``os.environ``
before this module is imported: Airflow reads its configuration on first import. The
api-server's app (``create_app``) is served over HTTP on a loopback port in a thread of the
same process and on the same SQLite metadata DB, so the demo's approver answers the
payouts DAG's Human-in-the-loop request through the public REST API, exactly as a person
in the UI would.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG

from openpool.airflow.rest import AirflowAPI


def migrate() -> None:
    """Create (or upgrade) the metadata DB of this process's AIRFLOW_HOME."""
    from airflow.utils.db import initdb

    initdb()


def load_dags(folder: Path) -> dict[str, DAG]:
    """Every DAG of ``folder``, parsed the way the DAG processor parses it."""
    bag = DagBag(dag_folder=str(folder))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return dict(bag.dags)


@dataclass
class Run:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str] = field(default_factory=dict)

    @property
    def skipped(self) -> bool:
        return set(self.tasks.values()) == {"skipped"}


def run_dag(dag: DAG, conf: dict[str, Any] | None = None) -> Run:
    """One complete run of ``dag`` in this process (``dag.test()``, the metadata DB kept)."""
    dr = dag.test(run_conf=conf)
    tasks = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    return Run(dag.dag_id, dr.run_id, str(dr.state), tasks)


LOOPBACK = "127.0.0.1"


@contextlib.contextmanager
def api_server(port: int, ready_within: float = 60.0) -> Iterator[str]:
    """The api-server's public API (``create_app``) on loopback ``port``; yields its URL
    once uvicorn says it is serving (the caller picks the port: devstack.net.free_port)."""
    import uvicorn
    from airflow.api_fastapi.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(apps="core"),
            host=LOOPBACK,
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="demo-api-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + ready_within
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the api-server did not start on {LOOPBACK}:{port}")
            time.sleep(0.05)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Approver(threading.Thread):
    """Waits for ``dag_id``'s pending HITL request and answers ``option`` via the REST API.

    ``announce(detail)`` runs just before the answer is sent (the demo logs its approval
    there). On any error, or if no request appears within ``timeout``, the parked task is
    failed in the metadata DB so that ``dag.test()`` cannot wait for its 12 h timeout.
    """

    def __init__(
        self,
        api: Callable[[], AirflowAPI],
        dag_id: str,
        option: str,
        announce: Callable[[dict[str, Any]], None],
        timeout: float = 180.0,
    ) -> None:
        super().__init__(daemon=True, name=f"approver-{dag_id}")
        self.api, self.dag_id, self.option = api, dag_id, option
        self.announce, self.timeout = announce, timeout
        self.detail: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            api = self.api()
            deadline = time.monotonic() + self.timeout
            while not (pending := api.pending_hitl(self.dag_id)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no approval request from {self.dag_id}")
                time.sleep(0.5)
            self.detail = pending[0]
            self.announce(self.detail)
            self.answer(api, self.detail)
        except BaseException as exc:
            self.error = exc
            fail_awaiting(self.dag_id)

    def answer(self, api: AirflowAPI, detail: dict[str, Any]) -> None:
        """Send ``option`` for the request ``detail`` (the REST call the UI makes); an
        Approve carries the plan hash's first characters, typed as a person types them."""
        ti = detail["task_instance"]
        api.respond(
            self.dag_id, ti["dag_run_id"], ti["task_id"], self.option, self.typed(api, detail)
        )

    def typed(self, api: AirflowAPI, detail: dict[str, Any]) -> dict[str, Any]:
        """The form fields of the answer: for Approve, the confirmation read off the plan
        the request shows (the ``plan`` task's result in the same run)."""
        from openpool.airflow.approval import CONFIRM, CONFIRM_CHARS

        if self.option != "Approve" or CONFIRM not in (detail.get("params") or {}):
            return {}
        ti = detail["task_instance"]
        plan_hash = api.xcom(self.dag_id, ti["dag_run_id"], "plan")["plan_hash"]
        return {CONFIRM: plan_hash[:CONFIRM_CHARS]}

    def result(self) -> dict[str, Any]:
        self.join(timeout=30)
        if self.error is not None:
            raise RuntimeError(f"answering the approval request failed: {self.error!r}")
        if self.detail is None:
            raise RuntimeError("the approval request was never answered")
        return self.detail


def fail_awaiting(dag_id: str) -> None:
    """Fail every task of ``dag_id`` parked in AWAITING_INPUT (the demo's way out)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
            )
            .values(state=TaskInstanceState.FAILED)
        )
