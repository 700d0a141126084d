"""CLI: ``openpool statement --worker ADDRESS [--from DAY] [--to DAY] --format csv|json``.

A worker's statement over every configured partition (:mod:`openpool.analytics.statement`):
earnings per day and partition, every confirmed payment with its tx hash and the time of
the block that mined it (read from ``ETH_RPC_ENDPOINT``), and the balance carried. Wei are
exact integers in both formats (JSON integers, CSV digits).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, date, datetime
from typing import Any

from openpool.analytics.statement import Statement, statement
from openpool.config import Settings
from openpool.errors import StatementRefused
from openpool.payments import current, payout_log
from openpool.snapshots import SnapshotStore
from openpool.storage import open_store

CSV_COLUMNS = [
    "line",  # opening | day | payment | closing
    "day",
    "partition",
    "jobs",
    "fees_wei",
    "commission_wei",
    "earnings_wei",
    "paid_wei",
    "payment_id",
    "tx_hash",
    "block_number",
    "block_time",
    "balance_wei",  # on the opening and closing lines
]


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD, UTC)") from None


class BlockTimes:
    """Block number -> its timestamp, read over RPC once per block."""

    def __init__(self, rpc_url: str) -> None:
        self.rpc_url = rpc_url
        self.chain: Any = None  # opened at the first payment: no RPC without one
        self.seen: dict[int, datetime] = {}

    def __call__(self, number: int) -> datetime:
        if number not in self.seen:
            if self.chain is None:
                from openpool.payouts.chain import Chain

                self.chain = Chain(self.rpc_url)
            try:
                block = self.chain.rpc("eth_getBlockByNumber", [hex(number), False])
            except Exception as exc:  # the URL may hold an API key: name the error's type only
                raise StatementRefused(
                    f"cannot read block {number} from ETH_RPC_ENDPOINT ({type(exc).__name__})"
                ) from None
            if not block:
                raise StatementRefused(f"block {number} is not on the chain of ETH_RPC_ENDPOINT")
            self.seen[number] = datetime.fromtimestamp(int(block["timestamp"], 16), UTC)
        return self.seen[number]


def build(args: argparse.Namespace, settings: Settings) -> Statement:
    from eth_utils import is_address, to_checksum_address

    if not is_address(args.worker):
        raise StatementRefused(
            f"--worker {args.worker!r} is not an Ethereum address (0x and 40 hex digits)"
        )
    state = open_store(settings.state_uri)
    parts = {str(p): SnapshotStore(state, p).latest() for p in settings.partitions}
    return statement(
        to_checksum_address(args.worker),
        parts,
        current(payout_log(state)),
        BlockTimes(settings.eth_rpc_endpoint),
        settings.commission_rate,
        args.start,
        args.end,
    )


def as_json(s: Statement) -> dict[str, Any]:
    def rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
                for r in items]  # fmt: skip

    return {
        "worker": s.worker,
        "from": s.start.isoformat() if s.start else None,
        "to": s.end.isoformat() if s.end else None,
        "commission_rate": f"{s.rate.numerator}/{s.rate.denominator}",
        "opening_balance_wei": s.opening_wei,
        "closing_balance_wei": s.closing_wei,
        "totals": s.totals(),
        "days": rows(s.days),
        "payments": rows(s.payments),
        "in_flight": rows(s.in_flight),
    }


def write_csv(s: Statement, out: Any) -> None:
    w = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    start = s.start.isoformat() if s.start else ""
    w.writerow({"line": "opening", "day": start, "balance_wei": s.opening_wei})
    for d in s.days:
        w.writerow({"line": "day", **d})
    for p in s.payments:
        w.writerow(
            {
                "line": "payment",
                "day": p["block_time"].date().isoformat(),
                "partition": p["partition"],
                "paid_wei": p["amount_wei"],
                "payment_id": p["payment_id"],
                "tx_hash": p["tx_hash"],
                "block_number": p["block_number"],
                "block_time": p["block_time"].isoformat(),
            }
        )
    end = s.end.isoformat() if s.end else ""
    w.writerow({"line": "closing", "day": end, "balance_wei": s.closing_wei})


def cmd_statement(args: argparse.Namespace, settings: Settings) -> int:
    s = build(args, settings)
    if args.format == "json":
        print(json.dumps(as_json(s)))
    else:
        write_csv(s, sys.stdout)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "statement", help="a worker's earnings per day, payments and balance carried"
    )
    p.add_argument("--worker", required=True, help="the worker's address (0x...)")
    p.add_argument("--from", dest="start", type=_day, default=None, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", type=_day, default=None, help="last day (inclusive)")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.set_defaults(handler=cmd_statement)
