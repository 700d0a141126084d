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
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from openpool.airflow.factory import DEFAULT_ARGS
from openpool.airflow.failures import unretried

if TYPE_CHECKING:
    from openpool.config import Settings
    from openpool.payouts.ledger import Ledger
    from openpool.storage import ObjectStore

log = logging.getLogger(__name__)

DAG_ID = "openpool_payouts"
TASKS = ("recover", "plan", "approve", "execute", "confirm", "report")

# Settings a same-named Airflow Variable may override, on top of openpool.airflow.runtime's.
PAYOUT_VARIABLES = (
    "HOT_WALLET_ADDRESS",
    "HOT_WALLET_KEYSTORE",
    "HOT_WALLET_PASSWORD_FILE",
    "ETH_RPC_ENDPOINT",
    "CHAIN_ID",
    "OPENPOOL_PARTITIONS",
    "PAYMENT_THRESHOLD_WEI",
    "MAX_PAYMENT_WEI",
    "MAX_RUN_WEI",
    "MIN_PAYOUT_INTERVAL_SECONDS",
    "MAX_GAS_PRICE_WEI",
    "PLAN_MAX_AGE_SECONDS",
    "STUCK_AFTER_SECONDS",
    "CONFIRMATIONS",
)

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
- `confirm`: recovers again (up to {confirm}) to settle receipts that came late.
- `report`: confirmed / failed / pending / needs_investigation for the plan, logged at
  ERROR if anything needs investigation.

Configuration (environment, each overridable by a same-named Variable):
`OPENPOOL_STATE_URI`, `ETH_RPC_ENDPOINT`, `CHAIN_ID`, `OPENPOOL_PARTITIONS`,
`HOT_WALLET_KEYSTORE` + `HOT_WALLET_PASSWORD_FILE` (files on the workers; the key is
decrypted only inside `execute`), `PAYMENT_THRESHOLD_WEI`, `MAX_PAYMENT_WEI`,
`MAX_RUN_WEI`, `MIN_PAYOUT_INTERVAL_SECONDS`, `MAX_GAS_PRICE_WEI`.
"""

_PLAN = "{% set d = ti.xcom_pull(task_ids='plan') %}"
SUBJECT = (
    _PLAN + "Pay {{ d.payments }} payments to {{ d.workers }} workers, {{ d.total_eth }} ETH? "
    "(plan {{ d.plan_hash[:12] }})"
)
BODY = (
    _PLAN
    + """\
**Payout plan** `{{ d.plan_hash }}`

| | |
|---|---|
| Payments | {{ d.payments }} |
| Workers | {{ d.workers }} (a worker paid in two partitions has two payments) |
| Total | {{ d.total_eth }} ETH |
{% set fee = d.network_fee_eth_at_most %}\
| Network fee, at most | {{ (fee ~ " ETH") if fee else "unknown (no fee estimate)" }} \
(21,000 gas a payment at today's maxFeePerGas) |
| Hot wallet balance | {{ d.wallet_balance_eth }} ETH |
| Plan made (UTC) | {{ d.created_at }} |
| Executable until (UTC) | {{ d.expires_at }}, then it is refused: make a new plan |
| Deferred to a later run (run cap) | {{ d.deferred }} |
| Held back: a repeated event ID touched them (`openpool duplicates`) | {{ d.held }} |

**The {{ d.largest | length }} largest payments**

| # | ETH (exact) | Partition | Address |
|---|---|---|---|
{% for p in d.largest %}{% set where = p.partition | replace("|", " / ") %}\
| {{ loop.index }} | {{ p.eth }} | {{ where }} | `{{ p.eth_address }}` |
{% endfor %}
**To approve**, type `{{ d.plan_hash[:8] }}` (the plan hash's first 8 characters) into the
field below, then click **Approve**: it pays exactly this plan, and `execute` refuses it if the
stored plan no longer hashes to `{{ d.plan_hash }}`. **Reject**, or no answer within
__TIMEOUT__, sends nothing.
"""
)


def payout_settings() -> Settings:
    """Environment settings with same-named Variables laid over them (runtime + payouts)."""
    from openpool.airflow.runtime import settings

    return settings(extra=PAYOUT_VARIABLES)


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


# Approve takes two steps: typing the plan's first characters into this form field, then
# the button. Reject needs nothing typed, and is the form's default (the highlighted button).
CONFIRM = "confirm_plan"
CONFIRM_CHARS = 8


def confirm_param() -> Any:
    from airflow.sdk import Param

    return Param(  # may be empty (null): the form must let Reject through untyped
        None,
        type=["null", "string"],
        maxLength=64,
        title=f"To approve: type the plan hash's first {CONFIRM_CHARS} characters",
        description=f"Approve pays only if this field holds the first {CONFIRM_CHARS} "
        "characters of the plan hash shown above. Leave it empty to reject.",
    )


def confirmed(params_input: dict[str, Any] | None, plan_hash: str) -> bool:
    """Did the approver type the first characters of ``plan_hash``?"""
    typed = str((params_input or {}).get(CONFIRM) or "").strip().lower()
    return len(plan_hash) >= CONFIRM_CHARS and typed == plan_hash[:CONFIRM_CHARS].lower()


class PlanApprovalOperator(ApprovalOperator):
    """The standard ApprovalOperator; its result also names the plan and the run it decided.

    ``plan_hash`` is rendered from the ``plan`` task's XCom, the same value the subject and
    body show the approver; ``execute`` pays the plan of that hash or nothing. Approve counts
    only with the hash's first characters typed into the form (:data:`CONFIRM`); Reject is
    the default (highlighted) option. The answer (Approve or Reject) is recorded in
    ``approvals/<hash>.json``: a rejection there is a veto no later approval overrides; the
    record is never the authority to pay. No answer in time fails the task, recording
    nothing.
    """

    template_fields = (*ApprovalOperator.template_fields, "plan_hash")

    def __init__(self, *, plan_hash: str, aws_conn_id: str = "aws_default", **kw: Any) -> None:
        # defaults: Reject is drawn solid and Approve subtle, so the two never look alike.
        # A timeout then arrives as "Reject" with timedout=True: handled as no answer below.
        super().__init__(
            defaults=[ApprovalOperator.REJECT], params={CONFIRM: confirm_param()}, **kw
        )
        self.plan_hash = plan_hash
        self.aws_conn_id = aws_conn_id

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if event.get("timedout"):
            raise AirflowFailException(
                f"plan {self.plan_hash[:12]}…: no answer within {self.response_timeout}; "
                "nothing is sent and no decision is recorded"
            )
        if "error" not in event:  # an answer (any other error is handled, and fails, below)
            self.validate_chosen_options(event["chosen_options"])
            # the form as Airflow validates it, before anything is recorded
            self.validate_params_input(event.get("params_input") or {})
            approve = event["chosen_options"] == [ApprovalOperator.APPROVE]
            if approve and not confirmed(event.get("params_input"), self.plan_hash):
                who = (event.get("responded_by_user") or {}).get("name") or "?"
                raise AirflowFailException(
                    f"plan {self.plan_hash[:12]}…: Approve by {who} was not confirmed (the "
                    f"field '{CONFIRM}' must hold the plan hash's first {CONFIRM_CHARS} "
                    "characters); nothing is sent and no decision is recorded: run the DAG "
                    "again to be asked again"
                )
            who = self._record(context, event)
            if event["chosen_options"] != [ApprovalOperator.APPROVE]:
                # A rejection must read as one in the grid: this task failed (unretried),
                # the rest upstream_failed, the run failed -- never green with skips.
                raise AirflowFailException(
                    f"plan {self.plan_hash[:12]}… REJECTED by {who}; nothing is sent, and "
                    "the rejection is recorded: this plan can never be executed"
                )
        ret = super().execute_complete(context=context, event=event)
        return {**ret, "plan_hash": self.plan_hash, "run_id": context["run_id"]}

    def _record(self, context: Any, event: dict[str, Any]) -> str:
        from openpool.airflow.runtime import store
        from openpool.payouts.approvals import APPROVED, REJECTED, record_decision

        approved = event["chosen_options"] == [ApprovalOperator.APPROVE]
        who = (event.get("responded_by_user") or {}).get("name") or "?"
        s = payout_settings()
        doc = record_decision(
            store(s.state_uri, self.aws_conn_id),
            self.plan_hash,
            APPROVED if approved else REJECTED,
            f"airflow:{who}",
            f"HITL {context['dag'].dag_id}/{context['run_id']}",
        )
        self.log.info("plan %s: %s by %s", self.plan_hash, doc["decision"], doc["approver"])
        return str(doc["approver"])


def _authorise(decision: dict[str, Any] | None, plan_hash: str) -> str:
    """The approver of ``plan_hash`` in this very run, or PlanRefused.

    Authority is Airflow's record of this run: the ``approve`` task's return value (XCom of
    the same dag run), naming Approve, this plan and this run, with ``approve`` in state
    success in Airflow's metadata. A file in ``approvals/`` never is; a recorded rejection
    of the plan (by any run) vetoes it.
    """
    from openpool.errors import PlanRefused

    if not decision or decision.get("chosen_options") != [ApprovalOperator.APPROVE]:
        raise PlanRefused(f"plan {plan_hash[:12]}… was not approved; nothing sent")
    if decision.get("plan_hash") != plan_hash:
        raise PlanRefused(
            f"the approval names plan {str(decision.get('plan_hash'))[:12]}…, "
            f"not {plan_hash[:12]}…; nothing sent"
        )
    if not confirmed(decision.get("params_input"), plan_hash):
        raise PlanRefused(f"the approval of {plan_hash[:12]}… was not confirmed; nothing sent")
    ctx = get_current_context()
    if decision.get("run_id") != ctx["run_id"]:
        raise PlanRefused(f"the approval is not of this run ({ctx['run_id']}); nothing sent")
    states = ctx["ti"].get_task_states(
        dag_id=ctx["dag"].dag_id, task_ids=["approve"], run_ids=[ctx["run_id"]]
    )
    state = (states.get(ctx["run_id"]) or {}).get("approve")
    if str(state) not in ("success", "TaskInstanceState.SUCCESS"):
        raise PlanRefused(f"Airflow has approve in state {state!r} for this run; nothing sent")
    who = (decision.get("responded_by_user") or {}).get("name")
    if not who:
        raise PlanRefused("the approval names no person; nothing sent")
    return str(who)


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
        ),
    ) as dag:

        @task
        def recover() -> dict[str, Any]:
            def run() -> dict[str, Any]:
                from openpool.payouts.chain import Chain
                from openpool.payouts.execute import recover as recover_open

                s = payout_settings()
                _, ledger = _ledger(s, aws_conn_id)
                rep = recover_open(
                    ledger, Chain(s.eth_rpc_endpoint), ledger.wallet, run_id=_run_key("recover")
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

                s = payout_settings()
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
                who = _authorise(decision, plan_hash)
                s = payout_settings()
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

        @task
        def confirm(executed: dict[str, Any]) -> dict[str, Any]:
            def run() -> dict[str, Any]:
                from openpool.payouts.chain import Chain
                from openpool.payouts.execute import recover as recover_open

                s = payout_settings()
                _, ledger = _ledger(s, aws_conn_id)
                chain = Chain(s.eth_rpc_endpoint)
                deadline = time.monotonic() + confirm_timeout.total_seconds()
                rounds = 0
                while True:
                    rounds += 1
                    rep = recover_open(ledger, chain, ledger.wallet, run_id=_run_key("confirm"))
                    if rep.pending == 0 or time.monotonic() >= deadline:
                        break
                    time.sleep(confirm_poll.total_seconds())
                return {**rep.as_dict(), "rounds": rounds}

            return unretried(run)()

        @task
        def report(described: dict[str, Any], confirmed: dict[str, Any]) -> dict[str, Any]:
            def run() -> dict[str, Any]:
                from openpool.payouts.approvals import recorded

                s = payout_settings()
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
