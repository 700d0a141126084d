"""Airflow discovers the OpenPool dashboard plugin through this file in the plugins folder.

The ``openpool/`` library next to it is ignored by Airflow's plugin scan (.airflowignore)
and imported as a package; the plugin itself lives in ``openpool.airflow.dashboard``.
"""

from openpool.airflow.dashboard.plugin import OpenPoolDashboardPlugin

__all__ = ["OpenPoolDashboardPlugin"]
