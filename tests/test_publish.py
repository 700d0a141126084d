"""Published Parquet for Athena, read the way Athena reads it: through the symlink manifests.

Every query here starts from the ``symlink.txt`` objects under ``published/_symlinks/`` (the
folders Athena's partition projection points at), reads only the Parquet files they list,
and adds the partition columns from the symlink's path, as Athena does. DuckDB runs the
analyst's SQL on that; the numbers must equal the CLI's (``balance_rows``) exactly.

On S3 the listed ``s3://`` files are fetched from the moto server with a plain boto3 client
by their full URI and handed to DuckDB as local files: DuckDB's httpfs extension is not
bundled and is not downloaded in tests. On disk the ``file://`` URIs are read in place.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from eth_utils import to_checksum_address

from openpool.analytics import athena
from openpool.analytics.performance import performance
from openpool.analytics.performance.quantiles import grouped_quantiles
from openpool.analytics.publish import DERIVED, conform, derive, payments, publish
from openpool.analytics.published import (
    PAYOUTS,
    PERFORMANCE,
    TABLES,
    collect_published,
    partition_columns,
    published_columns,
    read_state,
    state_key,
)
from openpool.cli import main
from openpool.errors import StorageError
from openpool.ingest.run import ingest
from openpool.ingest.service import balance_rows, status_row
from openpool.partitions import Partition
from openpool.snapshots import Snapshot, SnapshotStore
from openpool.storage import LocalStore, ObjectInfo, ObjectStore, S3Store, make_s3_client
from openpool.tables import EVENTS
from openpool.traffic import GeneratedFile, Mess, generate, write
from tests.helpers.oracle import UNATTRIBUTED, oracle_balances, oracle_events

RATE = Fraction(1, 4)
THRESHOLD = 10**16
TC = Partition("transcode", "us-west")
AI = Partition("ai", "us-central")
START = datetime(2026, 10, 3, 23, 0, tzinfo=UTC)  # two hours: two event dates
MESS = Mess(duplicate_events=0.05, invalid_events=0.02, split_ai_jobs=0.2, resets=1)
SYMLINKS = "published/_symlinks"


@dataclass
class Env:
    events: ObjectStore
    state: ObjectStore
    tmp: Path


@pytest.fixture(params=["local", "s3"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    if request.param == "local":
        return Env(LocalStore(tmp_path / "events"), LocalStore(tmp_path / "state"), tmp_path)
    bucket = request.getfixturevalue("s3_bucket")
    return Env(S3Store(f"s3://{bucket}/events"), S3Store(f"s3://{bucket}/state"), tmp_path)


def traffic(part: Partition, seed: int, workers: int = 8) -> list[GeneratedFile]:
    return generate(
        part,
        START,
        timedelta(hours=2),
        workers=workers,
        events_per_second=1,
        flush_seconds=900,
        seed=seed,
        mess=MESS,
    )


def load(env: Env, part: Partition, files: list[GeneratedFile]) -> Snapshot:
    write(files, env.events)
    ingest(part, env.events, env.state, RATE)
    snap = SnapshotStore(env.state, part).latest()
    assert snap is not None
    return snap


def publish_snap(state: ObjectStore, part: Partition, snap: Snapshot):
    return publish(state, part, snap, derive(snap, part, THRESHOLD))


# -- reading like Athena ------------------------------------------------------------------


def symlinks(state: ObjectStore, table: str | None = None) -> dict[str, bytes]:
    """Every symlink.txt (key -> bytes) under the table's (or every table's) location."""
    prefix = f"{SYMLINKS}/{table}/" if table else f"{SYMLINKS}/"
    return {i.key: state.get(i.key) for i in state.list(prefix) if i.key.endswith("symlink.txt")}


def local_path(uri: str, tmp: Path) -> str:
    """A local file holding the object ``uri`` names (fetched by its full URI on S3)."""
    if uri.startswith("file://"):
        return uri[len("file://") :]
    assert uri.startswith("s3://"), uri
    bucket, _, key = uri[len("s3://") :].partition("/")
    dest = tmp / "fetched" / bucket / key
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(make_s3_client().get_object(Bucket=bucket, Key=key)["Body"].read())
    return str(dest)


def path_values(key: str) -> dict[str, str]:
    """Partition values from a symlink key: ``.../region=r/node_type=t/[date=d/]symlink.txt``."""
    return dict(re.findall(r"([a-z_]+)=([^/]+)", key))


def athena_view(con: duckdb.DuckDBPyConnection, state: ObjectStore, table: str, tmp: Path) -> None:
    """``table`` as Athena would see it: declared columns of the listed files + path columns."""
    parts = []
    cols = ", ".join(f'"{c}"' for c, _ in published_columns(table))
    for key, body in sorted(symlinks(state, table).items()):
        uris = body.decode().splitlines()
        assert uris, f"{key} lists no files"
        files = ", ".join(f"'{local_path(u, tmp)}'" for u in uris)
        values = path_values(key)
        assert set(values) == set(partition_columns(table))
        consts = ", ".join(f"'{values[c]}' AS \"{c}\"" for c in partition_columns(table))
        parts.append(f"SELECT {cols}, {consts} FROM read_parquet([{files}])")
    assert parts, f"nothing published for {table}"
    con.execute(f'CREATE OR REPLACE VIEW "{table}" AS ' + " UNION ALL ".join(parts))


def as_athena(state: ObjectStore, tmp: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for table in TABLES:
        athena_view(con, state, table, tmp)
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return [
        tuple(int(v) if isinstance(v, Decimal) else v for v in r) for r in con.sql(sql).fetchall()
    ]


def cli_totals(snaps: list[Snapshot]) -> dict[str, tuple[int, int, int, int]]:
    """Per worker over partitions: fees, commission, earnings, jobs (the CLI's numbers)."""
    out: dict[str, tuple[int, int, int, int]] = {}
    for snap in snaps:
        for r in balance_rows(snap):
            a = out.get(r["eth_address"], (0, 0, 0, 0))
            out[r["eth_address"]] = (
                a[0] + r["total_fees_wei"],
                a[1] + r["pool_commission_wei"],
                a[2] + r["worker_earnings_wei"],
                a[3] + r["job_count"],
            )
    return out


def worker_totals(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int, int, int]]:
    got = rows(
        con,
        """SELECT eth_address, sum(total_fees_wei), sum(pool_commission_wei),
                  sum(worker_earnings_wei), sum(job_count)
           FROM worker_balances GROUP BY eth_address""",
    )
    return {r[0]: tuple(r[1:]) for r in got}  # type: ignore[misc]


# -- the analyst's SQL ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_analysts_sql_through_the_symlinks_equals_the_cli(env: Env) -> None:
    tc = load(env, TC, traffic(TC, seed=21, workers=8))
    ai = load(env, AI, traffic(AI, seed=22, workers=7))
    for part, snap in ((TC, tc), (AI, ai)):
        report = publish_snap(env.state, part, snap)
        assert report.published and report.visible_version == snap.version
    assert len(tc.slices("events")) == 2  # the traffic crosses midnight: two date partitions
    con = as_athena(env.state, env.tmp)

    # Totals per worker, and the top 10 by fees: exact integers, equal to `openpool balances`.
    expected = cli_totals([tc, ai])
    assert len(expected) > 10
    assert worker_totals(con) == expected
    top = rows(
        con,
        """SELECT eth_address, sum(total_fees_wei) AS fees FROM worker_balances
           GROUP BY eth_address ORDER BY fees DESC, eth_address LIMIT 10""",
    )
    want = sorted(((a, v[0]) for a, v in expected.items()), key=lambda x: (-x[1], x[0]))[:10]
    assert top == want

    # The ledger: transcode jobs name their worker, so fees per worker from the events equal
    # the balances; counts per event type add up to what the ingest accepted.
    per_worker = rows(
        con,
        """SELECT eth_address, sum(fees_wei), count(*) FROM events
           WHERE node_type = 'transcode' AND event_type = 'job-processed'
           GROUP BY eth_address ORDER BY eth_address""",
    )
    assert per_worker == sorted(
        (r["eth_address"], r["total_fees_wei"], r["job_count"]) for r in balance_rows(tc)
    )
    for part, snap in ((TC, tc), (AI, ai)):
        by_type = dict(
            rows(
                con,
                f"""SELECT event_type, count(*) FROM events
                    WHERE region = '{part.region}' AND node_type = '{part.node_type}'
                    GROUP BY event_type""",
            )
        )
        ledger = snap.read("events", schema=EVENTS).column("event_type").value_counts()
        assert by_type == {v["values"]: v["counts"] for v in ledger.to_pylist()}
        assert sum(by_type.values()) == status_row(snap)["events_accepted"]
        (rejected,) = rows(
            con,
            f"""SELECT count(*) FROM rejected_events
                WHERE region = '{part.region}' AND node_type = '{part.node_type}'""",
        )
        assert rejected[0] == status_row(snap)["events_rejected"] > 0
        (dates,) = rows(
            con,
            f"""SELECT count(*) FROM events WHERE region = '{part.region}'
                AND "date" <> strftime(event_time AT TIME ZONE 'UTC', '%Y-%m-%d')""",
        )
        assert dates == (0,)  # each event sits in the date partition of its event time

    # p50 latency per model from the ledger, as DuckDB's quantile_cont computes it.
    p50 = rows(
        con,
        """SELECT pipeline, model_id, quantile_cont(response_time_ns / 1e9, 0.5), count(*)
           FROM events WHERE node_type = 'ai' AND event_type = 'job-processed'
             AND response_time_ns > 0
           GROUP BY pipeline, model_id ORDER BY pipeline, model_id""",
    )
    ev = ai.read("events", schema=EVENTS)
    jobs = ev.filter(
        pc.and_(
            pc.equal(ev["event_type"], "job-processed"),
            pc.fill_null(pc.greater(ev["response_time_ns"], 0), False),
        )
    )
    q = grouped_quantiles(
        jobs.select(["pipeline", "model_id"]),
        pc.divide(pc.cast(jobs["response_time_ns"], pa.float64()), 1e9),
        {"p50": 0.5},
    )
    assert len(p50) == q.num_rows > 0
    for got, want in zip(p50, q.to_pylist(), strict=True):
        assert got[:2] == (want["pipeline"], want["model_id"]) and got[3] == want["n"]
        assert got[2] == pytest.approx(want["p50"], rel=1e-12)

    # The published worker_performance is `openpool performance`'s table, value for value.
    perf = performance(ai)
    published = rows(
        con,
        """SELECT eth_address, pipeline, model_id, jobs, latency_s_p50, fees_wei, "rank"
           FROM worker_performance WHERE node_type = 'ai' AND "window" = 'all'
           ORDER BY pipeline, model_id, eth_address""",
    )
    cli = [
        (
            r["eth_address"],
            r["pipeline"],
            r["model_id"],
            r["jobs"],
            r["latency_s_p50"],
            int(r["fees_wei"]),
            r["rank"],
        )
        for r in perf.ai.filter(pc.equal(perf.ai["window"], "all")).to_pylist()
    ]
    assert published == cli and cli

    # worker_summary money equals the balances; nothing paid yet, payouts empty.
    summary = rows(con, "SELECT sum(total_fees_wei), sum(payable_wei) FROM worker_summary")
    assert summary == [(sum(v[0] for v in expected.values()), sum(v[2] for v in expected.values()))]
    assert rows(con, "SELECT count(*) FROM payouts") == [(0,)]
    conns = rows(con, "SELECT count(*) FROM worker_connections")
    assert conns == [(tc.manifest.rows("connections") + ai.manifest.rows("connections"),)]


def test_per_worker_ai_fees_from_the_published_credits_equal_the_oracle(env: Env) -> None:
    """Issue 19: ``ai_credits`` names each AI job's worker, request, pipeline and model, so
    per-worker AI fees need no join to ``job-received``; judged against the raw files."""
    files = traffic(AI, seed=23, workers=6)
    snap = load(env, AI, files)
    publish_snap(env.state, AI, snap)
    con = as_athena(env.state, env.tmp)
    got = rows(
        con,
        """SELECT eth_address, sum(fees_wei), count(*) FROM ai_credits
           WHERE region = 'us-central' AND node_type = 'ai' GROUP BY eth_address""",
    )
    oracle = oracle_balances(files, RATE)
    want = {
        a: (r["total_fees_wei"], r["job_count"]) for a, r in oracle.items() if a != UNATTRIBUTED
    }
    assert {r[0]: (r[1], r[2]) for r in got} == want and len(want) >= 5
    # Each row is its raw job-processed event, credited to the earliest job-received of its
    # request (the oracle's rule), in its own date.
    accepted = oracle_events(files)
    first: dict[str, tuple[str, str]] = {}
    for ev in accepted:
        if ev["EventType"] == "job-received":
            p = ev["Payload"]
            cand = (ev["DT"], to_checksum_address(p["ethAddress"]))
            first[p["requestID"]] = min(first.get(p["requestID"], cand), cand)
    raw = {
        ev["ID"]: ev
        for ev in accepted
        if ev["EventType"] == "job-processed" and ev["Payload"]["requestID"] in first
    }
    published = rows(
        con,
        """SELECT event_id, request_id, pipeline, model_id, eth_address, fees_wei,
                  strftime(event_time AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S') FROM ai_credits""",
    )
    assert len(published) == len(raw) > 0
    for eid, rid, pipeline, model, worker, fees, at in published:
        p = raw[eid]["Payload"]
        assert (rid, pipeline, model, fees) == (
            p["requestID"], p["pipeline"], p["modelID"], p["fees"]
        )  # fmt: skip
        assert worker == first[rid][1]
        assert raw[eid]["DT"].startswith(at)
    (decl,) = [c for c in athena.ddl("s3://b").values() if "`ai_credits`" in c]
    assert "`fees_wei` DECIMAL(38,0)" in decl and "`request_id` STRING" in decl


# -- only committed data ----------------------------------------------------------------


def listed_uris(state: ObjectStore) -> set[str]:
    return {u for body in symlinks(state).values() for u in body.decode().splitlines()}


def test_a_failed_snapshot_commit_is_never_visible(env: Env) -> None:
    files = traffic(TC, seed=31, workers=5)
    snap = load(env, TC, files)
    # A commit that dies after staging its data files: a ledger slice with a marker event
    # and replaced balances, never followed by a manifest.
    snaps = SnapshotStore(env.state, TC)
    doomed = snaps.begin(snap, run_id="doomed")
    ledger = snap.read("events", schema=EVENTS).slice(0, 3)
    marker = ledger.set_column(0, "event_id", pa.array(["doomed-1", "doomed-2", "doomed-3"]))
    day = sorted(snap.slices("events"))[-1]
    doomed.append("events", marker, slice_=day)
    doomed.replace("balances", snap.read("balances").slice(0, 1))
    staged = {
        env.state.url(i.key)
        for i in env.state.list(f"{TC.path}/data/")
        if i.key.split("/")[-1].startswith(f"{snap.version + 1:020d}-")
    }
    assert len(staged) == 2
    assert snaps.latest_version() == snap.version

    publish_snap(env.state, TC, snaps.latest())  # type: ignore[arg-type]
    assert not staged & listed_uris(env.state)
    con = as_athena(env.state, env.tmp)
    assert rows(con, "SELECT count(*) FROM events WHERE event_id LIKE 'doomed-%'") == [(0,)]
    assert worker_totals(con) == cli_totals([snap])


class CrashingStore(ObjectStore):
    """The state store, until the ``after``-th write of a symlink.txt: then a crash."""

    def __init__(self, inner: ObjectStore, after: int) -> None:
        self.inner, self.uri, self.after = inner, inner.uri, after
        self.symlink_puts = 0

    def url(self, key: str) -> str:
        return self.inner.url(key)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def put(self, key: str, data: bytes) -> None:
        if key.endswith("symlink.txt"):
            if self.symlink_puts >= self.after:
                raise StorageError(f"injected crash before writing {key}")
            self.symlink_puts += 1
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> None:
        self.inner.put_if_absent(key, data)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        return self.inner.list(prefix, start_after)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def two_versions(env: Env) -> tuple[Snapshot, Snapshot]:
    files = traffic(TC, seed=41, workers=6)
    half = len(files) // 2
    v1 = load(env, TC, files[:half])
    v2 = load(env, TC, files[half:])
    assert v2.version > v1.version and cli_totals([v1]) != cli_totals([v2])
    return v1, v2


def test_a_publish_that_dies_before_its_symlinks_shows_only_the_old_rows(env: Env) -> None:
    v1, v2 = two_versions(env)
    publish_snap(env.state, TC, v1)
    before = symlinks(env.state)

    with pytest.raises(StorageError, match="injected crash"):
        publish_snap(CrashingStore(env.state, after=0), TC, v2)
    assert symlinks(env.state) == before
    new_files = {
        env.state.url(i.key)
        for i in env.state.list("published/")
        if i.key.endswith(".parquet") and f"/{v2.version:020d}-" in i.key
    }
    assert new_files and not new_files & listed_uris(env.state)  # written, never listed
    con = as_athena(env.state, env.tmp)
    assert worker_totals(con) == cli_totals([v1])
    (events,) = rows(con, "SELECT count(*) FROM events")
    assert events == (v1.manifest.rows("events"),)
    state = read_state(env.state, TC)
    assert state is not None and state.version == v1.version
    assert state.in_progress == v2.version

    # A late retry of the older version may not undo the interrupted newer one ...
    assert not publish_snap(env.state, TC, v1).published
    # ... and publishing the newer one again finishes the job.
    report = publish_snap(env.state, TC, v2)
    assert report.published and report.symlinks_written == len(symlinks(env.state))
    assert worker_totals(as_athena(env.state, env.tmp)) == cli_totals([v2])
    state = read_state(env.state, TC)
    assert state is not None and (state.version, state.in_progress) == (v2.version, None)


def listings(state: ObjectStore) -> dict[str, frozenset[str]]:
    """Per partition (one symlink.txt each): the set of files Athena reads there."""
    return {k: frozenset(body.decode().splitlines()) for k, body in symlinks(state).items()}


def test_a_publish_that_dies_half_way_shows_old_or_new_files_per_partition(env: Env) -> None:
    v1, v2 = two_versions(env)
    publish_snap(env.state, TC, v1)
    old = listings(env.state)
    with pytest.raises(StorageError, match="injected crash"):
        publish_snap(CrashingStore(env.state, after=3), TC, v2)
    mid = listings(env.state)
    publish_snap(env.state, TC, v2)
    new = listings(env.state)
    none: frozenset[str] = frozenset()
    # Per partition, all of its files are the old publish's or all are the new one's.
    for k in old.keys() | mid.keys() | new.keys():
        was, now, got = old.get(k, none), new.get(k, none), mid.get(k, none)
        assert got in (was, now), (
            f"{k} mixes publishes: {len(got & was - now)} file(s) only in the old one, "
            f"{len(got & now - was)} only in the new one, {len(got - was - now)} in neither"
        )
    # The crash really fell between partitions (else the loop above proves nothing): some
    # already show the new files, some still the old ones.
    changing = {k for k in old.keys() | new.keys() if old.get(k, none) != new.get(k, none)}
    assert {k for k in changing if mid.get(k, none) == new.get(k, none)}
    assert {k for k in changing if mid.get(k, none) == old.get(k, none)}
    # Every file any symlink names, at any point, belongs to a committed version.
    committed = {
        SnapshotStore(env.state, TC).url(f.path)
        for v in (v1, v2)
        for files in v.manifest.tables.values()
        for f in files
    }
    for uris in (*old.values(), *mid.values(), *new.values()):
        for uri in uris:
            assert uri in committed or "/published/" in uri


# -- idempotent, monotonic ------------------------------------------------------------------


def published_objects(state: ObjectStore) -> dict[str, bytes]:
    return {i.key: state.get(i.key) for i in state.list("published/")}


def test_publishing_the_same_snapshot_twice_changes_nothing(env: Env) -> None:
    snap = load(env, TC, traffic(TC, seed=51, workers=4))
    first = publish_snap(env.state, TC, snap)
    assert first.data_files_written == len(DERIVED) and first.symlinks_written > 0
    objects = published_objects(env.state)
    listing = [(i.key, i.etag) for i in env.state.list("published/")]

    again = publish_snap(env.state, TC, snap)
    assert again.published and (again.data_files_written, again.symlinks_written) == (0, 0)
    assert published_objects(env.state) == objects
    assert [(i.key, i.etag) for i in env.state.list("published/")] == listing
    assert again.rows == first.rows and again.files == first.files


def test_an_older_snapshot_never_replaces_a_newer_one(env: Env) -> None:
    v1, v2 = two_versions(env)
    publish_snap(env.state, TC, v2)
    objects = published_objects(env.state)
    late = publish_snap(env.state, TC, v1)
    assert not late.published and late.visible_version == v2.version
    assert published_objects(env.state) == objects
    assert worker_totals(as_athena(env.state, env.tmp)) == cli_totals([v2])


def test_only_the_latest_files_of_replaced_tables_are_listed(env: Env) -> None:
    v1, v2 = two_versions(env)
    publish_snap(env.state, TC, v1)
    publish_snap(env.state, TC, v2)
    snaps = SnapshotStore(env.state, TC)
    (balances,) = symlinks(env.state, "worker_balances").values()
    assert balances.decode().splitlines() == [snaps.url(f.path) for f in v2.files("balances")]
    old = {snaps.url(f.path) for f in v1.files("balances")}
    assert not old & listed_uris(env.state)
    state = read_state(env.state, TC)
    assert state is not None and state.commit_id == v2.manifest.commit_id
    assert env.state.exists(state_key(TC))


def test_superseded_published_files_are_collected_and_listed_ones_kept(env: Env) -> None:
    v1, v2 = two_versions(env)
    publish_snap(env.state, TC, v1)
    publish_snap(env.state, TC, v2)
    later = datetime.now(UTC) + timedelta(days=2)
    assert collect_published(env.state, TC, datetime.now(UTC)) == []  # all still young
    gone = collect_published(env.state, TC, later, dry_run=True)
    assert gone and all(f"/{v1.version:020d}-" in k for k in gone)
    assert all(env.state.exists(k) for k in gone)
    assert collect_published(env.state, TC, later) == gone
    assert not any(env.state.exists(k) for k in gone)
    assert not {env.state.url(k) for k in gone} & listed_uris(env.state)
    assert worker_totals(as_athena(env.state, env.tmp)) == cli_totals([v2])


# -- Athena DDL -----------------------------------------------------------------------------


def ddl_columns(statement: str) -> list[tuple[str, str]]:
    body = statement.split("(\n", 1)[1].split("\n)\nPARTITIONED BY", 1)[0]
    return re.findall(r"`([^`]+)` ([A-Z]+(?:\(\d+,\d+\))?)", body)


def test_the_ddl_covers_every_table_with_decimal_money_and_projection() -> None:
    statements = athena.ddl("s3://pool-bucket/state", "openpool")
    assert set(statements) == {
        "events",
        "worker_balances",
        "worker_summary",
        "worker_performance",
        "worker_connections",
        "payouts",
        "rejected_events",
        "ai_credits",
        "worker_statements",
    }
    regions = "eu-central,oceania,us-central,us-west"
    for table, sql in statements.items():
        assert sql.startswith(f"CREATE EXTERNAL TABLE IF NOT EXISTS `openpool`.`{table}` (")
        assert "STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat'" in sql
        assert "'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'" in sql
        assert f"LOCATION 's3://pool-bucket/state/published/_symlinks/{table}/'" in sql
        assert "'projection.enabled'='true'" in sql
        assert "'projection.region.type'='enum'" in sql
        assert f"'projection.region.values'='{regions}'" in sql
        assert "'projection.node_type.values'='ai,transcode'" in sql
        cols = dict(ddl_columns(sql))
        money = [c for c in cols if c.endswith("_wei")]
        assert all(cols[c] == "DECIMAL(38,0)" for c in money), table
        assert bool(money) == (table not in ("worker_connections", "rejected_events")), table
        assert "region" not in cols and "node_type" not in cols
        template = f"s3://pool-bucket/state/published/_symlinks/{table}/region=${{region}}/"
        if table == "events":
            assert "PARTITIONED BY (`region` STRING, `node_type` STRING, `date` STRING)" in sql
            assert "'projection.date.type'='date'" in sql
            assert "'projection.date.format'='yyyy-MM-dd'" in sql
            assert "'projection.date.range'=" in sql
            assert (
                f"'storage.location.template'='{template}node_type=${{node_type}}/date=${{date}}/'"
                in sql
            )
        else:
            assert "PARTITIONED BY (`region` STRING, `node_type` STRING)\n" in sql
            assert "projection.date" not in sql
            assert f"'storage.location.template'='{template}node_type=${{node_type}}/'" in sql


def test_the_ddl_columns_are_exactly_the_published_parquet_schema(env: Env) -> None:
    tc = load(env, TC, traffic(TC, seed=61, workers=3))
    ai = load(env, AI, traffic(AI, seed=62, workers=3))
    publish_snap(env.state, TC, tc)
    publish_snap(env.state, AI, ai)
    statements = athena.ddl(env.state.uri)
    for table, sql in statements.items():
        declared = ddl_columns(sql)
        links = symlinks(env.state, table)
        assert links, table
        for key, body in links.items():
            for uri in body.decode().splitlines():
                schema = pq.read_schema(local_path(uri, env.tmp))
                data = [
                    (f.name, athena.hive_type(f.type))
                    for f in schema
                    if f.name not in partition_columns(table)
                ]
                assert data == declared, (table, uri)
                # A partition column a file also holds has the path's value.
                shared = [c for c in partition_columns(table) if c in schema.names]
                if shared:
                    got = pq.read_table(local_path(uri, env.tmp), columns=shared)
                    for c in shared:
                        assert set(got.column(c).to_pylist()) <= {path_values(key)[c]}


def test_openpool_athena_ddl_prints_the_statements(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENPOOL_STATE_URI", "s3://pool-state/prod")
    assert main(["athena-ddl"]) == 0
    out = capsys.readouterr().out
    assert out.count("CREATE EXTERNAL TABLE") == len(TABLES)
    assert "LOCATION 's3://pool-state/prod/published/_symlinks/events/'" in out
    assert main(["athena-ddl", "--database", "pool", "--location", "s3://b/p/"]) == 0
    out = capsys.readouterr().out
    assert "`pool`.`payouts`" in out and "LOCATION 's3://b/p/published/_symlinks/payouts/'" in out


# -- derived tables ------------------------------------------------------------------------


def test_derived_tables_are_conformed_and_money_never_comes_as_float() -> None:
    t = pa.table({"eth_address": ["0xa"], "fees_wei": pa.array([5], pa.int64()), "jobs": [1]})
    out = conform(t, PERFORMANCE, "worker_performance")
    assert out.schema == PERFORMANCE and out.column("rtf_p50").null_count == 1
    assert out.column("fees_wei").type == pa.decimal128(38, 0)
    with pytest.raises(ValueError, match="not in the published schema"):
        conform(t.append_column("surprise", pa.array([1])), PERFORMANCE)
    with pytest.raises(TypeError, match="float"):
        conform(pa.table({"fees_wei": pa.array([1.5])}), PERFORMANCE)


def test_unknown_derived_tables_are_refused(env: Env) -> None:
    snap = load(env, TC, traffic(TC, seed=71, workers=2))
    with pytest.raises(ValueError, match="not derived tables"):
        publish(env.state, TC, snap, {"events": EVENTS.empty_table()})
    with pytest.raises(ValueError, match="given for"):
        publish(env.state, AI, snap)


def test_payments_are_one_row_per_payment_at_its_latest_status() -> None:
    t0 = datetime(2026, 10, 4, 12, tzinfo=UTC)
    ledger = pa.Table.from_pylist(
        [
            {"payment_id": "p1", "eth_address": "0xa", "amount_wei": Decimal(7 * 10**18),
             "status": "signed", "tx_hash": "0x1", "nonce": 4, "recorded_at": t0},
            {"payment_id": "p2", "eth_address": "0xb", "amount_wei": Decimal(3),
             "status": "signed", "tx_hash": "0x2", "nonce": 5, "recorded_at": t0},
            {"payment_id": "p1", "eth_address": "0xa", "amount_wei": Decimal(7 * 10**18),
             "status": "confirmed", "tx_hash": "0x1", "nonce": 4,
             "recorded_at": t0 + timedelta(minutes=2)},
        ]
    )  # fmt: skip
    out = payments(ledger)
    assert out.schema == PAYOUTS
    assert out.to_pylist() == [
        {"payment_id": "p1", "eth_address": "0xa", "amount_wei": Decimal(7 * 10**18),
         "status": "confirmed", "tx_hash": "0x1", "nonce": 4, "planned_at": t0,
         "confirmed_at": t0 + timedelta(minutes=2)},
        {"payment_id": "p2", "eth_address": "0xb", "amount_wei": Decimal(3),
         "status": "signed", "tx_hash": "0x2", "nonce": 5, "planned_at": t0,
         "confirmed_at": None},
    ]  # fmt: skip
    assert payments(None).num_rows == 0
