"""The payout DAG's ``approve`` task: the standard Human-in-the-loop ApprovalOperator, bound
to one plan hash, and the check ``execute`` makes of its answer before anything is signed.

What the approver sees (:data:`SUBJECT`, :data:`BODY`) is rendered from the ``plan`` task's
XCom, the very plan ``execute`` pays. Approve takes two steps (the plan hash's first
characters typed into :data:`CONFIRM`, then the button); Reject is the default.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

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
        from openpool.airflow.runtime import payout_settings, store
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


def authorise(decision: dict[str, Any] | None, plan_hash: str) -> str:
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
