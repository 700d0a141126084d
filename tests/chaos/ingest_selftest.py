"""The ingest judges must see what they are there to see: each one shown a broken state.

* **oracle**: the data set plus one more file, an hour later, holding a copy of a valid
  job-processed event with the same ID dated in that hour. The ID index is sliced by
  event hour, so the ingest counts the job twice -- deterministically, so the clean run
  does too and a comparison with it sees nothing. The oracle check must report the
  worker's balance and the ID counted twice.
* **identity**: copies of the clean run's state, each damaged one way (a byte flipped in
  a data file, in a manifest's properties, in a quarantine copy; a manifest's row count
  or table list changed; the hint; an unknown object), must each be reported; an orphan
  data file added must not be (it is not state) and ``gc`` must delete exactly it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openpool.ingest.run import ingest
from openpool.snapshots import SnapshotStore
from openpool.storage import LocalStore
from openpool.traffic import GeneratedFile, write
from tests.chaos import identity
from tests.chaos.datasets import MAX_FILES, RATE, Dataset
from tests.chaos.oracle_check import expected, judge
from tests.chaos.state import capture
from tests.helpers.oracle import oracle_events


def cross_hour_copy(ds: Dataset) -> GeneratedFile:
    """One file an hour after the data set, holding a valid job's copy under its ID."""
    ev = next(e for e in oracle_events(ds.files) if e["EventType"] == "job-processed")
    hour = ev["DT"][:11] + f"{int(ev['DT'][11:13]) + 1:02d}"
    stamp = hour.replace("-", "")
    r, n = ds.part.region, ds.part.node_type
    key = f"{r}/{n}/{r}-{n}-{stamp}0000Z_{stamp}0459Z.json"
    return GeneratedFile(key, json.dumps([{**ev, "DT": f"{hour}:00:00Z"}], indent=2).encode())


def oracle_self_test(ds: Dataset, where: Path) -> tuple[str, list[str]]:
    """``ok`` when the oracle check reports the double count the clean run cannot see."""
    files = [*ds.files, cross_hour_copy(ds)]
    events, state = LocalStore(where / "events"), LocalStore(where / "state")
    write(files, events)
    ingest(ds.part, events, state, RATE, max_files=MAX_FILES)
    clean = capture(state, ds.part)
    assert clean is not None
    found, _, twice = judge(clean.snap, expected(files, RATE))
    balance = [f for f in found if f.startswith("balance of")]
    ok = twice == 1 and len(balance) == 1 and "job_count" in balance[0]
    return ("ok" if ok else f"MISSED: {found}"), found


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _damages(part: str, latest: int) -> dict[str, Callable[[Path], None]]:
    """Each damage, applied to a copy of a state store's root directory."""
    man = f"{part}/manifests/{latest:020d}.json"

    def data_byte(root: Path) -> None:
        doc = json.loads((root / man).read_bytes())
        _flip(root / part / doc["tables"]["events"]["files"][0]["path"])

    def property_byte(root: Path) -> None:  # the last digit of events_accepted (^1: a digit)
        raw = (root / man).read_bytes()
        at = raw.index(b'"events_accepted":') + len(b'"events_accepted":')
        while raw[at + 1 : at + 2].isdigit():
            at += 1
        _flip(root / man, at)

    def row_count(root: Path) -> None:  # consistent: the table's total follows its file
        def change(doc: dict[str, Any]) -> None:
            entry = doc["tables"]["balances"]
            entry["files"][0]["rows"] += 1
            entry["rows"] += 1

        _edit_json(root / man, change)

    def table_list(root: Path) -> None:
        _edit_json(root / man, lambda doc: doc["tables"].pop("tickets"))

    def quarantine_byte(root: Path) -> None:
        _flip(next(p for p in sorted((root / part / "quarantine").rglob("*")) if p.is_file()))

    def hint(root: Path) -> None:
        (root / part / "_latest.json").write_bytes(json.dumps({"version": latest + 7}).encode())

    def unknown(root: Path) -> None:
        (root / part / "notes.txt").write_bytes(b"left here")

    return {
        "a byte of a data file": data_byte,
        "a byte of a manifest's properties": property_byte,
        "a manifest's row count": row_count,
        "a manifest's table list": table_list,
        "a byte of a quarantine copy": quarantine_byte,
        "the latest hint": hint,
        "an unknown object": unknown,
    }


def identity_self_test(ds: Dataset, where: Path) -> tuple[str, dict[str, list[str]]]:
    """``ok`` when every damage is reported and an orphan is not state but gc's."""
    clean_store = ds.ref_state["cli"]
    assert isinstance(clean_store, LocalStore)
    clean = ds.image("cli")
    seen: dict[str, list[str]] = {}
    missed = []
    for what, damage in _damages(ds.part.path, clean.latest).items():
        root = where / what.replace(" ", "-").replace("'", "")
        shutil.copytree(clean_store.root, root)
        damage(root)
        found, _ = identity.compare(identity.take(LocalStore(root), ds.part), clean)
        seen[what] = found
        if not found:
            missed.append(what)
    root = where / "an-orphan"
    shutil.copytree(clean_store.root, root)
    store = LocalStore(root)
    first = clean.manifests[1]["tables"]["events"]["files"][0]["path"].split("-<")[0]
    orphan = f"data/events/{first.rsplit('/', 1)[1]}-0123456789abcdef.parquet"
    store.put(f"{ds.part.path}/{orphan}", b"written by a commit killed before its manifest")
    image = identity.take(store, ds.part)
    found, _ = identity.compare(image, clean)
    gc = identity.collect_orphans(store, ds.part, image)
    after = identity.take(store, ds.part)
    seen["an orphan data file"] = found + gc
    if (
        found
        or gc
        or image.orphans != [orphan]
        or after.orphans
        or identity.compare(after, clean)[0]
    ):
        missed.append("an orphan data file (reported as state, or not collected by gc)")
    if SnapshotStore(store, ds.part).latest_version() != clean.latest:
        missed.append("gc changed the state")
    return ("ok" if not missed else f"MISSED: {missed}"), seen
