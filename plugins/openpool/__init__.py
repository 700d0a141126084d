"""OpenPool Manager: the money side of a Livepeer orchestrator pool.

The core of this package imports no Airflow: parsing, dedup, accrual, the snapshot
store, analytics and payouts are plain Python, driven by the ``openpool`` CLI and,
through the thin ``openpool.airflow`` adapter, by the DAGs in ``dags/``.
"""

__version__ = "0.1.0"
