"""Answer Human-in-the-loop requests through Airflow's own public REST API, in-process.

The api-server's FastAPI app (``airflow.api_fastapi.app.create_app``) runs inside the test
process on the same metadata DB as ``dag.test()``, driven by Starlette's ``TestClient``. A
person logs in with SimpleAuthManager (``POST /auth/token``, a user and password from the
configured passwords file) and responds with
``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails`` --
the endpoint behind the UI's Required Actions page, which resumes the parked task.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class AirflowAPI:
    """The public API of an in-process api-server, logged in as one SimpleAuthManager user."""

    def __init__(self, username: str, password: str) -> None:
        from airflow.api_fastapi.app import create_app
        from fastapi.testclient import TestClient

        self.client = TestClient(create_app())
        r = self.client.post("/auth/token", json={"username": username, "password": password})
        assert r.status_code == 201, r.text
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get("/api/v2" + path, params=params, headers=self.headers)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def pending_hitl(self, dag_id: str) -> list[dict[str, Any]]:
        """HITL requests of ``dag_id`` waiting for a response, newest first."""
        doc = self.get(
            f"/dags/{dag_id}/dagRuns/~/hitlDetails",
            response_received=False,
            state="awaiting_input",
            order_by="-created_at",
        )
        return doc["hitl_details"]

    def respond(self, dag_id: str, run_id: str, task_id: str, option: str) -> Any:
        return self.client.patch(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            json={"chosen_options": [option]},
            headers=self.headers,
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        doc = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            deserialize=True,
        )
        return doc["value"]


class Responder(threading.Thread):
    """Waits for the DAG's pending HITL request and answers ``option`` through the API.

    ``before(detail)`` runs between seeing the request and answering it. On any error, or
    if no request shows up in ``timeout`` seconds, the parked task is failed directly in
    the DB so that ``dag.test()`` in the main thread cannot wait forever; ``error`` holds
    what went wrong.
    """

    def __init__(
        self,
        dag_id: str,
        option: str,
        username: str,
        password: str,
        before: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = 120.0,
    ) -> None:
        super().__init__(daemon=True, name=f"hitl-{option}")
        self.dag_id, self.option, self.before, self.timeout = dag_id, option, before, timeout
        self.username, self.password = username, password
        self.detail: dict[str, Any] | None = None
        self.response: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            api = AirflowAPI(self.username, self.password)
            deadline = time.monotonic() + self.timeout
            while not (pending := api.pending_hitl(self.dag_id)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no pending HITL request for {self.dag_id}")
                time.sleep(0.5)
            self.detail = detail = pending[0]
            if self.before is not None:
                self.before(detail)
            ti = detail["task_instance"]
            self.response = api.respond(self.dag_id, ti["dag_run_id"], ti["task_id"], self.option)
            if self.response.status_code != 200:
                raise RuntimeError(f"HITL response refused: {self.response.text}")
        except BaseException as exc:
            self.error = exc
            fail_awaiting(self.dag_id)

    def check(self) -> dict[str, Any]:
        self.join(timeout=30)
        if self.error is not None:
            raise AssertionError(f"responding to the HITL request failed: {self.error!r}")
        assert self.detail is not None
        return self.detail


def fail_awaiting(dag_id: str) -> None:
    """Fail every task instance of ``dag_id`` parked in AWAITING_INPUT (a test's way out)."""
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
