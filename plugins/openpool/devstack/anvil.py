"""anvil, Foundry's dev chain, as Arbitrum One (chain id 42161) on a loopback port.

One launcher for the demo, ``make up`` and the tests (tests/services.py reuses it). The
binary is the project-local one ``make setup`` installs (``OPENPOOL_ANVIL_BIN`` overrides).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from openpool.devstack.net import LOOPBACK, free_port, wait_rpc

REPO = Path(__file__).resolve().parents[3]
CHAIN_ID = 42161  # Arbitrum One's, so signed transactions carry the production chain id


def anvil_bin() -> str:
    return os.environ.get("OPENPOOL_ANVIL_BIN", str(REPO / ".tools" / "bin" / "anvil"))


def anvil_argv(port: int, block_time: float | None = 1, accounts: int | None = None) -> list[str]:
    """anvil's command line. ``block_time=None``: mine each transaction at once."""
    argv = [anvil_bin(), "--host", LOOPBACK, "--port", str(port), "--chain-id", str(CHAIN_ID)]
    if block_time:
        argv += ["--block-time", str(block_time)]
    if accounts is not None:
        argv += ["--accounts", str(accounts)]
    return [*argv, "--silent"]


@contextlib.contextmanager
def anvil(
    log: Path,
    port: int | None = None,
    block_time: float | None = 1,
    accounts: int | None = None,
) -> Iterator[str]:
    """A running anvil for the ``with`` block; yields its RPC URL, stops it at the end."""
    port = port or free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            anvil_argv(port, block_time, accounts), stdout=out, stderr=subprocess.STDOUT
        )
        url = f"http://{LOOPBACK}:{port}"
        try:
            wait_rpc(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
