"""The two dashboard JSON exports as pydantic models: their structure, defined once.

:mod:`openpool.analytics.exports` checks every document against these before it is
written, so a wrong export fails with a :class:`pydantic.ValidationError` naming the field
(``data.workers.0x….total_fees: Input should be greater than or equal to 0``) instead of
reaching the dashboard. Their JSON Schemas are ``WorkerSummaryExport.model_json_schema()``
and ``WorkerPerformanceExport.model_json_schema()`` (the tests validate the files with both).

Strict throughout: wei are JSON integers (of any size, never floats or bools; unsigned
ones at least 0), times RFC 3339 strings (with their UTC offset) or null, speed figures
finite numbers or null, and no key the models do not name.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt

ADDRESS = r"^0x[0-9a-fA-F]{40}$"
RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"


def _real_time(v: str) -> str:
    datetime.fromisoformat(v)  # the pattern admits month 13; this does not
    return v


def _addresses(v: dict[str, Any]) -> dict[str, Any]:
    bad = [k for k in v if not re.fullmatch(ADDRESS, k)]
    if bad:
        raise ValueError(f"not an address: {', '.join(map(repr, bad))}")
    return v


Wei = Annotated[StrictInt, Field(ge=0)]
SignedWei = StrictInt  # payable: negative when more was paid than earned
Count = Annotated[StrictInt, Field(ge=0)]
Time = Annotated[
    str,
    Field(pattern=RFC3339, json_schema_extra={"format": "date-time"}),
    AfterValidator(_real_time),
]
Address = Annotated[str, Field(pattern=ADDRESS)]
Figure = Annotated[float, Field(allow_inf_nan=False)] | None  # NaN is not JSON: null
Rank = Annotated[StrictInt, Field(ge=1)]
NodeType = Literal["ai", "transcode"]
Window = Literal["all", "24h", "7d"]


class _Export(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---- {region}/{node_type}/worker_summary.json


class Connection(_Export):
    connection: str | None
    connected_at: Time | None
    disconnected_at: Time | None
    active: StrictBool


class SummaryWorker(_Export):
    total_fees: Wei
    worker_earnings: Wei
    pool_commission: Wei
    connections: list[Connection]
    connection_count: Count
    active: StrictBool
    last_seen: Time | None
    job_count: Count
    payment_count: Count
    last_payment_date: Time | None
    total_fees_paid: Wei
    in_flight_fees: Wei
    pending_fees: SignedWei
    pending_eth: Annotated[str, Field(pattern=r"^-?\d+(\.\d+)?$")]  # exact decimal ETH
    payment_due: StrictBool


class Aggregates(_Export):
    workers: Count
    active_workers: Count
    payout_due_workers: Count
    job_count: Count
    total_fees_wei: Wei
    pool_commission_wei: Wei
    worker_earnings_wei: Wei
    paid_wei: Wei
    in_flight_wei: Wei
    payable_wei: SignedWei
    unattributed_fees_wei: Wei
    pending_ai_jobs: Count


class SummaryData(_Export):
    node_type: NodeType
    region: str
    timestamp: Time
    snapshot_version: Count | None  # None: nothing ingested yet
    workers: Annotated[
        dict[str, SummaryWorker],  # by address; every key checked, every value a worker
        AfterValidator(_addresses),
        Field(json_schema_extra={"propertyNames": {"pattern": ADDRESS}}),
    ]
    aggregates: Aggregates


class WorkerSummaryExport(_Export):
    export_timestamp: Time
    data: SummaryData


# ---- {region}/{node_type}/worker_performance.json (rows as the CLI shows them)


class TranscodeRow(_Export):
    window: Window
    eth_address: Address
    jobs: StrictInt
    timed_jobs: Count
    excluded_jobs: StrictInt
    response_ms_p50: Figure
    response_ms_p90: Figure
    response_ms_p99: Figure
    rtf_p50: Figure
    rtf_p10: Figure
    compute_units_per_s_p50: Figure
    fees_wei: Wei
    rank: Rank | None  # None: unranked (fewer timed jobs than the minimum)
    ranked: StrictBool
    percentile: Figure


class AiRow(_Export):
    window: Window
    eth_address: Address
    pipeline: str | None
    model_id: str | None
    jobs: StrictInt
    timed_jobs: Count
    excluded_jobs: StrictInt
    latency_s_p50: Figure
    latency_s_p90: Figure
    latency_s_p99: Figure
    compute_units_per_s_p50: Figure
    fees_wei: Wei
    rank: Rank | None
    ranked: StrictBool
    percentile: Figure


class Ranked(_Export):
    eth_address: Address
    rank: Rank
    latency_s_p50: Figure
    jobs: StrictInt


class WorkerPerformanceExport(_Export):
    export_timestamp: Time
    node_type: NodeType
    region: str
    as_of: Time | None  # None: nothing ingested yet
    transcode_performance: list[TranscodeRow]
    ai_performance: list[AiRow]
    ai_model_pipeline_rankings: dict[str, list[Ranked]]  # "pipeline|model_id" -> best first
