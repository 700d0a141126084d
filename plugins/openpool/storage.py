"""Object storage behind one small interface, with a local-disk and an S3 implementation.

Everything above this module (snapshots, ingest, analytics, payouts) talks to an
:class:`ObjectStore` rooted at a URI (``file:///abs/dir`` or ``s3://bucket/prefix``), so
the same code and the same contract tests run on both. The one primitive the snapshot
protocol needs beyond get/put/list is :meth:`ObjectStore.put_if_absent`: an exclusive
create that either publishes the whole object or nothing, and refuses a taken key.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openpool.errors import ObjectExists, ObjectNotFound, StorageError


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing says about one object."""

    key: str
    size: int
    etag: str
    last_modified: datetime


class ObjectStore(ABC):
    """A flat key space of immutable-by-convention byte objects under one root URI."""

    uri: str

    def url(self, key: str) -> str:
        """Full URI of ``key``, for messages and for readers outside this process."""
        return f"{self.uri}/{key}"

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Whole object; :class:`ObjectNotFound` if absent."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Create or replace ``key`` atomically (readers see old or new, never partial)."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> None:
        """Create ``key`` only if no object has it; :class:`ObjectExists` otherwise."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Metadata of ``key`` or ``None``."""

    @abstractmethod
    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order, after ``start_after``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""

    def exists(self, key: str) -> bool:
        return self.head(key) is not None


class LocalStore(ObjectStore):
    """Objects as files under a directory; exclusive create via ``link(2)``.

    ``put_if_absent`` writes a temporary file in the target directory, fsyncs it, then
    hard-links it to the final name: ``link`` fails with EEXIST if the name is taken and
    is atomic, so a reader sees the whole object or none, and a crash leaves at most a
    temporary file (ignored by listings).
    """

    _TMP_PREFIX = ".tmp-"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.uri = "file://" + str(self.root)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid key {key!r}")
        return self.root / key

    def _write_temp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=self._TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return Path(tmp)

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(self.url(key)) from None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        os.replace(tmp, path)
        self._fsync_dir(path.parent)

    def put_if_absent(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ObjectExists(self.url(key)) from None
        finally:
            os.unlink(tmp)
        self._fsync_dir(path.parent)

    def _info(self, key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
        )

    def head(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._info(key, st)

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        # Walk only the directory that can hold the prefix, then filter and sort by key.
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self.root / base_dir if base_dir else self.root
        if not top.is_dir():
            return
        found: list[tuple[str, Path]] = []
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                if name.startswith(self._TMP_PREFIX):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix) and (start_after is None or key > start_after):
                    found.append((key, full))
        for key, full in sorted(found):
            try:
                st = full.stat()
            except FileNotFoundError:
                continue
            yield self._info(key, st)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()


# Errors after which botocore's own retries gave up but a fresh attempt may succeed
# (a body cut short, a reset mid-stream). Conditional-write outcomes are not retried here.
_S3_RETRYABLE_CODES = {"ConditionalRequestConflict", "SlowDown", "InternalError", "503", "500"}


class S3Store(ObjectStore):
    """Objects in an S3 bucket under a prefix; works with AWS, MinIO and the moto server.

    The endpoint comes from the standard ``AWS_ENDPOINT_URL`` (read by botocore itself).
    Exclusive create is a conditional PUT with ``If-None-Match: *``.
    """

    _local = threading.local()

    def __init__(self, uri: str, client: Any | None = None) -> None:
        rest = uri[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StorageError(f"invalid S3 URI {uri!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is not None:
            return self._client
        # boto3 clients are thread-safe, but sessions are not: one client per thread.
        client = getattr(self._local, "client", None)
        if client is None:
            client = make_s3_client()
            self._local.client = client
        return client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        def attempt() -> bytes:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                    raise ObjectNotFound(self.url(key)) from None
                raise
            body = resp["Body"].read()
            expected = resp.get("ContentLength")
            if expected is not None and len(body) != expected:
                raise _TruncatedBody(f"{self.url(key)}: got {len(body)} of {expected} bytes")
            return body

        return _retrying(attempt, self.url(key))

    def put(self, key: str, data: bytes) -> None:
        _retrying(
            lambda: self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data),
            self.url(key),
        )

    def put_if_absent(self, key: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        def attempt() -> None:
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
                )
            except ClientError as exc:
                if _code(exc) in ("PreconditionFailed", "412"):
                    raise ObjectExists(self.url(key)) from None
                raise

        _retrying(attempt, self.url(key))

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        def attempt() -> ObjectInfo | None:
            try:
                resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            except ClientError as exc:
                if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                    return None
                raise
            return ObjectInfo(
                key=key,
                size=int(resp["ContentLength"]),
                etag=resp["ETag"].strip('"'),
                last_modified=resp["LastModified"],
            )

        return _retrying(attempt, self.url(key))

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
        if start_after is not None:
            kwargs["StartAfter"] = self._key(start_after)
        token: str | None = None
        while True:
            if token:
                kwargs["ContinuationToken"] = token
            page = _retrying(lambda: self.client.list_objects_v2(**kwargs), self.url(prefix))
            for obj in page.get("Contents", []):
                yield ObjectInfo(
                    key=self._strip(obj["Key"]),
                    size=int(obj["Size"]),
                    etag=obj["ETag"].strip('"'),
                    last_modified=obj["LastModified"],
                )
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def delete(self, key: str) -> None:
        _retrying(
            lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key)),
            self.url(key),
        )


class _TruncatedBody(Exception):
    """A GET returned fewer bytes than its Content-Length."""


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _retrying(fn: Any, what: str) -> Any:
    """Run ``fn`` with tenacity on faults botocore's own retry mode does not cover."""
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        IncompleteReadError,
        ResponseStreamingError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )
    from tenacity import (
        RetryError,
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential_jitter,
    )
    from urllib3.exceptions import HTTPError as Urllib3Error

    def transient(exc: BaseException) -> bool:
        if isinstance(exc, ClientError):
            return _code(exc) in _S3_RETRYABLE_CODES
        # urllib3's own errors escape botocore when a connection breaks while it reads a
        # non-streamed body (an XML answer, an error document): as transient as the rest.
        return isinstance(
            exc,
            _TruncatedBody
            | IncompleteReadError
            | ResponseStreamingError
            | BotoConnectionError
            | HTTPClientError
            | Urllib3Error,
        )

    try:
        for attempt in Retrying(
            retry=retry_if_exception(transient),
            stop=stop_after_attempt(6),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
            reraise=False,
        ):
            with attempt:
                return fn()
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise StorageError(
            f"{what}: gave up after retries: {type(last).__name__}: {last}"
        ) from None
    except ClientError as exc:  # not retryable (NoSuchBucket, AccessDenied, ...): say so
        raise StorageError(f"{what}: {_code(exc)}: {exc}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def make_s3_client() -> Any:
    """A boto3 S3 client honouring ``AWS_ENDPOINT_URL``, with bounded adaptive retries."""
    import boto3
    from botocore.config import Config

    cfg = Config(
        retries={"max_attempts": 8, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client("s3", config=cfg)


def open_store(uri: str) -> ObjectStore:
    """The store for a ``file://`` or ``s3://`` URI."""
    if uri.startswith("s3://"):
        return S3Store(uri)
    if uri.startswith("file://"):
        return LocalStore(uri[len("file://") :])
    raise StorageError(f"unsupported URI {uri!r} (use file:// or s3://)")


def unique_suffix() -> str:
    """A short random token for data-file names, so names never collide."""
    return uuid.uuid4().hex[:16]
