"""Searching for a secret in every form a leak could take, Parquet decoded.

A private key can leak as hex in any letter case (with or without ``0x``), as its raw 32
bytes or as base64; a password as its text. A Parquet file is compressed, so a plain byte
search of it finds nothing even when a column holds the key: every text column is decoded
and searched as well. Shared by the key-leak tests and the chaos campaign's scan.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


class Secrets:
    """Every secret made, in the forms a leak could take."""

    def __init__(self) -> None:
        self._items: list[tuple[str, bytes, bool]] = []  # (what, needle, case-insensitive)
        self._lock = threading.Lock()
        self.generated = 0  # keys and passwords made

    def add_key(self, key: bytes) -> None:
        forms = [(key.hex().encode(), True), (key, False), (base64.b64encode(key), False)]
        with self._lock:
            self._items += [("private key", f, fold) for f, fold in forms]
            self.generated += 1

    def add_password(self, password: str) -> None:
        with self._lock:
            self._items.append(("keystore password", password.encode(), False))
            self.generated += 1

    @property
    def count(self) -> int:
        return len(self._items)

    def hits(self, data: bytes) -> list[str]:
        """Which secrets ``data`` contains (hex keys in any letter case)."""
        low = data.lower()
        return [what for what, form, fold in self._items if form in (low if fold else data)]


def parquet_blobs(data: bytes) -> list[bytes]:
    """The text a Parquet file holds, decoded: each string/binary column's value bytes.

    Numeric, decimal and time columns cannot hold a 64-digit hex key or a password, so
    only text-like columns are read out (their Arrow data buffers, all values back to
    back); anything nested is rendered as JSON.
    """
    blobs = []
    table = pq.ParquetFile(io.BytesIO(data)).read()
    for column in table.columns:
        t = column.type
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
            for chunk in column.chunks:
                buf = chunk.buffers()[2]
                if buf is not None:
                    blobs.append(buf.to_pybytes())
        elif pa.types.is_nested(t) or pa.types.is_dictionary(t):
            blobs.append(json.dumps(column.to_pylist(), default=str).encode())
    return blobs


def leaks(secrets: Secrets, data: bytes, where: str) -> list[str]:
    """Every secret in ``data``, raw and (for a Parquet file) decoded; "what in where"."""
    found = [f"{what} in {where}" for what in secrets.hits(data)]
    if data[:4] == b"PAR1":
        try:
            blobs = parquet_blobs(data)
        except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
            return [*found, f"{where}: Parquet that cannot be decoded"]  # unsearched != clean
        for blob in blobs:
            found += [f"{what} in {where} (decoded Parquet)" for what in secrets.hits(blob)]
    return found


def leaks_in_files(secrets: Secrets, roots: Iterable[Path]) -> tuple[list[str], int, int]:
    """Every secret in every file under ``roots``: (hits, files scanned, Parquet decoded)."""
    found: list[str] = []
    files = parquet = 0
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            files += 1
            parquet += data[:4] == b"PAR1"
            found += leaks(secrets, data, str(path))
    return found, files, parquet
