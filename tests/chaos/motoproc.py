"""A moto S3 server that can be killed and started again with its objects restored.

moto keeps its state in memory. Started with ``MOTO_ENABLE_RECORDING``, it appends every
request it receives to a recording file; a new server replays that file
(``/moto-api/recorder/replay-recording``) and so holds the same buckets and objects.
Without a replay (``restore=False``) a restart is a total loss of the object store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from openpool.devstack.net import free_port, wait_http


class MotoProcess:
    def __init__(self, log_dir: Path, recording: Path) -> None:
        self.log_dir = log_dir
        self.recording = recording
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.restarts = 0

    def start(self, restore: bool = False) -> str:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAOS_", "PYTHONPATH"))}
        env.update(MOTO_ENABLE_RECORDING="True", MOTO_RECORDER_FILEPATH=str(self.recording))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"moto-{port}.log", "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.url = f"http://127.0.0.1:{port}"
        wait_http(self.url + "/moto-api/", self.proc)
        if restore:
            req = urllib.request.Request(
                self.url + "/moto-api/recorder/replay-recording", data=b"", method="POST"
            )
            with urllib.request.urlopen(req, timeout=600):
                pass
        elif self.recording.exists():
            self.recording.write_bytes(b"")  # a lost store: its history goes too
        return self.url

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, in-memory state is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self, restore: bool) -> str:
        self.kill()
        self.restarts += 1
        return self.start(restore=restore)

    def __enter__(self) -> MotoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
