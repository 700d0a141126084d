"""Event times and object keys as the orchestrators write them.

A file's key names its partition and the ``DT`` of its first and last events; the
generator, the tests and the benches build and read keys with these, so they agree on one
format.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from openpool.partitions import Partition

DT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
KEY_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
KEY_RE = re.compile(
    r"^(?P<region>[^/]+)/(?P<node_type>[^/]+)/(?P=region)-(?P=node_type)-"
    r"(?P<start>\d{8}T\d{6}Z)_(?P<end>\d{8}T\d{6}Z)\.json$"
)


def format_dt(t: datetime) -> str:
    """An event's ``DT``: RFC 3339, UTC, whole seconds."""
    return t.astimezone(UTC).strftime(DT_FORMAT)


def object_key(partition: Partition, first_dt: str, last_dt: str) -> str:
    """The key an orchestrator gives a file whose first/last events have these ``DT``s."""

    def stamp(dt: str) -> str:
        return datetime.strptime(dt, DT_FORMAT).strftime(KEY_TIME_FORMAT)

    p = f"{partition.region}-{partition.node_type}"
    return f"{partition.path}/{p}-{stamp(first_dt)}_{stamp(last_dt)}.json"


def parse_key(key: str) -> tuple[Partition, datetime, datetime]:
    """Partition and first/last event times encoded in an event file's key."""
    m = KEY_RE.match(key)
    if not m:
        raise ValueError(f"not an event file key: {key!r}")
    start = datetime.strptime(m["start"], KEY_TIME_FORMAT).replace(tzinfo=UTC)
    end = datetime.strptime(m["end"], KEY_TIME_FORMAT).replace(tzinfo=UTC)
    return Partition(m["node_type"], m["region"]), start, end
