"""Every specific failure the library raises, in one place.

Callers (CLI, DAG tasks) branch on these types; messages name the object involved so an
operator can act on them without a stack trace. ``terminal`` marks the errors no retry can
cure (damaged state, bad configuration, a refused plan): a DAG task fails on them at once,
unretried (``openpool.airflow.failures``), instead of repeating them.
"""

from __future__ import annotations

from typing import ClassVar


class OpenPoolError(Exception):
    """Base class of every error this package raises on purpose."""

    terminal: ClassVar[bool] = False  # True: a retry cannot cure it


def is_terminal(exc: BaseException) -> bool:
    """Whether ``exc`` is one no retry can cure (see the module docstring)."""
    return isinstance(exc, OpenPoolError) and exc.terminal


class ConfigError(OpenPoolError):
    """A configuration value is missing or invalid; the message names the variable."""

    terminal = True


class StorageError(OpenPoolError):
    """The object store failed in a way retries did not cure."""


class ObjectNotFound(StorageError):
    """A key that must exist does not."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"object not found: {uri}")
        self.uri = uri


class ObjectExists(StorageError):
    """An exclusive create found the key already taken."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"object already exists: {uri}")
        self.uri = uri


class CorruptObject(OpenPoolError):
    """A manifest or data file exists but cannot be read as what it claims to be.

    This is never treated as empty state: it stops the run and names the object.
    """

    terminal = True

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"corrupt object {uri}: {reason}")
        self.uri = uri
        self.reason = reason


class CorruptManifest(CorruptObject):
    """A snapshot manifest failed to parse or validate."""


class CorruptDataFile(CorruptObject):
    """A Parquet data file failed to parse, or its size/hash differ from the manifest."""


class MissingDataFile(OpenPoolError):
    """A manifest names a data file that is gone (e.g. an expired version after gc)."""

    terminal = True

    def __init__(self, uri: str, version: int) -> None:
        super().__init__(
            f"snapshot version {version} references {uri}, which does not exist "
            "(was this version expired by gc?)"
        )
        self.uri = uri
        self.version = version


class SnapshotNotFound(OpenPoolError):
    """The requested snapshot version does not exist."""


class CommitConflict(OpenPoolError):
    """Another writer committed first: the caller's base is stale.

    Carries both versions so the caller can rebase onto ``current_version`` and retry.
    """

    def __init__(self, partition: str, attempted_version: int, current_version: int) -> None:
        super().__init__(
            f"commit conflict on {partition}: tried to create version {attempted_version} "
            f"but version {current_version} already exists; rebase and retry"
        )
        self.partition = partition
        self.attempted_version = attempted_version
        self.current_version = current_version


class CommitRetriesExhausted(OpenPoolError):
    """A rebase-and-retry loop lost the race every time it was allowed to try."""


class CorruptState(OpenPoolError):
    """A snapshot chain is damaged: a committed manifest is gone (a hint names a missing
    version, or the chain has a gap).

    Never read as the previous version: for the payout ledger that would be a silent
    rollback, and the next commit would reuse a committed version number. ``uris`` names
    the objects involved so an operator can restore them (e.g. from bucket versioning).
    """

    terminal = True

    def __init__(self, reason: str, uris: list[str]) -> None:
        super().__init__(f"corrupt snapshot chain: {reason}: {', '.join(uris)}")
        self.reason = reason
        self.uris = uris


class ResolveRefused(OpenPoolError):
    """A repeated event ID that cannot be set aside safely on this state (say why)."""


class FastPathUnavailable(OpenPoolError):
    """The reader was told to take only its fast path, and the file's typed decode failed.

    Only a caller forcing ``path="fast"`` (tests, benchmarks) sees it: ``read_file`` takes
    the slow path for such a file, which is the only one that can judge it.
    """

    def __init__(self, source_key: str, reason: str) -> None:
        super().__init__(
            f"{source_key}: the reader's fast path cannot read this file ({reason}); "
            'read it with path="auto" or path="slow"'
        )
        self.source_key = source_key
        self.reason = reason


class ParseWorkerLost(OpenPoolError):
    """A process reading a backfill's batches died; nothing it read was committed."""

    def __init__(self, partition: str, workers: int) -> None:
        super().__init__(
            f"{partition}: a parse worker process (of {workers}) died; the batches already "
            "committed stand, rerun to ingest the rest (or use --workers 1)"
        )


class MissingStep(StorageError):
    """A step's staged output is absent: the step before it has not completed."""


class PlanRefused(OpenPoolError):
    """A plan that may not be executed (tampered, unknown, or not approved)."""

    terminal = True


class InvalidPlan(PlanRefused):
    """The plan's structure is wrong; nothing was signed."""


class LedgerBehindChain(PlanRefused):
    """The chain shows nonces of the hot wallet that the ledger has no record of."""


class PayoutRefused(OpenPoolError):
    """Nothing was sent: the run failed a check before the first broadcast (gas above the
    cap, a short wallet: conditions a later retry may find changed, so not terminal)."""


class SendRefused(OpenPoolError):
    """The node would not take a transaction; ``reason`` is its answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the node refused the transaction: {reason}")
        self.reason = reason


class RecordConflict(OpenPoolError):
    """A new record for a payment the committed ledger already has (a racing executor)."""


class MissingBinary(OpenPoolError):
    """A server binary the local Celery stack needs (PostgreSQL, Redis) is not installed."""


class AirflowAPIError(OpenPoolError):
    """Airflow's REST API answered a devstack or demo call with an error."""


class AlertNotDelivered(OpenPoolError):
    """A channel refused an alert: it stays unrecorded and is sent again (retryable)."""


class CacheMiss(Exception):  # a signal inside analytics, never shown to anyone
    """A share listed as stored could not be used; the pass must run without shares."""


class AthenaUpgradeRefused(OpenPoolError):
    """``athena-ddl --upgrade`` cannot reach the new tables with ALTER statements (a column
    changed type or vanished, the partition keys changed, the DDL given is not ours); the
    message names the table and what to do instead. Raised only on the CLI."""


class StatementRefused(OpenPoolError):
    """``openpool statement`` cannot produce a statement: a bad address, a worker nothing is
    known of, a bad period, or earnings that do not reconcile with the balances. Raised
    only on the CLI, where it is the exit reason."""
