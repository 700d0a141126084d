"""The mutation smoke's own upkeep: every edit still applies, every named test exists.

``make mutants`` (``tests/mutants``) is too slow for every run; this keeps it from rotting:
an edit whose text no longer occurs exactly once, or a renamed test, fails here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.mutants import MUTANTS
from tests.services import REPO


def test_every_mutant_edit_occurs_exactly_once_in_the_library() -> None:
    for m in MUTANTS:
        for e in m.edits:
            text = (REPO / "plugins/openpool" / e.path).read_text()
            assert text.count(e.old) == 1, (m.name, e.path, e.old)
            assert e.new != e.old


@pytest.mark.slow  # a pytest --collect-only child: seconds, not for the edit loop
def test_every_test_a_mutant_names_is_collected() -> None:
    ids = sorted({t for m in MUTANTS for t in m.tests})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *ids],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    collected = [line.strip() for line in done.stdout.splitlines() if "::" in line]
    for t in ids:
        assert any(c == t or c.startswith(t + "[") for c in collected), t
