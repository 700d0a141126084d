"""The OpenPool page: its read model, and the real page in Airflow's api-server and Chromium.

One pool is built as the demo builds it, with the real pieces: generated messy traffic for a
transcode and an AI partition, ingested and refreshed; a hot wallet on a real anvil chain
(chain id 42161) pays the transcode workers through an approved plan; a second plan, for the
AI workers, is saved and left waiting for approval. Expected figures are read back from the
snapshot tables, the payout ledger and the chain, never from the dashboard's own code.

The browser test starts the real ``airflow api-server`` (SQLite, SimpleAuthManager) with the
plugin folder, signs in through Airflow's login page in headless Debian Chromium driven by
chromedriver, checks the numbers on the page, and saves ``reports/dashboard.png`` and
``reports/dashboard-in-airflow.png``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from openpool.airflow.dashboard.charts import nice_step, rank_chart, short
from openpool.airflow.dashboard.render import render_html
from openpool.analytics.refresh import refresh
from openpool.ingest.run import ingest
from openpool.money import eth
from openpool.overview import DashboardReader, Sources, explorer, tx_url
from openpool.partitions import Partition
from openpool.payments import CONFIRMED, partition_payouts
from openpool.payouts.approvals import REJECTED, record_approval, record_decision
from openpool.payouts.chain import Chain
from openpool.payouts.execute import execute
from openpool.payouts.keys import load_wallet, write_keystore
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import Limits, build_plan, load_plan, save_plan
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from openpool.tables import BALANCES, EVENTS, read_table
from openpool.traffic import Mess, generate, write
from tests.helpers.browser import browser as _browser
from tests.helpers.browser import full_page_screenshot as _full_page_screenshot
from tests.helpers.browser import sign_in as _sign_in
from tests.helpers.browser import wait as _wait
from tests.services import REPO, anvil, free_port

TRANSCODE, AI = Partition.parse("transcode|us-west"), Partition.parse("ai|us-central")
START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
MESS = Mess(duplicate_events=0.02, late_files=0.05, invalid_events=0.005, split_ai_jobs=0.2)
LIMITS = Limits(10**12, 10**18, 10 * 10**18, timedelta(hours=24))
USER, PASSWORD = "operator", "op-" + secrets.token_hex(8)


@dataclass
class Pool:
    root: Path
    state: LocalStore
    metrics: LocalStore
    wallet: str
    paid_plan: str
    waiting_plan: str

    def sources(self, **kw: Any) -> Sources:
        return Sources(
            state=self.state,
            metrics=self.metrics,
            partitions=(TRANSCODE, AI),
            threshold_wei=LIMITS.threshold_wei,
            chain_id=42161,
            wallet=self.wallet,
            **kw,
        )

    def earnings(self, part: Partition) -> dict[str, int]:
        snap = SnapshotStore(self.state, part).latest()
        rows = snap.read("balances", schema=BALANCES).to_pylist()
        return {r["eth_address"]: int(r["worker_earnings_wei"]) for r in rows}

    def payments(self) -> list[dict[str, Any]]:
        return list(Ledger(self.state, self.wallet).payments().values())

    def paid(self, part: Partition) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.payments():
            if p["partition"] == str(part) and p["status"] == CONFIRMED:
                out[p["eth_address"]] = out.get(p["eth_address"], 0) + int(p["amount_wei"])
        return out


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    root = tmp_path_factory.mktemp("dashboard")
    events, state, metrics = (LocalStore(root / n) for n in ("events", "state", "metrics"))
    for seed, part in enumerate((TRANSCODE, AI)):
        files = generate(
            part,
            START,
            timedelta(hours=3),
            workers=5,
            events_per_second=1,
            flush_seconds=300,
            seed=40 + seed,
            mess=MESS,
        )
        write(files, events)
        ingest(part, events, state, Fraction(1, 4))
    with anvil(root / "logs") as rpc:
        chain = Chain(rpc)
        (root / "wallet-password").write_text(secrets.token_urlsafe(16))
        wallet = write_keystore(
            secrets.token_bytes(32), (root / "wallet-password").read_text(), root / "wallet.json"
        )
        chain.rpc("anvil_setBalance", [wallet, hex(100 * 10**18)])
        hot = load_wallet(str(root / "wallet.json"), str(root / "wallet-password"))
        ledger = Ledger(state, wallet)
        paid_plan = save_plan(state, build_plan([TRANSCODE], state, ledger, LIMITS, 42161))
        record_approval(state, paid_plan, "dashboard-test", "tests/test_dashboard.py")
        report = execute(load_plan(state, paid_plan), paid_plan, ledger, chain, hot, 10**11, 60)
        assert report.confirmed > 0 and report.failed == 0 and report.pending == 0
        # the transcode workers were just paid; the AI workers wait for a person's approval
        waiting_plan = save_plan(state, build_plan([TRANSCODE, AI], state, ledger, LIMITS, 42161))
    log = Ledger.log(ledger.latest())
    for part in (TRANSCODE, AI):
        refresh(
            part, state, metrics, LIMITS.threshold_wei, payouts=partition_payouts(log, str(part))
        )
    yield Pool(root, state, metrics, wallet, paid_plan, waiting_plan)


# ---------------------------------------------------------------- the read model, no browser


def test_read_model_shows_the_state_ledger_and_plans(pool: Pool) -> None:
    d = DashboardReader().read(pool.sources())
    assert [str(v.partition) for v in d.partitions] == [str(TRANSCODE), str(AI)]
    for view in d.partitions:
        earnings, paid = pool.earnings(view.partition), pool.paid(view.partition)
        rows = {r["eth_address"]: r for r in view.summary.workers}
        assert set(rows) == set(earnings) and len(rows) == 5
        for addr, wei in earnings.items():
            assert rows[addr]["worker_earnings_wei"] == wei
            assert rows[addr]["paid_wei"] == paid.get(addr, 0)
            assert rows[addr]["payable_wei"] == wei - paid.get(addr, 0)
            assert rows[addr]["status"][0] in ("online", "offline")
    # every transcode worker was paid in full; every AI worker is due and not yet paid
    tc = {r["eth_address"]: r for r in d.partitions[0].summary.workers}
    assert all(r["payable_wei"] == 0 and r["paid_wei"] > 0 for r in tc.values())
    assert all("payout due" in r["status"] for r in d.partitions[1].summary.workers)
    # pool-wide totals are the sums of what each partition shows
    agg = d.pool.aggregates
    for m in ("worker_earnings_wei", "paid_wei", "payable_wei", "total_fees_wei"):
        assert agg[m] == sum(v.summary.aggregates[m] for v in d.partitions)

    ledger = {p["payment_id"]: p for p in pool.payments()}
    assert len(d.payments) == len(ledger) == 5
    for p in d.payments:
        assert p["status"] == CONFIRMED and p["tx_hash"].startswith("0x")
        assert p["tx_url"] == f"https://arbiscan.io/tx/{p['tx_hash']}"
        assert p["amount_wei"] == int(ledger[p["payment_id"]]["amount_wei"])
        assert p["plan_hash"] == pool.paid_plan

    [waiting] = d.awaiting
    plan = load_plan(pool.state, pool.waiting_plan)
    assert waiting["plan_hash"] == pool.waiting_plan
    assert waiting["total_wei"] == plan["total_wei"] == agg["payable_wei"]
    assert {p["eth_address"] for p in waiting["payments"]} == set(pool.earnings(AI))


def test_fees_per_hour_are_the_exact_sums_of_processed_jobs(pool: Pool) -> None:
    d = DashboardReader().read(pool.sources())
    assert d.fee_hours == [START + timedelta(hours=i) for i in range(3)]  # 3 h of traffic
    for part in (TRANSCODE, AI):
        ev = SnapshotStore(pool.state, part).latest().read("events", schema=EVENTS)
        ev = ev.filter(pc.equal(ev.column("event_type"), "job-processed")).to_pylist()
        expected: dict[datetime, int] = {}
        for e in ev:
            hour = e["event_time"].replace(minute=0, second=0, microsecond=0)
            expected[hour] = expected.get(hour, 0) + int(e["fees_wei"] or 0)
        shown = dict(zip(d.fee_hours, d.fees[str(part)], strict=True))
        assert {h: w for h, w in shown.items() if w} == {h: w for h, w in expected.items() if w}


def test_ranks_come_from_the_published_performance_exports(pool: Pool) -> None:
    d = DashboardReader().read(pool.sources())
    tc, ai = d.partitions
    doc = json.loads(pool.metrics.get(f"{TRANSCODE.path}/worker_performance.json"))
    published = [r for r in doc["transcode_performance"] if r["window"] == "all"]
    ranks = [r["rank"] for r in tc.transcode_ranks]
    ranked = [r for r in ranks if r is not None]
    assert ranks == ranked + [None] * (len(ranks) - len(ranked))  # best first, unranked last
    assert ranked == sorted(r["rank"] for r in published if r["rank"] is not None)
    assert {r["eth_address"] for r in tc.transcode_ranks} == set(pool.earnings(TRANSCODE))
    ai_doc = json.loads(pool.metrics.get(f"{AI.path}/worker_performance.json"))
    ai_ranked = {k: [r for r in v if r["rank"] is not None] for k, v in ai.ai_ranks.items()}
    assert {k: v for k, v in ai_ranked.items() if v} == ai_doc["ai_model_pipeline_rankings"]
    ai_unranked = {
        (k, r["eth_address"]) for k, v in ai.ai_ranks.items() for r in v if r["rank"] is None
    }
    assert ai_unranked == {
        (f"{r['pipeline']}|{r['model_id']}", r["eth_address"])
        for r in ai_doc["ai_performance"]
        if r["window"] == "all" and not r["ranked"]
    }
    assert ai.ai_ranks


def test_a_rank_chart_lists_the_unranked_workers_as_such_never_as_a_rank() -> None:
    """Issue 19: a worker below the minimum of timed jobs is shown as *unranked*."""
    rows = [
        {"eth_address": "0x" + "a" * 40, "rank": 1, "rtf_p50": 2.5, "jobs": 40},
        {"eth_address": "0x" + "b" * 40, "rank": 2, "rtf_p50": 1.5, "jobs": 30},
        {"eth_address": "0x" + "c" * 40, "rank": None, "rtf_p50": 9.0, "timed_jobs": 3},
    ]
    html = rank_chart(rows, "rtf_p50", "x", True)
    assert html.count("<rect") == 2 and "#1 " in html and "#2 " in html
    unranked = html.split('class="note unranked"')[1]
    assert short("0x" + "c" * 40) in unranked and "(3 timed)" in unranked
    assert "#None" not in html and "#-1" not in html and short("0x" + "a" * 40) not in unranked
    only = rank_chart(rows[2:], "rtf_p50", "x", True)
    assert "No ranked workers" in only and "(3 timed)" in only


def test_a_plan_leaves_the_approval_list_when_answered_or_out_of_its_window(
    pool: Pool, tmp_path: Path
) -> None:
    """Issue 16: a rejected plan left "awaiting approval" at once, and the answer (decision,
    who, when) is on the page."""
    created = datetime.fromisoformat(load_plan(pool.state, pool.waiting_plan)["created_at"])
    reader = DashboardReader()
    assert reader.read(pool.sources(), now=created + timedelta(hours=11)).awaiting
    assert not reader.read(pool.sources(), now=created + timedelta(hours=13)).awaiting
    # the same state with the approval recorded: nothing waits any more
    copy = LocalStore(tmp_path / "state")
    for info in pool.state.list(""):
        copy.put(info.key, pool.state.get(info.key))
    record_decision(copy, pool.waiting_plan, REJECTED, "airflow:treasurer", "HITL dag/run-1")
    src = Sources(copy, pool.metrics, (TRANSCODE, AI), LIMITS.threshold_wei, 42161, pool.wallet)
    d = reader.read(src)
    assert not d.awaiting
    latest = d.answers[0]
    assert (latest["plan_hash"], latest["decision"]) == (pool.waiting_plan, "rejected")
    assert latest["approver"] == "airflow:treasurer" and latest["via"] == "HITL dag/run-1"
    assert {a["decision"] for a in d.answers[1:]} == {"approved"}  # the plan paid earlier
    html = render_html(d)
    row = html[html.index(f'<tr data-plan="{pool.waiting_plan}">') :].split("</tr>")[0]
    assert (
        "rejected" in row
        and "airflow:treasurer" in row
        and latest["decided_at"].strftime("%Y-%m-%d %H:%M") in row
    )


def test_explorer_links_and_axis_steps() -> None:
    h = "0x" + "ab" * 32
    arbiscan, sepolia = explorer(42161), explorer(421614)
    assert tx_url(arbiscan, h) == f"https://arbiscan.io/tx/{h}"
    assert tx_url(sepolia, h) == f"https://sepolia.arbiscan.io/tx/{h}"
    assert explorer(31337) is None and tx_url(None, h) is None and tx_url(arbiscan, None) is None
    # issue 16: a local chain (anvil runs as 42161) must not link to the public explorer
    assert explorer(42161, "") is None
    assert explorer(42161, "http://127.0.0.1:5100/") == "http://127.0.0.1:5100"
    assert [nice_step(n) for n in (1, 7, 40, 41, 999, 10**18)] == [1, 2, 10, 20, 500, 5 * 10**17]


def test_explorer_links_follow_the_setting_and_none_for_a_local_chain(
    pool: Pool, monkeypatch
) -> None:
    d = DashboardReader().read(pool.sources(explorer_url=""))
    assert d.payments and all(p["tx_url"] is None for p in d.payments)
    assert d.explorer is None
    html = render_html(d)
    assert "arbiscan" not in html and d.payments[0]["tx_hash"] in html
    d = DashboardReader().read(pool.sources(explorer_url="http://127.0.0.1:5100"))
    assert {p["tx_url"] for p in d.payments} == {
        f"http://127.0.0.1:5100/tx/{p['tx_hash']}" for p in d.payments
    }
    from openpool.airflow.dashboard.app import load_sources

    monkeypatch.setenv("OPENPOOL_EXPLORER_URL", "")
    assert load_sources().explorer_url == ""
    monkeypatch.delenv("OPENPOOL_EXPLORER_URL")
    assert load_sources().explorer_url is None  # the chain's public explorer


def test_a_worker_is_online_only_while_its_events_are_recent(pool: Pool) -> None:
    """Issue 16: an open connection with no event for hours (its orchestrator stopped
    writing) read "online". Online = connection open and an event within the window."""
    reader = DashboardReader()
    rows = [r for v in reader.read(pool.sources()).partitions for r in v.summary.workers]
    open_ = [r for r in rows if r["active"] and r["last_seen"] is not None]
    assert open_, "the fixture's traffic ends with connections open"
    last = max(r["last_seen"] for r in open_)
    window = pool.sources().online_window
    assert window == timedelta(minutes=15)
    soon = reader.read(pool.sources(), now=last + timedelta(minutes=5))
    later = reader.read(pool.sources(), now=last + timedelta(hours=2))
    for d, when in ((soon, last + timedelta(minutes=5)), (later, last + timedelta(hours=2))):
        for view in d.partitions:
            for r in view.summary.workers:
                recent = r["last_seen"] is not None and when - r["last_seen"] <= window
                expected = "online" if (r["active"] and recent) else "offline"
                assert r["status"][0] == expected, (r["eth_address"], r["status"], when)
                if r["active"] and not recent:
                    assert f"silent since {r['last_seen']:%Y-%m-%d %H:%M} UTC" in r["status"]
    assert any(r["status"][0] == "online" for v in soon.partitions for r in v.summary.workers)
    assert not any(r["status"][0] == "online" for v in later.partitions for r in v.summary.workers)
    assert [nice_step(n) for n in (1, 7, 40, 41, 999, 10**18)] == [1, 2, 10, 20, 500, 5 * 10**17]


def _record_alert(state: LocalStore, part: Partition, subject: str, now: datetime) -> None:
    from openpool.alerts.conditions import Condition
    from openpool.alerts.state import record

    c = Condition(f"partition_stale:{part}", "partition_stale", subject, "text", str(part))
    record(state, [c], {c.key}, set(), now, "tests/test_dashboard.py")


def _newest_file(pool: Pool, part: Partition) -> str:
    """The newest event file the fixture wrote for ``part``, by the time its key names."""
    keys = [i.key for i in LocalStore(pool.root / "events").list(part.path + "/")]
    return max(keys, key=lambda k: k.rsplit("-", 1)[-1].split("_")[0])


def test_health_shows_freshness_what_was_set_aside_and_the_newest_alert(
    pool: Pool, tmp_path: Path
) -> None:
    """Issue 19: per partition the last file seen, the last commit, files quarantined and
    events rejected in the last day, the newest alert; a stale partition is marked."""
    copy = LocalStore(tmp_path / "state")
    for info in pool.state.list(""):
        copy.put(info.key, pool.state.get(info.key))
    src = Sources(copy, pool.metrics, (TRANSCODE, AI), LIMITS.threshold_wei, 42161, pool.wallet)
    end = START + timedelta(hours=3)
    _record_alert(copy, TRANSCODE, "OpenPool: no new event file for transcode|us-west", end)
    fresh = DashboardReader().read(src, now=end + timedelta(minutes=10))
    rows = {h["partition"]: h for h in fresh.health}
    assert list(rows) == [str(TRANSCODE), str(AI)]
    for part in (TRANSCODE, AI):
        h, snap = rows[str(part)], SnapshotStore(copy, part).latest()
        assert h["last_file_key"] == _newest_file(pool, part)
        assert h["last_commit_at"] == datetime.fromisoformat(snap.manifest.created_at)
        assert h["quarantined_day"] == read_table(snap, "quarantined_files").num_rows
        assert h["rejected_day"] == read_table(snap, "rejected_events").num_rows > 0
        assert h["stale"] is False
    assert rows[str(TRANSCODE)]["newest_alert"]["subject"].startswith("OpenPool: no new event")
    assert rows[str(AI)]["newest_alert"] is None
    assert [a["key"] for a in fresh.open_alerts] == [f"partition_stale:{TRANSCODE}"]
    # two days after the commits nothing new arrived: both stale, nothing set aside lately
    committed = max(datetime.fromisoformat(h["last_commit_at"].isoformat()) for h in rows.values())
    later = DashboardReader().read(src, now=committed + timedelta(days=2))
    assert all(h["stale"] and h["rejected_day"] == 0 for h in later.health)
    html = render_html(later)
    row = html[html.index(f'<tr class="stale" data-partition="{TRANSCODE}">') :]
    assert '<span class="badge stale">stale</span>' in row.split("</tr>")[0]


# ---------------------------------------------------------------- the real page in a browser


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _token(base: str) -> str:
    req = urllib.request.Request(
        base + "/auth/token",
        data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["access_token"]


@pytest.fixture(scope="module")
def api_server(pool: Pool, airflow_db: str) -> Iterator[str]:
    """The real ``airflow api-server`` with the plugins folder, reading ``pool``'s stores."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (pool.root / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    env = {
        **os.environ,
        "AIRFLOW__API__BASE_URL": base + "/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pool.root / "passwords.json"),
        "OPENPOOL_STATE_URI": pool.state.uri,
        "OPENPOOL_METRICS_URI": pool.metrics.uri,
        "OPENPOOL_PARTITIONS": f"{TRANSCODE},{AI}",
        "HOT_WALLET_ADDRESS": pool.wallet,
        "CHAIN_ID": "42161",
        "PAYMENT_THRESHOLD_WEI": str(LIMITS.threshold_wei),
    }
    env.pop("HOT_WALLET_KEYSTORE", None)
    log = (pool.root / "api-server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(REPO / ".venv/bin/airflow"),
            "api-server",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while _get_status(base + "/api/v2/monitor/health") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "api-server did not start:\n"
                    + (pool.root / "api-server.log").read_text()[-3000:]
                )
            time.sleep(1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def _get_status(url: str) -> int:
    try:
        return _get(url)[0]
    except OSError:
        return 0


def test_the_app_refuses_anyone_not_signed_in(pool: Pool, api_server: str) -> None:
    addresses = [*pool.earnings(TRANSCODE), *pool.earnings(AI)]
    status, headers, body = _get(api_server + "/openpool/")
    assert status == 307 and headers["location"].startswith("/auth/login?next=")
    assert not any(a.encode() in body for a in addresses)
    status, _, body = _get(api_server + "/openpool/api/dashboard")
    assert status == 401 and not any(a.encode() in body for a in addresses)
    status, _, _ = _get(api_server + "/openpool/api/dashboard", {"Authorization": "Bearer forged"})
    assert status == 403
    # read-only: no route writes anything
    req = urllib.request.Request(api_server + "/openpool/", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 405


def test_the_plugin_is_registered_and_serves_json_to_a_signed_in_client(
    pool: Pool, api_server: str
) -> None:
    auth = {"Authorization": f"Bearer {_token(api_server)}"}
    status, _, body = _get(api_server + "/api/v2/plugins", auth)
    assert status == 200
    [plugin] = [p for p in json.loads(body)["plugins"] if p["name"] == "openpool_dashboard"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/openpool"
    assert plugin["external_views"][0]["url_route"] == "openpool"
    status, _, body = _get(api_server + "/openpool/api/dashboard", auth)
    assert status == 200
    doc = json.loads(body)
    earnings = pool.earnings(TRANSCODE)
    [tc] = [p for p in doc["partitions"] if p["partition"] == str(TRANSCODE)]
    assert {w["eth_address"]: w["worker_earnings_wei"] for w in tc["workers"]} == earnings
    assert doc["awaiting_approval"][0]["plan_hash"] == pool.waiting_plan


def test_the_health_section_marks_stale_partitions_in_chromium(
    pool: Pool, api_server: str, tmp_path: Path
) -> None:
    """Issue 19: the operator sees each partition's freshness; a stale one stands out (a
    class and a label), and stops standing out under a longer setting (a Variable)."""
    from selenium.webdriver.common.by import By

    airflow = str(REPO / ".venv/bin/airflow")
    driver = _browser(tmp_path / "chromium-profile")
    try:
        _sign_in(driver, api_server + "/openpool/", USER, PASSWORD)
        section = _wait(driver, "section#health")
        for part in (TRANSCODE, AI):  # the fixture's traffic is days old: both stale
            row = section.find_element(By.CSS_SELECTOR, f'tr[data-partition="{part}"]')
            assert "stale" in row.get_attribute("class").split()
            assert row.find_element(By.CSS_SELECTOR, ".badge.stale").text == "stale"
            cell = row.find_element(By.CSS_SELECTOR, 'td[data-field="last_file"]')
            assert cell.text == _newest_file(pool, part).rsplit("/", 1)[-1]
            snap = SnapshotStore(pool.state, part).latest()
            rejected = row.find_element(By.CSS_SELECTOR, 'td[data-field="rejected_day"]')
            # committed by the fixture minutes ago: every rejected event is of the last day
            assert rejected.text == str(read_table(snap, "rejected_events").num_rows) != "0"
            assert row.find_element(By.CSS_SELECTOR, 'td[data-field="last_commit"]').text == (
                f"{datetime.fromisoformat(snap.manifest.created_at):%Y-%m-%d %H:%M}"
            )
        stale_color = section.find_element(By.CSS_SELECTOR, "tr.stale td").value_of_css_property(
            "background-color"
        )
        assert stale_color not in ("rgba(0, 0, 0, 0)", "transparent")  # it stands out
        _full_page_screenshot(driver, REPO / "reports" / "dashboard-health.png")
        subprocess.run(
            [airflow, "variables", "set", "OPENPOOL_ALERT_STALE_AFTER_SECONDS", str(10**9)],
            env=os.environ, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        try:
            driver.refresh()
            section = _wait(driver, "section#health")
            assert not section.find_elements(By.CSS_SELECTOR, "tr.stale")
            assert not section.find_elements(By.CSS_SELECTOR, ".badge.stale")
        finally:
            subprocess.run(
                [airflow, "variables", "delete", "OPENPOOL_ALERT_STALE_AFTER_SECONDS"],
                env=os.environ, check=True, capture_output=True, timeout=120,
            )  # fmt: skip
    finally:
        driver.quit()


def test_signed_in_operator_sees_the_pool_in_chromium(
    pool: Pool, api_server: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = _browser(tmp_path / "chromium-profile")
    try:
        driver.get(api_server + "/openpool/")  # not signed in: Airflow's own login page
        _wait(driver, "input[name=username]").send_keys(USER)
        driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        _wait(driver, "section#pool")  # ... and back to the page, signed in
        assert driver.current_url.rstrip("/").endswith("/openpool")
        assert driver.find_element(By.TAG_NAME, "h1").text == "OpenPool"

        for part in (TRANSCODE, AI):
            earnings, paid = pool.earnings(part), pool.paid(part)
            section = driver.find_element(By.CSS_SELECTOR, f'section[data-partition="{part}"]')
            for addr, wei in earnings.items():
                row = section.find_element(By.CSS_SELECTOR, f'tr[data-worker="{addr}"]')
                cell = row.find_element(By.CSS_SELECTOR, 'td[data-field="worker_earnings_wei"]')
                assert (cell.text, cell.get_attribute("data-wei")) == (eth(wei), str(wei))
                p = paid.get(addr, 0)
                assert row.find_element(By.CSS_SELECTOR, 'td[data-field="paid_wei"]').text == eth(p)
                payable = row.find_element(By.CSS_SELECTOR, 'td[data-field="payable_wei"]')
                assert payable.text == eth(wei - p)
                status = row.find_element(By.CSS_SELECTOR, 'td[data-field="status"]').text
                assert ("payout due" in status) == (part == AI)
            charts = section.find_elements(By.CSS_SELECTOR, "svg.ranks rect")
            assert len(charts) >= 3

        payments = [p for p in pool.payments() if p["status"] == CONFIRMED]
        assert len(payments) == 5
        for p in payments:
            link = driver.find_element(
                By.CSS_SELECTOR, f'#payments a[href="https://arbiscan.io/tx/{p["tx_hash"]}"]'
            )
            assert link.get_attribute("title") == p["tx_hash"]
            assert link.text == f"{p['tx_hash'][:12]}…{p['tx_hash'][-10:]}"
        plan = driver.find_element(By.CSS_SELECTOR, f'#approval [data-plan="{pool.waiting_plan}"]')
        total = load_plan(pool.state, pool.waiting_plan)["total_wei"]
        assert f"{eth(total)} ETH" in plan.text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#fees svg rect")) >= 2
        _full_page_screenshot(driver, REPO / "reports" / "dashboard.png")

        # the same page as the "OpenPool" entry of the Airflow UI's navigation
        driver.set_window_size(1440, 1000)
        driver.get(api_server + "/plugin/openpool")
        frame = _wait(driver, 'iframe[src*="openpool"]')
        time.sleep(1)  # let the UI finish laying out around the frame
        driver.save_screenshot(str(REPO / "reports" / "dashboard-in-airflow.png"))
        driver.switch_to.frame(frame)
        _wait(driver, "section#pool")
        first = next(iter(pool.earnings(TRANSCODE)))
        assert driver.find_elements(By.CSS_SELECTOR, f'tr[data-worker="{first}"]')
    finally:
        driver.quit()
