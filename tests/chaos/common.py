"""What every part of the campaign shares: sizes, results, child processes, secrets.

Child processes are started with ``PYTHONPATH`` pointing at ``sitehook/`` (pickle audit
and targeted kill points, see its docstring). Everything a child prints is kept under
``<work>/transcripts`` so the secrets scan reads it afterwards.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.leaks import Secrets
from tests.services import REPO

HOOK_DIR = Path(__file__).parent / "sitehook"
PYTHON = sys.executable
OPENPOOL = str(Path(sys.executable).with_name("openpool"))


@dataclass(frozen=True)
class Sizes:
    """How much of each part to run."""

    name: str
    ingest_cli_trials: int
    ingest_dag_trials: int
    s3_every: int  # every n-th ingest crash trial runs on moto instead of file://
    payout_trials: int
    fuzz_examples: int
    fault_ingest_runs: int
    fault_analytics_runs: int
    fault_payout_runs: int
    moto_restarts: int
    large_file_events: int
    concurrency_rounds: int
    workers: int = 2  # trials run side by side (the machine has 2 cores)
    payout_fault_trials: int = 1  # of each kind: race, rollback, stuck (payout_faults.py)


FULL = Sizes("full", 140, 60, 5, 50, 100_000, 6, 3, 3, 2, 200_000, 2, payout_fault_trials=8)
QUICK = Sizes("quick", 4, 2, 3, 2, 3_000, 1, 1, 1, 1, 20_000, 1)


@dataclass
class Result:
    """One row of the table."""

    part: str
    trials: int = 0
    faults: int = 0
    violations: list[str] = field(default_factory=list)
    data_lost: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def violate(self, what: str) -> None:
        with self._lock:
            self.violations.append(what)

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                if k in ("trials", "faults", "data_lost", "duplicates"):
                    setattr(self, k, getattr(self, k) + v)
                else:
                    self.notes[k] = self.notes.get(k, 0) + v

    def as_dict(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "trials": self.trials,
            "faults_injected": self.faults,
            "invariant_violations": len(self.violations),
            "data_lost": self.data_lost,
            "duplicates": self.duplicates,
            "wall_seconds": round(self.seconds, 1),
            "violations": self.violations[:50],
            "notes": self.notes,
        }


# The CLI's documented non-zero exits (openpool/cli/main.py and its handlers): 1 a refusal
# (OpenPoolError) with "openpool <command>: <reason>" on stderr, 2 bad arguments ("openpool:"
# or argparse's "openpool <command>: error: ..."), 3 and 4 a payouts report on stdout.
REFUSAL_CODES = frozenset({1, 2, 3, 4})


@dataclass
class Child:
    """How a child process ended."""

    argv: list[str]
    returncode: int
    killed: bool  # by our SIGKILL (timed, or its own targeted kill point)
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        """Exit 0, nothing else: a signal after the work was done is still a failed run."""
        return self.returncode == 0

    @property
    def refused(self) -> bool:
        """A documented refusal: one of the CLI's own exit codes with its one-line reason
        (or, for 3 and 4, its JSON report), and no traceback. A negative return code is a
        signal, never a refusal, whatever was printed before it."""
        if self.returncode not in REFUSAL_CODES or "Traceback" in self.stderr:
            return False
        if self.returncode in (3, 4):
            return _last_json(self.stdout) is not None
        lines = self.stderr.strip().splitlines()
        return bool(lines) and lines[-1].startswith("openpool")


def _last_json(stdout: str) -> dict[str, Any] | None:
    try:
        last = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return last if isinstance(last, dict) else None


class Campaign:
    """The work directory, the child-process runner and the shared secrets registry."""

    def __init__(self, work: Path, sizes: Sizes, seed: int = 7) -> None:
        self.work = work
        self.sizes = sizes
        self.seed = seed
        self.transcripts = work / "transcripts"
        self.transcripts.mkdir(parents=True, exist_ok=True)
        self.audit_file = work / "pickle-audit.log"
        self.audit_file.touch()
        self.secrets = Secrets()
        self.xcom: list[Any] = []  # step results the DAG tasks would push to XCom
        self.exceptions: list[str] = []  # texts of exceptions the campaign caught
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def path(self, *parts: str) -> Path:
        p = self.work.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def note_exception(self, exc: BaseException) -> None:
        with self._lock:
            self.exceptions.append(f"{type(exc).__name__}: {exc}")

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENPOOL_", "HOT_WALLET_", "AWS_", "CHAOS_"))
        }
        # plugins/ too: the children run this checkout's library even where the editable
        # install points at another one (a git worktree).
        env["PYTHONPATH"] = os.pathsep.join([str(HOOK_DIR), str(REPO), str(REPO / "plugins")])
        env["CHAOS_AUDIT_FILE"] = str(self.audit_file)
        env.update(extra or {})
        return env

    def run(
        self,
        argv: list[str],
        env: dict[str, str],
        kill_after: float | None = None,
        timeout: float = 300.0,
        label: str = "child",
    ) -> Child:
        """Run ``argv``; with ``kill_after`` SIGKILL it after that many seconds if alive."""
        n = next(self._ids)
        out_path = self.transcripts / f"{n:05d}-{label}.out"
        err_path = self.transcripts / f"{n:05d}-{label}.err"
        started = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=REPO)
            killed_by_us = False
            if kill_after is not None:
                try:
                    proc.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    killed_by_us = True
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = -999
        elapsed = time.monotonic() - started
        stdout = out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        return Child(argv, rc, killed_by_us or rc == -9, stdout, stderr, elapsed)

    def pickle_events(self) -> list[str]:
        return [ln for ln in self.audit_file.read_text().splitlines() if ln.strip()]


def s3_client(endpoint: str) -> Any:
    """A boto3 client for one endpoint (moto, or the fault proxy in front of it).

    Explicit, so that in-process stores never reuse a thread's cached client that points
    at another endpoint; same retry settings as the product's ``make_s3_client``.
    """
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"max_attempts": 8, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # moto's throwaway credentials
        region_name="us-east-1",
        config=cfg,
    )


def install_parent_audit(path: Path) -> None:
    """The same pickle audit in the campaign's own process (library calls run here)."""

    def hook(event: str, args: tuple) -> None:
        if event == "pickle.find_class":
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"parent {args!r}\n")

    sys.addaudithook(hook)
