"""JSON exports for the dashboard built for the predecessor: same file paths, same fields.

``{region}/{node_type}/worker_summary.json`` and ``worker_performance.json`` under
``OPENPOOL_METRICS_URI``. Wei amounts are JSON integers (never floats); ETH amounts are
exact decimal strings; times are ISO 8601 UTC. Each document is checked against its model
in :mod:`openpool.analytics.export_models` before it is returned (a wrong one raises
:class:`pydantic.ValidationError` naming the field); the document written is the one built
here, unchanged by the check. The structure is documented in the README.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from openpool.analytics.export_models import WorkerPerformanceExport, WorkerSummaryExport
from openpool.analytics.performance import Performance
from openpool.analytics.summary import Summary
from openpool.money import eth
from openpool.partitions import Partition

WEI_PER_ETH = 10**18


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _checked(model: type[BaseModel], doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` itself, once ``model`` accepts it (strict: nothing is converted)."""
    model.model_validate(doc)
    return doc


def summary_json(
    s: Summary, partition: Partition, now: datetime, connections: pa.Table
) -> dict[str, Any]:
    conns: dict[str, list[dict[str, Any]]] = {}
    for c in connections.to_pylist():
        conns.setdefault(c["eth_address"], []).append(
            {
                "connection": c["connection"],
                "connected_at": _iso(c["connected_at"]),
                "disconnected_at": _iso(c["disconnected_at"]),
                "active": c["disconnected_at"] is None,
            }
        )
    workers = {
        r["eth_address"]: {
            "total_fees": r["total_fees_wei"],
            "worker_earnings": r["worker_earnings_wei"],
            "pool_commission": r["pool_commission_wei"],
            "connections": conns.get(r["eth_address"], []),
            "connection_count": r["connection_count"],
            "active": r["active"],
            "last_seen": _iso(r["last_seen"]),
            "job_count": r["job_count"],
            "payment_count": r["payment_count"],
            "last_payment_date": _iso(r["last_payout_at"]),
            "total_fees_paid": r["paid_wei"],
            "in_flight_fees": r["in_flight_wei"],
            "pending_fees": r["payable_wei"],
            "pending_eth": eth(r["payable_wei"]),
            "payment_due": r["payout_due"],
        }
        for r in s.workers
    }
    doc = {
        "export_timestamp": now.isoformat(),
        "data": {
            "node_type": partition.node_type,
            "region": partition.region,
            "timestamp": now.isoformat(),
            "snapshot_version": s.snapshot_version,
            "workers": workers,
            "aggregates": s.aggregates,
        },
    }
    return _checked(WorkerSummaryExport, doc)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    for r in rows:
        if "fees_wei" in r and r["fees_wei"] is not None:
            r["fees_wei"] = int(r["fees_wei"])
    return rows


def performance_json(p: Performance, partition: Partition, now: datetime) -> dict[str, Any]:
    ai_rows = _rows(p.ai)
    rankings: dict[str, list[dict[str, Any]]] = {}
    for r in ai_rows:
        if r["window"] != "all" or r["rank"] is None:
            continue
        rankings.setdefault(f"{r['pipeline']}|{r['model_id']}", []).append(
            {
                "eth_address": r["eth_address"],
                "rank": r["rank"],
                "latency_s_p50": r["latency_s_p50"],
                "jobs": r["jobs"],
            }
        )
    for v in rankings.values():
        v.sort(key=lambda x: (x["rank"], x["eth_address"]))
    doc = {
        "export_timestamp": now.isoformat(),
        "node_type": partition.node_type,
        "region": partition.region,
        "as_of": _iso(p.as_of),
        "transcode_performance": _rows(p.transcode),
        "ai_performance": ai_rows,
        "ai_model_pipeline_rankings": rankings,
    }
    return _checked(WorkerPerformanceExport, doc)


def dumps(doc: dict[str, Any]) -> bytes:
    """Strict JSON (NaN is not JSON: a speed figure that does not exist is null)."""
    return json.dumps(doc, allow_nan=False, sort_keys=False, default=str).encode()
