"""The README's Guarantees table names only tests that exist.

A promise is only as good as the test that would fail if it broke; a renamed or deleted
test would leave its row proved by nothing while still reading as proved.
"""

from __future__ import annotations

import re

from tests.services import REPO


def test_every_test_the_guarantees_table_names_exists() -> None:
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(test_\w+\.py)(?:::(\w+)(?:\[[^\]]+\])?)?`", table)
    assert len(named) > 50
    for file, test in named:
        source = REPO / "tests" / file
        assert source.exists(), file
        if test:
            found = re.search(rf"^(async )?def {test}\(", source.read_text(), re.M)
            assert found, f"{file}::{test}"
