"""Background services that outlive the command starting them, tracked by pid files.

Each service runs in its own session (so its process group holds its workers too), logs
to ``<dir>/logs/<name>.log``, and is recorded in ``<dir>/pids/<name>.pid`` with its start
time, so a recycled pid is never mistaken for it. Every process also carries
``OPENPOOL_STACK_DIR=<dir>`` in its environment, inherited by anything it starts. Stopping
signals the services' process groups, then any straggler still in one of their sessions or
carrying the mark; nothing else is ever signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MARK = "OPENPOOL_STACK_DIR"


@dataclass(frozen=True)
class Service:
    name: str
    pid: int
    started: str  # the kernel's start time of pid ("" where /proc is not available)
    seq: int  # start order; services stop in reverse
    stop_signal: int = signal.SIGTERM  # what asks it to stop (PostgreSQL: SIGINT, fast)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _start_time(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if fields else ""


def is_running(pid: int, started: str = "") -> bool:
    """pid exists, is not a zombie, and (if known) started when it was recorded."""
    fields = _stat(pid)
    if fields is None:
        if Path("/proc/self/stat").exists():
            return False
        try:  # no /proc (macOS): ask the kernel whether the pid exists
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if fields[0] in ("Z", "X"):
        return False
    return not started or fields[19] == started


def spawn(
    directory: Path,
    name: str,
    argv: list[str],
    env: dict[str, str],
    cwd: Path | None = None,
    user: int | None = None,
    group: int | None = None,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Service:
    """Start ``argv`` detached (own session), log and pid file under ``directory``; in
    ``cwd`` (default ``directory``), as ``user``/``group`` if given (root only)."""
    logs, pids = directory / "logs", directory / "pids"
    logs.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            argv,
            env={**env, MARK: str(directory)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd or directory,
            user=user,
            group=group,
        )
    seq = len(services(directory)) + 1
    svc = Service(name, proc.pid, _start_time(proc.pid), seq, int(stop_signal))
    (pids / f"{name}.pid").write_text(json.dumps(asdict(svc)))
    return svc


def services(directory: Path) -> list[Service]:
    """Every service recorded under ``directory``, in start order (running or not)."""
    found = []
    for path in sorted((directory / "pids").glob("*.pid")):
        try:
            found.append(Service(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda s: s.seq)


def members(directory: Path) -> list[int]:
    """Live processes (not this one) of ``directory``'s stack.

    Those in the session of a recorded service (each is a session leader), and those whose
    environment carries the stack's mark (setproctitle may blank that, so both count).
    """
    sessions = {str(s.pid) for s in services(directory)}
    needle = f"{MARK}={directory}".encode()
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        fields = _stat(pid)
        if pid == os.getpid() or fields is None or fields[0] in ("Z", "X"):
            continue
        if fields[3] in sessions:  # state, ppid, pgrp, session
            pids.append(pid)
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours
            continue
        if needle in env:
            pids.append(pid)
    return pids


def _signal_group(svc: Service, sig: signal.Signals) -> None:
    if not is_running(svc.pid, svc.started):
        return
    try:
        os.killpg(svc.pid, sig)  # its own session: the group id is its pid
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(directory: Path, todo: list[Service], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(is_running(s.pid, s.started) for s in todo) and not members(directory):
            return True
        time.sleep(0.2)
    return False


def stop(directory: Path, timeout: float = 30.0) -> list[tuple[str, str]]:
    """Stop every service of ``directory`` (newest first); returns (name, what happened).

    Its stop signal (SIGTERM) to each service's process group, then SIGKILL to whatever
    of it (or carrying its mark) is left after ``timeout``. Pid files are removed. Safe to repeat.
    """
    todo = list(reversed(services(directory)))
    done = []
    for svc in todo:
        running = is_running(svc.pid, svc.started)
        _signal_group(svc, signal.Signals(svc.stop_signal))
        done.append((svc.name, f"stopped (pid {svc.pid})" if running else "was not running"))
    if not _wait_gone(directory, todo, timeout):
        for svc in todo:
            if is_running(svc.pid, svc.started):
                done.append(
                    (svc.name, f"killed (pid {svc.pid}): no exit {timeout:.0f}s after asked to")
                )
            _signal_group(svc, signal.SIGKILL)
        for pid in members(directory):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            done.append(("straggler", f"killed (pid {pid})"))
        _wait_gone(directory, todo, 10)
    for svc in todo:
        (directory / "pids" / f"{svc.name}.pid").unlink(missing_ok=True)
    return done
