"""The ingest DAGs in real Airflow 3 (``dag.test()``, SQLite metadata) against a moto S3 server."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from openpool.ingest.discovery import key_start
from openpool.partitions import ACTIVE_PARTITIONS, Partition
from openpool.snapshots import SnapshotStore
from openpool.storage import S3Store, make_s3_client
from openpool.traffic import Mess, generate, write
from tests.helpers.ledger import balances_of, worker_oracle
from tests.helpers.parse_dags import parse_dags
from tests.services import REPO

PART = Partition("transcode", "us-west")
RATE = Fraction(1, 4)
START = datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
OPERATOR, OPERATOR_PASSWORD = "operator", "operator-" + os.urandom(6).hex()


def test_dag_files_import_cleanly_without_network_or_config() -> None:
    """Every DAG file in dags/, in a process with a minimal environment (no OPENPOOL_*, AWS_*
    or AIRFLOW__* settings), no DNS or IP sockets, no metadata DB and every Variable and
    connection API raising (tests/helpers/parse_dags.py checks each guard was live and
    never hit)."""
    report = parse_dags(REPO / "dags")
    assert report["import_errors"] == {}
    assert report["warnings"] == []
    ingest = {d: t for d, t in report["dags"].items() if d.startswith("openpool_ingest__")}
    expected = {
        "openpool_ingest__" + Partition.parse(p).slug.replace("-", "_") for p in ACTIVE_PARTITIONS
    }
    assert set(ingest) == expected and len(ingest) == len(ACTIVE_PARTITIONS) == 5
    for tasks in ingest.values():
        assert tasks == sorted(
            ["wait_for_events", "parse", "dedup", "accrue", "commit", "analytics", "archive"]
        )
        assert not any("pay" in t for t in tasks)
    assert report["dags"]["openpool_summary"] == ["pool_summary"]
    assert report["dags"]["openpool_alerts"] == ["evaluate_and_notify"]
    # No DAG file loads the payout library at parse time; ingest DAG files parsed alone
    # load nothing payout-related (tests/test_payouts_dag.py checks each file).
    assert not [m for m in report["payout_modules"] if m.startswith("openpool.payouts")]
    assert "openpool_payouts" in report["dags"]


def test_the_dag_is_shaped_for_operators() -> None:
    from openpool.airflow.factory import build_ingest_dag, dag_id

    dag = build_ingest_dag(PART)
    assert dag.dag_id == dag_id(PART) == "openpool_ingest__transcode__us_west"
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert {"openpool", "ingest", "transcode", "us-west"} <= set(dag.tags)
    assert "Backfill" in (dag.doc_md or "") and "skipped" in (dag.doc_md or "")
    order = ["wait_for_events", "parse", "dedup", "accrue", "commit"]
    for up, down in itertools.pairwise(order):
        assert dag.get_task(up).downstream_task_ids == {down}
    assert dag.get_task("commit").downstream_task_ids == {"analytics", "archive"}
    assert dag.get_task("wait_for_events").deferrable
    assert dag.get_task("commit").outlets and dag.get_task("parse").retries == 3
    assert set(dag.params) == {"from", "to", "sweep"}


@dataclass
class World:
    bucket: str
    events: S3Store
    archive: S3Store
    state: S3Store
    metrics: S3Store


@pytest.fixture
def world(airflow_db: str, s3_bucket: str, moto_endpoint: str, monkeypatch) -> Iterator[World]:
    client = make_s3_client()
    w = World(
        s3_bucket,
        *(
            S3Store(f"s3://{s3_bucket}/{n}", client=client)
            for n in ("events", "archive", "state", "metrics")
        ),
    )
    monkeypatch.setenv("OPENPOOL_EVENTS_URI", w.events.uri)
    monkeypatch.setenv("OPENPOOL_ARCHIVE_URI", w.archive.uri)
    monkeypatch.setenv("OPENPOOL_STATE_URI", w.state.uri)
    monkeypatch.setenv("OPENPOOL_METRICS_URI", w.metrics.uri)
    monkeypatch.setenv("POOL_COMMISSION_RATE", "0.25")
    conn = {
        "conn_type": "aws",
        "login": os.environ["AWS_ACCESS_KEY_ID"],
        "password": os.environ["AWS_SECRET_ACCESS_KEY"],
        "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # the DAG must reach S3 through the connection
    yield w


def _dag(**kw: Any):
    from openpool.airflow.factory import build_ingest_dag

    return build_ingest_dag(
        PART,
        wait_timeout=timedelta(seconds=4),
        poke_interval=timedelta(seconds=1),
        default_args={
            "retries": 1,
            "retry_delay": timedelta(seconds=0),
            "retry_exponential_backoff": False,
        },
        **kw,
    )


def _run(dag, **conf: Any) -> dict[str, str]:
    dr = dag.test(run_conf=conf or None)
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def _files(span=timedelta(hours=1), start=START, seed=3):
    return generate(
        PART,
        start,
        span,
        workers=4,
        events_per_second=3,
        flush_seconds=300,
        seed=seed,
        mess=Mess(duplicate_events=0.05, invalid_events=0.02, resets=1),
    )


def _version(w: World) -> int:
    return SnapshotStore(w.state, PART).latest_version()


def test_runs_ingest_exactly_skip_when_idle_and_pick_up_late_files(world: World) -> None:
    files = _files()
    late, early = files[0], files[1:]
    write(early, world.events)
    dag = _dag()

    t0 = time.perf_counter()
    states = _run(dag)
    first_run_s = time.perf_counter() - t0
    assert set(states.values()) == {"success"}, states
    assert balances_of(world.state, PART) == worker_oracle(early, RATE)
    archived = {i.key for i in world.archive.list(PART.path + "/")}
    assert archived == {f.key for f in early}
    assert not list(world.state.list("staging/"))  # staging cleaned after the run
    v1 = _version(world)

    states = _run(dag)  # nothing new: skipped at the sensor, nothing else runs
    assert states["wait_for_events"] == "skipped", states
    assert all(s == "skipped" for s in states.values()), states
    assert _version(world) == v1

    write([late], world.events)  # a late file whose key sorts before everything seen
    states = _run(dag)
    assert set(states.values()) == {"success"}, states
    assert balances_of(world.state, PART) == worker_oracle(files, RATE)
    assert _version(world) == v1 + 1
    summary = json.loads(world.metrics.get(f"{PART.path}/worker_summary.json"))
    assert summary["data"]["snapshot_version"] == v1 + 1
    fees = {a: w["total_fees"] for a, w in summary["data"]["workers"].items()}
    assert fees == {a: b["total_fees_wei"] for a, b in balances_of(world.state, PART).items()}

    from openpool.airflow.factory import build_summary_dag

    pool = build_summary_dag().test()
    assert {str(ti.state) for ti in pool.get_task_instances()} == {"success"}
    doc = json.loads(world.metrics.get("pool/worker_summary.json"))
    assert doc["data"]["snapshot_versions"][str(PART)] == v1 + 1
    assert doc["data"]["aggregates"]["total_fees_wei"] == sum(fees.values())
    read = SnapshotStore(world.state, PART).at(v1).manifest.properties["events_read"]
    print(f"\nfirst dag.test() run: {read} events in {first_run_s:.1f}s")


@pytest.mark.parametrize("task_id", ["dedup", "commit"])
def test_a_task_that_fails_once_is_retried_to_the_clean_state(
    world: World, monkeypatch, task_id: str
) -> None:
    from openpool.ingest import steps

    files = _files(span=timedelta(minutes=30))
    write(files, world.events)
    real = getattr(steps, task_id)
    failures: list[str] = []

    def flaky(*a: Any, **kw: Any) -> Any:
        result = real(*a, **kw)  # the work is done (for commit: the snapshot is in) ...
        if not failures:
            failures.append(task_id)
            raise RuntimeError(f"injected failure after {task_id} did its work")  # ... then lost
        return result

    monkeypatch.setattr(steps, task_id, flaky)
    dr = _dag().test()
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    assert failures == [task_id]
    assert tis[task_id].try_number == 2 and str(tis[task_id].state) == "success"
    assert all(str(ti.state) == "success" for ti in tis.values())
    assert balances_of(world.state, PART) == worker_oracle(files, RATE)
    assert _version(world) == 1  # one batch, one commit, even though commit ran twice


def test_a_backfill_run_is_told_apart_by_the_run_type_the_task_sdk_hands_over() -> None:
    """The task SDK's run type renders as ``DagRunType.BACKFILL``; its value is "backfill".
    A backfill's own interval wins over any ``from``/``to`` left in the form."""
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRunType

    from openpool.airflow.params import replay_interval

    a, b = START, START + timedelta(minutes=5)
    backfill = SimpleNamespace(run_type=DagRunType.BACKFILL)
    assert str(DagRunType.BACKFILL) == "DagRunType.BACKFILL"
    ctx = {"dag_run": backfill, "data_interval_start": a, "data_interval_end": b}
    assert replay_interval(ctx) == (a, b)
    assert replay_interval({**ctx, "params": {"from": "2020-01-01T00:00:00Z"}}) == (a, b)
    manual = {**ctx, "dag_run": SimpleNamespace(run_type=DagRunType.MANUAL)}
    assert replay_interval(manual) is None


def _backfill_runs(dag, start: datetime, end: datetime) -> list[Any]:
    """The runs Airflow's own backfill creates for ``[start, end]`` (what the UI's
    backfill dialog and ``POST /api/v2/backfills`` call), oldest first."""
    from airflow.models.backfill import _create_backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    backfill = _create_backfill(
        dag_id=dag.dag_id,
        from_date=start,
        to_date=end,
        max_active_runs=1,
        reverse=False,
        dag_run_conf=None,
        triggering_user_name="operator",
    )
    with create_session() as session:
        runs = session.scalars(
            select(DagRun).where(DagRun.backfill_id == backfill.id).order_by(DagRun.logical_date)
        ).all()
        session.expunge_all()
    return list(runs)


def _close_finished_backfills() -> list[Any]:
    """What the scheduler's loop does once a backfill's runs have all ended: mark it
    complete (until then Airflow refuses another backfill of the DAG). Returns the
    backfills still open, with their runs' states."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.backfill import Backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    SchedulerJobRunner(job=Job())._mark_backfills_complete()
    with create_session() as session:
        return [
            (
                b.id,
                [
                    str(r.state)
                    for r in session.scalars(select(DagRun).where(DagRun.backfill_id == b.id))
                ],
            )
            for b in session.scalars(select(Backfill).where(Backfill.completed_at.is_(None)))
        ]


def _run_existing(dag, run: Any, monkeypatch) -> dict[str, str]:
    """Run the tasks of an existing DagRun (a backfill's) through ``dag.test()``'s own
    loop: only its lookup, which always makes a new manual run, is pointed at ``run``."""
    import airflow.models.dagrun as dagrun_module
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    def existing(*, dag: Any, session: Any, **_: Any) -> Any:
        dr = session.get(DagRun, run.id)  # the row as it is (a merge would write ours back)
        dr.dag = dag
        dr.state = DagRunState.RUNNING
        session.commit()
        return dr

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", existing)
    dag.test(logical_date=run.logical_date)
    with create_session() as session:
        dr = session.get(DagRun, run.id)
        return {ti.task_id: str(ti.state) for ti in dr.get_task_instances(session=session)}


def test_a_backfill_from_airflow_ingests_its_interval_without_waiting(
    world: World, monkeypatch
) -> None:
    """Issue 16 item 1: a backfill made by Airflow (not a ``conf`` replay) re-scans its
    runs' data intervals. Airflow 3.3's task SDK renders the run type ``DagRunType.BACKFILL``;
    a check for the text "backfill" missed it, so every run waited, then skipped everything
    and reported success with nothing ingested."""
    files = _files(span=timedelta(hours=1))
    lo, hi = START + timedelta(minutes=20), START + timedelta(minutes=35)
    dag = _dag()
    near = timedelta(minutes=5)  # one period either side: whatever the runs cover
    runs_window = [f for f in files if lo - near <= key_start(f.key) < hi + near]
    before = [f for f in files if f not in runs_window]
    write(before, world.events)
    assert set(_run(dag).values()) == {"success"}  # the live run (and the DAG registered)
    runs = _backfill_runs(dag, lo, hi)
    assert runs and {str(r.run_type) for r in runs} == {"backfill"}
    covered = [(r.data_interval_start, r.data_interval_end) for r in runs]
    assert covered[0][0] <= lo and covered[-1][1] >= hi, covered  # the runs cover the range
    in_runs = [f for f in files if any(a <= key_start(f.key) < b for a, b in covered)]
    assert in_runs and {f.key for f in in_runs} <= {f.key for f in runs_window}
    write(files, world.archive)  # only the archive holds them: nothing new to wait for
    for run in runs:
        states = _run_existing(dag, run, monkeypatch)
        assert states["wait_for_events"] == "success", states
        assert states["parse"] == "success" and states["commit"] == "success", states
    assert _close_finished_backfills() == []  # every run ended: Airflow closed the backfill
    assert balances_of(world.state, PART) == worker_oracle(before + in_runs, RATE)


def test_a_backfill_of_an_archived_interval_ingests_missing_files_once(world: World) -> None:
    files = _files(span=timedelta(hours=2))
    lo, hi = START + timedelta(hours=1), START + timedelta(hours=2)
    in_window = [f for f in files if lo <= key_start(f.key) < hi]
    before = [f for f in files if f not in in_window]
    write(before, world.events)
    write(files, world.archive)  # the archive holds the whole period
    dag = _dag()
    assert set(_run(dag).values()) == {"success"}
    v = _version(world)
    conf = {"from": lo.isoformat(), "to": hi.isoformat()}
    states = _run(dag, **conf)
    assert set(states.values()) == {"success"}, states
    assert balances_of(world.state, PART) == worker_oracle(files, RATE)
    assert _version(world) == v + 1
    states = _run(dag, **conf)  # a repeat is a no-op
    assert set(states.values()) == {"success"}, states
    assert _version(world) == v + 1
    assert balances_of(world.state, PART) == worker_oracle(files, RATE)


def _trigger_events(deadline_s: float, during: Any = None) -> tuple[list[dict[str, Any]], float]:
    """Every event one NewEventFilesTrigger yields (run as the triggerer runs it), and how long."""
    import asyncio

    from openpool.airflow.triggers import NewEventFilesTrigger

    deadline = datetime.now(UTC) + timedelta(seconds=deadline_s)
    trigger = NewEventFilesTrigger(str(PART), deadline.isoformat(), 0.5, "aws_default")
    classpath, kwargs = trigger.serialize()
    assert classpath == "openpool.airflow.triggers.NewEventFilesTrigger"

    async def run() -> list[dict[str, Any]]:
        if during is not None:
            asyncio.get_running_loop().call_later(1.5, during)
        return [e.payload async for e in NewEventFilesTrigger(**kwargs).run()]

    t0 = time.monotonic()
    events = asyncio.run(run())
    return events, time.monotonic() - t0


def test_the_trigger_answers_once_idle_at_its_deadline_or_new_when_a_file_lands(
    world: World,
) -> None:
    """Issue 16 item 4: the stock S3KeyTrigger fired on every poke that found any key, so a
    partition full of ingested files woke its task once per poke (6-7 task restarts per idle
    4-minute wait in the devstack) and the wait ended in ERROR "Trigger cancelled due to
    timeout". This trigger fires once: idle at its own deadline, or new when a file lands."""
    from openpool.ingest.run import ingest

    files = _files(span=timedelta(minutes=40))
    write(files[:-1], world.events)
    ingest(PART, world.events, world.state, RATE)
    events, took = _trigger_events(3)
    assert events == [{"status": "idle", "listed": len(files) - 1, "polls": events[0]["polls"]}]
    assert events[0]["polls"] >= 3 and took >= 3  # it kept looking for the whole wait

    events, took = _trigger_events(30, during=lambda: write(files[-1:], world.events))
    assert events == [{"status": "new", "listed": len(files), "pending": 1}]
    assert took < 10  # woke on the file, not at the deadline


def test_a_due_sweep_wakes_the_run_which_ingests_a_file_late_by_a_week_once(
    world: World,
) -> None:
    """Issue 20: pokes and runs list only the window after the key-time watermark, so a file
    a week late is found by the sweep: once the last one recorded is a day old, the trigger
    answers at once without listing, and the run it wakes sweeps and records it."""
    from openpool.ingest.run import ingest

    files = _files(span=timedelta(minutes=40))
    week_late = _files(span=timedelta(minutes=10), start=START - timedelta(days=7), seed=4)
    write(files, world.events)
    ingest(PART, world.events, world.state, RATE)
    write(week_late, world.events)
    dag = _dag()
    assert all(s == "skipped" for s in _run(dag).values())  # outside the window: idle

    snaps = SnapshotStore(world.state, PART)
    base = snaps.latest()
    assert base is not None
    txn = snaps.begin(base, "a-day-later")  # as if a day had passed since the last sweep
    swept = datetime.fromisoformat(base.manifest.properties["discovery_sweep_at"])
    txn.set_properties(discovery_sweep_at=(swept - timedelta(hours=24)).isoformat())
    txn.commit()
    events, took = _trigger_events(30)
    assert events == [{"status": "new", "listed": 0, "pending": 0, "sweep": True}] and took < 10

    assert set(_run(dag).values()) == {"success"}
    props = snaps.latest().manifest.properties
    assert props["discovery_sweep_missed"] == len(week_late)
    assert balances_of(world.state, PART) == worker_oracle(files + week_late, RATE)
    assert all(s == "skipped" for s in _run(dag).values())  # recorded: idle again
    v = _version(world)
    assert set(_run(dag, sweep=True).values()) == {"success"}  # on demand: nothing new
    assert _version(world) == v + 1 and balances_of(world.state, PART) == worker_oracle(
        files + week_late, RATE
    )
    assert snaps.latest().manifest.properties["discovery_sweep_missed"] == 0


def test_an_idle_run_defers_once_and_ends_skipped_saying_why(world: World, monkeypatch) -> None:
    from openpool.airflow.sensors import NewEventFilesSensor
    from openpool.airflow.triggers import IDLE

    write(_files(span=timedelta(minutes=30)), world.events)
    dag = _dag()
    assert set(_run(dag).values()) == {"success"}
    deferrals: list[str] = []
    original = NewEventFilesSensor.defer

    def counting(self, **kw: Any) -> None:
        deferrals.append(type(kw["trigger"]).__name__)
        original(self, **kw)

    monkeypatch.setattr(NewEventFilesSensor, "defer", counting)
    states = _run(dag)  # a 4 s wait polled every second, nothing new
    assert all(s == "skipped" for s in states.values()), states
    assert deferrals == ["NewEventFilesTrigger"]

    from airflow.sdk.exceptions import AirflowSkipException

    sensor = dag.get_task("wait_for_events")
    with pytest.raises(AirflowSkipException) as skip:
        sensor.execute_complete({}, {"status": IDLE, "listed": 6, "polls": 4})
    assert str(skip.value) == (
        f"idle: no new event files for {PART} within 0:00:04 (6 listed, all ingested)"
    )


def _backfill_in_the_ui(url: str, dag_id: str, lo: datetime, hi: datetime, profile: Any) -> str:
    """Chromium signs in, opens the DAG, and asks Airflow's own Backfill dialog for
    ``[lo, hi]``; returns the dialog's text as the operator read it before running it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.helpers.browser import browser, full_page_screenshot, sign_in, wait

    driver = browser(profile)
    try:
        sign_in(driver, f"{url}/dags/{dag_id}", OPERATOR, OPERATOR_PASSWORD)
        wait(driver, "//button[normalize-space()='Trigger']", xpath=True).click()
        wait(driver, "//*[@role='dialog']//*[normalize-space()='Backfill']", xpath=True).click()
        pickers = "[role=dialog] [data-testid=datetime-input]"
        wait(driver, pickers)
        for i, when in enumerate((lo, hi)):
            driver.find_elements(By.CSS_SELECTOR, pickers)[i].click()
            day = wait(driver, "input[placeholder='YYYY/MM/DD']")
            day.send_keys(Keys.CONTROL, "a")
            day.send_keys(when.strftime("%Y/%m/%d"), Keys.ENTER)
            hour = next(
                e
                for e in driver.find_elements(By.CSS_SELECTOR, "input[placeholder='HH:mm']")
                if e.is_displayed()
            )
            hour.send_keys(Keys.CONTROL, "a")
            hour.send_keys(when.strftime("%H:%M"), Keys.ENTER)
            driver.find_element(By.XPATH, "//*[normalize-space()='Date Range']").click()
        run = wait(driver, "//button[normalize-space()='Run Backfill']", xpath=True)
        WebDriverWait(driver, 30).until(lambda _d: run.is_enabled())
        seen = driver.execute_script("return document.body.innerText")  # the scrolled part too
        full_page_screenshot(driver, REPO / "reports" / "ingest-backfill-dialog.png")
        run.click()
        wait(driver, "//*[contains(normalize-space(), 'Backfill generated')]", xpath=True)
        return seen
    finally:
        driver.quit()


def _runs_of_backfills(dag_id: str) -> list[Any]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        runs = session.scalars(
            select(DagRun)
            .where(DagRun.dag_id == dag_id, DagRun.backfill_id.is_not(None))
            .order_by(DagRun.logical_date)
        ).all()
        session.expunge_all()
    return list(runs)


def test_a_backfill_asked_for_in_the_airflow_ui_ingests_its_interval(
    world: World, monkeypatch, tmp_path
) -> None:
    """Issue 16: the operator's path, in Chromium: DAG page, Trigger, Backfill, a range,
    Run Backfill. The runs Airflow made are then run; each re-scans its interval."""
    from tests.helpers.hitl_api import api_server

    passwords = tmp_path / "operators.json"
    passwords.write_text(json.dumps({OPERATOR: OPERATOR_PASSWORD}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", f"{OPERATOR}:admin")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    files = _files(span=timedelta(hours=1))
    # not the interval of the API backfill test above: this session's DB still has its runs
    lo, hi = START + timedelta(minutes=40), START + timedelta(minutes=55)
    dag = _dag()
    assert _close_finished_backfills() == []  # one at a time: an earlier test's has ended
    known = {r.run_id for r in _runs_of_backfills(dag.dag_id)}
    near = timedelta(minutes=5)
    before = [f for f in files if not lo - near <= key_start(f.key) < hi + near]
    write(before, world.events)
    assert set(_run(dag).values()) == {"success"}  # the live run; the DAG is registered
    with api_server() as url:
        seen = _backfill_in_the_ui(url, dag.dag_id, lo, hi, tmp_path / "chromium")
    runs = [r for r in _runs_of_backfills(dag.dag_id) if r.run_id not in known]
    assert 1 <= len(runs) <= 5, [(r.run_id, r.data_interval_start) for r in runs]
    covered = [(r.data_interval_start, r.data_interval_end) for r in runs]
    assert covered[0][0] <= lo + near and covered[-1][1] >= hi - near, covered
    in_runs = [f for f in files if any(a <= key_start(f.key) < b for a, b in covered)]
    write(files, world.archive)  # only the archive holds them
    for run in runs:
        states = _run_existing(dag, run, monkeypatch)
        assert states["wait_for_events"] == "success" and states["commit"] == "success", states
    assert _close_finished_backfills() == []
    assert balances_of(world.state, PART) == worker_oracle(before + in_runs, RATE)
    assert "4 runs will be triggered" in seen, seen  # what the operator was told
    assert "instead of a backfill" in seen, seen  # the replay fields say they are the other way


def test_a_corrupt_manifest_fails_the_task_at_once_unretried(
    world: World,
) -> None:
    """Issue 17: a terminal error (damaged state, bad configuration) is not retried: a retry
    cannot cure it and only delays the page to the operator."""
    from openpool.snapshots.manifest import manifest_name

    files = _files(span=timedelta(minutes=20))
    write(files[: len(files) // 2], world.events)
    assert set(_run(_dag()).values()) == {"success"}
    snaps = SnapshotStore(world.state, PART)
    key = snaps.prefix + manifest_name(snaps.latest_version())
    raw = world.state.get(key)
    world.state.put(key, raw[: len(raw) // 2])  # damage at rest
    write(files[len(files) // 2 :], world.events)
    # a replay skips the wait, so the first task to read the state is parse (retries=1)
    dr = _dag().test(run_conf={"from": START.isoformat()})
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    states = {t: str(ti.state) for t, ti in tis.items()}
    assert states["wait_for_events"] == "success" and states["parse"] == "failed", states
    assert tis["parse"].try_number == 1  # failed at once, never retried
    assert str(dr.state) == "failed"
    world.state.put(key, raw)  # repaired: the next run ingests the rest exactly
    assert set(_run(_dag()).values()) == {"success"}
    assert balances_of(world.state, PART) == worker_oracle(files, RATE)
