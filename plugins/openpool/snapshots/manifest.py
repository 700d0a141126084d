"""The snapshot manifest: a small JSON document naming every data file of a version.

A manifest is the unit of atomicity. It is written once, with an exclusive create, and
never changed; everything it names is immutable too. Parsing is strict: a manifest that
does not validate is a :class:`~openpool.errors.CorruptManifest`, never "empty state".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from openpool.errors import CorruptManifest
from openpool.partitions import StateKey, state_key

FORMAT = "openpool-snapshot/1"
MANIFEST_DIR = "manifests"
DATA_DIR = "data"
LATEST_HINT = "_latest.json"


def manifest_name(version: int) -> str:
    """Zero-padded so that key order is version order."""
    return f"{MANIFEST_DIR}/{version:020d}.json"


@dataclass(frozen=True)
class DataFile:
    """One immutable Parquet file of a table.

    ``path`` is relative to the partition's state prefix. ``slice`` optionally labels the
    file's position in a table that is kept in slices (e.g. the event-ID index by hour),
    so a reader can load only the slices it needs.
    """

    path: str
    rows: int
    size: int
    sha256: str
    slice: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "rows": self.rows,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.slice is not None:
            out["slice"] = self.slice
        if self.stats:
            out["stats"] = self.stats
        return out

    @classmethod
    def from_json(cls, raw: Any) -> DataFile:
        if not isinstance(raw, dict):
            raise ValueError("data file entry is not an object")
        return cls(
            path=_req(raw, "path", str),
            rows=_req(raw, "rows", int),
            size=_req(raw, "size", int),
            sha256=_req(raw, "sha256", str),
            slice=raw.get("slice"),
            stats=dict(raw.get("stats") or {}),
        )


@dataclass(frozen=True)
class Manifest:
    """One version of one partition's state."""

    partition: StateKey
    version: int
    parent_version: int | None
    created_at: str
    run_id: str
    commit_id: str
    tables: dict[str, tuple[DataFile, ...]]
    properties: dict[str, Any] = field(default_factory=dict)

    def rows(self, table: str) -> int:
        return sum(f.rows for f in self.tables.get(table, ()))

    def row_counts(self) -> dict[str, int]:
        return {name: self.rows(name) for name in sorted(self.tables)}

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT,
            "partition": {"node_type": self.partition.node_type, "region": self.partition.region},
            "version": self.version,
            "parent_version": self.parent_version,
            "created_at": self.created_at,
            "run_id": self.run_id,
            "commit_id": self.commit_id,
            "tables": {
                name: {
                    "rows": self.rows(name),
                    "files": [f.to_json() for f in files],
                }
                for name, files in sorted(self.tables.items())
            },
            "properties": self.properties,
        }
        # Compact: the C encoder; an indented dump goes through json's pure-Python encoder, whose
        # cost grows with every data file the manifest names.
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, uri: str, expect_version: int | None = None) -> Manifest:
        """Parse and validate; any problem is a :class:`CorruptManifest` naming ``uri``."""
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict):
                raise ValueError("manifest is not a JSON object")
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            part = _req(doc, "partition", dict)
            tables_raw = _req(doc, "tables", dict)
            tables: dict[str, tuple[DataFile, ...]] = {}
            for name, entry in tables_raw.items():
                files = tuple(DataFile.from_json(f) for f in _req(entry, "files", list))
                if sum(f.rows for f in files) != _req(entry, "rows", int):
                    raise ValueError(f"table {name!r}: row count does not match its files")
                tables[name] = files
            parent = doc.get("parent_version")
            if parent is not None and not isinstance(parent, int):
                raise ValueError("parent_version is not an integer")
            manifest = cls(
                partition=state_key(_req(part, "node_type", str), _req(part, "region", str)),
                version=_req(doc, "version", int),
                parent_version=parent,
                created_at=_req(doc, "created_at", str),
                run_id=_req(doc, "run_id", str),
                commit_id=_req(doc, "commit_id", str),
                tables=tables,
                properties=dict(doc.get("properties") or {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            # json.JSONDecodeError and UnicodeDecodeError are ValueErrors.
            raise CorruptManifest(uri, str(exc)) from None
        if expect_version is not None and manifest.version != expect_version:
            raise CorruptManifest(
                uri, f"holds version {manifest.version}, expected {expect_version}"
            )
        return manifest


def _req(doc: dict[str, Any], key: str, typ: type) -> Any:
    if key not in doc:
        raise ValueError(f"missing field {key!r}")
    value = doc[key]
    if typ is int and isinstance(value, bool):
        raise ValueError(f"field {key!r} must be an integer")
    if not isinstance(value, typ):
        raise ValueError(f"field {key!r} must be {typ.__name__}")
    return value
