"""``make demo``: the whole money path on embedded defaults, end to end, in a few minutes.

Generates two hours of messy traffic for every active partition (duplicate and late
files, a truncated file, invalid events, an orchestrator reset, AI jobs split across
files), ingests it, refreshes analytics, plans payouts, approves the plan (logged as the
demo's approval), pays the workers on a local anvil chain (chain id 42161) from a funded
hot wallet, and prints what happened. Everything lives under ``var/demo/`` (file://).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

from tabulate import tabulate

from openpool.analytics.exports import eth
from openpool.analytics.refresh import refresh
from openpool.ingest.generator import Mess, generate, write
from openpool.ingest.run import ingest
from openpool.partitions import ACTIVE_PARTITIONS, Partition
from openpool.payouts.approvals import record_approval
from openpool.payouts.chain import Chain
from openpool.payouts.execute import execute, recover
from openpool.payouts.keys import load_wallet, write_keystore
from openpool.payouts.ledger import Ledger, partition_payouts
from openpool.payouts.plan import Limits, build_plan, describe, load_plan, save_plan
from openpool.storage import LocalStore

REPO = Path(__file__).resolve().parents[2]
RATE = Fraction(1, 4)
START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
MESS = Mess(
    duplicate_events=0.02,
    reupload_files=0.05,
    late_files=0.05,
    truncated_files=1,
    invalid_events=0.005,
    split_ai_jobs=0.2,
    resets=1,
    orphan_ai_jobs=0.01,
)
LIMITS = Limits(
    threshold_wei=10**13,
    max_payment_wei=10**18,
    max_run_wei=10 * 10**18,
    min_interval=timedelta(hours=24),
)


def _table(rows: list[list[object]], headers: list[str]) -> str:
    """Exact ETH strings must stay strings (tabulate would parse them as floats)."""
    return tabulate(rows, headers=headers, disable_numparse=True)


def _anvil(port: int, log: Path) -> subprocess.Popen[bytes]:
    binary = os.environ.get("OPENPOOL_ANVIL_BIN", str(REPO / ".tools/bin/anvil"))
    proc = subprocess.Popen(
        [
            binary,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--chain-id",
            "42161",
            "--block-time",
            "1",
            "--silent",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        try:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}",
                data=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=1).close()  # noqa: S310 - fixed http URL
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("anvil did not start")


def main() -> int:
    t0 = time.monotonic()
    root = Path(os.environ.get("OPENPOOL_DEMO_DIR", REPO / "var" / "demo"))
    shutil.rmtree(root, ignore_errors=True)
    events, state, metrics = (LocalStore(root / n) for n in ("events", "state", "metrics"))
    parts = [Partition.parse(p) for p in ACTIVE_PARTITIONS]

    print(f"1. generating two hours of traffic for {len(parts)} partitions (with mess) ...")
    for i, part in enumerate(parts):
        write(
            generate(
                part,
                START,
                timedelta(hours=2),
                workers=6,
                events_per_second=4,
                flush_seconds=300,
                seed=100 + i,
                mess=MESS,
            ),
            events,
        )

    print("2. ingesting each partition (exactly once) and refreshing analytics ...")
    rows = []
    for part in parts:
        rep = ingest(part, events, state, RATE)
        again = ingest(part, events, state, RATE)  # a rerun finds nothing new
        assert again.counts.events_read == 0
        refresh(part, state, metrics, LIMITS.threshold_wei)
        c = rep.counts
        rows.append(
            [
                str(part),
                c.files_ingested,
                c.files_quarantined,
                c.events_read,
                c.events_accepted,
                c.events_duplicate,
                c.events_rejected,
                rep.snapshot_version,
            ]
        )
    print(
        _table(
            rows,
            headers=[
                "partition",
                "files",
                "quarantined",
                "read",
                "accepted",
                "duplicate",
                "rejected",
                "version",
            ],
        )
    )

    print("\n3. starting anvil (chain id 42161, 1 s blocks) and funding the hot wallet ...")
    with socket.socket() as sock:  # a free loopback port for this run's chain
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    anvil = _anvil(port, root / "anvil.log")
    try:
        rpc = f"http://127.0.0.1:{port}"
        chain = Chain(rpc)
        pw = root / "hot-wallet.password"
        pw.write_text(secrets.token_urlsafe(24))
        keystore = root / "hot-wallet.json"
        address = write_keystore(secrets.token_bytes(32), pw.read_text(), keystore)
        chain.rpc("anvil_setBalance", [address, hex(100 * 10**18)])
        wallet = load_wallet(str(keystore), str(pw))
        ledger = Ledger(state, wallet.address)
        recover(ledger, chain, wallet.address)

        print("4. planning payouts ...")
        plan = build_plan(parts, state, ledger, LIMITS, chain.chain_id())
        h = save_plan(state, plan)
        d = describe(plan, h, chain.balance(wallet.address))
        print(
            f"   plan {h}: {d['payments']} payments, {d['total_eth']} ETH, "
            f"wallet {d['wallet_balance_eth']} ETH"
        )
        record_approval(state, h, "demo", "make demo")
        print(f"   APPROVED BY THE DEMO (not a person): plan {h[:16]}…")

        print("5. paying on anvil ...")
        t_pay = time.monotonic()
        rep = execute(load_plan(state, h), h, ledger, chain, wallet, 10**11, receipt_timeout=60)
        print(
            f"   {rep.confirmed} confirmed, {rep.failed} failed, {rep.pending} pending in "
            f"{time.monotonic() - t_pay:.1f}s"
        )
        log = Ledger.log(ledger.latest())
        pays = [
            [r["partition"], r["eth_address"], eth(int(r["amount_wei"])), r["status"], r["tx_hash"]]
            for r in ledger.payments().values()
        ]
        print(
            _table(
                pays,
                headers=["partition", "worker", "ETH", "status", "tx hash"],
            )
        )

        print("\n6. per partition, after payouts:")
        rows = []
        for part in parts:
            s = refresh(
                part,
                state,
                metrics,
                LIMITS.threshold_wei,
                payouts=partition_payouts(log, str(part)),
            ).summary.aggregates
            snap_props = s
            rows.append(
                [
                    str(part),
                    snap_props["workers"],
                    eth(s["total_fees_wei"]),
                    eth(s["pool_commission_wei"]),
                    eth(s["paid_wei"]),
                    eth(s["payable_wei"]),
                    eth(s["unattributed_fees_wei"]),
                ]
            )
        print(
            _table(
                rows,
                headers=[
                    "partition",
                    "workers",
                    "fees ETH",
                    "commission ETH",
                    "paid ETH",
                    "pending ETH",
                    "unattributed ETH",
                ],
            )
        )
    finally:
        anvil.terminate()
    print(f"\nDone in {time.monotonic() - t0:.0f}s. State, exports and plans are under {root}.")
    print(
        "Inspect with: .venv/bin/openpool status|balances|summary|performance "
        f"(OPENPOOL_STATE_URI={root / 'state'})."
    )
    print("The Airflow DAGs are in dags/; see README 'Running in Airflow'.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
