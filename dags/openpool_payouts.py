"""The payouts DAG: plan, wait for a person's approval, pay exactly the approved plan.

Thin on purpose, like the ingest DAG file: no I/O and no payout code at import. Ingest never
triggers it; it runs by hand or on its schedule (see plugins/openpool/airflow/payouts_dag.py).
"""

from openpool.airflow.payouts_dag import build_payouts_dag

openpool_payouts = build_payouts_dag()
