"""``python -m tests.mutants [--only NAME]``: each core mechanism removed, its test must fail.

First the named tests run on a copy of the intact library (every one must pass, else the
smoke proves nothing); then, per mutant, on a copy of that copy with its edits, put first on
``PYTHONPATH`` (so the CLI and Airflow child processes load the mutant too). A mutant
whose tests all pass survived: its Guarantees row is not proved. Prints a table and
writes ``reports/mutants.json``; exit 1 if any mutant survived or the baseline failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mutants import MUTANTS, Mutant
from tests.services import REPO


def shadow(root: Path, plugins: Path) -> Path:
    """A repository at ``root`` whose ``plugins/`` is a copy of ``plugins`` and whose every
    other entry links to the real one: the library finds anvil, the venv and ``dags/``
    where it looks (beside itself), and only its own code differs."""
    root.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in ("plugins", ".git"):
            (root / entry.name).symlink_to(entry)
    shutil.copytree(plugins, root / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    return root / "plugins"


def apply(mutant: Mutant, plugins: Path) -> None:
    """Edit the copy of the library at ``plugins`` (each ``old`` exactly once)."""
    for e in mutant.edits:
        path = plugins / "openpool" / e.path
        text = path.read_text()
        if text.count(e.old) != 1:
            raise SystemExit(f"{mutant.name}: {e.path} holds {e.old!r} {text.count(e.old)} times")
        path.write_text(text.replace(e.old, e.new))


def pytest(tests: tuple[str, ...], pythonpath: Path, log: Path) -> tuple[int, dict[str, str]]:
    """Run ``tests``; (exit code, outcome per node id from the junit report)."""
    junit = log.with_suffix(".xml")
    env = dict(os.environ, PYTHONPATH=f"{pythonpath}{os.pathsep}{REPO}")
    with log.open("w") as out:
        rc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"--junitxml={junit}", *tests],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
        ).returncode  # fmt: skip
    return rc, outcomes(junit)


def outcomes(junit: Path) -> dict[str, str]:
    import xml.etree.ElementTree as ET

    if not junit.exists():
        return {}
    found = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        kinds = {child.tag for child in case}
        found[name] = (
            "failed"
            if kinds & {"failure", "error"}
            else "skipped"
            if "skipped" in kinds
            else "passed"
        )
    return found


def _verdict(test: str, got: dict[str, str]) -> str:
    """A named test (all its parametrizations, if it names none) failed if any item did."""
    items = [o for name, o in got.items() if name == test or name.startswith(test + "[")]
    if not items:
        return "not run"
    return "failed" if "failed" in items else "passed" if set(items) == {"passed"} else "skipped"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__)
    ap.add_argument("--only", action="append", help="run only mutants whose name holds this")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(o in m.name for o in args.only)]
    reports = REPO / "reports" / "mutants"
    reports.mkdir(parents=True, exist_ok=True)
    every = tuple(dict.fromkeys(t for m in chosen for t in m.tests))

    t0 = time.monotonic()
    # One copy of the library, taken now: the baseline and every mutant start from it, so
    # an edit of plugins/ during the run cannot mix into some mutants and not others.
    keep = tempfile.TemporaryDirectory(prefix="openpool-intact-")
    intact = shadow(Path(keep.name) / "repo", REPO / "plugins")
    rc, base = pytest(every, intact, reports / "baseline.log")
    if rc != 0 or any(_verdict(t, base) != "passed" for t in every):
        print(f"baseline: the named tests do not all pass on the intact code (exit {rc}); "
              f"see {reports / 'baseline.log'}")  # fmt: skip
        return 1
    print(
        f"baseline: {len(every)} named tests pass on the intact code ({time.monotonic() - t0:.0f}s)"
    )

    rows, survived = [], 0
    for n, m in enumerate(chosen, 1):
        t1 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="openpool-mutant-") as tmp:
            plugins = shadow(Path(tmp) / "repo", intact)
            apply(m, plugins)
            rc, got = pytest(m.tests, plugins, reports / f"mutant-{n}.log")
        verdict = {t: _verdict(t, got) for t in m.tests}
        caught = rc == 1 and all(v == "failed" for v in verdict.values())
        survived += not caught
        rows.append(
            {
                "mutant": m.name,
                "row": m.row,
                "tests": list(m.tests),
                "outcomes": verdict,
                "items": got,
                "pytest_exit": rc,
                "caught": caught,
                "seconds": round(time.monotonic() - t1, 1),
            }
        )
        said = ", ".join(f"{t.split('::')[-1]} {o}" for t, o in rows[-1]["outcomes"].items())
        print(
            f"{'caught  ' if caught else 'SURVIVED'} {m.name} ({rows[-1]['seconds']:.0f}s): {said}"
        )
    keep.cleanup()
    (REPO / "reports" / "mutants.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{len(rows) - survived} of {len(rows)} mutants caught in {time.monotonic() - t0:.0f}s")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
