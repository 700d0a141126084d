"""A small client of Airflow 3's public REST API over HTTP: what a person's browser calls.

Logs in with SimpleAuthManager (``POST /auth/token``) and sends the bearer token on every
call, over one ``httpx.Client`` (base URL, timeout, headers; its connections are kept
alive between calls). ``respond`` is the call behind the UI's Required Actions page
(Human-in-the-loop). An HTTP error status raises :class:`AirflowAPIError` with the method,
path, status and the start of the body; a connection that cannot be made raises httpx's
own ``TransportError``.
"""

from __future__ import annotations

import time
import urllib.parse
import weakref
from types import TracebackType
from typing import Any

import httpx

from openpool.errors import AirflowAPIError


def _q(run_id: str) -> str:
    """Run ids hold ``:`` and ``+``; one path segment each."""
    return urllib.parse.quote(run_id, safe="")


class AirflowAPI:
    """Airflow's REST API at ``base_url``, logged in as ``username``."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30) -> None:
        self.base_url, self.username, self.timeout = base_url.rstrip("/"), username, timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Accept": "application/json"},
            follow_redirects=True,  # as urllib did
        )
        # callers hold a client for a whole run without closing it: close its pooled
        # connections when the client goes away, not at the socket's own finalizer
        weakref.finalize(self, self._http.close)
        doc = self._call("POST", "/auth/token", {"username": username, "password": password})
        self._http.headers["Authorization"] = f"Bearer {doc['access_token']}"

    def close(self) -> None:
        """Close the kept-alive connections now (else when the client is collected)."""
        self._http.close()

    def __enter__(self) -> AirflowAPI:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = self._http.request(method, path, json=body, params=params or None)
        if resp.is_error:
            detail = resp.content.decode(errors="replace")[:500]
            raise AirflowAPIError(f"{method} {path}: HTTP {resp.status_code}: {detail}")
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", "/api/v2" + path, **params)

    def patch(self, path: str, body: Any) -> Any:
        return self._call("PATCH", "/api/v2" + path, body)

    def dag_ids(self, pattern: str = "openpool") -> list[str]:
        doc = self.get("/dags", dag_id_pattern=pattern, limit=100)
        return sorted(d["dag_id"] for d in doc["dags"])

    def wait_for_dags(self, expected: set[str], timeout: float = 300) -> list[str]:
        """Until the DAG processor has put every ``expected`` DAG in the metadata DB."""
        deadline = time.monotonic() + timeout
        while not expected <= set(ids := self.dag_ids()):
            if time.monotonic() > deadline:
                raise AirflowAPIError(f"DAGs not loaded in {timeout:.0f}s: {expected - set(ids)}")
            time.sleep(1)
        return ids

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.patch(f"/dags/{dag_id}", {"is_paused": paused})

    def pending_hitl(self, dag_id: str) -> list[dict[str, Any]]:
        """Human-in-the-loop requests of ``dag_id`` waiting for an answer, newest first."""
        doc = self.get(
            f"/dags/{dag_id}/dagRuns/~/hitlDetails",
            response_received=False,
            state="awaiting_input",
            order_by="-created_at",
        )
        return doc["hitl_details"]

    def respond(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        option: str,
        params_input: dict[str, Any] | None = None,
    ) -> Any:
        """Answer a HITL request, as the Required Actions page does (``params_input``: the
        request's form fields, as typed)."""
        path = f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/-1/hitlDetails"
        return self.patch(path, {"chosen_options": [option], "params_input": params_input or {}})

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        run = _q(run_id)
        path = f"/dags/{dag_id}/dagRuns/{run}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.get(path, deserialize=True)["value"]
