"""Answer Human-in-the-loop requests through Airflow's public REST API, as a person does.

The product's own pieces do the work: the api-server app served over HTTP on a loopback
port of this process, on the same metadata DB as ``dag.test()``
(``openpool.airflow.demo.api_server``), its REST client (``openpool.airflow.rest``)
and the thread that answers the parked request (``openpool.airflow.demo.Approver``). The
Airflow modules are imported on call, after the test's Airflow environment is in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def api_server() -> Iterator[str]:
    """The api-server on a free loopback port; yields its base URL."""
    from openpool.airflow.demo import api_server as serve
    from tests.services import require

    require("airflow", "Airflow's api-server")
    from openpool.devstack.net import free_port

    with serve(free_port()) as url:
        yield url


def airflow_api(url: str, username: str, password: str) -> Any:
    """A REST client of ``url``, logged in as ``username``."""
    from openpool.airflow.rest import AirflowAPI

    return AirflowAPI(url, username, password)


def responder(
    url: str,
    dag_id: str,
    option: str,
    username: str,
    password: str,
    before: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = 120.0,
) -> Any:
    """A thread that answers ``dag_id``'s pending request with ``option`` once started.

    ``before(detail)`` runs between seeing the request and answering it; ``result()``
    returns the request's detail or raises what went wrong.
    """
    from openpool.airflow.demo import Approver

    return Approver(
        lambda: airflow_api(url, username, password),
        dag_id,
        option,
        before or (lambda _detail: None),
        timeout,
    )


def fail_awaiting(dag_id: str) -> None:
    """Fail every task of ``dag_id`` parked in AWAITING_INPUT (a test's way out)."""
    from openpool.airflow.demo import fail_awaiting as fail

    fail(dag_id)
