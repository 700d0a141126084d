"""``make demo``: the whole job end to end through Airflow, on embedded defaults.

Generates a day of messy traffic for every active partition (duplicate, re-uploaded and
late files, a truncated file, invalid events, an orchestrator reset, AI jobs split across
files), then runs the real DAGs of ``dags/`` in a local Airflow 3 (``dag.test()``, SQLite
metadata under ``var/demo/airflow``): every ingest DAG until its partition has nothing
new, the pool summary, and the payouts DAG, whose approval request the demo answers
through Airflow's REST API as the SimpleAuthManager user ``demo`` -- logged as the
demo's approval, not a person's. Payments go to a local anvil chain (chain id 42161)
from a funded hot wallet. Everything lives under ``var/demo/`` (``OPENPOOL_DEMO_DIR``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from tabulate import tabulate

from openpool.airflow.rest import AirflowAPI
from openpool.analytics.refresh import refresh
from openpool.config import parse_rate
from openpool.devstack.airflow_home import airflow_env, write_users
from openpool.devstack.anvil import anvil
from openpool.devstack.net import free_port
from openpool.devstack.wallet import funded_hot_wallet
from openpool.ingest.discovery import list_partition
from openpool.ingest.service import status_row
from openpool.ingest.steps import StepEnv, has_new_files
from openpool.money import eth
from openpool.partitions import ACTIVE_PARTITIONS, Partition
from openpool.payments import partition_payouts
from openpool.payouts.approvals import approval_key
from openpool.payouts.ledger import Ledger
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from openpool.traffic import Mess, count_events, generate, write

REPO = Path(__file__).resolve().parents[3]
DAY = datetime(2026, 11, 27, tzinfo=UTC)  # one UTC day of traffic
# Volume: 6 workers per partition at 1 event/s, flushed every 5 minutes: ~86k events and
# ~300 files per partition, ~430k events in all. It keeps `make demo` under 3 minutes on
# two cores with every ingest run going through Airflow (each DAG needs two runs: a run
# takes at most 250 files).
TRAFFIC: dict[str, Any] = {"workers": 6, "events_per_second": 1.0, "flush_seconds": 300}
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
RATE = "0.25"
# A demo day earns each worker about 1e-4 ETH, under the 0.01 ETH production threshold.
THRESHOLD_WEI = 10**13
APPROVER = "demo"
PAYOUTS, SUMMARY = "openpool_payouts", "openpool_summary"
MAX_RUNS = 10  # per ingest DAG; a day needs two


def _table(rows: list[list[object]], headers: list[str]) -> str:
    """Exact ETH strings must stay strings (tabulate would parse them as floats)."""
    return tabulate(rows, headers=headers, disable_numparse=True)


def _dag_id(part: Partition) -> str:
    return f"openpool_ingest__{part.slug}"  # as openpool.airflow.factory names it


def _generate(parts: list[Partition], events: LocalStore) -> None:
    print(f"1. generating a day of traffic ({DAY:%Y-%m-%d}) for {len(parts)} partitions")
    print("   with mess: duplicate, re-uploaded and late files, a truncated file, invalid")
    print("   events, an orchestrator reset, AI jobs split across files, orphan AI jobs ...")
    n_files = n_events = 0
    for i, part in enumerate(parts):
        files = generate(part, DAY, timedelta(days=1), seed=100 + i, mess=MESS, **TRAFFIC)
        n_files += write(files, events)
        n_events += sum(count_events(f.body) for f in files)
    print(f"   {n_files:,} files, {n_events:,} events (re-sent ones included)")


def _environment(root: Path, rpc: str, wallet_env: dict[str, str]) -> str:
    """Put the demo's settings in os.environ (before Airflow is imported); returns the
    approver's password."""
    home = root / "airflow"
    home.mkdir(parents=True)
    password = secrets.token_urlsafe(16)
    write_users(home / "passwords.json", {APPROVER: password})
    os.environ.update(airflow_env(home, {APPROVER: "admin"}, log_level="ERROR"))
    os.environ.update(
        {
            "OPENPOOL_EVENTS_URI": f"file://{root / 'events'}",
            "OPENPOOL_ARCHIVE_URI": f"file://{root / 'archive'}",
            "OPENPOOL_STATE_URI": f"file://{root / 'state'}",
            "OPENPOOL_METRICS_URI": f"file://{root / 'metrics'}",
            "POOL_COMMISSION_RATE": RATE,
            "ETH_RPC_ENDPOINT": rpc,
            "CHAIN_ID": "42161",
            "OPENPOOL_EXPLORER_URL": "",  # a local anvil chain: no public explorer links
            "PAYMENT_THRESHOLD_WEI": str(THRESHOLD_WEI),
            **wallet_env,
        }
    )
    for name in ("AWS_ENDPOINT_URL", "OPENPOOL_PARTITIONS"):  # embedded defaults only
        os.environ.pop(name, None)
    return password


def _ingest(
    af: ModuleType, dags: dict[str, Any], api: AirflowAPI, parts: list[Partition], root: Path
) -> None:
    print("3. ingesting every partition through its Airflow DAG (dags/openpool_ingest.py),")
    print("   run after run until nothing new is left (a run takes at most 250 files):")
    events, state, archive = (LocalStore(root / n) for n in ("events", "state", "archive"))
    runs: dict[Partition, int] = {}
    for part in parts:
        env = StepEnv(part, events, state, archive, parse_rate(RATE))
        for n in range(1, MAX_RUNS + 1):
            run = af.run_dag(dags[_dag_id(part)])
            if run.state != "success" or set(run.tasks.values()) != {"success"}:
                raise SystemExit(f"{run.dag_id} {run.run_id} ended {run.state}: {run.tasks}")
            parsed = api.xcom(run.dag_id, run.run_id, "parse")
            committed = api.xcom(run.dag_id, run.run_id, "commit")
            version = committed["snapshot_version"]
            print(
                f"   {run.dag_id:38} run {n}: {run.state}, {parsed['files']:>3} files, "
                f"{parsed['events_read']:>6,} events read -> snapshot v{version}"
            )
            runs[part] = n
            if not has_new_files(env, list_partition(events, part)):
                break
        else:
            raise SystemExit(f"{_dag_id(part)}: still files left after {MAX_RUNS} runs")
    first = parts[0]
    before = SnapshotStore(state, first).latest_version()
    again = af.run_dag(dags[_dag_id(first)])
    if not again.skipped or SnapshotStore(state, first).latest_version() != before:
        raise SystemExit(f"a rerun with nothing new was not a no-op: {again}")
    print(
        f"   {again.dag_id:38} once more: skipped at wait_for_events (nothing new), still v{before}"
    )
    rows = []
    for part in parts:
        s = status_row(SnapshotStore(state, part).latest())
        rows.append(
            [
                str(part),
                runs[part],
                s["files_ingested"],
                s["files_quarantined"],
                s["events_read"],
                s["events_accepted"],
                s["events_duplicate"],
                s["events_rejected"],
                s["snapshot_version"],
            ]
        )
    headers = ["partition", "runs", "files", "quarantined", "read", "accepted", "duplicate"]
    print(_table(rows, [*headers, "rejected", "version"]))


def _pay(af: ModuleType, dags: dict[str, Any], api_url: str, password: str) -> dict[str, Any]:
    print(f"\n5. payouts: the {PAYOUTS} DAG plans, asks for approval, pays, confirms ...")

    def announce(detail: dict[str, Any]) -> None:
        ti = detail["task_instance"]
        print(f"   approval requested: {detail['subject']}")
        print(
            f"   APPROVED BY THE DEMO, not by a person: Airflow user '{APPROVER}' answers "
            f"'Approve' (the plan hash's first 8\n   characters typed in confirm_plan) through "
            f"the REST API a person's UI uses: PATCH /api/v2/dags/"
            f"{PAYOUTS}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/-1/hitlDetails"
        )

    approver = af.Approver(
        lambda: AirflowAPI(api_url, APPROVER, password), PAYOUTS, "Approve", announce
    )
    approver.start()
    run = af.run_dag(dags[PAYOUTS])
    approver.result()
    if set(run.tasks.values()) != {"success"}:
        raise SystemExit(f"{PAYOUTS} {run.run_id} ended {run.state}: {run.tasks}")
    api = AirflowAPI(api_url, APPROVER, password)
    plan, executed, report = (
        api.xcom(PAYOUTS, run.run_id, t) for t in ("plan", "execute", "report")
    )
    print(
        f"   plan {plan['plan_hash'][:16]}…: {plan['payments']} payments, {plan['total_eth']} ETH; "
        f"approved by '{executed['approved_by']}'; {report['confirmed']} confirmed, "
        f"{report['failed']} failed, {report['pending']} pending"
    )
    return {"plan": plan, "report": report, "run_id": run.run_id}


def _report(root: Path, parts: list[Partition], wallet: str, plan_hash: str) -> None:
    state, metrics = LocalStore(root / "state"), LocalStore(root / "metrics")
    ledger = Ledger(state, wallet)
    approval = json.loads(state.get(approval_key(plan_hash)))
    print(f"   approval record: {approval['approver']} via {approval['via']}")
    pays = sorted(ledger.payments().values(), key=lambda r: (r["partition"], -int(r["amount_wei"])))
    print(
        _table(
            [
                [
                    r["partition"],
                    r["eth_address"],
                    eth(int(r["amount_wei"])),
                    r["status"],
                    r["tx_hash"],
                ]
                for r in pays
            ],
            ["partition", "worker", "ETH", "status", "tx hash"],
        )
    )
    print("\n6. per partition, after payouts (analytics refreshed with the payments):")
    log = Ledger.log(ledger.latest())
    rows = []
    for part in parts:
        snap = SnapshotStore(state, part).latest()
        agg = refresh(
            part, state, metrics, THRESHOLD_WEI, payouts=partition_payouts(log, str(part))
        ).summary.aggregates
        rows.append(
            [
                str(part),
                agg["workers"],
                eth(agg["total_fees_wei"]),
                eth(agg["pool_commission_wei"]),
                eth(agg["paid_wei"]),
                eth(agg["payable_wei"]),
                status_row(snap)["events_rejected"],
                eth(agg["unattributed_fees_wei"]),
            ]
        )
    print(
        _table(
            rows,
            [
                "partition",
                "workers",
                "fees ETH",
                "commission ETH",
                "paid ETH",
                "pending ETH",
                "rejected events",
                "unattributed ETH",
            ],
        )
    )


def main() -> int:
    t0 = lap = time.monotonic()

    def took() -> None:
        nonlocal lap
        print(f"   ({time.monotonic() - lap:.0f}s)")
        lap = time.monotonic()

    root = Path(os.environ.get("OPENPOOL_DEMO_DIR", REPO / "var" / "demo")).resolve()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    parts = [Partition.parse(p) for p in ACTIVE_PARTITIONS]
    _generate(parts, LocalStore(root / "events"))
    took()

    print("2. starting anvil (chain id 42161, 1 s blocks), a funded hot wallet, and Airflow")
    with anvil(root / "logs" / "anvil.log") as rpc:
        wallet = funded_hot_wallet(root / "wallet", rpc)
        password = _environment(root, rpc, wallet.env())
        from openpool.airflow import demo as af  # Airflow reads the environment set above

        af.migrate()
        dags = af.load_dags(REPO / "dags")
        print(
            f"   anvil at {rpc}; Airflow home {root / 'airflow'} with {len(dags)} DAGs from dags/"
        )
        with af.api_server(free_port()) as api_url:
            api = AirflowAPI(api_url, APPROVER, password)
            took()
            _ingest(af, dags, api, parts, root)
            took()
            print(f"\n4. pool-wide analytics: the {SUMMARY} DAG ...")
            summary = af.run_dag(dags[SUMMARY])
            print(f"   {SUMMARY}: {summary.state} -> {root / 'metrics/pool/worker_summary.json'}")
            took()
            paid = _pay(af, dags, api_url, password)
        _report(root, parts, wallet.address, paid["plan"]["plan_hash"])
        took()

    print(f"\nDone in {time.monotonic() - t0:.0f}s. State, exports, plans and logs: {root}")
    print(
        "Inspect with .venv/bin/openpool status|balances|summary|performance "
        f"(OPENPOOL_STATE_URI={root / 'state'})."
    )
    print(
        "To click through it in the Airflow UI (sensor waits, runs, backfills, the approval):\n"
        "  make up     # Airflow, S3 and anvil on 127.0.0.1; prints the URL, user and password\n"
        "  make down   # stops them"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
