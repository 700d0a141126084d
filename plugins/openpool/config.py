"""Runtime configuration, read from environment variables by pydantic-settings.

Every value has an embedded default so ``make demo`` runs with nothing set; an invalid
value stops start-up with a :class:`~openpool.errors.ConfigError` naming the variable. Each
field also says whether an Airflow Variable of its name may override it (``VARIABLE_*``);
the Airflow adapter (openpool.airflow.runtime) reads that declaration, this module never
imports Airflow.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonDict
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from openpool.errors import ConfigError
from openpool.partitions import ACTIVE_PARTITIONS, Partition

_DIGITS = re.compile(r"^[0-9]+$")
_SCHEMES = ("file://", "s3://")


def to_uri(value: str) -> str:
    """Accept ``s3://bucket/prefix``, ``file:///abs`` or a plain path (made absolute)."""
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if value.startswith(_SCHEMES):
        if value.startswith("s3://") and len(value) <= len("s3://"):
            raise ValueError("s3:// URI needs a bucket")
        return value.rstrip("/")
    if "://" in value:
        raise ValueError(f"unsupported URI scheme in {value!r} (use file:// or s3://)")
    return "file://" + str(Path(value).expanduser().resolve())


def parse_rate(value: Any) -> Fraction:
    """Parse a decimal string like ``0.25`` exactly; binary floats are refused."""
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, str):
        try:
            dec = Decimal(value.strip())
        except InvalidOperation as exc:
            raise ValueError(f"{value!r} is not a decimal number") from exc
        if not dec.is_finite():
            raise ValueError(f"{value!r} is not finite")
        rate = Fraction(dec)
    else:
        raise ValueError("must be a decimal string such as '0.25' (floats are not exact)")
    if not (0 <= rate < 1):
        raise ValueError(f"must be in [0, 1), got {value!r}")
    return rate


def parse_wei(value: Any) -> int:
    """Wei amounts are non-negative integers written in digits (no floats, no 1e18)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer number of wei")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must be >= 0")
        return value
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        return int(value.strip())
    raise ValueError(f"must be a non-negative integer number of wei in digits, got {value!r}")


# Which settings a same-named Airflow Variable may override, declared once, on the field
# (``json_schema_extra=VARIABLE_...``), for the Airflow adapter's readers: "ingest" for
# every task, "payouts" for the payout DAG and its approval step (on top of ingest's),
# "dashboard" for the OpenPool page (on top of both). A field without it is read from the
# environment only. This module only declares; openpool.airflow.runtime reads Variables.
VariableScope = Literal["ingest", "payouts", "alerts", "dashboard"]
VARIABLE_SCOPES: tuple[VariableScope, ...] = ("ingest", "payouts", "alerts", "dashboard")
VARIABLE_INGEST: JsonDict = {"variable": "ingest"}
VARIABLE_PAYOUTS: JsonDict = {"variable": "payouts"}
VARIABLE_ALERTS: JsonDict = {"variable": "alerts"}
VARIABLE_DASHBOARD: JsonDict = {"variable": "dashboard"}


class Settings(BaseSettings):
    """All of OpenPool's settings; field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, frozen=True
    )

    events_uri: str = Field(
        "var/events", validation_alias="OPENPOOL_EVENTS_URI", json_schema_extra=VARIABLE_INGEST
    )
    archive_uri: str = Field(
        "var/archive", validation_alias="OPENPOOL_ARCHIVE_URI", json_schema_extra=VARIABLE_INGEST
    )
    state_uri: str = Field(
        "var/state", validation_alias="OPENPOOL_STATE_URI", json_schema_extra=VARIABLE_INGEST
    )
    metrics_uri: str = Field(
        "var/metrics", validation_alias="OPENPOOL_METRICS_URI", json_schema_extra=VARIABLE_INGEST
    )
    commission_rate: Fraction = Field(
        Fraction(1, 4), validation_alias="POOL_COMMISSION_RATE", json_schema_extra=VARIABLE_INGEST
    )
    payment_threshold_wei: int = Field(
        10**16, validation_alias="PAYMENT_THRESHOLD_WEI", json_schema_extra=VARIABLE_PAYOUTS
    )
    max_gas_price_wei: int = Field(
        10 * 10**9, validation_alias="MAX_GAS_PRICE_WEI", json_schema_extra=VARIABLE_PAYOUTS
    )
    eth_rpc_endpoint: str = Field(
        "http://127.0.0.1:8545",
        validation_alias="ETH_RPC_ENDPOINT",
        json_schema_extra=VARIABLE_PAYOUTS,
    )
    chain_id: int = Field(
        42161, gt=0, validation_alias="CHAIN_ID", json_schema_extra=VARIABLE_PAYOUTS
    )
    partitions: Annotated[tuple[Partition, ...], NoDecode] = Field(
        tuple(Partition.parse(p) for p in ACTIVE_PARTITIONS),
        validation_alias=AliasChoices("OPENPOOL_PARTITIONS"),
        json_schema_extra=VARIABLE_PAYOUTS,
    )
    max_payment_wei: int = Field(
        10**18, validation_alias="MAX_PAYMENT_WEI", json_schema_extra=VARIABLE_PAYOUTS
    )
    max_run_wei: int = Field(
        10 * 10**18, validation_alias="MAX_RUN_WEI", json_schema_extra=VARIABLE_PAYOUTS
    )
    min_payout_interval_seconds: int = Field(
        24 * 3600,
        ge=0,
        validation_alias="MIN_PAYOUT_INTERVAL_SECONDS",
        json_schema_extra=VARIABLE_PAYOUTS,
    )
    # Payouts: a plan (and so its approval) older than this is never executed.
    plan_max_age_seconds: int = Field(
        24 * 3600,
        gt=0,
        validation_alias="PLAN_MAX_AGE_SECONDS",
        json_schema_extra=VARIABLE_PAYOUTS,
    )
    # A broadcast payment not mined after this long is replaced with raised fees.
    stuck_after_seconds: int = Field(
        600, ge=0, validation_alias="STUCK_AFTER_SECONDS", json_schema_extra=VARIABLE_PAYOUTS
    )
    # Blocks deep (1: mined) a receipt must be before its payment is ``confirmed``.
    confirmations: int = Field(
        1, ge=1, le=1000, validation_alias="CONFIRMATIONS", json_schema_extra=VARIABLE_PAYOUTS
    )
    hot_wallet_address: str | None = Field(
        None, validation_alias="HOT_WALLET_ADDRESS", json_schema_extra=VARIABLE_PAYOUTS
    )
    hot_wallet_keystore: str | None = Field(
        None, validation_alias="HOT_WALLET_KEYSTORE", json_schema_extra=VARIABLE_PAYOUTS
    )
    hot_wallet_password_file: str | None = Field(
        None, validation_alias="HOT_WALLET_PASSWORD_FILE", json_schema_extra=VARIABLE_PAYOUTS
    )
    # gc runs from the CLI, so no Variable reaches it: environment only.
    gc_grace_seconds: int = Field(24 * 3600, ge=0, validation_alias="OPENPOOL_GC_GRACE_SECONDS")
    # How far past the ingest's wall clock an event may be dated before it is rejected.
    clock_skew_seconds: int = Field(
        3600,
        ge=0,
        validation_alias="OPENPOOL_CLOCK_SKEW_SECONDS",
        json_schema_extra=VARIABLE_INGEST,
    )
    # Discovery (openpool.ingest.window): a scheduled run lists keys from the newest
    # committed key time minus this lookback; later ones wait for the sweep.
    discovery_lookback_seconds: int = Field(
        6 * 3600,
        ge=0,
        validation_alias="OPENPOOL_DISCOVERY_LOOKBACK_SECONDS",
        json_schema_extra=VARIABLE_INGEST,
    )
    # A run lists the whole partition once the last sweep is this old (0: every run).
    discovery_sweep_seconds: int = Field(
        24 * 3600,
        ge=0,
        validation_alias="OPENPOOL_DISCOVERY_SWEEP_SECONDS",
        json_schema_extra=VARIABLE_INGEST,
    )
    # the dashboard: tx links ("" = none, for a local chain; unset = the chain's explorer)
    explorer_url: str | None = Field(
        None, validation_alias="OPENPOOL_EXPLORER_URL", json_schema_extra=VARIABLE_DASHBOARD
    )
    online_window_seconds: int = Field(
        900,
        gt=0,
        validation_alias="OPENPOOL_ONLINE_WINDOW_SECONDS",
        json_schema_extra=VARIABLE_DASHBOARD,
    )
    # performance ranks: fewer timed jobs in a window than this and a worker is unranked
    rank_min_timed_jobs: int = Field(
        20,
        ge=1,
        validation_alias="OPENPOOL_RANK_MIN_TIMED_JOBS",
        json_schema_extra=VARIABLE_INGEST,
    )

    # Alerts (openpool.alerts): a partition with no new file for this long is stale.
    alert_stale_after_seconds: int = Field(
        1800,
        gt=0,
        validation_alias="OPENPOOL_ALERT_STALE_AFTER_SECONDS",
        json_schema_extra=VARIABLE_ALERTS,
    )
    # Rejected events / events read over the last day above this alerts (decimal string).
    alert_rejected_rate: Fraction = Field(
        Fraction(1, 20),
        validation_alias="OPENPOOL_ALERT_REJECTED_RATE",
        json_schema_extra=VARIABLE_ALERTS,
    )
    # Who the SMTP notifier writes to (comma-separated); unset: no e-mail.
    alert_email_to: str | None = Field(
        None, validation_alias="OPENPOOL_ALERT_EMAIL_TO", json_schema_extra=VARIABLE_ALERTS
    )

    @field_validator("events_uri", "archive_uri", "state_uri", "metrics_uri", mode="before")
    @classmethod
    def _uri(cls, v: Any) -> str:
        return to_uri(str(v))

    @field_validator("commission_rate", "alert_rejected_rate", mode="before")
    @classmethod
    def _rate(cls, v: Any) -> Fraction:
        return parse_rate(v)

    @field_validator(
        "payment_threshold_wei",
        "max_gas_price_wei",
        "max_payment_wei",
        "max_run_wei",
        mode="before",
    )
    @classmethod
    def _wei(cls, v: Any) -> int:
        return parse_wei(v)

    @field_validator("eth_rpc_endpoint", mode="before")
    @classmethod
    def _rpc(cls, v: Any) -> str:
        text = str(v).strip()
        if not text.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must be an http(s):// or ws(s):// URL")
        return text

    @field_validator("partitions", mode="before")
    @classmethod
    def _partitions(cls, v: Any) -> tuple[Partition, ...]:
        if isinstance(v, str):
            items = [p for p in v.split(",") if p.strip()]
        else:
            items = list(v)
        parts = tuple(p if isinstance(p, Partition) else Partition.parse(str(p)) for p in items)
        if not parts:
            raise ValueError("at least one partition is required")
        if len(set(parts)) != len(parts):
            raise ValueError("partitions must not repeat")
        return parts


S = TypeVar("S", bound=Settings)


def env_name(field_name: str, field: FieldInfo) -> str:
    """The environment variable (and Airflow Variable) name of a setting: its alias."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        alias = alias.choices[0]
    if not isinstance(alias, str):
        raise TypeError(f"setting {field_name} needs an environment variable name as its alias")
    return alias


def variable_scope(field_name: str, field: FieldInfo) -> VariableScope | None:
    """Which readers let an Airflow Variable override the setting (None: none do)."""
    extra = field.json_schema_extra
    scope = extra.get("variable") if isinstance(extra, dict) else None
    if scope is None:
        return None
    if scope not in VARIABLE_SCOPES:
        raise TypeError(f"setting {field_name}: unknown variable scope {scope!r}")
    return scope


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (plus explicit overrides, for tests and the CLI).

    Raises :class:`ConfigError` whose message names each offending variable.
    """
    return build_settings(Settings, **overrides)


def build_settings(settings_cls: type[S], /, **overrides: Any) -> S:
    """As :func:`load_settings`, for a subclass that adds sources (the Airflow adapter's)."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "?"
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
