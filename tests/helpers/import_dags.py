"""Import every DAG file the way the DAG processor does, with the network, the metadata DB and
every Variable and connection API cut off.

Run as a subprocess by :func:`tests.helpers.parse_dags.parse_dags`, which starts it with a
minimal environment. Before Airflow is imported, name resolution, IPv4/IPv6 sockets and the
SQLite driver are blocked; once Airflow's own start-up is done (it builds its engine object
lazily and connects to nothing), SQLAlchemy engine and session creation, Airflow's session
factories and every Variable / connection / secrets-backend lookup are blocked too. Each
guard is tried once and must raise before a DAG file is read ("armed"); every call a DAG file
makes is recorded ("blocked") even if the DAG code swallows the exception.

Prints one JSON line: the environment it started with, the guards armed, the calls blocked
(and apart, urllib3's import-time IPv6 probe: see :func:`_tolerated`), import errors,
warnings, DAG ids with their task ids, the payout modules loaded, and the time.
"""

from __future__ import annotations

import os

ENV_AT_START = sorted(os.environ)

import json  # noqa: E402  (the environment is recorded before anything can change it)
import socket  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

BLOCKED: list[dict[str, str]] = []
TOLERATED: list[dict[str, str]] = []
ARMED: list[str] = []


class Forbidden(RuntimeError):
    pass


def _where() -> str:
    """The innermost frame of a DAG file or of openpool that made the call, if any."""
    frames = [f for f in traceback.extract_stack() if f.filename != __file__]
    ours = [f for f in frames if "/dags/" in f.filename or "/openpool/" in f.filename]
    f = (ours or frames or [None])[-1]
    return f"{f.filename}:{f.lineno}" if f else "?"


def _tolerated() -> bool:
    """urllib3's import-time IPv6 probe: an AF_INET6 socket bound to ::1, never connected.

    Importing the Amazon provider's sensor imports urllib3, which runs it; the probe is
    refused like any socket (urllib3 catches that and assumes no IPv6) but is not a DAG
    doing I/O, so it is reported apart."""
    return any(
        f.name == "_has_ipv6" and f.filename.endswith("urllib3/util/connection.py")
        for f in traceback.extract_stack()
    )


def _refuse(api: str) -> Callable[..., Any]:
    def refuse(*_a: object, **_k: object) -> Any:
        (TOLERATED if _tolerated() else BLOCKED).append({"api": api, "where": _where()})
        raise Forbidden(f"DAG parsing must not call {api} (network, metadata DB or config)")

    return refuse


def _patch(owner: Any, name: str, api: str, kind: str = "function") -> None:
    refuse = _refuse(api)
    if kind == "classmethod":
        setattr(owner, name, classmethod(lambda _cls, *a, **k: refuse(*a, **k)))
    elif kind == "method":
        setattr(owner, name, lambda _self, *a, **k: refuse(*a, **k))
    else:
        setattr(owner, name, refuse)


# --- before Airflow is imported: DNS, IPv4/IPv6 sockets, the SQLite driver -------------------

INET = (socket.AF_INET, socket.AF_INET6)
_socket_init = socket.socket.__init__
_socket_connect = socket.socket.connect
_socket_connect_ex = socket.socket.connect_ex


def _guarded_init(
    self: socket.socket, family: int = -1, type: int = -1, proto: int = -1, fileno: Any = None
) -> None:
    # a new socket (no fileno) defaults to AF_INET; wrapping an existing fd creates nothing
    if fileno is None and (family in INET or family == -1):
        name = socket.AddressFamily(family).name if family != -1 else "default"
        _refuse(f"socket.socket(family={name})")()
    _socket_init(self, family, type, proto, fileno)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in INET:
        _refuse("socket.socket.connect")()
    _socket_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in INET:
        _refuse("socket.socket.connect_ex")()
    return _socket_connect_ex(self, address)


socket.socket.__init__ = _guarded_init  # type: ignore[method-assign]
socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
for _name in (
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_ex",
    "gethostbyaddr",
    "getnameinfo",
    "create_connection",
):
    _patch(socket, _name, f"socket.{_name}")
_patch(sqlite3, "connect", "sqlite3.connect")


class _RefusingFactory:
    """Stands in for a session factory: calling it raises; ``remove()`` (run at exit) is a no-op."""

    def __init__(self, api: str) -> None:
        self._refuse = _refuse(api)

    def __call__(self, *a: object, **k: object) -> Any:
        return self._refuse()

    def remove(self) -> None:
        pass


def _models() -> tuple[Any, Any]:
    """The ORM ``airflow.models`` Variable and Connection (not the Task SDK's classes that
    ruff's Airflow rules would rewrite a plain import to)."""
    import importlib

    return (
        importlib.import_module("airflow.models.variable").Variable,
        importlib.import_module("airflow.models.connection").Connection,
    )


def _airflow_guards() -> None:
    """Block the metadata DB and every Variable / connection API (Airflow is imported here)."""
    import sqlalchemy
    import sqlalchemy.engine
    import sqlalchemy.engine.create
    import sqlalchemy.ext.asyncio
    import sqlalchemy.orm
    import sqlalchemy.pool
    from airflow import settings

    # SQLAlchemy: engine creation, connections of any engine built before now, sessions
    for owner in (sqlalchemy, sqlalchemy.engine, sqlalchemy.engine.create):
        _patch(owner, "create_engine", "sqlalchemy.create_engine")
    _patch(sqlalchemy.ext.asyncio, "create_async_engine", "sqlalchemy.create_async_engine")
    _patch(sqlalchemy.engine.Engine, "connect", "sqlalchemy Engine.connect", "method")
    _patch(sqlalchemy.engine.Engine, "raw_connection", "sqlalchemy Engine.raw_connection", "method")
    _patch(sqlalchemy.pool.Pool, "connect", "sqlalchemy Pool.connect", "method")
    _patch(sqlalchemy.orm.Session, "__init__", "sqlalchemy Session()", "method")
    _patch(sqlalchemy.ext.asyncio.AsyncSession, "__init__", "sqlalchemy AsyncSession()", "method")
    _patch(sqlalchemy.orm.sessionmaker, "__call__", "sqlalchemy sessionmaker()", "method")

    # Airflow's session factories and the functions that would build new ones
    for name in ("Session", "NonScopedSession", "AsyncSession"):
        setattr(settings, name, _RefusingFactory(f"airflow.settings.{name}"))
    for name in (
        "configure_orm",
        "reconfigure_orm",
        "get_engine",
        "get_session",
        "create_engine",
        "create_metadata_engine",
        "create_async_metadata_engine",
    ):
        _patch(settings, name, f"airflow.settings.{name}")
    settings.engine = None
    settings.async_engine = None

    # Variables and connections, through every door: the Task SDK, the ORM models, hooks,
    # the execution-time context they all reach, and the secrets backends behind them
    from airflow.sdk import BaseHook, Connection, Variable
    from airflow.sdk.execution_time import context

    ModelVariable, ModelConnection = _models()

    for name in ("get", "set", "delete", "keys"):
        _patch(Variable, name, f"airflow.sdk.Variable.{name}", "classmethod")
    for name in ("get", "async_get"):
        _patch(Connection, name, f"airflow.sdk.Connection.{name}", "classmethod")
    for name in ("get_connection", "aget_connection", "get_hook"):
        _patch(BaseHook, name, f"airflow.sdk.BaseHook.{name}", "classmethod")
    for name in ("get", "set", "setdefault", "update", "delete", "get_variable_from_secrets"):
        _patch(ModelVariable, name, f"airflow.models.Variable.{name}")
    _patch(
        ModelConnection,
        "get_connection_from_secrets",
        "airflow.models.Connection.get_connection_from_secrets",
        "classmethod",
    )
    for name in dir(context):
        if name.lstrip("_").startswith(
            ("get_connection", "async_get_connection", "get_variable", "set_variable")
        ) or name in ("_delete_variable",):
            _patch(context, name, f"airflow.sdk.execution_time.context.{name}")

    from airflow.sdk.execution_time.secrets.execution_api import ExecutionAPISecretsBackend
    from airflow.secrets.base_secrets import BaseSecretsBackend
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend
    from airflow.secrets.local_filesystem import LocalFilesystemBackend
    from airflow.secrets.metastore import MetastoreBackend

    backends = (
        BaseSecretsBackend,
        *BaseSecretsBackend.__mro__[1:-1],
        EnvironmentVariablesBackend,
        LocalFilesystemBackend,
        MetastoreBackend,
        ExecutionAPISecretsBackend,
    )
    for cls in backends:
        for name in ("get_conn_value", "get_connection", "get_variable", "get_config"):
            if name in vars(cls):
                _patch(cls, name, f"{cls.__name__}.{name}", "method")


def _arm() -> None:
    """Try each guard once: each must raise, or the parse below proves nothing."""
    from airflow import settings
    from airflow.sdk import BaseHook, Connection, Variable
    from airflow.utils.session import create_session

    ModelVariable, ModelConnection = _models()

    def session() -> None:
        with create_session():
            pass

    probes: dict[str, Callable[[], object]] = {
        "dns": lambda: socket.getaddrinfo("localhost", 80),
        "gethostbyname": lambda: socket.gethostbyname("localhost"),
        "inet socket": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        "inet6 socket": lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM),
        "create_connection": lambda: socket.create_connection(("127.0.0.1", 9)),
        "sqlite3": lambda: sqlite3.connect(":memory:"),
        "sqlalchemy engine": lambda: __import__("sqlalchemy").create_engine("sqlite://"),
        "sqlalchemy session": lambda: __import__("sqlalchemy.orm").orm.Session(),
        "airflow session": session,
        "airflow settings.Session": lambda: settings.Session(),  # type: ignore[misc]
        "airflow configure_orm": lambda: settings.configure_orm(),
        "sdk Variable.get": lambda: Variable.get("x", default="fallback"),
        "models Variable.get": lambda: ModelVariable.get("x", default_var="fallback"),
        "sdk Connection.get": lambda: Connection.get("aws_default"),
        "BaseHook.get_connection": lambda: BaseHook.get_connection("aws_default"),
        "models Connection.get_connection_from_secrets": lambda: (
            ModelConnection.get_connection_from_secrets("aws_default")
        ),
        "env secrets backend": lambda: (
            __import__("airflow.secrets.environment_variables", fromlist=["x"])
            .EnvironmentVariablesBackend()
            .get_variable("x")
        ),
    }
    for name, probe in probes.items():
        try:
            probe()
        except Forbidden:
            ARMED.append(name)
    BLOCKED.clear()


def main() -> None:
    started = time.perf_counter()
    _airflow_guards()
    _arm()
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=sys.argv[1])
        for dag in bag.dags.values():  # what the DAG processor sends on to the scheduler
            try:
                DagSerialization.to_dict(dag)
            except Exception:
                bag.import_errors[f"serialize {dag.dag_id}"] = traceback.format_exc()
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "env": ENV_AT_START,
                "armed": ARMED,
                "blocked": BLOCKED,
                "tolerated": TOLERATED,
                "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
                "warnings": [
                    f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
                    for w in caught
                    if "openpool" in w.filename or "/dags/" in w.filename
                ],
                "dags": {d: sorted(bag.dags[d].task_ids) for d in sorted(bag.dags)},
                "payout_modules": sorted(m for m in sys.modules if "payout" in m),
                "seconds": round(elapsed, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
