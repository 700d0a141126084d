"""The dashboard's FastAPI app, mounted by the plugin at ``/openpool`` in the api-server.

Read-only: GET routes only. Every data route requires a user the Airflow UI already
authenticated (its JWT cookie, or a bearer token) and authorized for the UI itself
(``AccessView.WEBSITE``), through Airflow's own ``requires_access_view`` dependency, so
the auth manager in use (simple, FAB, Keycloak, ...) decides. A browser that is not
signed in is sent to Airflow's login page and back; an API client gets 401.

Settings are read per request like the DAGs read them at run time: environment variables
with same-named Airflow Variables laid over them (the payout DAG's, and the page's own:
``OPENPOOL_EXPLORER_URL``, ``OPENPOOL_ONLINE_WINDOW_SECONDS``, and the alerts'
``OPENPOOL_ALERT_STALE_AFTER_SECONDS``); ``s3://`` stores go through
the ``aws_default`` connection.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from openpool.airflow.dashboard import URL_PREFIX
from openpool.overview import DashboardReader, Sources

APPROVAL_WINDOW = timedelta(hours=12)  # the payout DAG's approval timeout
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#017cee" '
    'stroke-width="2"><circle cx="12" cy="12" r="9"/><path d="M7 14l3-3 3 2 4-5"/></svg>'
)


def load_sources() -> Sources:
    """Stores and settings as the payout and ingest tasks see them."""
    from openpool.airflow.runtime import dashboard_settings, store
    from openpool.payments import wallet_address

    s = dashboard_settings()
    return Sources(
        state=store(s.state_uri),
        metrics=store(s.metrics_uri),
        partitions=s.partitions,
        threshold_wei=s.payment_threshold_wei,
        chain_id=s.chain_id,
        wallet=wallet_address(s),
        approval_window=APPROVAL_WINDOW,
        explorer_url=s.explorer_url,
        online_window=timedelta(seconds=s.online_window_seconds),
        stale_after=timedelta(seconds=s.alert_stale_after_seconds),
    )


def create_app() -> FastAPI:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    from openpool.airflow.dashboard.render import render_html, to_json

    app = FastAPI(title="OpenPool dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    allowed = [Depends(requires_access_view(AccessView.WEBSITE))]
    reader = DashboardReader()

    @app.exception_handler(HTTPException)
    async def refused(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and request.url.path.rstrip("/") == URL_PREFIX:
            login = get_auth_manager().get_url_login(next_url=str(request.url))
            return RedirectResponse(login, status_code=307)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse, dependencies=allowed)
    def page() -> HTMLResponse:
        return HTMLResponse(render_html(reader.read(load_sources())))

    @app.get("/api/dashboard", dependencies=allowed)
    def data() -> dict[str, Any]:
        return to_json(reader.read(load_sources()))

    @app.get("/icon.svg", include_in_schema=False)
    def icon() -> Response:  # a static picture for the nav entry; carries no data
        return Response(ICON, media_type="image/svg+xml")

    return app
