"""Athena DDL for the published tables, and ``openpool athena-ddl``, which prints it.

Each table is an external table over the symlink manifests of :mod:`.published`
(``SymlinkTextInputFormat`` + ``ParquetHiveSerDe``), so Athena reads only the Parquet
files the last finished publish listed. Partitions are not registered in a catalogue:
partition projection derives them (``region`` and ``node_type`` as enums of the grid,
``date`` of ``events`` as a daily date range), and ``storage.location.template`` points each
at its symlink folder; a projected partition with no symlink simply has no rows.

Columns are generated from the published Arrow schemas, so the DDL cannot drift from the
files: money (decimal128(38,0)) is ``DECIMAL(38,0)``, timestamps ``TIMESTAMP``. Partition
keys are not repeated among the data columns (Hive forbids it): ``events`` files also
carry ``node_type`` and ``region``, with the same values as their path. ``date`` and
``window`` are reserved words in Athena SQL: quote them (``"date"``) in queries.

**Upgrades** (``openpool athena-ddl --upgrade --from FILE``): Athena cannot be asked here, so
what is deployed is the DDL the operator last applied, kept as a file (the ``athena-ddl``
output, plus any upgrade statements applied since). :func:`upgrade` parses it
(:func:`parse_ddl`, which also checks that it is DDL this module writes) and emits only
what changed: ``CREATE EXTERNAL TABLE IF NOT EXISTS`` for a new table, ``ADD COLUMNS`` for
new columns (Parquet is read by column name, so their position does not matter), ``SET
LOCATION`` and ``SET TBLPROPERTIES`` with just the changed properties (a new region's
projection values). A change no ALTER can make (a column's type changed or one removed,
other partition keys, a property dropped) is refused, naming the table: drop and create
that table (its data stays in S3). A file is the record rather than an object the tool
writes into the state bucket, because only the operator knows what Athena actually ran.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import sqlparse

from openpool.analytics.published import (
    DATE_KEY,
    DATED,
    SYMLINKS,
    TABLES,
    partition_columns,
    published_columns,
)
from openpool.errors import AthenaUpgradeRefused
from openpool.partitions import ACTIVE_PARTITIONS, NODE_TYPES, Partition

SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
# First day Athena projects for ``events``; the end is relative so new days need no DDL
# change (one day ahead: event time is UTC and producers' clocks may run slightly fast).
DATE_RANGE = "2020-01-01,NOW+1DAYS"


def grid_regions(extra: Iterable[Partition] = ()) -> list[str]:
    """Every region of the grid (``partitions.py``), plus those of ``extra`` partitions."""
    regions = {Partition.parse(p).region for p in ACTIVE_PARTITIONS}
    regions |= {p.region for p in extra}
    return sorted(regions)


def hive_type(t: pa.DataType) -> str:
    """The Athena (Hive DDL) type that reads Arrow type ``t`` from Parquet."""
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "STRING"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BINARY"
    simple = {
        pa.int8(): "TINYINT",
        pa.int16(): "SMALLINT",
        pa.int32(): "INT",
        pa.int64(): "BIGINT",
        pa.float32(): "FLOAT",
        pa.float64(): "DOUBLE",
    }
    if t in simple:
        return simple[t]
    raise TypeError(f"no Athena type for Arrow type {t}")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def create_table(
    table: str,
    location: str,
    database: str = "openpool",
    regions: Iterable[str] | None = None,
    node_types: Iterable[str] = NODE_TYPES,
) -> str:
    """``CREATE EXTERNAL TABLE`` for one published table under state root ``location``."""
    root = f"{location.rstrip('/')}/{SYMLINKS}/{table}/"
    cols = ",\n".join(f"  `{name}` {hive_type(t)}" for name, t in published_columns(table))
    parts = ", ".join(f"`{c}` STRING" for c in partition_columns(table))
    template = root + "/".join(f"{c}=${{{c}}}" for c in partition_columns(table)) + "/"
    props: list[tuple[str, str]] = [
        ("projection.enabled", "true"),
        ("projection.region.type", "enum"),
        ("projection.region.values", ",".join(regions or grid_regions())),
        ("projection.node_type.type", "enum"),
        ("projection.node_type.values", ",".join(node_types)),
    ]
    if table in DATED:
        props += [
            (f"projection.{DATE_KEY}.type", "date"),
            (f"projection.{DATE_KEY}.format", "yyyy-MM-dd"),
            (f"projection.{DATE_KEY}.range", DATE_RANGE),
            (f"projection.{DATE_KEY}.interval", "1"),
            (f"projection.{DATE_KEY}.interval.unit", "DAYS"),
        ]
    props.append(("storage.location.template", template))
    tbl = ",\n".join(f"  {_quote(k)}={_quote(v)}" for k, v in props)
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{table}` (\n{cols}\n)\n"
        f"PARTITIONED BY ({parts})\n"
        f"ROW FORMAT SERDE {_quote(SERDE)}\n"
        f"STORED AS INPUTFORMAT {_quote(INPUT_FORMAT)}\n"
        f"OUTPUTFORMAT {_quote(OUTPUT_FORMAT)}\n"
        f"LOCATION {_quote(root)}\n"
        f"TBLPROPERTIES (\n{tbl}\n);"
    )


def ddl(
    location: str,
    database: str = "openpool",
    regions: Iterable[str] | None = None,
) -> dict[str, str]:
    """Table name -> its ``CREATE EXTERNAL TABLE`` statement, for every published table."""
    regions = list(regions) if regions is not None else None
    return {t: create_table(t, location, database, regions) for t in TABLES}


# --- upgrades: what is deployed (a DDL file), and the ALTER statements to what is wanted ---


@dataclass
class Deployed:
    """One table as a DDL file declares it (after its ALTER statements)."""

    database: str
    columns: dict[str, str] = field(default_factory=dict)  # name -> Athena type, in order
    partitions: list[str] = field(default_factory=list)
    location: str = ""
    properties: dict[str, str] = field(default_factory=dict)


_NAME = r"`([^`]+)`\.`([^`]+)`"
_STR = r"'((?:[^'\\]|\\.)*)'"
_COL = re.compile(r"`([^`]+)` ([A-Z]+(?:\(\d+,\d+\))?)")
_PROP = re.compile(_STR + r"=" + _STR)


def _unquote(value: str) -> str:
    return value.replace("\\'", "'")


def _props(body: str) -> dict[str, str]:
    return {_unquote(k): _unquote(v) for k, v in _PROP.findall(body)}


def parse_ddl(text: str) -> dict[str, Deployed]:
    """Tables declared by ``text``: ``athena-ddl`` output and the upgrade statements it
    emits, applied in order. Anything else is refused, so a typo cannot pass for a table."""
    tables: dict[str, Deployed] = {}
    for raw in sqlparse.split(sqlparse.format(text, strip_comments=True)):
        stmt = raw.strip().rstrip(";").strip()
        if not stmt:
            continue
        create = re.match(
            r"CREATE EXTERNAL TABLE IF NOT EXISTS " + _NAME + r" \((.*?)\n\)\n"
            r"PARTITIONED BY \((.*?)\)\n.*?LOCATION " + _STR + r"\nTBLPROPERTIES \((.*)\)$",
            stmt,
            re.S,
        )
        alter = re.match(r"ALTER TABLE " + _NAME + r" (.*)$", stmt, re.S)
        if create:
            db, table, cols, parts, location, props = create.groups()
            tables[table] = Deployed(
                db,
                dict(_COL.findall(cols)),
                [c for c, _ in _COL.findall(parts)],
                _unquote(location),
                _props(props),
            )
        elif alter and alter[2] in tables:
            t, what = tables[alter[2]], alter[3]
            if m := re.match(r"ADD COLUMNS \((.*)\)$", what, re.S):
                t.columns.update(_COL.findall(m[1]))
            elif m := re.match(r"SET TBLPROPERTIES \((.*)\)$", what, re.S):
                t.properties.update(_props(m[1]))
            elif m := re.match(r"SET LOCATION " + _STR + "$", what):
                t.location = _unquote(m[1])
            else:
                raise AthenaUpgradeRefused(f"unknown ALTER TABLE statement: {stmt[:80]!r}")
        else:
            raise AthenaUpgradeRefused(
                f"not a statement athena-ddl writes (or its table is not created first): "
                f"{stmt[:80]!r}"
            )
    return tables


def _name(database: str, table: str) -> str:
    return f"`{database}`.`{table}`"


def _alters(table: str, old: Deployed, new: Deployed) -> list[str]:
    """The ALTER statements that take ``old`` to ``new`` (refused when none can)."""
    if old.partitions != new.partitions:
        raise AthenaUpgradeRefused(
            f"{table}: partition keys {old.partitions} -> {new.partitions}; "
            f"DROP TABLE {_name(old.database, table)} and run the CREATE again (data stays)"
        )
    for col, typ in old.columns.items():
        if new.columns.get(col) != typ:
            now = new.columns.get(col, "gone")
            raise AthenaUpgradeRefused(
                f"{table}: column {col} {typ} -> {now}; "
                f"DROP TABLE {_name(old.database, table)} and run the CREATE again (data stays)"
            )
    dropped = sorted(set(old.properties) - set(new.properties))
    if dropped:
        raise AthenaUpgradeRefused(f"{table}: table properties no longer written: {dropped}")
    name, out = _name(new.database, table), []
    added = [(c, t) for c, t in new.columns.items() if c not in old.columns]
    if added:
        cols = ", ".join(f"`{c}` {t}" for c, t in added)
        out.append(f"ALTER TABLE {name} ADD COLUMNS ({cols});")
    if old.location != new.location:
        out.append(f"ALTER TABLE {name} SET LOCATION {_quote(new.location)};")
    changed = [(k, v) for k, v in new.properties.items() if old.properties.get(k) != v]
    if changed:
        props = ", ".join(f"{_quote(k)}={_quote(v)}" for k, v in changed)
        out.append(f"ALTER TABLE {name} SET TBLPROPERTIES ({props});")
    return out


def upgrade(
    deployed: str,
    location: str,
    database: str = "openpool",
    regions: Iterable[str] | None = None,
) -> list[str]:
    """Statements taking the tables ``deployed`` (a DDL file's text) declares to today's
    :func:`ddl`: empty when nothing changed."""
    old = parse_ddl(deployed)
    other = sorted({t.database for t in old.values()} - {database})
    if other:
        raise AthenaUpgradeRefused(f"the DDL given is for database {other}, not {database!r}")
    out: list[str] = []
    for table, create in ddl(location, database, regions).items():
        if table not in old:
            out.append(create)
        else:
            out += _alters(table, old[table], parse_ddl(create)[table])
    return out
