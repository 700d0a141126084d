"""Shared fixtures (a real moto S3 server for the session, stores on both backends) and the
markers that say which real services a test needs.

Markers ``s3``, ``chain`` and ``airflow`` are not written by hand: they are derived here,
at collection, from what a test uses (:func:`service_markers`), and checked when it runs:
starting moto or anvil, making a bucket, migrating Airflow's DB, serving its API or
parsing the DAGs raises :class:`~tests.services.UnmarkedService` in a test without the
marker (see ``tests.services.require``). ``slow`` is set by hand on long tests. ``make
test-fast`` runs the tests with none of the four (:data:`FAST`).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.services import REPO, airflow_env

# Airflow reads its configuration when first imported: point it at a throwaway home with a
# SQLite metadata DB before any test module imports it.
os.environ.update(airflow_env())

from openpool.storage import LocalStore, ObjectStore, S3Store, make_s3_client
from tests.services import moto_server, s3_env

# The edit-loop tier (make test-fast); tests/test_markers.py checks the Makefile uses it.
FAST = "not s3 and not chain and not airflow and not slow"
SERVICE_MARKERS = ("s3", "chain", "airflow")

# Fixtures that are a service: a test whose fixture closure holds one gets its marker.
SERVICE_FIXTURES = {
    "s3": frozenset({"moto_endpoint", "s3_bucket"}),
    "airflow": frozenset({"airflow_db"}),
}
# What the source of a test, or of a fixture it uses, does when it starts a service that
# no shared fixture stands for: anvil is launched per test or per module; Airflow is
# imported (in this process or in code a child runs), run as the DAG-import helper or
# the HITL api-server helper, or its CLI is called.
_PURE_AIRFLOW = r"(?!rest\b|dashboard\.charts\b|dashboard\.render\b)"  # import no airflow
# A fixture whose source matches "s3" gives that marker only for its "s3" parameter (the
# store-like fixtures, params=["local", "s3"], ask for a bucket only then).
SERVICE_SOURCE = {
    "s3": re.compile(r"\b(s3_bucket|moto_endpoint)\b"),
    "chain": re.compile(r"\banvil\("),
    "airflow": re.compile(
        rf"^\s*[\"']?(from|import)\s+(airflow\b|openpool\.airflow\.{_PURE_AIRFLOW})"
        r"|tests\.helpers\.hitl_api|import_dags\.py|\.venv/bin/airflow",
        re.MULTILINE,
    ),
}
CLASSIFIED: pytest.StashKey[dict[str, dict[str, Any]]] = pytest.StashKey()


def _source(func: Callable[..., Any], cache: dict[Any, str]) -> str:
    func = inspect.unwrap(func)
    if func not in cache:
        try:
            cache[func] = inspect.getsource(func)
        except (OSError, TypeError):
            cache[func] = ""
    return cache[func]


def _helpers(cache: dict[Any, str]) -> dict[str, str]:
    """Source of every plain function the loaded ``tests`` modules define, by name."""
    found: dict[str, str] = {}
    for mod in list(sys.modules.values()):
        modname = getattr(mod, "__name__", "")
        if modname != "tests" and not modname.startswith("tests."):
            continue
        for name, obj in vars(mod).items():
            if inspect.isfunction(obj) and obj.__module__ == modname:
                found[f"{modname}.{name}"] = _source(obj, cache)
    return found


def service_patterns(cache: dict[Any, str]) -> dict[str, re.Pattern[str]]:
    """Per marker, a pattern for source that starts the service: its own pattern, or a
    call to a test helper that does (to any depth: ``open_pool`` calls ``anvil``)."""
    helpers = _helpers(cache)
    out = {}
    for marker, own in SERVICE_SOURCE.items():
        names: set[str] = set()
        while True:
            calls = "|".join(sorted(re.escape(n) for n in names)) or "(?!)"
            pattern = re.compile(rf"{own.pattern}|\b({calls})\(", own.flags)
            more = {q.rsplit(".", 1)[1] for q, src in helpers.items() if pattern.search(src)}
            if more <= names:
                break
            names |= more
        out[marker] = pattern
    return out


def _params(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params) if callspec is not None else {}


def service_markers(
    item: pytest.Item, patterns: dict[str, re.Pattern[str]], cache: dict[Any, str]
) -> set[str]:
    """The service markers ``item`` needs, from its fixtures, parameters and source."""
    names = set(getattr(item, "fixturenames", ()))
    found = {m for m, fixtures in SERVICE_FIXTURES.items() if names & fixtures}
    funcs = [item.function] if isinstance(item, pytest.Function) else []
    info = getattr(item, "_fixtureinfo", None)
    params = _params(item)
    for name in names:
        for fixturedef in info.name2fixturedefs.get(name, ()) if info else ():
            if fixturedef.baseid == "":  # pytest's own fixtures
                continue
            funcs.append(fixturedef.func)
            if params.get(name) == "s3" and patterns["s3"].search(_source(fixturedef.func, cache)):
                found.add("s3")
    text = "\n".join(_source(f, cache) for f in funcs)
    found |= {m for m, pattern in patterns.items() if m != "s3" and pattern.search(text)}
    return found


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache: dict[Any, str] = {}
    patterns = service_patterns(cache)
    classified = {}
    for item in items:
        for name in sorted(service_markers(item, patterns, cache)):
            if item.get_closest_marker(name) is None:
                item.add_marker(name)
        classified[item.nodeid] = {
            "markers": sorted({m.name for m in item.iter_markers()}),
            "fixtures": sorted(getattr(item, "fixturenames", ())),
            "params": {k: str(v) for k, v in _params(item).items()},
        }
    config.stash[CLASSIFIED] = classified
    if os.environ.get("OPENPOOL_TEST_MARKERS_OUT"):  # tests/test_markers.py, from a child
        Path(os.environ["OPENPOOL_TEST_MARKERS_OUT"]).write_text(json.dumps(classified))


@pytest.hookimpl(tryfirst=True)  # before this item's fixtures (any scope) are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    services.ACTIVE_MARKERS = frozenset(m.name for m in item.iter_markers())


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One moto server process for the session; the env points boto3 at it."""
    logs = tmp_path_factory.mktemp("moto-logs")
    with moto_server(logs) as endpoint:
        saved = {k: os.environ.get(k) for k in s3_env(endpoint)}
        os.environ.update(s3_env(endpoint))
        try:
            yield endpoint
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket on the moto server."""
    services.require("s3", "a moto bucket")
    name = f"test-{uuid.uuid4().hex[:12]}"
    make_s3_client().create_bucket(Bucket=name)
    return name


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> ObjectStore:
    if kind == "local":
        return LocalStore(tmp_path / "state")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(f"s3://{bucket}/state")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The same contract, run against the local backend and a real moto server."""
    return make_store(request.param, tmp_path, request)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Airflow's metadata DB (SQLite), migrated once per session by Airflow's own CLI."""
    import subprocess

    services.require("airflow", "Airflow's metadata DB")

    home = os.environ["AIRFLOW_HOME"]
    subprocess.run(
        [str(REPO / ".venv/bin/airflow"), "db", "migrate"],
        env=os.environ,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return home
