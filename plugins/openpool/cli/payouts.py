"""CLI: ``openpool payouts plan | execute --plan HASH | recover | status``."""

from __future__ import annotations

import argparse
import json
import logging
from datetime import timedelta
from typing import Any

from openpool.cli.output import emit, format_arg
from openpool.config import Settings
from openpool.money import eth
from openpool.payouts.approvals import approve_on_cli
from openpool.payouts.chain import Chain
from openpool.payouts.execute import RunReport, execute, recover
from openpool.payouts.keys import load_wallet
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import PlanRefused, build_plan, describe, load_plan, save_plan
from openpool.payouts.reconcile import reconcile, require_ledger_covers_chain
from openpool.payouts.service import configured_ledger, limits
from openpool.storage import open_store

log = logging.getLogger(__name__)


def cmd_plan(args: argparse.Namespace, s: Settings) -> int:
    ledger = configured_ledger(s)
    state = open_store(s.state_uri)
    chain = Chain(s.eth_rpc_endpoint)
    require_ledger_covers_chain(ledger, chain)  # a lost ledger would plan paid workers again
    plan = build_plan(list(s.partitions), state, ledger, limits(s), s.chain_id)
    h = save_plan(state, plan)
    print(json.dumps(describe(plan, h, chain.balance(ledger.wallet))))
    return 0


def cmd_reconcile(args: argparse.Namespace, s: Settings) -> int:
    """Show what the chain has that the ledger lost; record it only with --i-confirm.

    Exit 0: the ledger agrees with the chain (now); 3: a person must confirm, or some
    used nonces were not found in the scanned blocks (still pending? pass --from-block)."""
    ledger = configured_ledger(s)
    found = reconcile(
        open_store(s.state_uri),
        ledger,
        Chain(s.eth_rpc_endpoint),
        confirm=args.i_confirm,
        from_block=args.from_block,
    )
    print(json.dumps(found))
    if not found["missing_nonces"]:
        return 0
    return 0 if found["recorded"] and not found["not_found"] else 3


def cmd_execute(args: argparse.Namespace, s: Settings) -> int:
    state = open_store(s.state_uri)
    plan = load_plan(state, args.plan)  # refuses content that no longer hashes to its name
    # Authority is the person running this (--i-approve), never a file in approvals/.
    who = approve_on_cli(state, args.plan, args.i_approve, args.approver)
    log.warning("plan %s approved on the command line by %s", args.plan, who)
    wallet = load_wallet(s.hot_wallet_keystore, s.hot_wallet_password_file)
    report = execute(
        plan,
        args.plan,
        Ledger(state, wallet.address),
        Chain(s.eth_rpc_endpoint),
        wallet,
        s.max_gas_price_wei,
        receipt_timeout=args.receipt_timeout,
        limits=limits(s),  # today's settings, not the plan's
        max_plan_age=timedelta(seconds=s.plan_max_age_seconds),
        confirmations=s.confirmations,
    )
    print(json.dumps({**report.as_dict(), "approved_by": who}))
    return _exit_code(report)


def _exit_code(report: RunReport) -> int:
    """0 all well; 3 a payment needs investigation; 4 the node refused a send (reported
    with its reason; the record stays open for the next recover)."""
    if report.investigate:
        return 3
    return 4 if report.refused else 0


def cmd_recover(args: argparse.Namespace, s: Settings) -> int:
    ledger = configured_ledger(s)
    wallet = None
    if s.hot_wallet_keystore and s.hot_wallet_password_file:
        wallet = load_wallet(s.hot_wallet_keystore, s.hot_wallet_password_file)
        if wallet.address.lower() != ledger.wallet.lower():
            raise PlanRefused("HOT_WALLET_KEYSTORE is not the wallet of HOT_WALLET_ADDRESS")
    report = recover(
        ledger,
        Chain(s.eth_rpc_endpoint),
        ledger.wallet,
        wallet=wallet,  # without the key, stuck sends are reported, not replaced
        max_gas_price_wei=s.max_gas_price_wei,
        stuck_after=timedelta(seconds=s.stuck_after_seconds),
        confirmations=s.confirmations,
    )
    print(json.dumps(report.as_dict()))
    return _exit_code(report)


def cmd_status(args: argparse.Namespace, s: Settings) -> int:
    rows: list[dict[str, Any]] = []
    for r in sorted(
        configured_ledger(s).payments().values(), key=lambda r: (r["status"], r["nonce"] or 0)
    ):
        rows.append(
            {
                "payment_id": r["payment_id"],
                "status": r["status"],
                "partition": r["partition"],
                "eth_address": r["eth_address"],
                "eth": eth(int(r["amount_wei"])),
                "amount_wei": int(r["amount_wei"]),
                "nonce": r["nonce"],
                "tx_hash": r["tx_hash"],
                "recorded_at": r["recorded_at"].isoformat() if r["recorded_at"] else None,
            }
        )
    if args.format == "table":
        for r in rows:
            r.pop("amount_wei")
    emit(rows, args.format)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("payouts", help="plan, execute, recover and inspect payouts")
    ps = p.add_subparsers(dest="payouts_command", required=True)
    q = ps.add_parser("plan", help="build and save a payout plan; prints its hash and summary")
    q.set_defaults(handler=cmd_plan)
    q = ps.add_parser("execute", help="pay an approved plan")
    q.add_argument("--plan", required=True, help="the plan's SHA-256")
    q.add_argument("--i-approve", metavar="HASH", help="approve it here (logged as approver)")
    q.add_argument("--approver", metavar="NAME", help="your name, recorded beside your OS account")
    q.add_argument("--receipt-timeout", type=float, default=120.0)
    q.set_defaults(handler=cmd_execute)
    q = ps.add_parser("recover", help="resolve signed/broadcast payments by their tx hash")
    q.set_defaults(handler=cmd_recover)
    q = ps.add_parser(
        "reconcile", help="rebuild ledger records the chain shows were lost (needs --i-confirm)"
    )
    q.add_argument("--i-confirm", action="store_true", help="record what was found")
    q.add_argument("--from-block", type=int, default=None, help="scan from this block")
    q.set_defaults(handler=cmd_reconcile)
    q = ps.add_parser("status", help="open, confirmed, failed and blocked payments")
    format_arg(q)
    q.set_defaults(handler=cmd_status)
