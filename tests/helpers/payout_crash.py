"""Run ``execute`` for a saved plan and SIGKILL this process at a chosen point.

argv: state_dir rpc_url keystore password_file plan_hash point
points: after_sign, before_signed_commit, after_signed_commit, after_broadcast, during_wait
"""

from __future__ import annotations

import os
import signal
import sys

from openpool.payouts import execute as ex
from openpool.payouts.chain import Chain
from openpool.payouts.keys import HotWallet, load_wallet
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import load_plan
from openpool.storage import LocalStore


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    state_dir, rpc, keystore, pw, plan_hash, point = sys.argv[1:7]
    state = LocalStore(state_dir)
    wallet = load_wallet(keystore, pw)
    if point == "after_sign":
        real_sign = HotWallet.sign

        def sign(self, tx):  # type: ignore[no-untyped-def]
            out = real_sign(self, tx)
            die()
            return out

        HotWallet.sign = sign  # type: ignore[method-assign]
    elif point == "before_signed_commit":  # signed, nothing recorded: nothing may be sent

        def no_commit(self, *a, **kw):  # type: ignore[no-untyped-def]
            die()

        Ledger.try_commit = no_commit  # type: ignore[method-assign]
    elif point == "after_signed_commit":
        real_commit = Ledger.try_commit

        def try_commit(self, *a, **kw):  # type: ignore[no-untyped-def]
            out = real_commit(self, *a, **kw)
            die()
            return out

        Ledger.try_commit = try_commit  # type: ignore[method-assign]
    elif point == "after_broadcast":
        real_broadcast = ex.broadcast

        def broadcast(*a, **kw):  # type: ignore[no-untyped-def]
            real_broadcast(*a, **kw)
            die()

        ex.broadcast = broadcast  # type: ignore[assignment]
    elif point == "during_wait":

        def wait(*a, **kw):  # type: ignore[no-untyped-def]
            die()

        ex.wait_receipts = wait  # type: ignore[assignment]
    ex.execute(
        load_plan(state, plan_hash),
        plan_hash,
        Ledger(state, wallet.address),
        Chain(rpc),
        wallet,
        10**12,
    )
    raise SystemExit("the crash point was never reached")


if __name__ == "__main__":
    main()
