"""``openpool athena-ddl --upgrade --from FILE``: the ALTER statements for what changed.

What is deployed is the DDL file the operator applied (there is no Athena here to ask);
``tests/fixtures/athena/before-issue-19.sql`` is exactly what ``openpool athena-ddl``
printed before issue 19, i.e. what a pool running that release has in Athena. Every
statement is also split and typed by ``sqlparse`` (an SQL parser that is not ours), and
read back by :func:`athena.parse_ddl`, which refuses anything it does not know.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlparse

from openpool.analytics import athena
from openpool.analytics.published import TABLES, partition_columns, published_columns
from openpool.cli import main
from openpool.errors import AthenaUpgradeRefused
from openpool.partitions import ACTIVE_PARTITIONS

LOCATION = "s3://openpool-state"
BEFORE = Path(__file__).parent / "fixtures" / "athena" / "before-issue-19.sql"
GRID = "eu-central,oceania,us-central,us-west"


def text(statements: dict[str, str] | list[str]) -> str:
    return "\n\n".join(statements.values() if isinstance(statements, dict) else statements)


def kinds(sql: str) -> list[str]:
    """Each statement's type as sqlparse reads it (CREATE, ALTER, ...)."""
    return [s.get_type() for s in sqlparse.parse(sql) if s.value.strip()]


def test_the_ddl_parses_and_reads_back_as_the_published_schemas() -> None:
    sql = text(athena.ddl(LOCATION))
    assert kinds(sql) == ["CREATE"] * len(TABLES)
    tables = athena.parse_ddl(sql)
    assert set(tables) == set(TABLES)
    for name, t in tables.items():
        assert list(t.columns.items()) == [
            (c, athena.hive_type(typ)) for c, typ in published_columns(name)
        ]
        assert t.partitions == list(partition_columns(name))
        assert t.location == f"{LOCATION}/published/_symlinks/{name}/"
        assert t.properties["projection.region.values"] == GRID


def test_adding_a_region_yields_exactly_the_projection_values_that_changed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENPOOL_STATE_URI", LOCATION)
    assert main(["athena-ddl"]) == 0
    deployed = tmp_path / "openpool.sql"
    deployed.write_text(capsys.readouterr().out)

    # The same configuration: nothing to do, nothing printed.
    assert main(["athena-ddl", "--upgrade", "--from", str(deployed)]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "up to date" in out.err

    # A new region: per table one ALTER, of the region list alone.
    monkeypatch.setenv("OPENPOOL_PARTITIONS", ",".join([*ACTIVE_PARTITIONS, "ai|ap-south"]))
    assert main(["athena-ddl", "--upgrade", "--from", str(deployed)]) == 0
    sql = capsys.readouterr().out
    want = [
        f"ALTER TABLE `openpool`.`{t}` SET TBLPROPERTIES "
        f"('projection.region.values'='ap-south,{GRID}');"
        for t in TABLES
    ]
    assert [s.strip() for s in sqlparse.split(sql)] == want
    assert kinds(sql) == ["ALTER"] * len(TABLES)

    # Applied (appended to the record), the tables are up to date with the new grid.
    deployed.write_text(deployed.read_text() + "\n" + sql)
    assert main(["athena-ddl", "--upgrade", "--from", str(deployed)]) == 0
    assert capsys.readouterr().out == ""
    # ... and equal to a fresh CREATE for that grid.
    fresh = athena.parse_ddl(text(athena.ddl(LOCATION, regions=["ap-south", *GRID.split(",")])))
    assert athena.parse_ddl(deployed.read_text()) == fresh


def test_the_tables_of_the_release_before_are_upgraded_with_creates_and_added_columns() -> None:
    sql = athena.upgrade(BEFORE.read_text(), LOCATION)
    before = athena.parse_ddl(BEFORE.read_text())
    new_tables = sorted(set(TABLES) - set(before))
    assert new_tables == ["ai_credits", "worker_statements"]
    creates = [s for s in sql if s.startswith("CREATE")]
    assert creates == [athena.ddl(LOCATION)[t] for t in TABLES if t in new_tables]
    alters = [s for s in sql if not s.startswith("CREATE")]
    assert alters == ["ALTER TABLE `openpool`.`worker_performance` ADD COLUMNS (`ranked` BOOLEAN);"]
    assert sorted(kinds(text(sql))) == ["ALTER", "CREATE", "CREATE"]
    # Applied, nothing is left to do.
    assert athena.upgrade(BEFORE.read_text() + "\n" + text(sql), LOCATION) == []


def test_what_no_alter_can_do_is_refused_naming_the_table() -> None:
    now = text(athena.ddl(LOCATION))
    retyped = now.replace("`jobs` BIGINT", "`jobs` INT", 1)
    with pytest.raises(AthenaUpgradeRefused, match=r"worker_performance: column jobs INT"):
        athena.upgrade(retyped, LOCATION)
    with pytest.raises(AthenaUpgradeRefused, match="database"):
        athena.upgrade(now, LOCATION, database="other")
    with pytest.raises(AthenaUpgradeRefused, match="not a statement athena-ddl writes"):
        athena.upgrade(now + "\nDROP TABLE `openpool`.`events`;", LOCATION)


def test_upgrade_needs_the_deployed_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENPOOL_STATE_URI", LOCATION)
    assert main(["athena-ddl", "--upgrade"]) == 2
    assert "--from FILE" in capsys.readouterr().err
    assert main(["athena-ddl", "--upgrade", "--from", str(tmp_path / "missing.sql")]) == 1
    assert "cannot read --from" in capsys.readouterr().err
