"""Loopback ports and readiness probes for the local services."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from typing import Any

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def choose_port(wanted: int) -> int:
    """``wanted`` if it is free, else any free port (0 always means any)."""
    return wanted if wanted and port_free(wanted) else free_port()


def _alive(proc: subprocess.Popen[bytes] | None, what: str) -> None:
    if proc is not None and proc.poll() is not None:
        raise RuntimeError(f"{what} exited early with code {proc.returncode}")


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    """Until ``url`` answers an HTTP GET (any status below 500)."""
    deadline = time.monotonic() + timeout
    while True:
        _alive(proc, url)
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback http
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(0.2)


def json_rpc(url: str, method: str, params: list[Any], timeout: float = 2.0) -> Any:
    req = urllib.request.Request(  # noqa: S310 - loopback http
        url,
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback http
        return json.loads(resp.read())["result"]


def wait_rpc(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    """Until the JSON-RPC node at ``url`` answers ``eth_chainId``."""
    deadline = time.monotonic() + timeout
    while True:
        _alive(proc, url)
        try:
            json_rpc(url, "eth_chainId", [])
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no JSON-RPC node answered at {url} within {timeout:.0f}s"
                ) from None
            time.sleep(0.1)
