"""The OpenPool page inside the Airflow UI: an Airflow 3 plugin serving a read-only FastAPI app.

``plugin.py`` registers it (``fastapi_apps`` + a nav ``external_views`` entry), ``app.py``
serves it behind Airflow's authentication, ``render.py`` and ``charts.py`` draw it, and
the data comes from the Airflow-free ``openpool.overview``.
"""

URL_PREFIX = "/openpool"
