"""Alerts: each condition sent once through real Airflow notifiers, again only after it
cleared and recurred; a crash between sending and recording sends again (at least once).

The pool is real: generated traffic with mess (invalid events, a truncated file) ingested
into a moto S3 server, a payout plan saved and left unanswered, a hot wallet on a real
anvil chain. The alerts DAG runs through ``dag.test()`` with a recording ``BaseNotifier``
passed as a user passes one (``build_alerts_dag(notifiers=[...])``) and Slack configured
as an operator configures it: the HTTP connection ``openpool_slack``, here pointing at a
local HTTP server that records each webhook call.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from openpool.alerts.state import alert_store, rows
from openpool.ingest.run import ingest
from openpool.partitions import Partition
from openpool.payouts.chain import Chain
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import Limits, build_plan, save_plan
from openpool.storage import S3Store, make_s3_client
from openpool.traffic import Mess, generate, write
from tests.helpers.notifiers import received
from tests.helpers.smtp_sink import body, smtp_sink
from tests.services import anvil

PART = Partition("transcode", "us-west")
LIMITS = Limits(10**12, 10**18, 10 * 10**18, timedelta(hours=24))
SLACK_SECRET = "/services/T0ALERT/B0ALERT/" + secrets.token_hex(12)
EXPECTED = {
    "partition_stale:transcode|us-west",
    "files_quarantined:transcode|us-west",
    "rejected_rate:transcode|us-west",
    "wallet_low",
    "approval_waiting",
}


class _Webhook(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []  # noqa: RUF012 - one server per test, reset there

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append({"path": self.path, "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Pool:
    state: S3Store
    chain: Chain
    wallet: str
    plan_hash: str
    inbox: Path
    slack: list[dict[str, Any]]
    mail: list[Any]


@pytest.fixture
def pool(
    airflow_db: str, s3_bucket: str, moto_endpoint: str, tmp_path: Path, monkeypatch
) -> Iterator[Pool]:
    client = make_s3_client()
    events = S3Store(f"s3://{s3_bucket}/events", client=client)
    state = S3Store(f"s3://{s3_bucket}/state", client=client)
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    files = generate(
        PART,
        start,
        timedelta(hours=1),
        workers=3,
        events_per_second=1,
        flush_seconds=300,
        seed=7,
        mess=Mess(invalid_events=0.2, truncated_files=1),
    )
    write(files, events)
    ingest(PART, events, state, Fraction(1, 4))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    _Webhook.calls = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = {
        "conn_type": "aws",
        "login": os.environ["AWS_ACCESS_KEY_ID"],
        "password": os.environ["AWS_SECRET_ACCESS_KEY"],
        "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
    }
    slack = {
        "conn_type": "http",
        "host": f"http://127.0.0.1:{server.server_address[1]}",
        "password": SLACK_SECRET,
    }
    wallet = "0x" + secrets.token_hex(20)
    try:
        with anvil(tmp_path / "logs") as rpc, smtp_sink() as (smtp_port, mail):
            chain = Chain(rpc)
            chain.rpc("anvil_setBalance", [wallet, hex(0)])
            plan_hash = save_plan(
                state, build_plan([PART], state, Ledger(state, wallet), LIMITS, 42161)
            )
            for k, v in {
                "OPENPOOL_STATE_URI": state.uri,
                "OPENPOOL_EVENTS_URI": events.uri,
                "OPENPOOL_PARTITIONS": str(PART),
                "HOT_WALLET_ADDRESS": wallet,
                "ETH_RPC_ENDPOINT": rpc,
                "PAYMENT_THRESHOLD_WEI": str(LIMITS.threshold_wei),
                "OPENPOOL_ALERT_STALE_AFTER_SECONDS": "1800",
                "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn),
                "AIRFLOW_CONN_OPENPOOL_SLACK": json.dumps(slack),
                "AIRFLOW_CONN_OPENPOOL_SMTP": json.dumps(
                    {
                        "conn_type": "smtp",
                        "host": "127.0.0.1",
                        "port": smtp_port,
                        "extra": {
                            "disable_tls": True,
                            "disable_ssl": True,
                            "from_email": "openpool@example.org",
                        },
                    }
                ),
                "OPENPOOL_ALERT_EMAIL_TO": "ops@example.org, treasurer@example.org",
                "AIRFLOW__API__BASE_URL": "http://airflow.example:8080/",
            }.items():
                monkeypatch.setenv(k, v)
            monkeypatch.delenv("AWS_ENDPOINT_URL")  # S3 only through the connection
            yield Pool(
                state, chain, wallet, plan_hash, tmp_path / "inbox.jsonl", _Webhook.calls, mail
            )
    finally:
        server.shutdown()


def _dag(pool: Pool, **kw: Any):
    from openpool.airflow.alerts_dag import build_alerts_dag
    from tests.helpers.notifiers import RecordingNotifier

    return build_alerts_dag(
        schedule=None,
        notifiers=[RecordingNotifier(pool.inbox)],
        default_args={
            "retries": 1,
            "retry_delay": timedelta(0),
            "retry_exponential_backoff": False,
        },
        **kw,
    )


def _run(pool: Pool) -> str:
    dr = _dag(pool).test()
    [ti] = dr.get_task_instances()
    return str(ti.state)


def _kinds(keys: list[str]) -> list[str]:
    """A key without its identifying hash (the plan's, the wallet's), for comparison."""
    return sorted(k.split(":")[0] if k.startswith(("wallet_low", "approval")) else k for k in keys)


def _open(pool: Pool) -> list[str]:
    snap = alert_store(pool.state).latest()
    return _kinds([r["key"] for r in rows(snap) if r["cleared_at"] is None])


@pytest.mark.slow
def test_each_condition_alerts_once_not_on_the_next_run_and_again_after_it_recurs(
    pool: Pool, monkeypatch
) -> None:
    assert _run(pool) == "success"
    first = received(pool.inbox)
    assert _kinds([m["key"] for m in first]) == sorted(EXPECTED)  # each exactly once
    by_kind = {m["key"].split(":")[0]: m for m in first}
    approval = by_kind["approval_waiting"]
    assert approval["key"] == f"approval_waiting:{pool.plan_hash}"
    assert "http://airflow.example:8080/required_actions" in approval["text"]
    assert pool.wallet in by_kind["wallet_low"]["text"]
    assert "short by" in by_kind["wallet_low"]["text"]
    # Slack got the same alerts, through the webhook's secret path, once each
    assert len(pool.slack) == len(EXPECTED)
    assert {c["path"] for c in pool.slack} == {SLACK_SECRET}
    assert sorted(c["body"]["text"].split("\n", 1)[1] for c in pool.slack) == sorted(
        m["text"] for m in first
    )
    # and e-mail, through the SMTP connection, to both recipients
    assert sorted(m["Subject"] for m in pool.mail) == sorted(m["subject"] for m in first)
    assert {m["To"] for m in pool.mail} == {"ops@example.org, treasurer@example.org"}
    assert "required_actions" in body(next(m for m in pool.mail if "approval" in m["Subject"]))
    assert _open(pool) == sorted(EXPECTED)

    assert _run(pool) == "success"  # the next run: every condition still holds
    assert received(pool.inbox) == first and len(pool.slack) == len(EXPECTED)
    assert len(pool.mail) == len(EXPECTED)

    # the wallet is funded: its alert clears, silently; it recurs: alerted again, once
    pool.chain.rpc("anvil_setBalance", [pool.wallet, hex(100 * 10**18)])
    assert _run(pool) == "success"
    assert received(pool.inbox) == first and "wallet_low" not in _open(pool)
    pool.chain.rpc("anvil_setBalance", [pool.wallet, hex(10**9)])
    assert _run(pool) == "success"
    again = received(pool.inbox)[len(first) :]
    assert _kinds([m["key"] for m in again]) == ["wallet_low"]

    # the partition is fresh again under a longer setting, then stale again
    monkeypatch.setenv("OPENPOOL_ALERT_STALE_AFTER_SECONDS", str(10 * 86400))
    assert _run(pool) == "success"
    assert "partition_stale:transcode|us-west" not in _open(pool)
    assert len(received(pool.inbox)) == len(first) + 1
    monkeypatch.setenv("OPENPOOL_ALERT_STALE_AFTER_SECONDS", "1800")
    assert _run(pool) == "success"
    last = received(pool.inbox)[len(first) + 1 :]
    assert [m["key"] for m in last] == ["partition_stale:transcode|us-west"]
    assert _run(pool) == "success"
    assert len(received(pool.inbox)) == len(first) + 2  # and not again
    assert len(pool.slack) == len(pool.mail) == len(first) + 2  # every channel alike

    # an unreachable chain (a URL holding a key) leaves the wallet's alert as it was
    monkeypatch.setenv("ETH_RPC_ENDPOINT", "http://127.0.0.1:9/?apikey=RPCSECRET123")
    assert _run(pool) == "success"
    assert "wallet_low" in _open(pool) and len(received(pool.inbox)) == len(first) + 2

    # no secret in any alert, nor in the record of sent alerts
    texts = json.dumps(
        [received(pool.inbox), [c["body"] for c in pool.slack], [body(m) for m in pool.mail]]
    )
    recorded = json.dumps(rows(alert_store(pool.state).latest()), default=str)
    for secret in (SLACK_SECRET, "RPCSECRET123", os.environ["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in texts and secret not in recorded


@pytest.mark.slow
def test_a_crash_between_sending_and_recording_sends_again_never_loses_it(
    pool: Pool, monkeypatch
) -> None:
    """At least once: the first try sends, then dies before its record is committed; the
    retry sends the same alerts again and records them; the next run sends nothing."""
    import openpool.alerts.service as service

    real = service.record
    crashes: list[int] = []

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        if not crashes:
            crashes.append(1)
            raise ConnectionError("the worker lost S3 between sending and recording")
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "record", crash_once)
    assert _run(pool) == "success"  # after its retry
    got = _kinds([m["key"] for m in received(pool.inbox)])
    assert crashes and got == sorted([*EXPECTED, *EXPECTED])  # each twice, none lost
    assert _open(pool) == sorted(EXPECTED)  # recorded once
    assert _run(pool) == "success"
    assert len(received(pool.inbox)) == 2 * len(EXPECTED)
