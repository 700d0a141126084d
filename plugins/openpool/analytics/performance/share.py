"""One day's share of one performance window of one table: the record days are merged as.

A share holds, per group (a worker, or worker x pipeline x model), the day's jobs,
excluded jobs and fees, and every timed job's values. While a pass runs, its groups are
the pass's integer codes (:class:`~.tally.Tally` merges those); a share stored for later
refreshes (:mod:`.daycache`) names its groups instead (:data:`Group`), since codes mean
nothing outside the pass that made them. :meth:`Share.keyed` turns one into the other.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

Group = tuple[str | None, str | None, str | None]  # eth_address, pipeline, model_id
K = TypeVar("K", bound=Hashable)
J = TypeVar("J", bound=Hashable)


@dataclass
class Share(Generic[K]):
    """One day's share of one window of one table, per group, groups keyed ``K``.

    ``groups[i]``'s figures are ``jobs[i]``, ``excluded[i]`` and ``fees[i]`` (wei);
    ``values``: per value name, each group's timed values (a group with none has no entry).
    """

    groups: list[K] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    fees: list[int] = field(default_factory=list)  # wei
    values: dict[str, dict[K, np.ndarray]] = field(default_factory=dict)  # name -> group -> v

    def keyed(self, key: Callable[[K], J]) -> Share[J]:
        """The same share with each group keyed ``key(group)`` (called in group order)."""
        groups = [key(g) for g in self.groups]
        to = dict(zip(self.groups, groups, strict=True))
        values = {n: {to[g]: v for g, v in per.items()} for n, per in self.values.items()}
        return Share(groups, self.jobs, self.excluded, self.fees, values)
