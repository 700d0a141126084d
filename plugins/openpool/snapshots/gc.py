"""Garbage collection of data files that no retained version needs.

Manifests are never deleted: they are the audit trail, and keeping them means no version
number can ever be created twice. Data files are deleted when both hold:

* no *retained* version references them. Retained = the newest ``keep_versions`` versions,
  plus every version superseded less than ``grace`` ago (so a slow reader that loaded it
  keeps its files for at least ``grace``);
* the file itself is older than ``grace`` (so files a commit in progress has written, but
  not yet published, are never taken).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from openpool.snapshots.manifest import DATA_DIR
from openpool.snapshots.store import SnapshotStore


@dataclass
class GcReport:
    partition: str
    latest_version: int
    retained_versions: list[int] = field(default_factory=list)
    referenced_files: int = 0
    deleted: list[str] = field(default_factory=list)
    kept_young_orphans: int = 0
    dry_run: bool = False


def collect_garbage(
    snapshots: SnapshotStore,
    now: datetime,
    grace: timedelta = timedelta(hours=24),
    keep_versions: int = 1,
    dry_run: bool = False,
) -> GcReport:
    """Delete unreferenced, old-enough data files of one partition; report what was done."""
    latest = snapshots.latest_version()
    report = GcReport(str(snapshots.partition), latest, dry_run=dry_run)
    referenced: set[str] = set()
    cutoff = now - grace
    successor_created: datetime | None = None
    version = latest
    while version >= 1:
        manifest = snapshots.manifest(version)
        newest_enough = latest - version < keep_versions
        superseded_recently = successor_created is not None and successor_created > cutoff
        if not (newest_enough or superseded_recently or successor_created is None):
            break
        report.retained_versions.append(version)
        for files in manifest.tables.values():
            referenced.update(f.path for f in files)
        successor_created = datetime.fromisoformat(manifest.created_at)
        version -= 1
    report.referenced_files = len(referenced)

    data_prefix = snapshots.prefix + DATA_DIR + "/"
    for info in snapshots.store.list(data_prefix):
        rel = info.key[len(snapshots.prefix) :]
        if rel in referenced:
            continue
        if info.last_modified > cutoff:
            report.kept_young_orphans += 1
            continue
        if not dry_run:
            snapshots.store.delete(info.key)
        report.deleted.append(rel)
    return report
