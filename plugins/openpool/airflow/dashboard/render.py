"""The OpenPool page as HTML (a Jinja2 template, autoescaped) and as JSON for the API.

Amounts are shown as exact ETH strings (``eth()``), with the exact wei in a tooltip and a
``data-wei`` attribute; the JSON carries wei as integers and ETH as strings, as the
exports do. Nothing here needs Airflow.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from openpool.airflow.dashboard.charts import fees_chart, rank_chart, short
from openpool.analytics.summary import MONEY
from openpool.money import eth
from openpool.overview import Dashboard, address_url

CHAINS = {42161: "Arbitrum One", 421614: "Arbitrum Sepolia"}

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["eth"] = eth
_env.filters["short"] = short
_env.filters["when"] = lambda t: "—" if t is None else f"{t:%Y-%m-%d %H:%M}"
_env.filters["short_hash"] = lambda h: f"{h[:12]}…{h[-10:]}" if len(h) > 24 else h


def render_html(d: Dashboard) -> str:
    fee_totals = {k: sum(v) for k, v in d.fees.items()}
    return _env.get_template("dashboard.html").render(
        d=d,
        chain_name=CHAINS.get(d.chain_id, f"chain {d.chain_id}"),
        wallet_url=address_url(d.explorer, d.wallet),
        fees_svg=fees_chart(d.fee_hours, d.fees),
        fee_totals=fee_totals,
        rank_chart=rank_chart,
        money=MONEY,
    )


def _iso(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _iso(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_iso(x) for x in v]
    return v


def _worker(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "partitions"}
    for m in MONEY:
        out[m.removesuffix("_wei") + "_eth"] = eth(row[m])
    if "partitions" in row:
        out["partitions"] = {p: _worker(r) for p, r in row["partitions"].items()}
    return _iso(out)


def to_json(d: Dashboard) -> dict[str, Any]:
    """The page's data: wei as integers, ETH as exact strings, times ISO 8601 UTC."""
    return {
        "generated_at": d.generated_at.isoformat(),
        "chain_id": d.chain_id,
        "wallet": d.wallet,
        "threshold_wei": d.threshold_wei,
        "pool": {
            "aggregates": d.pool.aggregates,
            "workers": [_worker(r) for r in d.pool.workers],
        },
        "partitions": [
            {
                "partition": str(v.partition),
                "snapshot_version": v.snapshot_version,
                "aggregates": v.summary.aggregates,
                "workers": [_worker(r) for r in v.summary.workers],
                "transcode_ranks": v.transcode_ranks,
                "ai_ranks": v.ai_ranks,
                "performance_as_of": v.performance_as_of,
            }
            for v in d.partitions
        ],
        "awaiting_approval": _iso(d.awaiting),
        "recent_payments": _iso(d.payments),
        "recent_answers": _iso(d.answers),
        "fees_per_hour": {
            "hours": [h.isoformat() for h in d.fee_hours],
            "wei": d.fees,
        },
        "warnings": d.warnings,
        "repeated_event_ids": d.repeats,
        "health": _iso(d.health),
        "open_alerts": _iso(d.open_alerts),
    }
