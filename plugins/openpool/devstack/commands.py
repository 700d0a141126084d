"""``python -m openpool.devstack up|down|status``: the ``make up`` / ``make down`` commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from openpool.devstack import stack as st

REPO = Path(__file__).resolve().parents[3]
DEFAULT_DIR = REPO / "var" / "up"


def _print_stack(s: st.Stack) -> None:
    d = Path(s.directory)
    try:
        shown = d.relative_to(Path.cwd())
    except ValueError:
        shown = d
    running = (
        f"running: {len(s.unpaused)} (ingest DAGs, openpool_summary, openpool_alerts)."
        if s.unpaused
        else "all paused (--paused): unpause what should run."
    )
    stop = "make down" if d == DEFAULT_DIR else f"python -m openpool.devstack --dir {shown} down"
    executor = s.executor
    if s.workers:
        executor += f" on PostgreSQL + Redis, {len(s.workers)} workers in {shown}/workers/"
    print(
        f"""
OpenPool local stack is up, everything on 127.0.0.1:
  Airflow UI + API   {s.airflow_url}
                     user: {s.username}   password: {s.password()}
  executor           {executor}
  S3 (moto server)   {s.s3_url}   buckets: {", ".join(st.BUCKETS)}
  anvil (42161)      {s.rpc_url}   hot wallet {s.hot_wallet} (100 ETH)
  DAGs               {len(s.dags)} loaded; {running}
                     openpool_payouts is paused: unpause it (it plans at once, then every
                     4 h) and approve its request under Required Actions.
  Files              {shown}/: logs/, pids/, airflow/ (password in airflow/passwords.json,
                     0600), wallet/ (keystore + password file, 0600), env.sh
More traffic:  source {shown}/env.sh && .venv/bin/openpool generate --all-partitions --hours 1
Stop:          {stop}"""
    )


def cmd_up(args: argparse.Namespace) -> int:
    if st.running(args.dir):
        print(f"already running under {args.dir}")
        stack = st.load(args.dir)
        if stack:
            _print_stack(stack)
        return 0
    stack = st.up(
        args.dir,
        airflow_port=args.airflow_port,
        s3_port=args.s3_port,
        rpc_port=args.rpc_port,
        hours=args.hours,
        unpause=not args.paused,
        say=lambda line: print(line, flush=True),
        executor=args.executor,
        traffic_start=args.traffic_start,
    )
    _print_stack(stack)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    done = st.down(args.dir)
    if not done:
        print(f"nothing to stop under {args.dir}")
    for name, what in done:
        print(f"{name:24} {what}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    services = st.running(args.dir)
    for svc in services:
        print(f"{svc.name:24} running (pid {svc.pid})")
    if not services:
        print(f"not running under {args.dir}")
    return 0 if services else 1


def cmd_keystore(args: argparse.Namespace) -> int:
    from openpool.devstack.wallet import new_hot_wallet

    wallet = new_hot_wallet(args.out)
    print(f"hot wallet {wallet.address}")
    print(f"  keystore       {wallet.keystore} (0600)")
    print(f"  password file  {wallet.password_file} (0600)")
    print(f"For docker compose, add to .env:  HOT_WALLET_ADDRESS={wallet.address}")
    print("Fund it before paying anyone; on the compose anvil, for example:")
    print(
        f"  cast rpc anvil_setBalance {wallet.address} 0x56bc75e2d63100000 --rpc-url http://127.0.0.1:8545"
    )
    return 0


def _hour(text: str) -> datetime:
    """An ISO date-time, read as UTC when it names no zone, on the hour."""
    when = datetime.fromisoformat(text)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m openpool.devstack", description=__doc__)
    p.add_argument("--dir", type=lambda v: Path(v).resolve(), default=DEFAULT_DIR)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Airflow, S3 and anvil in the background")
    up.add_argument("--airflow-port", type=int, default=8080, help="0: any free port")
    up.add_argument("--s3-port", type=int, default=9000, help="0: any free port")
    up.add_argument("--rpc-port", type=int, default=8545, help="0: any free port")
    up.add_argument("--hours", type=int, default=6, help="hours of generated traffic")
    up.add_argument("--paused", action="store_true", help="leave every DAG paused")
    up.add_argument(
        "--executor",
        choices=sorted(st.EXECUTORS),
        default="local",
        help="local: LocalExecutor on SQLite; celery: CeleryExecutor on PostgreSQL + Redis"
        " with two workers (Debian's postgresql and redis-server; make up EXECUTOR=celery)",
    )
    up.add_argument(
        "--traffic-start",
        type=_hour,
        default=None,
        help="first hour of generated traffic, UTC (default: --hours before this hour)",
    )
    up.set_defaults(handler=cmd_up)
    sub.add_parser("down", help="stop what up started").set_defaults(handler=cmd_down)
    sub.add_parser("status", help="what is running").set_defaults(handler=cmd_status)
    key = sub.add_parser("keystore", help="write a new hot-wallet keystore + password file")
    key.add_argument("out", type=lambda v: Path(v).resolve(), help="directory for the two files")
    key.set_defaults(handler=cmd_keystore)
    args = p.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
