"""What the payout DAG's tasks and ``openpool payouts`` share: limits and the ledger.

Both read today's settings through these, so a plan built in the UI and one built on the
command line are checked against the same limits and the same wallet's ledger.
"""

from __future__ import annotations

from datetime import timedelta

from openpool.config import Settings
from openpool.errors import PlanRefused
from openpool.payments import wallet_address
from openpool.payouts.checks import Limits
from openpool.payouts.ledger import Ledger
from openpool.storage import open_store


def limits(s: Settings) -> Limits:
    """The payout limits the settings set (threshold, per payment, per run, interval)."""
    return Limits(
        threshold_wei=s.payment_threshold_wei,
        max_payment_wei=s.max_payment_wei,
        max_run_wei=s.max_run_wei,
        min_interval=timedelta(seconds=s.min_payout_interval_seconds),
    )


def configured_ledger(s: Settings) -> Ledger:
    """The ledger of the configured hot wallet (refused when none is configured)."""
    addr = wallet_address(s)
    if addr is None:
        raise PlanRefused("set HOT_WALLET_ADDRESS or HOT_WALLET_KEYSTORE")
    return Ledger(open_store(s.state_uri), addr)
