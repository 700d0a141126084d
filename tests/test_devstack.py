"""``make up`` / ``make down`` for real: Airflow 3, a moto S3 server and anvil as processes.

``python -m openpool.devstack up`` (what ``make up`` runs) starts the stack on free loopback
ports; the test logs in with the credentials it printed, lists the DAGs over the REST API,
checks S3, the chain and that nothing listens beyond 127.0.0.1; then ``down`` must leave
no process of the stack behind, and a second ``down`` must do nothing.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from openpool.devstack import procs
from openpool.devstack.stack import BUCKETS, expected_dags, ingest_dag_ids
from openpool.partitions import ACTIVE_PARTITIONS
from tests.helpers.devstack_cli import run_devstack

# The stack runs in child processes, where conftest cannot see what it starts.
pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.s3, pytest.mark.chain]


def _devstack(directory: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_devstack(directory, *args, timeout=timeout)


def _http(url: str, body: Any = None, token: str | None = None, method: str = "GET") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket held by ``pids`` (from /proc)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = cols[1].split(":")
            raw = bytes.fromhex(addr_hex)
            if width == 8:
                addr = ".".join(str(b) for b in reversed(raw))
            else:
                words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
                addr = ":".join(b.hex() for b in words)
            found.add((addr, int(port_hex, 16)))
    return found


def test_up_serves_the_dags_on_loopback_and_down_stops_everything(tmp_path: Path) -> None:
    run_dir = tmp_path / "up"
    services: list[procs.Service] = []
    names: set[str] = set()
    try:
        up = _devstack(
            run_dir,
            "up",
            "--airflow-port",
            "0",
            "--s3-port",
            "0",
            "--rpc-port",
            "0",
            "--hours",
            "1",
        )
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        out = up.stdout
        airflow_url = re.search(r"Airflow UI \+ API\s+(http://127\.0\.0\.1:\d+)", out).group(1)
        user, password = re.search(r"user: (\S+)\s+password: (\S+)", out).groups()
        s3_url = re.search(r"S3 \(moto server\)\s+(http://127\.0\.0\.1:\d+)", out).group(1)
        rpc_url = re.search(r"anvil \(42161\)\s+(http://127\.0\.0\.1:\d+)", out).group(1)
        wallet = re.search(r"hot wallet (0x[0-9a-fA-F]{40})", out).group(1)
        assert re.search(rf"Stop:\s+python -m openpool.devstack --dir \S*{run_dir.name} down", out)

        # the api-server answers; the printed credentials log in; the DAGs of dags/ are listed
        assert _http(f"{airflow_url}/api/v2/version")["version"].startswith("3.3.")
        token = _http(
            f"{airflow_url}/auth/token", {"username": user, "password": password}, method="POST"
        )["access_token"]
        dags = _http(f"{airflow_url}/api/v2/dags?limit=100", token=token)["dags"]
        assert {d["dag_id"] for d in dags} == expected_dags()
        assert len(ingest_dag_ids()) == len(ACTIVE_PARTITIONS)
        paused = {d["dag_id"]: d["is_paused"] for d in dags}
        assert paused["openpool_payouts"] is True  # paying waits for a person
        running = [*ingest_dag_ids(), "openpool_summary", "openpool_alerts"]
        assert not any(paused[d] for d in running)

        # the password is stored for its owner only, as are the hot wallet's files
        for path in (
            "airflow/passwords.json",
            "wallet/hot-wallet.json",
            "wallet/hot-wallet.password",
        ):
            assert stat.S_IMODE((run_dir / path).stat().st_mode) == 0o600, path
        assert json.loads((run_dir / "airflow/passwords.json").read_text()) == {user: password}
        assert (run_dir / "airflow/airflow.db").exists()

        # S3 holds the buckets and the generated events; anvil is chain 42161, wallet funded
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name="us-east-1",
        )
        assert {b["Name"] for b in s3.list_buckets()["Buckets"]} >= set(BUCKETS)
        assert s3.list_objects_v2(Bucket=BUCKETS[0])["KeyCount"] > 0
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        assert int(_http(rpc_url, rpc, method="POST")["result"], 16) == 42161
        rpc |= {"method": "eth_getBalance", "params": [wallet, "latest"]}
        assert int(_http(rpc_url, rpc, method="POST")["result"], 16) == 100 * 10**18

        # every service runs, and nothing of the stack listens beyond loopback
        services = procs.services(run_dir)
        names = {s.name for s in services}
        assert names == {
            "s3",
            "anvil",
            "airflow-api-server",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
        }
        assert all(procs.is_running(s.pid, s.started) for s in services)
        stack_pids = set(procs.members(run_dir.resolve()))
        assert {s.pid for s in services} <= stack_pids
        listening = _listening(stack_pids)
        ports = {int(u.rsplit(":", 1)[1]) for u in (airflow_url, s3_url, rpc_url)}
        assert ports <= {port for _, port in listening}
        assert {addr for addr, _ in listening} == {"127.0.0.1"}, listening
    finally:
        down = _devstack(run_dir, "down", timeout=180)
    assert down.returncode == 0, down.stderr[-3000:]
    assert all(not procs.is_running(s.pid, s.started) for s in services)
    assert procs.members(run_dir.resolve()) == []  # no worker, task or child left behind
    assert list((run_dir / "pids").glob("*.pid")) == []
    for name in names:
        assert name in down.stdout
    # issue 16: S3 and the chain were in memory; the Airflow DB must not outlive them
    assert not (run_dir / "airflow/airflow.db").exists() and "airflow metadata DB" in down.stdout
    again = _devstack(run_dir, "down", timeout=60)
    assert again.returncode == 0 and "nothing to stop" in again.stdout
