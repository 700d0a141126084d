"""The Airflow plugin: mounts the dashboard app and adds an "OpenPool" entry to the UI nav.

Airflow imports plugins in every component (scheduler, dag-processor, workers), so this
module stays light: the FastAPI app, with Airflow's security dependencies and the
analytics code behind it, is built on the first request the api-server routes to it.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from openpool.airflow.dashboard import URL_PREFIX


class LazyApp:
    """An ASGI app that builds the dashboard's FastAPI app when first called."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                from openpool.airflow.dashboard.app import create_app

                self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app or self._build()
        await app(scope, receive, send)


class OpenPoolDashboardPlugin(AirflowPlugin):
    """Airflow 3 plugin: ``fastapi_apps`` serves the page, ``external_views`` links it."""

    name = "openpool_dashboard"
    fastapi_apps = [  # noqa: RUF012 - the attribute shape Airflow reads
        {"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "OpenPool dashboard"}
    ]
    external_views = [  # noqa: RUF012
        {
            "name": "OpenPool",
            "href": URL_PREFIX.lstrip("/") + "/",  # relative to the UI's <base href>
            "destination": "nav",
            "url_route": "openpool",
            "icon": URL_PREFIX.lstrip("/") + "/icon.svg",
        }
    ]
