"""The thin Airflow adapter: the only place in ``openpool`` that imports Airflow.

DAG files in ``dags/`` call factories defined here; every task body delegates to the
Airflow-free core (``openpool.snapshots``, ingest, analytics, payouts).
"""
