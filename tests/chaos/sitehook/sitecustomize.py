"""Loaded by every child process of the chaos campaign (PYTHONPATH points here).

Two hooks, each off unless its environment variable is set:

* ``CHAOS_AUDIT_FILE``: a ``sys.addaudithook`` hook appends one line per
  ``pickle.find_class`` event (any unpickling of a class or function, i.e. what makes a
  pickle dangerous) to that file, so the campaign can prove no pickle was ever loaded.
* ``CHAOS_KILL_AT``: ``write:N`` SIGKILLs this process just before its N-th object store
  write (put, put_if_absent, delete: so inside a commit, between data files and the
  manifest, or between the manifest and the hint); ``send:N`` just before the N-th raw
  transaction broadcast; ``sent:N`` just after it returns (broadcast, not yet recorded).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback


def _audit(path: str) -> None:
    def hook(event: str, args: tuple) -> None:
        if event == "pickle.find_class":
            where = "".join(traceback.format_stack(limit=6)[:-1]).replace("\n", " | ")
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {sys.argv[:3]} {args!r} {where}\n")

    sys.addaudithook(hook)


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_at(spec: str) -> None:
    kind, _, n = spec.partition(":")
    target = int(n)
    count = [0]

    def tick() -> None:
        count[0] += 1
        if count[0] == target:
            _die()

    if kind == "write":
        from openpool.storage import LocalStore, S3Store

        for cls in (LocalStore, S3Store):
            for name in ("put", "put_if_absent", "delete"):
                real = getattr(cls, name)

                def wrapped(self, *a, _real=real, **kw):  # type: ignore[no-untyped-def]
                    tick()
                    return _real(self, *a, **kw)

                setattr(cls, name, wrapped)
    elif kind in ("send", "sent"):
        from openpool.payouts.chain import Chain

        real_send = Chain.send_raw

        def send_raw(self, raw, _real=real_send):  # type: ignore[no-untyped-def]
            if kind == "send":
                tick()
            out = _real(self, raw)
            if kind == "sent":
                tick()
            return out

        Chain.send_raw = send_raw  # type: ignore[method-assign]
    else:
        raise SystemExit(f"CHAOS_KILL_AT: unknown kind {spec!r}")


if os.environ.get("CHAOS_AUDIT_FILE"):
    _audit(os.environ["CHAOS_AUDIT_FILE"])
if os.environ.get("CHAOS_KILL_AT"):
    _kill_at(os.environ["CHAOS_KILL_AT"])
