"""What the benchmark modules share: pinned child processes, peak RSS, synthetic IDs.

Each measurement runs in a fresh interpreter pinned to one CPU (``sched_setaffinity``),
with BLAS/OpenMP and Arrow's pools at one thread, so figures do not mix and each process's
``ru_maxrss`` is its own peak.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.services import REPO


def cpu() -> int:
    """The CPU measurements are pinned to: the last one this process may use."""
    return max(os.sched_getaffinity(0))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(REPO / "plugins"), env.get("PYTHONPATH", "")) if p
    )
    return env


def spawn(module: str, task: str, pin: bool = True, **args: Any) -> dict[str, Any]:
    """Run ``task`` of ``module`` (``python -m module --child ...``) in a fresh interpreter,
    pinned to one CPU unless ``pin`` is false; its last stdout line is a JSON result."""
    payload = json.dumps({"task": task, "cpu": cpu() if pin else None, **args})
    proc = subprocess.run(
        [sys.executable, "-m", module, "--child", payload],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise RuntimeError(f"bench child {task!r} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(
    argv: list[str] | None,
    children: dict[str, Callable[[dict[str, Any]], dict[str, Any]]],
    measure: Callable[[bool], dict[str, Any]],
    print_table: Callable[[dict[str, Any]], None],
) -> int:
    """A bench module's command line. ``--child PAYLOAD`` (from :func:`spawn`) runs one task
    of ``children``, pinned when asked, and prints its JSON result; otherwise the figures
    of ``measure(quick)`` (``--quick``: everything small) are printed."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        args = json.loads(argv[1])
        if args["cpu"] is not None:
            pin(int(args["cpu"]))
        print(json.dumps(children[args["task"]](args)))
        return 0
    print_table(measure("--quick" in argv))
    return 0


def pin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def inputs_key(sizes: list[Any]) -> str:
    """Names cached generated inputs by the generator's source (every module of
    ``openpool.traffic``) and the sizes: an edit there may change the bytes it generates."""
    import openpool.traffic

    h = hashlib.sha256()
    for path in sorted(Path(openpool.traffic.__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    h.update(json.dumps(sizes).encode())
    return h.hexdigest()[:16]


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def random_hex(rng: Any, n: int, width: int) -> Any:
    """``n`` random lower-case hex strings of ``width`` digits, as an Arrow string array."""
    import numpy as np
    import pyarrow as pa

    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[
        rng.integers(0, 16, size=n * width, dtype=np.uint8)
    ]
    offsets = np.arange(n + 1, dtype=np.int32) * width
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(digits.tobytes())]
    )


def uuid4s(rng: Any, n: int) -> Any:
    """``n`` random version-4 UUID strings (8-4-4-4-12), vectorised."""
    import numpy as np
    import pyarrow as pa

    hexd = np.frombuffer(random_hex(rng, n, 32).buffers()[2], dtype=np.uint8)[: n * 32]
    hexd = hexd.reshape(n, 32).copy()
    hexd[:, 12] = ord("4")  # version
    hexd[:, 16] = np.frombuffer(b"89ab", dtype=np.uint8)[rng.integers(0, 4, size=n)]  # variant
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    cols = [i for i in range(36) if i not in (8, 13, 18, 23)]
    out[:, cols] = hexd
    offsets = np.arange(n + 1, dtype=np.int32) * 36
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out.tobytes())]
    )
