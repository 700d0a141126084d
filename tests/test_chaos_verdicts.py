"""How the chaos campaign judges a child process's exit (tests/chaos/common.py ``Child``).

Only exit 0 is success. A documented refusal is the CLI's own non-zero exit with its
one-line reason (``openpool <command>: ...``, see openpool/cli/main.py); a signal (a
negative return code: SIGABRT, SIGSEGV, our SIGKILL) or a traceback never is, whatever the
process printed before it died. Every case here is a real process.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from tests.chaos.common import OPENPOOL, QUICK, Campaign, Child

FINISHED = json.dumps({"phase": "finished", "files_ingested": 2})


@pytest.fixture
def campaign(tmp_path: Path) -> Campaign:
    return Campaign(tmp_path / "work", QUICK)


def _python(campaign: Campaign, code: str) -> Child:
    return campaign.run([sys.executable, "-c", code], campaign.env(), timeout=60, label="verdict")


def test_exit_zero_is_success(campaign: Campaign) -> None:
    child = _python(campaign, f"print({FINISHED!r})")
    assert child.ok and not child.refused and not child.killed


def test_sigabrt_after_printing_the_final_result_is_a_failure(campaign: Campaign) -> None:
    """What the campaign used to forgive as pyarrow's abort at exit (apache/arrow#34314):
    the result is printed, then the interpreter dies of SIGABRT. The operator sees a failed
    exit code, so the campaign counts one too."""
    child = _python(
        campaign,
        "import os, sys\n"
        f"print({FINISHED!r}, flush=True)\n"
        "sys.stderr.write('terminate called without an active exception\\n')\n"
        "sys.stderr.flush()\n"
        "os.abort()\n",
    )
    assert child.returncode == -signal.SIGABRT
    assert not child.ok and not child.refused and not child.killed


@pytest.mark.parametrize("sig", [signal.SIGABRT, signal.SIGSEGV])
def test_a_signal_with_a_reason_like_line_is_no_refusal(campaign: Campaign, sig: int) -> None:
    child = _python(
        campaign,
        "import os, sys\n"
        "sys.stderr.write('openpool ingest: looks like a reason\\n')\n"
        "sys.stderr.flush()\n"
        f"os.kill(os.getpid(), {int(sig)})\n",
    )
    assert child.returncode == -sig
    assert not child.ok and not child.refused


def test_a_traceback_is_no_refusal(campaign: Campaign) -> None:
    child = _python(campaign, "raise RuntimeError('openpool ingest: boom')")
    assert child.returncode == 1 and "Traceback" in child.stderr
    assert not child.ok and not child.refused


def test_a_non_zero_exit_without_the_clis_reason_is_no_refusal(campaign: Campaign) -> None:
    child = _python(campaign, "import sys; sys.exit(1)")
    assert not child.ok and not child.refused


def test_our_sigkill_is_killed_not_refused(campaign: Campaign) -> None:
    child = campaign.run(
        [sys.executable, "-c", "import time; time.sleep(30)"],
        campaign.env(),
        kill_after=0.5,
        label="verdict",
    )
    assert child.killed and not child.ok and not child.refused


def test_the_clis_own_refusal_is_a_documented_refusal(campaign: Campaign) -> None:
    """The installed console script, refusing a state URI it cannot use: exit 1, one line."""
    child = campaign.run(
        [OPENPOOL, "snapshots", "--node-type", "transcode", "--region", "us-west"],
        campaign.env({"OPENPOOL_STATE_URI": "ftp://nowhere/state"}),
        timeout=120,
        label="verdict",
    )
    assert child.returncode == 1, child.stderr
    assert child.stderr.strip().splitlines()[-1].startswith("openpool snapshots: ")
    assert child.refused and not child.ok
