"""JSON Schemas of the two dashboard exports (documented in the README; tests validate)."""

from __future__ import annotations

from typing import Any

_WEI = {"type": "integer", "minimum": 0}
_SIGNED_WEI = {"type": "integer"}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_NUM = {"type": ["number", "null"]}

SUMMARY_WORKER: dict[str, Any] = {
    "type": "object",
    "required": [
        "total_fees",
        "worker_earnings",
        "pool_commission",
        "connections",
        "connection_count",
        "active",
        "payment_count",
        "last_payment_date",
        "total_fees_paid",
        "pending_fees",
        "pending_eth",
        "payment_due",
    ],
    "properties": {
        "total_fees": _WEI,
        "worker_earnings": _WEI,
        "pool_commission": _WEI,
        "connections": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["connection", "connected_at", "disconnected_at", "active"],
                "properties": {
                    "connection": {"type": ["string", "null"]},
                    "connected_at": _TIME,
                    "disconnected_at": _TIME,
                    "active": {"type": "boolean"},
                },
            },
        },
        "connection_count": {"type": "integer", "minimum": 0},
        "active": {"type": "boolean"},
        "last_seen": _TIME,
        "job_count": {"type": "integer", "minimum": 0},
        "payment_count": {"type": "integer", "minimum": 0},
        "last_payment_date": _TIME,
        "total_fees_paid": _WEI,
        "in_flight_fees": _WEI,
        "pending_fees": _SIGNED_WEI,
        "pending_eth": {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"},
        "payment_due": {"type": "boolean"},
    },
}

WORKER_SUMMARY: dict[str, Any] = {
    "type": "object",
    "required": ["export_timestamp", "data"],
    "properties": {
        "export_timestamp": {"type": "string"},
        "data": {
            "type": "object",
            "required": ["node_type", "region", "timestamp", "workers", "aggregates"],
            "properties": {
                "node_type": {"enum": ["ai", "transcode"]},
                "region": {"type": "string"},
                "timestamp": {"type": "string"},
                "workers": {"type": "object", "additionalProperties": SUMMARY_WORKER},
                "aggregates": {
                    "type": "object",
                    "required": [
                        "workers",
                        "active_workers",
                        "total_fees_wei",
                        "pool_commission_wei",
                        "worker_earnings_wei",
                        "paid_wei",
                        "payable_wei",
                        "unattributed_fees_wei",
                        "pending_ai_jobs",
                    ],
                    "additionalProperties": {"type": "integer"},
                },
            },
        },
    },
}

_PERF_COMMON = {
    "window": {"enum": ["all", "24h", "7d"]},
    "eth_address": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"},
    "jobs": {"type": "integer"},
    "timed_jobs": {"type": "integer", "minimum": 0},
    "excluded_jobs": {"type": "integer"},
    "compute_units_per_s_p50": _NUM,
    "fees_wei": _WEI,
    "rank": {"type": ["integer", "null"], "minimum": 1},
    "percentile": _NUM,
}
WORKER_PERFORMANCE: dict[str, Any] = {
    "type": "object",
    "required": [
        "export_timestamp",
        "node_type",
        "region",
        "transcode_performance",
        "ai_performance",
        "ai_model_pipeline_rankings",
    ],
    "properties": {
        "transcode_performance": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [*_PERF_COMMON, "response_ms_p50", "rtf_p50", "rtf_p10"],
                "properties": {
                    **_PERF_COMMON,
                    **{
                        k: _NUM
                        for k in (
                            "response_ms_p50",
                            "response_ms_p90",
                            "response_ms_p99",
                            "rtf_p50",
                            "rtf_p10",
                        )
                    },
                },
            },
        },
        "ai_performance": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [*_PERF_COMMON, "pipeline", "model_id", "latency_s_p50"],
                "properties": {
                    **_PERF_COMMON,
                    **{k: _NUM for k in ("latency_s_p50", "latency_s_p90", "latency_s_p99")},
                },
            },
        },
        "ai_model_pipeline_rankings": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {"type": "object", "required": ["eth_address", "rank", "latency_s_p50"]},
            },
        },
    },
}
