"""The Airflow REST client on the wire, against a stub server on a loopback port: the
login, the bearer token, query strings, run ids as one path segment, and the error it
raises. (The real api-server answers it in test_payouts_dag and the devstack tests.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from openpool.airflow.rest import AirflowAPI
from openpool.errors import AirflowAPIError

RUN_ID = "manual__2026-01-01T00:00:00+00:00"


class Stub(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(size)) if size else None
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "body": body,
            }
        )
        if self.path == "/auth/token":
            ok = body == {"username": "treasurer", "password": "pw"}
            self._send(201 if ok else 401, {"access_token": "tok"} if ok else {"detail": "no"})
        elif self.path.startswith("/api/v2/dags?"):
            self._send(200, {"dags": [{"dag_id": "openpool_b"}, {"dag_id": "openpool_a"}]})
        elif "/xcomEntries/" in self.path:
            self._send(200, {"value": {"plan_hash": "ab"}})
        elif self.command == "PATCH" and self.path == "/api/v2/dags/gone":
            self._send(404, {"detail": "DAG gone was not found"})
        else:
            self._send(200, None)

    def _send(self, status: int, doc: Any) -> None:
        data = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _answer


@pytest.fixture
def stub() -> Iterator[str]:
    Stub.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_logs_in_then_sends_the_bearer_token_queries_and_quoted_run_ids(stub: str) -> None:
    with AirflowAPI(stub, "treasurer", "pw") as api:
        assert api.dag_ids() == ["openpool_a", "openpool_b"]
        assert api.xcom("openpool_payouts", RUN_ID, "plan") == {"plan_hash": "ab"}
        assert api.set_paused("openpool_a", False) is None  # an empty answer is None
    login, dags, xcom, patch = Stub.seen
    assert login["method"] == "POST" and login["auth"] is None
    assert dags["path"] == "/api/v2/dags?dag_id_pattern=openpool&limit=100"
    assert xcom["path"] == (
        "/api/v2/dags/openpool_payouts/dagRuns/manual__2026-01-01T00%3A00%3A00%2B00%3A00"
        "/taskInstances/plan/xcomEntries/return_value?deserialize=true"
    )
    assert patch["method"] == "PATCH" and patch["body"] == {"is_paused": False}
    assert {r["auth"] for r in (dags, xcom, patch)} == {"Bearer tok"}


def test_an_error_status_names_the_call_status_and_body(stub: str) -> None:
    with pytest.raises(AirflowAPIError) as refused:
        AirflowAPI(stub, "treasurer", "wrong")
    assert str(refused.value) == 'POST /auth/token: HTTP 401: {"detail": "no"}'
    api = AirflowAPI(stub, "treasurer", "pw")
    with pytest.raises(AirflowAPIError) as missing:
        api.set_paused("gone", True)
    assert str(missing.value) == (
        'PATCH /api/v2/dags/gone: HTTP 404: {"detail": "DAG gone was not found"}'
    )
