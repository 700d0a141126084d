"""The ``openpool_alerts`` DAG: every few minutes, evaluate the pool's alert conditions and
send each new one once, through Airflow notifiers.

Its own small DAG on a clock, not a task of the summary or payouts DAG: the conditions
that matter most are absences (a partition with no new file, a plan nobody answered, a
stuck payment), and a DAG scheduled on commits or on payouts would not run when nothing
happens. One run at a time; each run reads the state, sends what is new and commits the
record of sent alerts (``alerts/pool/`` in the state store), so a retry or a rerun sends
nothing twice except after a crash between sending and recording (at least once).

Channels: the task log and the OpenPool page always; Slack when the HTTP connection
``openpool_slack`` exists; e-mail when the SMTP connection ``openpool_smtp`` exists and
``OPENPOOL_ALERT_EMAIL_TO`` is set; and any ``BaseNotifier`` passed to
:func:`build_alerts_dag` (``notifiers=``) in the DAG file. A notifier's templated fields
see the alert as ``{{ openpool_alert.subject }}``, ``.text``, ``.kind``, ``.key``,
``.partition`` and ``.link``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, get_current_context, task

from openpool.airflow.factory import DEFAULT_ARGS
from openpool.airflow.failures import unretried
from openpool.errors import AlertNotDelivered

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier

    from openpool.alerts.conditions import Condition

log = logging.getLogger(__name__)

DAG_ID = "openpool_alerts"
SLACK_CONN_ID = "openpool_slack"
SMTP_CONN_ID = "openpool_smtp"
SLACK_TEXT = "*{{ openpool_alert.subject }}*\n{{ openpool_alert.text }}"
MAIL_HTML = "<p>{{ openpool_alert.text | e }}</p>"

DOC = """\
### Alerts

Every {schedule}: evaluates the pool's alert conditions and sends each **new** one once
(Slack: connection `openpool_slack`; e-mail: connection `openpool_smtp` and
`OPENPOOL_ALERT_EMAIL_TO`; always the task log and the OpenPool page). A condition is
alerted again only after it cleared and recurred. Conditions: a payout plan waiting for
approval, a partition with no new file for `OPENPOOL_ALERT_STALE_AFTER_SECONDS`, the hot
wallet short of the next plan's needs, a payment needing investigation or stuck, files
quarantined or a rejected-event rate above `OPENPOOL_ALERT_REJECTED_RATE` in the last
day, an unresolved repeated event ID. Delivery is at least once: a crash between sending
and recording sends again. See the README's *Alerts* section for what to do about each.
"""


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowRuntimeError

    try:
        return Connection.get(conn_id)
    except (AirflowRuntimeError, LookupError, ValueError):
        return None


def configured_notifiers(email_to: str | None) -> list[BaseNotifier]:
    """The channels the Airflow connections configure (Slack, SMTP)."""
    out: list[BaseNotifier] = []
    slack = _connection(SLACK_CONN_ID)
    if slack is not None:
        from airflow.providers.http.notifications.http import HttpNotifier

        # the webhook's secret path is the connection's password: Airflow masks it in logs
        out.append(
            HttpNotifier(
                http_conn_id=SLACK_CONN_ID,
                endpoint=slack.password or None,
                json={"text": SLACK_TEXT},
                headers={"Content-Type": "application/json"},
            )
        )
    if email_to and _connection(SMTP_CONN_ID) is not None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        out.append(
            SmtpNotifier(
                to=[a.strip() for a in email_to.split(",") if a.strip()],
                smtp_conn_id=SMTP_CONN_ID,
                subject="{{ openpool_alert.subject }}",
                html_content=MAIL_HTML,
            )
        )
    return out


def deliver_with(notifiers: Sequence[BaseNotifier], context: Any) -> Any:
    """A delivery callback: the task log, then each notifier (a fresh copy per alert:
    rendering a notifier's templates replaces them in place)."""

    def deliver(c: Condition) -> None:
        log.warning("ALERT %s: %s -- %s", c.kind, c.subject, c.text)
        for template in notifiers:
            try:
                notifier = copy.deepcopy(template)
            except TypeError:  # holds a client that cannot be copied: rendering rebinds
                notifier = copy.copy(template)  # each templated attribute, so this is enough
            try:
                notifier({**context, "openpool_alert": c.as_dict()})
            except Exception as exc:
                raise AlertNotDelivered(f"{type(template).__name__} refused {c.key}") from exc

    return deliver


def build_alerts_dag(
    schedule: timedelta | str | None = timedelta(minutes=5),
    notifiers: Sequence[BaseNotifier] = (),
    aws_conn_id: str = "aws_default",
    approval_window: timedelta = timedelta(hours=12),
    start_date: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    default_args: dict[str, Any] | None = None,
) -> DAG:
    """The alerts DAG (see the module docstring). ``notifiers``: extra channels, as
    configured ``BaseNotifier`` instances whose templates read ``openpool_alert``."""
    extra = list(notifiers)
    with DAG(
        dag_id=DAG_ID,
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, "retries": 2, **(default_args or {})},
        tags=["openpool", "alerts"],
        doc_md=DOC.format(schedule=schedule or "manual run"),
    ) as dag:

        @task
        def evaluate_and_notify() -> dict[str, Any]:
            def run() -> dict[str, Any]:
                from airflow.configuration import conf

                from openpool.airflow.runtime import alert_settings, store
                from openpool.alerts.conditions import Inputs
                from openpool.alerts.service import run_round
                from openpool.payments import wallet_address
                from openpool.payouts.chain import Chain

                s = alert_settings()
                ctx = get_current_context()
                src = Inputs(
                    state=store(s.state_uri, aws_conn_id),
                    partitions=s.partitions,
                    threshold_wei=s.payment_threshold_wei,
                    max_payment_wei=s.max_payment_wei,
                    max_run_wei=s.max_run_wei,
                    max_gas_price_wei=s.max_gas_price_wei,
                    stale_after=timedelta(seconds=s.alert_stale_after_seconds),
                    rejected_rate=s.alert_rejected_rate,
                    stuck_after=timedelta(seconds=s.stuck_after_seconds),
                    approval_window=approval_window,
                    wallet=wallet_address(s),
                    balance=Chain(s.eth_rpc_endpoint).balance,
                    ui_url=conf.get("api", "base_url", fallback=None) or None,
                )
                channels = [*configured_notifiers(s.alert_email_to), *extra]
                rnd = run_round(src, deliver_with(channels, ctx), f"{DAG_ID}/{ctx['run_id']}")
                log.info("alerts: %s", rnd.as_dict())
                if rnd.failed:
                    raise AlertNotDelivered(
                        f"{len(rnd.failed)} alert(s) not delivered, sent again on retry: "
                        f"{sorted(rnd.failed)}"
                    )
                return rnd.as_dict()

            return unretried(run)()

        evaluate_and_notify()
    return dag
