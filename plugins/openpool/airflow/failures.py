"""Terminal errors fail a task at once: Airflow's retries are for trouble a retry may cure.

Damaged state, bad configuration or a refused plan (``OpenPoolError.terminal``) would only
repeat on every retry and delay the failure an operator must see; transient trouble (S3 or
RPC errors, a commit race, gas above the cap) is left to the task's retries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from openpool.errors import is_terminal

F = TypeVar("F", bound=Callable[..., Any])


def unretried(fn: F) -> F:
    """``fn``, with a terminal error turned into AirflowFailException (no retry)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if is_terminal(exc):
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            raise

    return run  # type: ignore[return-value]  # same signature, by functools.wraps
