"""Configuration and stores for tasks at run time, from Airflow Variables and connections.

Nothing here runs when a DAG file is parsed: tasks call it when they execute. A Variable
named like an environment setting (``OPENPOOL_STATE_URI``, ``POOL_COMMISSION_RATE``, ...)
overrides the environment; ``s3://`` stores use the Airflow AWS connection (credentials and
an ``endpoint_url`` extra for MinIO or moto), so no secret lives in code or in a Variable.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from openpool.config import Settings, load_settings
from openpool.ingest.steps import StepEnv
from openpool.partitions import Partition
from openpool.storage import ObjectStore, S3Store, open_store

# Settings a Variable may override (names as in the environment and README).
VARIABLES = (
    "OPENPOOL_EVENTS_URI",
    "OPENPOOL_ARCHIVE_URI",
    "OPENPOOL_STATE_URI",
    "OPENPOOL_METRICS_URI",
    "POOL_COMMISSION_RATE",
    "OPENPOOL_CLOCK_SKEW_SECONDS",
)
# Settings a same-named Airflow Variable may override, on top of openpool.airflow.runtime's.
PAYOUT_VARIABLES = (
    "HOT_WALLET_ADDRESS",
    "HOT_WALLET_KEYSTORE",
    "HOT_WALLET_PASSWORD_FILE",
    "ETH_RPC_ENDPOINT",
    "CHAIN_ID",
    "OPENPOOL_PARTITIONS",
    "PAYMENT_THRESHOLD_WEI",
    "MAX_PAYMENT_WEI",
    "MAX_RUN_WEI",
    "MIN_PAYOUT_INTERVAL_SECONDS",
    "MAX_GAS_PRICE_WEI",
    "PLAN_MAX_AGE_SECONDS",
    "STUCK_AFTER_SECONDS",
    "CONFIRMATIONS",
)

DEFAULT_AWS_CONN_ID = "aws_default"


def settings(extra: tuple[str, ...] = ()) -> Settings:
    """Environment settings with any same-named Airflow Variables laid over them.

    ``extra`` names further settings a DAG lets Variables override (the payout DAG's).
    """
    from airflow.sdk import Variable

    overrides: dict[str, Any] = {}
    for name in (*VARIABLES, *extra):
        value = Variable.get(name, default=None)
        if value is not None:
            overrides[name] = value
    return load_settings(**overrides)


def s3_client(aws_conn_id: str) -> Any:
    """A boto3 S3 client built from the Airflow connection ``aws_conn_id``."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id).get_conn()


def store(uri: str, aws_conn_id: str = DEFAULT_AWS_CONN_ID) -> ObjectStore:
    if uri.startswith("s3://"):
        return S3Store(uri, client=s3_client(aws_conn_id))
    return open_store(uri)


def step_env(
    partition: Partition,
    aws_conn_id: str = DEFAULT_AWS_CONN_ID,
    max_files: int = 250,
    ai_ttl: timedelta = timedelta(hours=24),
) -> StepEnv:
    s = settings()
    return StepEnv(
        partition=partition,
        events=store(s.events_uri, aws_conn_id),
        state=store(s.state_uri, aws_conn_id),
        archive=store(s.archive_uri, aws_conn_id),
        rate=s.commission_rate,
        ttl=ai_ttl,
        max_files=max_files,
        skew=timedelta(seconds=s.clock_skew_seconds),
    )


def payout_settings() -> Settings:
    """Environment settings with same-named Variables laid over them (runtime + payouts)."""
    return settings(extra=PAYOUT_VARIABLES)
