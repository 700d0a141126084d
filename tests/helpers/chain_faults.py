"""A thin wrapper around a real :class:`Chain` to inject what one caller sees of the node.

The code under test is never stubbed: a hook gets the real method and decides, per call,
whether to run something first (a rival executor), answer as the node would, or raise the
RPC error a flaky node returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openpool.payouts.chain import Chain


class FaultyChain:
    """Delegates to ``chain``; ``hooks[name](real_method, *args)`` replaces a call."""

    def __init__(self, chain: Chain) -> None:
        self._chain = chain
        self.hooks: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._chain, name)
        hook = self.hooks.get(name)
        if hook is None:
            return real

        def call(*args: Any, **kw: Any) -> Any:
            return hook(real, *args, **kw)

        return call
