"""worker_performance: exact per-worker speed and earnings, for all time, 24 h and 7 d.

Windows are of event time and end at ``as_of`` (default: the partition's latest event
time, so a refresh is reproducible from its snapshot). All windows asked for come from one
pass over the ledger's date slices, oldest first: "all time" reads every slice once and
keeps every timed job's values (exact, no sketch); the 24 h and 7 d windows cover only the
slices of their days, so asked for alone their cost does not grow with history. Each
day's jobs go, as compact numeric arrays, to every window whose time range holds them;
quantiles are taken per group at the end by selection, not a sort of the whole ledger.
A day only "all time" needs is taken from its stored share when one exists for exactly
its inputs, so a refresh reads the ledger files of new or changed days and of the last
7 days only.

Modules, from the entry down:

* :mod:`.tables`: :func:`performance`, the output schemas, each window's rows and ranks;
* :mod:`.onepass`: the one pass over the ledger's days, feeding every window;
* :mod:`.tally`: a window's running per-group figures, merged one day's share at a time;
* :mod:`.share`: one day's share of a window: what tally merges and daycache stores;
* :mod:`.daycache`: stored day shares of "all time", so a refresh reads only new days;
* :mod:`.scan`: reading checked ledger files, few columns, strings as codes;
* :mod:`.credits`: the worker each AI job was credited to, matched by event ID;
* :mod:`.quantiles`: exact quantiles and ranks.
"""

from openpool.analytics.performance.onepass import Window
from openpool.analytics.performance.tables import (
    AI,
    MIN_TIMED_JOBS,
    TRANSCODE,
    WINDOWS,
    Performance,
    performance,
)

__all__ = ["AI", "MIN_TIMED_JOBS", "TRANSCODE", "WINDOWS", "Performance", "Window", "performance"]
