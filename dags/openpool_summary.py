"""The pool-wide summary DAG, scheduled on every partition's state Asset. No I/O at import."""

from openpool.airflow.factory import build_summary_dag

openpool_summary = build_summary_dag()
