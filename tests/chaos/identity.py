"""State identity by re-hashing: every object under a state store read back and hashed.

Nothing a manifest records is taken on trust: every object is listed and its bytes read
and hashed here. Objects are sorted into

* **state**: each manifest (``manifests/<version>.json``), the data files manifests name,
  the quarantine copies and the latest hint;
* **orphans**: data files no manifest names (a commit killed before its manifest). Not
  state; ``gc`` must delete exactly these (:func:`collect_orphans`);
* **staging leftovers**: ``staging/<partition>/<run>/...`` of DAG runs killed mid-step or
  abandoned. Not state (no reader looks at them), reported as a figure;
* **temp files** of a local store's killed writes (hidden from listings). Not objects;
  reported as a figure;
* anything else: an unknown object, a difference.

What may legitimately differ between two correct runs of the same input, and is
normalised -- exactly this, nothing else:

* in a manifest, ``created_at`` (the wall clock at commit), ``run_id`` (random, and per
  DAG run) and ``commit_id`` (a uuid4 per transaction) are dropped, and so is the
  property ``discovery_sweep_at`` (the wall clock when the recorded sweep listed);
* a data file's name ``data/<table>/<version>-<16 random hex>.parquet``: the random part
  is replaced by the SHA-256 of the file's bytes as read here. Everything else a manifest
  says of its files stays: table, order, version, rows, size, recorded SHA-256, slice,
  stats; and the tables' row counts, the partition, version, parent and properties;
* a latest hint naming an older committed version (a kill between the last commit and
  its hint; the rerun had nothing left to commit, and readers probe past a stale hint) is
  a figure, not a difference. Any other hint is compared byte for byte.

Quarantine copies are compared byte for byte under their (deterministic) keys. A data
file whose bytes do not match the size or SHA-256 its manifest records, a named file that
is missing, a table whose row count is not its files' sum, or a gap in the versions are
integrity problems.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from openpool.partitions import Partition
from openpool.snapshots import SnapshotStore, collect_garbage, utc_now
from openpool.storage import LocalStore, ObjectStore

VOLATILE = ("created_at", "run_id", "commit_id")  # dropped from manifests (see docstring)
VOLATILE_PROPERTIES = ("discovery_sweep_at",)  # dropped from their properties
_DATA_NAME = re.compile(r"(data/[^/]+/\d{20})-[0-9a-f]{16}\.parquet")
_MANIFEST = re.compile(r"manifests/(\d{20})\.json")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    """Every object of one partition's state, read and re-hashed (see module docstring)."""

    manifests: dict[int, dict[str, Any]] = field(default_factory=dict)  # normalised docs
    quarantine: dict[str, str] = field(default_factory=dict)  # key -> SHA-256 of its bytes
    hint: bytes | None = None
    orphans: list[str] = field(default_factory=list)  # data files no manifest names
    staging: list[str] = field(default_factory=list)
    temp_files: int = 0
    problems: list[str] = field(default_factory=list)  # integrity problems, unknown objects
    objects: int = 0  # objects read and hashed

    @property
    def latest(self) -> int:
        return max(self.manifests, default=0)

    def hinted(self) -> int | None:
        try:
            value = json.loads(self.hint or b"")["version"]
        except (ValueError, KeyError, TypeError):
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def stable_properties(props: dict[str, Any]) -> dict[str, Any]:
    """A manifest's properties without the wall-clock ones (see the module docstring)."""
    return {k: v for k, v in props.items() if k not in VOLATILE_PROPERTIES}


def _normalise(doc: Any, files: dict[str, bytes], image: Image, where: str) -> dict[str, Any]:
    """The manifest without its volatile fields, each data file named by its content."""
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict):
        image.problems.append(f"{where}: not a manifest")
        return {"unreadable": doc}
    out = {k: v for k, v in doc.items() if k not in VOLATILE}
    if isinstance(out.get("properties"), dict):
        out["properties"] = stable_properties(out["properties"])
    tables = {}
    for name, entry in sorted(doc["tables"].items()):
        listed = []
        total = 0
        for f in entry.get("files", []):
            path = f.get("path", "")
            m = _DATA_NAME.fullmatch(path)
            data = files.get(path)
            if data is None:
                image.problems.append(f"{where}: {name} names {path}, which is missing")
                content = "missing"
            else:
                content = _sha(data)
                if content != f.get("sha256") or len(data) != f.get("size"):
                    image.problems.append(f"{where}: {path} does not match its size/sha256")
            total += f.get("rows", 0)
            stem = m[1] if m else f"unnamed:{path}"
            listed.append({**f, "path": f"{stem}-<{content}>"})
        if total != entry.get("rows"):
            image.problems.append(f"{where}: {name} rows {entry.get('rows')} != files' {total}")
        tables[name] = {**entry, "files": listed}
    out["tables"] = tables
    return out


def take(store: ObjectStore, part: Partition) -> Image:
    """Read and hash every object under ``store`` (the whole state store of a trial)."""
    image = Image()
    prefix = f"{part.path}/"
    raw_manifests: dict[int, bytes] = {}
    data: dict[str, bytes] = {}
    for info in store.list(""):
        key = info.key
        body = store.get(key)
        image.objects += 1
        rel = key[len(prefix) :] if key.startswith(prefix) else None
        if key.startswith(f"staging/{part.path}/"):
            image.staging.append(key)
        elif rel is None:
            image.problems.append(f"unknown object {key}")
        elif m := _MANIFEST.fullmatch(rel):
            raw_manifests[int(m[1])] = body
        elif rel.startswith("data/"):
            data[rel] = body
        elif rel.startswith("quarantine/"):
            image.quarantine[rel] = _sha(body)
        elif rel == "_latest.json":
            image.hint = body
        else:
            image.problems.append(f"unknown object {key}")
    named: set[str] = set()
    for version, body in sorted(raw_manifests.items()):
        where = f"manifest v{version}"
        try:
            doc = json.loads(body)
        except ValueError:
            image.problems.append(f"{where}: not JSON")
            image.manifests[version] = {"unparseable": _sha(body)}
            continue
        image.manifests[version] = _normalise(doc, data, image, where)
        for entry in (doc.get("tables") or {}).values():
            named.update(f.get("path") for f in entry.get("files", []))
    missing = sorted(set(range(1, image.latest + 1)) - set(image.manifests))
    if missing:
        image.problems.append(f"versions missing from the chain: {missing}")
    image.orphans = sorted(set(data) - named)
    if isinstance(store, LocalStore):
        image.temp_files = sum(
            1 for p in Path(store.root).rglob("*") if p.name.startswith(store._TMP_PREFIX)
        )
    return image


def _manifest_diff(version: int, mine: dict[str, Any], clean: dict[str, Any]) -> list[str]:
    if mine == clean:
        return []
    if {"unparseable", "unreadable"} & (set(mine) | set(clean)):
        return [f"v{version} manifest unreadable here or in the clean run"]
    out = []
    for k in sorted(set(mine) | set(clean)):
        a, b = mine.get(k), clean.get(k)
        if a == b:
            continue
        if k in ("tables", "properties") and isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    what = "missing" if sub not in a else "extra" if sub not in b else "differs"
                    out.append(f"v{version} {k}.{sub} {what}")
        else:
            out.append(f"v{version} {k}: {a!r:.200} != {b!r:.200}")
    return out


def compare(mine: Image, clean: Image) -> tuple[list[str], dict[str, int]]:
    """Differences of ``mine`` from ``clean`` (empty when the states are identical), and
    the figures of what was normalised away (stale hint, orphans, leftovers)."""
    out = [f"integrity: {p}" for p in mine.problems]
    figures = {
        "objects re-hashed": mine.objects,
        "orphan data files (not state)": len(mine.orphans),
        "staging leftovers (not state)": len(mine.staging),
        "temp files of killed local writes": mine.temp_files,
    }
    for v in sorted(set(mine.manifests) | set(clean.manifests)):
        if v not in mine.manifests or v not in clean.manifests:
            out.append(f"v{v} manifest {'missing' if v not in mine.manifests else 'extra'}")
        else:
            out += _manifest_diff(v, mine.manifests[v], clean.manifests[v])
    for key in sorted(set(mine.quarantine) | set(clean.quarantine)):
        if mine.quarantine.get(key) != clean.quarantine.get(key):
            out.append(f"quarantine copy {key} differs")
    if mine.hint != clean.hint:
        hinted = mine.hinted()
        if hinted is not None and 0 < hinted < mine.latest and hinted in mine.manifests:
            figures["stale hints (kill before the last hint)"] = 1
        else:
            out.append(f"latest hint {mine.hint!r} != {clean.hint!r}")
    return out, figures


def collect_orphans(store: ObjectStore, part: Partition, image: Image) -> list[str]:
    """Run ``gc`` (every version retained, no grace) and check it deleted exactly the
    orphans: problems found (empty when it did)."""
    snaps = SnapshotStore(store, part)
    report = collect_garbage(
        snaps, utc_now() + timedelta(days=1), grace=timedelta(0), keep_versions=10**9
    )
    deleted = sorted(report.deleted)
    out = []
    if deleted != image.orphans:
        out.append(f"gc deleted {deleted}, the orphans were {image.orphans}")
    left = {i.key[len(snaps.prefix) :] for i in store.list(snaps.prefix + "data/")}
    if left & set(image.orphans):
        out.append(f"gc left orphans behind: {sorted(left & set(image.orphans))}")
    return out
