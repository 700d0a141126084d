"""Run-scoped staging: the Parquet a pipeline step hands to the next one.

Each step writes its tables under ``staging/<partition>/<run>/<step>/`` and then, last,
a small JSON marker naming every table with its size and SHA-256. A reader trusts only a
marker, and checks each table against it, so a step that crashed half way (or a torn
object) is never mistaken for its output: the step is simply run again. Staging is
invisible to snapshots, to Athena and to garbage collection of snapshot data.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from openpool.errors import MissingStep, ObjectNotFound
from openpool.partitions import Partition
from openpool.snapshots.parquet import decode, encode, sha256_hex
from openpool.storage import ObjectStore

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Staging:
    """The staging area of one run of one partition in the state store."""

    def __init__(self, state: ObjectStore, partition: Partition, run_key: str) -> None:
        self.state = state
        self.prefix = f"staging/{partition.path}/{_SAFE.sub('_', run_key)}/"

    def write(self, step: str, tables: dict[str, pa.Table], meta: dict[str, Any]) -> None:
        """Stage ``tables`` and ``meta`` for ``step``; the marker is written last."""
        entries = {}
        for name, table in tables.items():
            data = encode(table)
            key = f"{self.prefix}{step}/{name}.parquet"
            self.state.put(key, data)
            entries[name] = {"key": key, "size": len(data), "sha256": sha256_hex(data)}
        marker = {"step": step, "tables": entries, "meta": meta}
        self.state.put(f"{self.prefix}{step}/_done.json", json.dumps(marker).encode())

    def meta(self, step: str) -> dict[str, Any]:
        return self._marker(step)["meta"]

    def read(self, step: str, name: str, schema: pa.Schema | None = None) -> pa.Table:
        entry = self._marker(step)["tables"][name]
        table = decode(
            self.state.get(entry["key"]),
            self.state.url(entry["key"]),
            size=entry["size"],
            sha256=entry["sha256"],
        )
        return table.cast(schema) if schema is not None else table

    def has(self, step: str) -> bool:
        return self.state.exists(f"{self.prefix}{step}/_done.json")

    def clear(self, keep: tuple[str, ...] = ()) -> int:
        """Delete staged objects except ``keep`` (``step/table`` names); returns how many.

        Kept tables keep their step's marker so they stay readable.
        """
        kept = {f"{self.prefix}{k}.parquet" for k in keep}
        kept |= {f"{self.prefix}{k.split('/')[0]}/_done.json" for k in keep}
        n = 0
        for info in list(self.state.list(self.prefix)):
            if info.key not in kept:
                self.state.delete(info.key)
                n += 1
        return n

    def _marker(self, step: str) -> dict[str, Any]:
        key = f"{self.prefix}{step}/_done.json"
        try:
            return json.loads(self.state.get(key))
        except ObjectNotFound:
            raise MissingStep(f"{self.state.url(key)}: step {step!r} has not completed") from None
