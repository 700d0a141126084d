"""``openpool statement``: a worker's earnings per day, payments and balance carried (issue 19).

Real state on the moto S3 server (generated traffic, with mess, ingested for a transcode and
an AI partition across midnight) and real payments on anvil (a plan executed by the hot
wallet, capped so some balance is carried). The statement is judged against an oracle from
the raw event files (``tests/helpers/oracle.py``'s accepted events and crediting rule, with
the per-job floor commission) and against the chain itself: the hot wallet's transfers to
the worker read block by block over RPC, with their tx hashes and block times.
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import json
import re
import secrets
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from openpool.airflow.dashboard.render import render_html
from openpool.analytics.published import visible_files
from openpool.analytics.refresh import refresh
from openpool.cli import main
from openpool.ingest.run import ingest
from openpool.overview import DashboardReader, Sources
from openpool.partitions import Partition
from openpool.payments import payout_log
from openpool.payouts.chain import Chain
from openpool.payouts.execute import execute
from openpool.payouts.keys import load_wallet, write_keystore
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import Limits, build_plan, load_plan, save_plan
from openpool.snapshots import SnapshotStore, parquet
from openpool.storage import S3Store
from openpool.traffic import GeneratedFile, Mess, generate, write
from tests.helpers.oracle import oracle_events
from tests.services import anvil

RATE = Fraction(1, 4)
TC = Partition("transcode", "us-west")
AI = Partition("ai", "us-central")
START = datetime(2026, 10, 3, 22, 0, tzinfo=UTC)  # three hours: two event days
DAY1, DAY2 = date(2026, 10, 3), date(2026, 10, 4)
MESS = Mess(duplicate_events=0.05, invalid_events=0.02, split_ai_jobs=0.2, resets=1)
ETH = 10**18
CAP = 10**12
PASSWORD = "correct horse battery staple"


@dataclass
class World:
    rpc: str
    chain: Chain
    state: S3Store
    files: list[GeneratedFile]
    wallet: str  # the hot wallet's address


def _traffic(part: Partition, seed: int) -> list[GeneratedFile]:
    return generate(
        part,
        START,
        timedelta(hours=3),
        workers=5,
        events_per_second=1,
        flush_seconds=900,
        seed=seed,
        mess=MESS,
    )


def _smallest_balance(state: S3Store) -> int:
    out = []
    for part in (TC, AI):
        snap = SnapshotStore(state, part).latest()
        assert snap is not None
        out += [int(r["worker_earnings_wei"]) for r in snap.read("balances").to_pylist()]
    return min(e for e in out if e > 0)


@pytest.fixture
def world(tmp_path: Path, s3_bucket: str) -> Iterator[World]:
    events, state = S3Store(f"s3://{s3_bucket}/events"), S3Store(f"s3://{s3_bucket}/state")
    files = _traffic(TC, 91) + _traffic(AI, 91)  # one seed: the same workers in both
    write(files, events)
    for part in (TC, AI):
        ingest(part, events, state, RATE)
    with anvil(tmp_path / "logs") as rpc:
        chain = Chain(rpc)
        keystore = tmp_path / "keystore.json"
        address = write_keystore(secrets.token_bytes(32), PASSWORD, keystore)
        chain.rpc("anvil_setBalance", [address, hex(100 * ETH)])
        (tmp_path / "password").write_text(PASSWORD)
        wallet = load_wallet(str(keystore), str(tmp_path / "password"))
        # Each payment capped at a third of the smallest balance: two runs pay every worker
        # twice per partition, and every worker still carries a balance.
        limits = Limits(1, _smallest_balance(state) // 3, 1000 * ETH, timedelta(0))
        ledger = Ledger(state, wallet.address)
        for _ in range(2):  # two payout runs: two payments to the capped worker
            plan = build_plan([TC, AI], state, ledger, limits, 42161)
            assert plan["payments"]
            h = save_plan(state, plan)
            report = execute(load_plan(state, h), h, ledger, chain, wallet, CAP, 30.0)
            assert report.confirmed == len(plan["payments"])
        yield World(rpc, chain, state, files, wallet.address)


# -- the oracle: raw event files and the chain -------------------------------------------


def oracle_days(files: list[GeneratedFile]) -> dict[tuple[str, str, str], list[int]]:
    """(worker, day, partition) -> [jobs, fees, commission] from the raw files alone."""
    accepted = oracle_events(files)
    worker_of: dict[str, tuple[str, str]] = {}
    for ev in accepted:
        if ev["EventType"] == "job-received" and ev["NodeType"] == "ai":
            p = ev["Payload"]
            cand = (ev["DT"], to_checksum_address(p["ethAddress"]))
            worker_of[p["requestID"]] = min(worker_of.get(p["requestID"], cand), cand)
    out: dict[tuple[str, str, str], list[int]] = {}
    for ev in accepted:
        if ev["EventType"] != "job-processed":
            continue
        p = ev["Payload"]
        if ev["NodeType"] == "ai":
            if p["requestID"] not in worker_of:
                continue  # not credited to anyone (yet)
            who = worker_of[p["requestID"]][1]
        else:
            who = to_checksum_address(p["ethAddress"])
        key = (who, ev["DT"][:10], f"{ev['NodeType']}|{ev['Region']}")
        acc = out.setdefault(key, [0, 0, 0])
        acc[0] += 1
        acc[1] += p["fees"]
        acc[2] += p["fees"] * RATE.numerator // RATE.denominator
    return out


def chain_transfers(world: World, worker: str) -> list[tuple[str, int, int, datetime]]:
    """(tx hash, wei, block number, block time) of every transfer from the hot wallet to
    ``worker``, read from every block over RPC."""
    out = []
    head = int(world.chain.rpc("eth_blockNumber", []), 16)
    for n in range(head + 1):
        block = world.chain.rpc("eth_getBlockByNumber", [hex(n), True])
        for tx in block["transactions"]:
            if tx["from"].lower() == world.wallet.lower() and (tx["to"] or "").lower() == (
                worker.lower()
            ):
                at = datetime.fromtimestamp(int(block["timestamp"], 16), UTC)
                out.append((tx["hash"], int(tx["value"], 16), n, at))
    return out


def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], world: World, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("OPENPOOL_STATE_URI", world.state.uri)
    monkeypatch.setenv("ETH_RPC_ENDPOINT", world.rpc)
    monkeypatch.setenv("OPENPOOL_PARTITIONS", f"{TC},{AI}")
    monkeypatch.setenv("POOL_COMMISSION_RATE", "0.25")
    code = main(["statement", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def check(doc: dict[str, Any], world: World, worker: str, start: date | None, end: date | None):
    """The statement equals the raw files and the chain, and its balance reconciles."""

    def inside(d: date) -> bool:
        return (start is None or d >= start) and (end is None or d <= end)

    days = {k: v for k, v in oracle_days(world.files).items() if k[0] == worker}
    want_days = sorted(
        (k[1], k[2], v[0], v[1], v[2], v[1] - v[2])
        for k, v in days.items()
        if inside(date.fromisoformat(k[1]))
    )
    got_days = [
        (d["day"], d["partition"], d["jobs"], d["fees_wei"], d["commission_wei"], d["earnings_wei"])
        for d in doc["days"]
    ]
    assert got_days == want_days
    transfers = chain_transfers(world, worker)
    want_pay = sorted((h, v, n, at.isoformat()) for h, v, n, at in transfers if inside(at.date()))
    got_pay = sorted(
        (p["tx_hash"], p["amount_wei"], p["block_number"], p["block_time"]) for p in doc["payments"]
    )
    assert got_pay == want_pay
    earned_before = sum(v[1] - v[2] for k, v in days.items() if start and k[1] < str(start))
    paid_before = sum(v for _, v, _, at in transfers if start and at.date() < start)
    earned_to = sum(v[1] - v[2] for k, v in days.items() if not end or k[1] <= str(end))
    paid_to = sum(v for _, v, _, at in transfers if not end or at.date() <= end)
    t = doc["totals"]
    assert doc["opening_balance_wei"] == earned_before - paid_before
    assert doc["closing_balance_wei"] == earned_to - paid_to
    assert (
        doc["opening_balance_wei"] + t["fees_wei"] - t["commission_wei"] - t["paid_wei"]
        == doc["closing_balance_wei"]
    )
    assert t["paid_wei"] == sum(p[1] for p in want_pay)


def test_a_statement_reconciles_with_the_raw_events_and_the_chain(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The worker who earned most: paid twice per partition, still owed; it earns in both
    # partitions on both days.
    days = oracle_days(world.files)
    earned: dict[str, int] = {}
    for (who, _, _), v in days.items():
        earned[who] = earned.get(who, 0) + v[1] - v[2]
    worker = max(earned, key=lambda w: earned[w])
    assert {k[2] for k in days if k[0] == worker} == {str(TC), str(AI)}
    assert {k[1] for k in days if k[0] == worker} == {str(DAY1), str(DAY2)}
    assert len(chain_transfers(world, worker)) == 4

    code, out, err = run(monkeypatch, capsys, world, "--worker", worker.lower(), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["worker"] == worker and doc["commission_rate"] == "1/4"
    check(doc, world, worker, None, None)
    assert doc["opening_balance_wei"] == 0 and doc["closing_balance_wei"] > 0

    # A period: the second event day only. Day 1 is carried in; the payments (made today)
    # fall after it.
    code, out, err = run(
        monkeypatch, capsys, world, "--worker", worker, "--from", str(DAY2), "--to", str(DAY2),
        "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    part = json.loads(out)
    check(part, world, worker, DAY2, DAY2)
    assert part["opening_balance_wei"] > 0 and part["payments"] == []
    # From day 2 to today: the payments are in, the closing balance is the full one.
    today = datetime.now(UTC).date()
    code, out, err = run(
        monkeypatch, capsys, world, "--worker", worker, "--from", str(DAY2), "--to", str(today),
        "--format", "json",
    )  # fmt: skip
    recent = json.loads(out)
    check(recent, world, worker, DAY2, today)
    assert recent["closing_balance_wei"] == doc["closing_balance_wei"] and recent["payments"]

    # CSV: the same lines, exact digits.
    code, out, err = run(monkeypatch, capsys, world, "--worker", worker, "--format", "csv")
    assert code == 0, err
    lines = list(csv.DictReader(io.StringIO(out)))
    assert [r["line"] for r in lines] == (
        ["opening"] + ["day"] * len(doc["days"]) + ["payment"] * len(doc["payments"]) + ["closing"]
    )
    assert int(lines[0]["balance_wei"]) == doc["opening_balance_wei"]
    assert int(lines[-1]["balance_wei"]) == doc["closing_balance_wei"]
    day_rows = [r for r in lines if r["line"] == "day"]
    assert [(r["day"], r["partition"], int(r["earnings_wei"]), int(r["commission_wei"]))
            for r in day_rows] == [(d["day"], d["partition"], d["earnings_wei"],
                                    d["commission_wei"]) for d in doc["days"]]  # fmt: skip
    pay_rows = [r for r in lines if r["line"] == "payment"]
    assert [(r["tx_hash"], int(r["paid_wei"]), r["block_time"]) for r in pay_rows] == [
        (p["tx_hash"], p["amount_wei"], p["block_time"]) for p in doc["payments"]
    ]

    # The published worker_statements (read through its symlinks, as Athena reads it) hold
    # the same day lines and the confirmed payments with their tx hashes.
    log, metrics = payout_log(world.state), S3Store(world.state.uri + "-metrics")
    for p in (TC, AI):
        mine_log = log.filter(pc.equal(log["partition"], str(p)))
        refresh(p, world.state, metrics, 10**16, payouts=mine_log, commission_rate=RATE)
    published = []
    for uris in visible_files(world.state, "worker_statements").values():
        for uri in uris:
            key = uri.split(f"{world.state.uri}/", 1)[1]
            published += parquet.decode(world.state.get(key), uri).to_pylist()
    mine = [r for r in published if r["eth_address"] == worker]
    assert sorted((r["day"], int(r["earnings_wei"])) for r in mine if r["line"] == "earnings") == (
        sorted((d["day"], d["earnings_wei"]) for d in doc["days"])
    )
    assert sorted((r["tx_hash"], int(r["paid_wei"])) for r in mine if r["line"] == "payment") == (
        sorted((p["tx_hash"], p["amount_wei"]) for p in doc["payments"])
    )


def test_an_unknown_worker_a_bad_address_or_a_bad_day_is_a_clear_error(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = Account.create().address
    code, out, err = run(monkeypatch, capsys, world, "--worker", stranger)
    assert (code, out) == (1, "")
    assert f"no earnings or payments for worker {stranger} in any partition" in err
    assert str(TC) in err and "Traceback" not in err
    code, out, err = run(monkeypatch, capsys, world, "--worker", "0x1234")
    assert (code, out) == (1, "") and "'0x1234' is not an Ethereum address" in err
    with pytest.raises(SystemExit) as exc:
        run(monkeypatch, capsys, world, "--worker", stranger, "--from", "03/10/2026")
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "'03/10/2026' is not a day (YYYY-MM-DD" in err
    code, out, err = run(
        monkeypatch, capsys, world, "--worker", stranger, "--from", "2026-10-04", "--to",
        "2026-10-03",
    )  # fmt: skip
    assert code == 1 and "--to 2026-10-03 is before --from 2026-10-04" in err


def test_the_dashboard_gives_each_worker_the_command_of_its_statement(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each pool-wide worker row of the OpenPool page names the command that prints its
    statement; run exactly as shown, it prints that worker's statement."""
    metrics = S3Store(world.state.uri + "-metrics")
    src = Sources(world.state, metrics, (TC, AI), 10**16, 42161, world.wallet)
    view = DashboardReader().read(src)
    html = render_html(view)
    section = html[html.index('<table id="pool-workers">') :].split("</table>")[0]
    workers = [w["eth_address"] for w in view.pool.workers]
    assert len(workers) >= 5
    for addr in workers:
        row = section[section.index(f'<tr data-worker="{addr}">') :].split("</tr>")[0]
        shown = re.search(r'<code class="statement"[^>]*>([^<]+)</code>', row)
        assert shown, row
        argv = shlex.split(html_lib.unescape(shown[1]))
        assert argv[:2] == ["openpool", "statement"] and argv[3] == addr
        code, out, err = run(monkeypatch, capsys, world, *argv[2:])
        assert code == 0, err
        lines = list(csv.DictReader(io.StringIO(out)))
        assert lines[0]["line"] == "opening" and lines[-1]["line"] == "closing"
        assert int(lines[-1]["balance_wei"]) > 0  # every worker here carries a balance
