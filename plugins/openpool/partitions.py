"""The partition grid: node type x region, and which cells are active.

This is the one place the active cells are listed. Adding a region is one line in
``ACTIVE_PARTITIONS`` (or the ``OPENPOOL_PARTITIONS`` variable, which overrides it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

NODE_TYPES: tuple[str, ...] = ("ai", "transcode")

# One line per active cell, "node_type|region".
ACTIVE_PARTITIONS: tuple[str, ...] = (
    "ai|us-central",
    "transcode|us-central",
    "transcode|us-west",
    "transcode|eu-central",
    "transcode|oceania",
)

_REGION_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True, order=True)
class Partition:
    """One cell of the grid; its string form is ``node_type|region``."""

    node_type: str
    region: str

    def __post_init__(self) -> None:
        if self.node_type not in NODE_TYPES:
            raise ValueError(f"unknown node type {self.node_type!r} (expected one of {NODE_TYPES})")
        if not _REGION_RE.match(self.region):
            raise ValueError(f"invalid region {self.region!r} (lower-case words joined by '-')")

    @classmethod
    def parse(cls, text: str) -> Partition:
        """Parse ``node_type|region``."""
        parts = text.strip().split("|")
        if len(parts) != 2:
            raise ValueError(f"invalid partition {text!r} (expected 'node_type|region')")
        return cls(parts[0].strip(), parts[1].strip())

    @property
    def key(self) -> str:
        return f"{self.node_type}|{self.region}"

    @property
    def path(self) -> str:
        """Relative path used under every root (state, events, metrics): region/node_type."""
        return f"{self.region}/{self.node_type}"

    @property
    def slug(self) -> str:
        """Identifier-safe name, e.g. for DAG ids: ``transcode__us_west``."""
        return f"{self.node_type}__{self.region.replace('-', '_')}"

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class WalletKey:
    """Keys a hot wallet's payout ledger in the snapshot store, as a Partition keys state.

    Stored under ``wallet/<address>``; the address is kept lower-case so the key read back
    from a manifest equals the one written.
    """

    address: str
    node_type: str = "wallet"

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", self.address.lower())

    @property
    def region(self) -> str:
        return self.address

    @property
    def path(self) -> str:
        return f"wallet/{self.address}"

    @property
    def key(self) -> str:
        return f"{self.node_type}|{self.address}"

    def __str__(self) -> str:
        return f"wallet {self.address}"


@dataclass(frozen=True)
class AlertsKey:
    """Keys the pool's record of sent alerts in the snapshot store (under ``alerts/``):
    one chain, committed atomically like every other state."""

    node_type: str = "alerts"
    region: str = "pool"

    @property
    def path(self) -> str:
        return "alerts/pool"

    @property
    def key(self) -> str:
        return f"{self.node_type}|{self.region}"

    def __str__(self) -> str:
        return "alerts"


class StateKey(Protocol):
    """What keys one chain of snapshots: a partition's state, or a hot wallet's ledger."""

    @property
    def node_type(self) -> str: ...

    @property
    def region(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def path(self) -> str: ...


def state_key(node_type: str, region: str) -> Partition | WalletKey | AlertsKey:
    """The key a manifest names (its ``node_type`` and ``region`` fields), read back."""
    if node_type == WalletKey.node_type:
        return WalletKey(region)
    if node_type == AlertsKey.node_type:
        return AlertsKey(node_type, region)
    return Partition(node_type, region)
