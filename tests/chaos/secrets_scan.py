"""Part 6a: no secret anywhere, and no pickle ever loaded.

Scans everything the campaign produced for every hot wallet private key (hex in any case,
raw bytes, base64) and keystore password it generated: every child's stdout and stderr
(all log lines at INFO, tracebacks included), the service logs, every object of every
local store (manifests, plans, approvals, exports, staging), every Parquet file decoded
row by row (compression would hide a plain byte search), moto's request recordings (every
object written to S3, Parquet bodies decoded too), the XCom values the DAG task path
returned, and the text of every exception the campaign caught. Only the password files
themselves are skipped. Both detectors are first shown to fire on a planted secret and a
planted pickle, so a zero is a real zero.
"""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

from tests.chaos.common import Campaign, Result, Secrets
from tests.helpers.leaks import parquet_blobs

PARTIAL = {"count": 0}  # Parquet files cut short by a kill mid-write (LocalStore temp files)


def _scan_bytes(secrets: Secrets, data: bytes, where: str, found: list[str]) -> int:
    """Scan raw bytes, and decoded Parquet if it is Parquet; returns Parquet files decoded.

    A file a SIGKILL cut short while it was written (a ``.tmp-`` file the store ignores)
    has no footer to decode: its raw bytes are scanned and it is counted apart.
    """
    for what in secrets.hits(data):
        found.append(f"{what} in {where}")
    if data[:4] != b"PAR1":
        return 0
    try:
        blobs = parquet_blobs(data)
    except (OSError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        PARTIAL["count"] += 1
        return 0
    for blob in blobs:
        for what in secrets.hits(blob):
            found.append(f"{what} in {where} (decoded Parquet)")
    return 1


def _scan_recording(secrets: Secrets, path: Path, found: list[str]) -> tuple[int, int]:
    requests = parquet = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        requests += 1
        body = entry.get("body") or ""
        raw = base64.b64decode(body) if entry.get("body_encoded") else str(body).encode()
        parquet += _scan_bytes(secrets, raw, f"{path.name} request {requests}", found)
        for what in secrets.hits(json.dumps(entry.get("headers", {})).encode()):
            found.append(f"{what} in {path.name} headers")
    return requests, parquet


def self_test(c: Campaign) -> list[str]:
    """The detectors fire on a planted key, password and pickle (else the zeros mean nothing)."""
    problems = []
    planted = Secrets()
    key = bytes(range(32))
    planted.add_key(key)
    planted.add_password("planted-password-3f9a")
    samples = [key.hex().upper().encode(), b"x" + base64.b64encode(key), b"planted-password-3f9a"]
    if not all(planted.hits(s) for s in samples):
        problems.append("the secret detector missed a planted secret")
    audit = c.work / "pickle-selftest.log"
    env = c.env({"CHAOS_AUDIT_FILE": str(audit)})
    blob = pickle.dumps(Fraction(1, 3))
    code = f"import pickle; pickle.loads({blob!r})"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    if not audit.exists() or "'Fraction'" not in audit.read_text():
        problems.append("the pickle audit hook missed a planted pickle")
    return problems


def run(c: Campaign) -> list[Result]:
    res = Result("secrets & pickle scan")
    started = time.monotonic()
    found: list[str] = []
    problems = self_test(c)
    for p in problems:
        res.violate(p)
    files = parquet = size = 0
    for path in sorted(c.work.rglob("*")):
        if not path.is_file() or path.name == "password" or path.name.startswith("pickle-"):
            continue
        data = path.read_bytes()
        files += 1
        size += len(data)
        if path.suffix == ".jsonl" and "recording" in path.name:
            n_req, n_pq = _scan_recording(c.secrets, path, found)
            res.add(**{"moto requests scanned (bodies decoded)": n_req})
            parquet += n_pq
        parquet += _scan_bytes(c.secrets, data, str(path.relative_to(c.work)), found)
    for what in c.secrets.hits(json.dumps(c.xcom, default=str).encode()):
        found.append(f"{what} in an XCom value")
    for what in c.secrets.hits("\n".join(c.exceptions).encode()):
        found.append(f"{what} in a caught exception")
    for f in found[:20]:
        res.violate(f)
    pickles = c.pickle_events()
    for line in pickles[:10]:
        res.violate(f"pickle loaded: {line[:300]}")
    res.trials = files
    res.faults = c.secrets.generated  # keys and passwords made, then hunted for
    res.notes.update(
        {
            "keys and passwords generated": c.secrets.generated,
            "forms searched (key: hex any case, raw, base64)": c.secrets.count,
            "files scanned": files,
            "bytes scanned": size,
            "Parquet files decoded and scanned": parquet,
            "partial Parquet files left by kills mid-write (scanned raw)": PARTIAL["count"],
            "XCom values scanned": len(c.xcom),
            "exceptions scanned": len(c.exceptions),
            "secret hits": len(found),
            "pickle.find_class events (all processes)": len(pickles),
            "detector self-test": "ok" if not problems else problems,
        }
    )
    res.seconds = time.monotonic() - started
    return [res]
