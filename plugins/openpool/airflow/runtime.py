"""Configuration and stores for tasks at run time, from Airflow Variables and connections.

Nothing here runs when a DAG file is parsed: tasks call it when they execute. A Variable
named like an environment setting (``OPENPOOL_STATE_URI``, ``POOL_COMMISSION_RATE``, ...)
overrides the environment for the settings declared so in :mod:`openpool.config` (read by
the :class:`AirflowVariables` source; explicit overrides > Variables > environment >
defaults); ``s3://`` stores use the Airflow AWS connection (credentials and
an ``endpoint_url`` extra for MinIO or moto), so no secret lives in code or in a Variable.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from openpool.config import Settings, VariableScope, build_settings, env_name, variable_scope
from openpool.ingest.steps import StepEnv
from openpool.ingest.window import Window
from openpool.partitions import Partition
from openpool.storage import ObjectStore, S3Store, open_store

DEFAULT_AWS_CONN_ID = "aws_default"


class AirflowVariables(PydanticBaseSettingsSource):
    """A pydantic-settings source: for each field declared overridable in ``scopes`` (its
    ``json_schema_extra`` "variable" marker, see :mod:`openpool.config`), the Airflow
    Variable named like its environment variable, if one is set."""

    def __init__(self, settings_cls: type[BaseSettings], scopes: tuple[VariableScope, ...]):
        super().__init__(settings_cls)
        self.scopes = scopes

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        from airflow.sdk import Variable

        name = env_name(field_name, field)
        if variable_scope(field_name, field) not in self.scopes:
            return None, name, False
        return Variable.get(name, default=None), name, False

    def __call__(self) -> dict[str, Any]:
        # keyed by the environment name, as the env source and the init kwargs are, so
        # that the three merge field by field; values stay the Variables' raw strings
        found: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                found[key] = value
        return found


class _VariableSettings(Settings):
    """Settings with Airflow Variables between explicit overrides and the environment."""

    variable_scopes: ClassVar[tuple[VariableScope, ...]] = ("ingest",)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        variables = AirflowVariables(settings_cls, cls.variable_scopes)
        return init_settings, variables, env_settings, dotenv_settings, file_secret_settings


class IngestSettings(_VariableSettings):
    """What every task reads: the stores, the commission rate and the clock skew."""


class PayoutSettings(_VariableSettings):
    """The payout DAG's and its approval step's settings: ingest's and the payouts'."""

    variable_scopes = ("ingest", "payouts")


class AlertSettings(_VariableSettings):
    """The alerts DAG's settings: the payouts' (wallet, chain, limits) and the alerts' own."""

    variable_scopes = ("ingest", "payouts", "alerts")


class DashboardSettings(_VariableSettings):
    """The OpenPool page's settings: the payouts', the alerts' (stale after) and its own."""

    variable_scopes = ("ingest", "payouts", "alerts", "dashboard")


def settings() -> Settings:
    """Environment settings with the same-named Airflow Variables of every task over them."""
    return build_settings(IngestSettings)


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
        window=Window.of(s),
    )


def payout_settings() -> Settings:
    """Environment settings with same-named Variables laid over them (runtime + payouts)."""
    return build_settings(PayoutSettings)


def alert_settings() -> Settings:
    """As :func:`payout_settings`, plus the alerts' thresholds and recipients."""
    return build_settings(AlertSettings)


def dashboard_settings() -> Settings:
    """As :func:`payout_settings`, plus the dashboard's own (explorer links, online window)."""
    return build_settings(DashboardSettings)
