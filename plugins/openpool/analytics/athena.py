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
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from openpool.analytics.published import (
    DATE_KEY,
    DATED,
    SYMLINKS,
    TABLES,
    partition_columns,
    published_columns,
)
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
