"""Run the campaign, print the table of figures and write ``reports/chaos.json``.

Usage: python -m tests.chaos [--size full|quick] [--out PATH] [--work DIR] [--seed N]
Exit status 0 only with zero invariant violations and faults injected in every part.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.chaos import (
    badinput,
    concurrency,
    crash_ingest,
    crash_payouts,
    payout_faults,
    secrets_scan,
    store_faults,
    trust,
)
from tests.chaos.common import FULL, PYTHON, QUICK, Campaign, Result, install_parent_audit

COLUMNS = (
    ("part", "part"),
    ("trials", "trials"),
    ("faults_injected", "faults injected"),
    ("invariant_violations", "invariant violations"),
    ("data_lost", "data lost"),
    ("duplicates", "duplicates"),
    ("wall_seconds", "wall time (s)"),
)


def _guard(c: Campaign, name: str, part: Callable[[Campaign], list[Result]]) -> list[Result]:
    """A part that crashes is a violation in the table, not a missing row."""
    started = time.monotonic()
    try:
        return part(c)
    except Exception as exc:
        logging.getLogger("chaos").exception("part %s failed", name)
        c.note_exception(exc)
        res = Result(name, seconds=time.monotonic() - started)
        res.violate(f"the part itself failed: {type(exc).__name__}: {exc}")
        return [res]


def _fuzz_in_background(c: Campaign) -> tuple[threading.Thread, list[Result]]:
    """The fuzzer runs in its own process while the I/O-bound parts wait on anvil/moto."""
    out: list[Result] = []

    def go() -> None:
        res = Result("fuzz: reader (hypothesis)")
        child = c.run(
            [PYTHON, "-m", "tests.chaos.fuzz", str(c.sizes.fuzz_examples)],
            c.env(),
            timeout=3600,
            label="fuzz",
        )
        res.seconds = child.seconds
        try:
            if not child.ok:  # its figures do not count if it did not exit 0
                raise ValueError(child.returncode)
            stats = json.loads(child.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res.violate(f"the fuzzer crashed rc={child.returncode}: {child.stderr[-500:]}")
            out.append(res)
            return
        res.trials = res.faults = stats["inputs"]  # every input is a fuzzed, hostile file
        for f in stats["failures"]:
            res.violate(f)
        res.notes.update(
            {
                "inputs": stats["inputs"],
                "files quarantined": stats["quarantined"],
                "share quarantined at JSON parse": stats["quarantined_share"],
                "share reaching event validation": stats["reached_share"],
                "elements accepted": stats["elements_accepted"],
                "elements rejected": stats["elements_rejected"],
                "property failures": stats["failure_count"],
            }
        )
        out.append(res)

    t = threading.Thread(target=go)
    t.start()
    return t, out


def _side_by_side(c: Campaign, *parts: tuple[str, Callable[[Campaign], list[Result]]]) -> list:
    """Run parts in threads at once (they mostly wait on anvil, moto and backoffs)."""
    out: list[list[Result]] = [[] for _ in parts]

    def go(i: int, name: str, part: Callable[[Campaign], list[Result]]) -> None:
        out[i] = _guard(c, name, part)

    threads = [threading.Thread(target=go, args=(i, *p)) for i, p in enumerate(parts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def campaign(c: Campaign) -> list[Result]:
    """Every part, in table order. The ingest crash trials run alone (they are CPU-bound);
    the other parts run side by side, the fuzzer in its own process alongside."""
    crash = _guard(c, "crash: ingest", crash_ingest.run)
    fuzz_thread, fuzz = _fuzz_in_background(c)
    payouts, faults, corpus = _side_by_side(
        c,
        ("crash: payouts", crash_payouts.run),
        ("S3 faults", store_faults.run),
        ("bad input corpus", badinput.run),
    )
    races, refused, judged = _side_by_side(
        c,
        ("concurrency", concurrency.run),
        ("trust", trust.run),
        (payout_faults.PART, payout_faults.run),
    )
    fuzz_thread.join()
    scan = _guard(c, "secrets & pickle scan", secrets_scan.run)
    return crash + payouts + judged + faults + corpus + fuzz + races + refused + scan


def table(rows: list[dict[str, Any]], total_seconds: float) -> str:
    from tabulate import tabulate

    body = [[r[k] for k, _ in COLUMNS] for r in rows]
    body.append(
        [
            "TOTAL",
            sum(r["trials"] for r in rows),
            sum(r["faults_injected"] for r in rows),
            sum(r["invariant_violations"] for r in rows),
            sum(r["data_lost"] for r in rows),
            sum(r["duplicates"] for r in rows),
            round(total_seconds, 1),
        ]
    )
    return tabulate(body, headers=[h for _, h in COLUMNS], tablefmt="github", intfmt=",")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=("full", "quick"), default="full")
    p.add_argument("--out", default="reports/chaos.json")
    p.add_argument("--work", default=None, help="work directory (default: a fresh temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    sizes = FULL if args.size == "full" else QUICK
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="openpool-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    c = Campaign(work, sizes, seed=args.seed)
    install_parent_audit(c.audit_file)
    (work / "logs").mkdir(exist_ok=True)
    logging.basicConfig(
        level=logging.DEBUG,  # every record of the in-process library calls, for the scan
        filename=work / "logs" / "campaign.log",
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for chatty in ("botocore", "boto3", "s3transfer", "urllib3"):  # request plumbing only
        logging.getLogger(chatty).setLevel(logging.INFO)
    started = time.monotonic()
    results = campaign(c)
    total = time.monotonic() - started
    rows = [r.as_dict() for r in results]
    problems = [r["part"] for r in rows if r["faults_injected"] <= 0]
    report = {
        "size": sizes.name,
        "finished_at": datetime.now(UTC).isoformat(),
        "wall_seconds": round(total, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sizes": sizes.__dict__,
        "parts": rows,
        "totals": {
            "trials": sum(r["trials"] for r in rows),
            "faults_injected": sum(r["faults_injected"] for r in rows),
            "invariant_violations": sum(r["invariant_violations"] for r in rows),
            "data_lost": sum(r["data_lost"] for r in rows),
            "duplicates": sum(r["duplicates"] for r in rows),
        },
        "parts_without_faults": problems,
        "work_dir": str(work) if args.keep else None,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(
        f"chaos campaign ({sizes.name}), {total / 60:.1f} min on {os.cpu_count()} CPUs "
        "(rows after the ingest crash rows ran side by side: their wall times overlap)"
    )
    print(table(rows, total))
    for r in rows:
        for v in r["violations"]:
            print(f"VIOLATION [{r['part']}]: {v}")
    print(f"written: {out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    ok = report["totals"]["invariant_violations"] == 0 and not problems
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
