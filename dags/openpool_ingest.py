"""One ingest DAG per active partition (see plugins/openpool/partitions.py).

Thin on purpose: the factory builds every DAG from the partition config; this file only
puts them where the DAG processor looks. No I/O happens at import.
"""

from openpool.airflow.factory import ingest_dags

globals().update(ingest_dags())
