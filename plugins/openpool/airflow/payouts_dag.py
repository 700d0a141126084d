"""The ``openpool_payouts`` DAG: plan, wait for a person to approve, pay exactly that plan.

``recover → plan → approve → execute → confirm → report``. Never triggered by ingest: run it
by hand, or let its schedule (default every 4 h) plan and then wait for approval. ``approve``
is the standard provider's Human-in-the-loop :class:`ApprovalOperator`; its result is bound
to the plan's SHA-256, and ``execute`` pays only a plan whose stored content still hashes to
it. Building the DAG does no I/O, reads no Variable or connection, and imports no payout
code (``openpool.payouts`` and web3 are imported inside the tasks), so parsing stays cheap.

The hot wallet's key is decrypted only inside ``execute`` (and never returned, logged or
pushed to XCom: :class:`~openpool.payouts.keys.HotWallet` cannot even be pickled). Every
other task needs only the wallet's public address (``HOT_WALLET_ADDRESS`` or the keystore's
public ``address`` field).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, PokeReturnValue, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from openpool.airflow.approval import BODY, SUBJECT, PlanApprovalOperator, authorise
from openpool.airflow.factory import DEFAULT_ARGS
from openpool.airflow.failures import unretried

if TYPE_CHECKING:
    from openpool.config import Settings
    from openpool.payouts.ledger import Ledger
    from openpool.storage import ObjectStore

log = logging.getLogger(__name__)

DAG_ID = "openpool_payouts"
TASKS = ("recover", "plan", "approve", "execute", "confirm", "report")

# execute: fewer retries, and only for transient trouble (RPC down, gas above the cap, wallet
# short). It is idempotent -- every payment's nonce and signed bytes are committed to the
# ledger before anything is broadcast, so a retry rebroadcasts the same bytes and never signs
# a recorded payment again. A refused plan or bad configuration fails at once, unretried.
EXECUTE_RETRIES = 2

DOC = """\
### Payouts

Pays workers their earnings from the hot wallet, **only after a person approves the exact
plan**. Never triggered by ingest. Runs by manual trigger, or on its schedule ({schedule}),
which plans and then waits for approval. One run at a time, no catch-up.

Tasks:
- `recover`: settles payments a previous run left `signed`/`broadcast` (by tx hash;
  rebroadcasts the recorded bytes, never re-signs). A nonce taken by another transaction is
  marked **needs_investigation** and the worker is blocked until someone looks.
- `plan`: payable = earnings - paid - in flight, per worker and partition, over the
  threshold and the minimum interval, capped per payment and per run. Written
  content-addressed to `plans/<sha256>.json` in the state bucket. Nothing to pay: the
  rest of the run is *skipped*.
- `approve`: Human-in-the-loop. Open **Required Actions** (or the task) and read the
  plan: number of payments, total ETH, the ten largest, the hot wallet's balance and the
  plan hash. **Approve** takes two steps: type the plan hash's first 8 characters into
  the form, then click it; it pays exactly that plan (Approve without them fails the task
  and sends nothing). **Reject** (the highlighted default) fails the task, sends nothing
  and is recorded: that plan is never executed, not even with the CLI's `--i-approve`.
  No answer within {timeout} fails the task, sends nothing and records nothing (Airflow's
  own Required Actions page then shows its default, Reject, "from" nobody). The answer
  (decision, person, time) is recorded in `approvals/<hash>.json`, logged by `report` and
  listed on the OpenPool page; that file is never the authority to pay.
- `execute`: pays only on this run's own answer (the `approve` task's result in this run,
  in state success in Airflow), loads the plan by the approved hash and refuses it if its
  content no longer hashes to that name (tampering) or it was ever rejected, checks
  the gas price cap and the wallet balance, signs and records every payment before
  broadcasting it, and waits up to {receipt}s for receipts. Retried only for transient
  trouble (RPC, gas above the cap, wallet short); safe to retry, it never pays twice.
- `confirm`: a sensor in reschedule mode (no worker slot held while it waits): every
  {poll}s it recovers again to settle receipts that came late, until nothing is open or
  {confirm} has passed; what is still open then is reported pending (the run does not
  fail; the next run's `recover` settles it).
- `report`: confirmed / failed / pending / needs_investigation for the plan, logged at
  ERROR if anything needs investigation.

Configuration (environment, each overridable by a same-named Variable):
`OPENPOOL_STATE_URI`, `ETH_RPC_ENDPOINT`, `CHAIN_ID`, `OPENPOOL_PARTITIONS`,
`HOT_WALLET_KEYSTORE` + `HOT_WALLET_PASSWORD_FILE` (files on the workers; the key is
decrypted only inside `execute`), `PAYMENT_THRESHOLD_WEI`, `MAX_PAYMENT_WEI`,
`MAX_RUN_WEI`, `MIN_PAYOUT_INTERVAL_SECONDS`, `MAX_GAS_PRICE_WEI`.
"""


def _settings() -> Settings:
    """Today's payout settings (imported here: runtime is task-time code, not parse-time)."""
    from openpool.airflow.runtime import payout_settings

    return payout_settings()


def _run_key(step: str) -> str:
    ctx = get_current_context()
    return f"{ctx['dag'].dag_id}/{ctx['run_id']}/{step}/try{ctx['ti'].try_number}"


def _ledger(s: Settings, aws_conn_id: str) -> tuple[ObjectStore, Ledger]:
    from openpool.airflow.runtime import store
    from openpool.errors import ConfigError
    from openpool.payments import wallet_address
    from openpool.payouts.ledger import Ledger

    address = wallet_address(s)
    if address is None:
        raise ConfigError(
            "the hot wallet's address is unknown: set HOT_WALLET_KEYSTORE (its public address "
            "field is read) or HOT_WALLET_ADDRESS"
        )
    state = store(s.state_uri, aws_conn_id)
    return state, Ledger(state, address)


def _plan_summary(rows: list[dict[str, Any]], plan_hash: str) -> dict[str, Any]:
    """Each payment of ``plan_hash`` by its latest status (``rows``: the ledger's current
    records), plus wallet-wide investigations."""
    from openpool.money import eth
    from openpool.payments import CONFIRMED, FAILED, INVESTIGATE, OPEN

    mine = [r for r in rows if r["plan_hash"] == plan_hash]
    paid = sum(int(r["amount_wei"]) for r in mine if r["status"] == CONFIRMED)
    return {
        "plan_hash": plan_hash,
        "confirmed": sum(1 for r in mine if r["status"] == CONFIRMED),
        "failed": sum(1 for r in mine if r["status"] == FAILED),
        "pending": sum(1 for r in mine if r["status"] in OPEN),
        "needs_investigation": sum(1 for r in mine if r["status"] == INVESTIGATE),
        "confirmed_eth": eth(paid),
        "wallet_needs_investigation": sorted(
            r["payment_id"] for r in rows if r["status"] == INVESTIGATE
        ),
    }


def _log_payments(rows: list[dict[str, Any]], plan_hash: str) -> None:
    """One log line per payment of the plan: status, amount, worker, partition, tx hash."""
    from openpool.money import eth

    mine = [r for r in rows if r["plan_hash"] == plan_hash]
    for r in sorted(mine, key=lambda r: (r["nonce"] is None, r["nonce"] or 0)):
        log.info(
            "payment %s %s: %s ETH to %s (%s), nonce %s, tx %s",
            r["payment_id"],
            r["status"],
            eth(int(r["amount_wei"])),
            r["eth_address"],
            r["partition"],
            r["nonce"],
            r["tx_hash"] or "-",
        )


def build_payouts_dag(
    schedule: timedelta | str | None = timedelta(hours=4),
    approval_timeout: timedelta = timedelta(hours=12),
    aws_conn_id: str = "aws_default",
    receipt_timeout: timedelta = timedelta(minutes=2),
    confirm_timeout: timedelta = timedelta(minutes=10),
    confirm_poll: timedelta = timedelta(seconds=15),
    approvers: list[dict[str, str]] | None = None,
    start_date: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    default_args: dict[str, Any] | None = None,
) -> DAG:
    """The payouts DAG (see the module docstring). ``approvers``: HITL users ({id, name})
    allowed to respond; by default anyone with access to the DAG's HITL details."""
    args = {**DEFAULT_ARGS, **(default_args or {})}
    with DAG(
        dag_id=DAG_ID,
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        default_args=args,
        tags=["openpool", "payouts", "human-in-the-loop"],
        doc_md=DOC.format(
            schedule=schedule or "manual only",
            timeout=approval_timeout,
            receipt=int(receipt_timeout.total_seconds()),
            confirm=confirm_timeout,
            poll=int(confirm_poll.total_seconds()),
        ),
    ) as dag:

        @task
        def recover() -> dict[str, Any]:
            def run() -> dict[str, Any]:
                from openpool.payouts.chain import Chain
                from openpool.payouts.execute import recover as recover_open

                s = _settings()
                _, ledger = _ledger(s, aws_conn_id)
                rep = recover_open(
                    ledger,
                    Chain(s.eth_rpc_endpoint),
                    ledger.wallet,
                    run_id=_run_key("recover"),
                    confirmations=s.confirmations,
                )
                if rep.investigate:
                    log.error("PAYMENTS NEED INVESTIGATION (workers blocked): %s", rep.investigate)
                return rep.as_dict()

            return unretried(run)()

        @task
        def plan(recovered: dict[str, Any]) -> dict[str, Any]:
            def run() -> dict[str, Any]:
                from openpool.payouts.chain import Chain
                from openpool.payouts.execute import fees
                from openpool.payouts.plan import (
                    PlanRefused,
                    build_plan,
                    describe,
                    save_plan,
                    why_nothing,
                )
                from openpool.payouts.service import limits

                s = _settings()
                state, ledger = _ledger(s, aws_conn_id)
                chain = Chain(s.eth_rpc_endpoint)
                if chain.chain_id() != s.chain_id:
                    raise PlanRefused(f"the node at ETH_RPC_ENDPOINT is not chain {s.chain_id}")
                doc = build_plan(list(s.partitions), state, ledger, limits(s), s.chain_id)
                for h in doc["held"]:
                    log.warning(
                        "held back %s in %s: %s", h["eth_address"], h["partition"], h["reason"]
                    )
                if not doc["payments"]:
                    why = why_nothing(doc) + "; no plan written, nobody asked"
                    log.info("%s", why)  # the reason, in words, before Airflow's skip line
                    raise AirflowSkipException(why)
                plan_hash = save_plan(state, doc)
                try:
                    max_fee: int | None = fees(chain, s.max_gas_price_wei)[0]
                except Exception as exc:  # shown as unknown; execute checks the cap itself
                    log.warning("no fee estimate for the approver: %s", exc)
                    max_fee = None
                described = describe(
                    doc,
                    plan_hash,
                    chain.balance(ledger.wallet),
                    max_fee,
                    timedelta(seconds=s.plan_max_age_seconds),
                )
                log.info("plan %s written: %s", plan_hash, described)
                return described

            return unretried(run)()

        approve = PlanApprovalOperator(
            task_id="approve",
            subject=SUBJECT,
            body=BODY.replace("__TIMEOUT__", str(approval_timeout)),
            plan_hash="{{ ti.xcom_pull(task_ids='plan')['plan_hash'] }}",
            aws_conn_id=aws_conn_id,
            response_timeout=approval_timeout,
            assigned_users=approvers,
            # Reject, a bare Approve and a timeout each fail this task (execute_complete),
            # so everything after it is upstream_failed. Never retried: a retry would ask
            # again. (Should a Reject ever only skip, skip all downstream whatever its rules.)
            ignore_downstream_trigger_rules=True,
            retries=0,
        )

        @task(retries=EXECUTE_RETRIES)
        def execute(described: dict[str, Any], decision: dict[str, Any] | None) -> dict[str, Any]:
            def run() -> dict[str, Any]:
                from openpool.payouts.approvals import record_approval, refuse_if_rejected
                from openpool.payouts.chain import Chain
                from openpool.payouts.execute import execute as pay
                from openpool.payouts.keys import load_wallet
                from openpool.payouts.ledger import Ledger
                from openpool.payouts.plan import load_plan
                from openpool.payouts.service import limits

                plan_hash = described["plan_hash"]
                who = authorise(decision, plan_hash)
                s = _settings()
                state, _ = _ledger(s, aws_conn_id)
                refuse_if_rejected(state, plan_hash)
                ctx = get_current_context()
                record_approval(
                    state, plan_hash, f"airflow:{who}", f"HITL {ctx['dag'].dag_id}/{ctx['run_id']}"
                )
                doc = load_plan(state, plan_hash)  # refuses content that no longer hashes to it
                wallet = load_wallet(s.hot_wallet_keystore, s.hot_wallet_password_file)
                rep = pay(
                    doc,
                    plan_hash,
                    Ledger(state, wallet.address),
                    Chain(s.eth_rpc_endpoint),
                    wallet,
                    s.max_gas_price_wei,
                    receipt_timeout=receipt_timeout.total_seconds(),
                    run_id=_run_key("execute"),
                    limits=limits(s),  # re-checked under today's settings, not the plan's
                    max_plan_age=timedelta(seconds=s.plan_max_age_seconds),
                    confirmations=s.confirmations,
                )
                return {**rep.as_dict(), "approved_by": who}

            return unretried(run)()

        # A reschedule-mode sensor: one recover round per poke, and the worker slot is
        # free between pokes (the task waits up_for_reschedule, not asleep in a worker).
        # Done when nothing is open any more or, at confirm_timeout, with what is still
        # open counted as pending: report then logs the run incomplete, as before; the
        # run does not fail. The sensor's own timeout is only a backstop past that.
        @task.sensor(
            poke_interval=confirm_poll.total_seconds(),
            timeout=(confirm_timeout + confirm_poll + timedelta(minutes=1)).total_seconds(),
            mode="reschedule",
        )
        def confirm(executed: dict[str, Any]) -> PokeReturnValue:
            def run() -> PokeReturnValue:
                from openpool.payouts.chain import Chain
                from openpool.payouts.execute import recover as recover_open

                ctx = get_current_context()
                # the first poke's start (None on the first poke): the deadline's origin
                started = ctx["ti"].get_first_reschedule_date(ctx) or datetime.now(UTC)
                rounds = ctx.get("task_reschedule_count", 0) + 1  # this poke's round
                s = _settings()
                _, ledger = _ledger(s, aws_conn_id)
                chain = Chain(s.eth_rpc_endpoint)
                rep = recover_open(
                    ledger,
                    chain,
                    ledger.wallet,
                    run_id=_run_key("confirm"),
                    confirmations=s.confirmations,
                )
                out_of_time = datetime.now(UTC) - started >= confirm_timeout
                if rep.pending and out_of_time:
                    log.warning(
                        "%s payment(s) still open after %s (%s rounds); report counts them "
                        "pending, the next run's recover settles them",
                        rep.pending,
                        confirm_timeout,
                        rounds,
                    )
                return PokeReturnValue(
                    is_done=rep.pending == 0 or out_of_time,
                    xcom_value={**rep.as_dict(), "rounds": rounds},
                )

            return unretried(run)()

        @task
        def report(described: dict[str, Any], confirmed: dict[str, Any]) -> dict[str, Any]:
            def run() -> dict[str, Any]:
                from openpool.payouts.approvals import recorded

                s = _settings()
                state, ledger = _ledger(s, aws_conn_id)
                answer = recorded(state, described["plan_hash"]) or {}
                log.info(  # the answer, where an auditor reads the run's outcome
                    "plan %s: %s by %s at %s (%s)",
                    described["plan_hash"],
                    answer.get("decision", "no decision recorded"),
                    answer.get("approver", "-"),
                    answer.get("decided_at", "-"),
                    answer.get("via", "-"),
                )
                rows = list(ledger.payments().values())  # read once, for both
                summary = _plan_summary(rows, described["plan_hash"])
                summary["answer"] = {
                    k: answer.get(k) for k in ("decision", "approver", "decided_at", "via")
                }
                _log_payments(rows, described["plan_hash"])
                if summary["needs_investigation"] or summary["wallet_needs_investigation"]:
                    log.error(
                        "PAYOUTS NEED INVESTIGATION: %s payment(s) of plan %s, %s in the wallet "
                        "(workers blocked until resolved): %s",
                        summary["needs_investigation"],
                        described["plan_hash"],
                        len(summary["wallet_needs_investigation"]),
                        summary["wallet_needs_investigation"],
                    )
                elif summary["pending"] or summary["failed"]:
                    log.warning("payout run incomplete: %s", summary)
                else:
                    log.info("payout run complete: %s", summary)
                return summary

            return unretried(run)()

        # TaskFlow calls return an XComArg while the DAG is built; the task gets the dict.
        described = plan(recover())  # type: ignore[arg-type]
        described >> approve
        report(described, confirm(execute(described, approve.output)))  # type: ignore[arg-type]
    return dag
