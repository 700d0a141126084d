"""A payout set-up on anvil for the campaign: a fresh hot wallet, workers and balances.

Every pool gets its own wallet (key and keystore password generated here and registered
with the campaign's secrets scan) and fresh worker addresses, so many pools can share one
anvil chain and run side by side. The keystore is a standard scrypt keystore with a
smaller work factor (n = 2**14) than eth-account's default, only so that the many
decryptions of the campaign stay cheap; the decryption path is the product's own.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
from eth_account import Account

from openpool.analytics.summary import worker_summary
from openpool.partitions import Partition
from openpool.payments import CONFIRMED, FAILED, OPEN, partition_payouts
from openpool.payouts.chain import Chain
from openpool.payouts.execute import RunReport, execute, recover
from openpool.payouts.keys import HotWallet, load_wallet
from openpool.payouts.ledger import Ledger
from openpool.payouts.plan import Limits, build_plan, save_plan
from openpool.snapshots import SnapshotStore
from openpool.storage import ObjectStore
from openpool.tables import BALANCES
from tests.chaos.chain_audit import wallet_transfers
from tests.chaos.common import OPENPOOL, Campaign, Child, Result

ETH = 10**18
CAP = 10**12  # MAX_GAS_PRICE_WEI: far above anvil's base fee
PARTS = (Partition("transcode", "us-west"), Partition("ai", "us-central"))
LIMITS = Limits(
    threshold_wei=10**16, max_payment_wei=ETH, max_run_wei=100 * ETH, min_interval=timedelta(0)
)


@dataclass
class Pool:
    campaign: Campaign
    rpc: str
    chain: Chain
    state: ObjectStore
    state_uri: str
    keystore: Path
    password: Path
    address: str
    earnings: dict[tuple[str, str], int]  # (partition, worker) -> wei
    extra_env: dict[str, str]

    @property
    def wallet(self) -> HotWallet:
        return load_wallet(str(self.keystore), str(self.password))

    def ledger(self) -> Ledger:
        return Ledger(self.state, self.address)

    def plan(self, limits: Limits = LIMITS) -> tuple[dict[str, Any], str]:
        plan = build_plan(list(PARTS), self.state, self.ledger(), limits, 42161)
        return plan, save_plan(self.state, plan)

    def execute(self, plan_hash: str, timeout: float = 30.0) -> RunReport:
        from openpool.payouts.plan import load_plan

        return execute(
            load_plan(self.state, plan_hash),
            plan_hash,
            self.ledger(),
            self.chain,
            self.wallet,
            CAP,
            receipt_timeout=timeout,
        )

    def recover(self) -> RunReport:
        return recover(self.ledger(), self.chain, self.address, confirmations=1)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return self.campaign.env(
            {
                "OPENPOOL_STATE_URI": self.state_uri,
                "ETH_RPC_ENDPOINT": self.rpc,
                "HOT_WALLET_KEYSTORE": str(self.keystore),
                "HOT_WALLET_PASSWORD_FILE": str(self.password),
                "OPENPOOL_PARTITIONS": ",".join(str(p) for p in PARTS),
                "MAX_GAS_PRICE_WEI": str(CAP),
                "MIN_PAYOUT_INTERVAL_SECONDS": "0",
                **self.extra_env,
                **(extra or {}),
            }
        )

    def cli(
        self, *argv: str, kill_after: float | None = None, extra: dict[str, str] | None = None
    ) -> Child:
        return self.campaign.run(
            [OPENPOOL, "-v", "payouts", *argv],
            self.env(extra),
            kill_after=kill_after,
            label="payouts-" + argv[0],
        )

    def settle(self, deadline_s: float = 60.0) -> None:
        """Recover until no payment is open (blocks come every second on the timed chain)."""
        deadline = time.monotonic() + deadline_s
        while True:
            self.recover()
            if not any(r["status"] in OPEN for r in self.ledger().payments().values()):
                return
            if time.monotonic() > deadline:
                return
            time.sleep(0.5)


def new_wallet(c: Campaign, where: Path) -> tuple[Path, Path, str]:
    """A fresh key and password, as a keystore file and a password file."""
    key = secrets.token_bytes(32)
    password = secrets.token_urlsafe(18)
    c.secrets.add_key(key)
    c.secrets.add_password(password)
    where.mkdir(parents=True, exist_ok=True)
    keystore, pwfile = where / "keystore.json", where / "password"
    keystore.write_text(json.dumps(Account.encrypt(key, password, iterations=2**14)))
    pwfile.write_text(password)
    return keystore, pwfile, Account.from_key(key).address


def seed_balances(state: ObjectStore, earnings: dict[tuple[str, str], int]) -> None:
    """Commit a balances table per partition (what ingest would have accrued)."""
    for part in PARTS:
        rows = [
            {
                "eth_address": a,
                "total_fees_wei": Decimal(e * 4 // 3),
                "pool_commission_wei": Decimal(e * 4 // 3 - e),
                "worker_earnings_wei": Decimal(e),
                "job_count": 1,
                "first_job_at": None,
                "last_job_at": None,
            }
            for (p, a), e in sorted(earnings.items())
            if p == str(part)
        ]
        snaps = SnapshotStore(state, part)
        txn = snaps.begin(snaps.latest(), "seed")
        txn.replace("balances", pa.Table.from_pylist(rows, schema=BALANCES))
        txn.commit()


def make_pool(
    c: Campaign,
    rpc: str,
    where: Path,
    rng: random.Random,
    state: ObjectStore,
    state_uri: str,
    extra_env: dict[str, str] | None = None,
    seed: bool = True,
) -> Pool:
    keystore, pwfile, address = new_wallet(c, where)
    chain = Chain(rpc)
    chain.rpc("anvil_setBalance", [address, hex(100 * ETH)])
    workers = [Account.create().address for _ in range(rng.randint(3, 7))]
    earnings: dict[tuple[str, str], int] = {}
    for w in workers:
        for part in rng.sample(PARTS, rng.randint(1, 2)):
            earnings[(str(part), w)] = rng.randint(11 * 10**15, 9 * 10**17)
    if seed:
        seed_balances(state, earnings)
    return Pool(
        c, rpc, chain, state, state_uri, keystore, pwfile, address, earnings, extra_env or {}
    )


def check_pool(pool: Pool, res: Result, name: str, settled: bool = True) -> None:
    """The payout invariants, from the ledger, the chain and the summaries.

    ``settled``: every payment is resolved, so what each address received must equal its
    confirmed records exactly and every planned payment must be confirmed. Right after a
    kill, a payment may be mined while its record still says signed/broadcast: then each
    address must have received at least its confirmed and at most its confirmed plus
    in-flight amounts.

    The wallet's transfers are read from the chain's blocks (``chain_audit``), not from
    the ledger: per address they must lie in the same bounds, never exceed what it earned
    (``pool.earnings``, the expectation the test seeded), go only to addresses that earned
    something, and each mined transaction must be a recorded one (settled: the confirmed
    records are exactly the mined transfers). A double payment counts once per address.
    """
    ledger = pool.ledger()
    log = ledger.log(ledger.latest())
    current = ledger.current(log)
    confirmed_rows: dict[str, int] = {}
    for r in log.to_pylist():
        if r["status"] == CONFIRMED:
            confirmed_rows[r["payment_id"]] = confirmed_rows.get(r["payment_id"], 0) + 1
    twice = [p for p, k in confirmed_rows.items() if k > 1]
    if twice:
        res.violate(f"{name}: payments confirmed twice in the ledger: {twice}")
        res.add(duplicates=len(twice))
    confirmed: dict[tuple[str, str], int] = {}
    paid_to: dict[str, int] = {}
    open_to: dict[str, int] = {}
    for r in current.values():
        amount = int(r["amount_wei"])
        if r["status"] == CONFIRMED:
            key = (r["partition"], r["eth_address"])
            confirmed[key] = confirmed.get(key, 0) + amount
            paid_to[r["eth_address"]] = paid_to.get(r["eth_address"], 0) + amount
        elif r["status"] in OPEN:
            open_to[r["eth_address"]] = open_to.get(r["eth_address"], 0) + amount
    earned: dict[str, int] = {}
    for (_, addr), wei in pool.earnings.items():
        earned[addr] = earned.get(addr, 0) + wei
    transfers = wallet_transfers(pool.chain, pool.rpc, pool.address)
    from_wallet: dict[str, int] = {}
    for t in transfers:
        if t.ok:
            from_wallet[t.to] = from_wallet.get(t.to, 0) + t.value
    for addr in sorted(earned):
        got, low = pool.chain.balance(addr), paid_to.get(addr, 0)
        high = low if settled else low + open_to.get(addr, 0)
        sent = from_wallet.pop(addr.lower(), 0)  # read from the blocks, not the ledger
        if got > high:
            res.violate(f"{name}: {addr} received {got} wei, records explain at most {high}")
        elif got < low:
            res.violate(f"{name}: {addr} confirmed {low} wei but received {got}")
            res.add(data_lost=1)
        if not low <= sent <= high:
            res.violate(
                f"{name}: {addr}: the wallet's mined transfers {sent}, ledger {low}..{high}"
            )
        if max(got, sent) > earned[addr]:
            res.violate(f"{name}: {addr} received {max(got, sent)} wei, earned {earned[addr]}")
        if got > high or max(got, sent) > earned[addr]:
            res.add(duplicates=1)  # one double payment per address, however it is seen
        if settled and not sent == low == earned[addr]:
            res.violate(f"{name}: {addr}: chain {sent}, confirmed {low}, earned {earned[addr]}")
    if any(from_wallet.values()):
        res.violate(f"{name}: the wallet paid addresses that earned nothing: {from_wallet}")
        res.add(duplicates=len(from_wallet))
    recorded = {str(r["tx_hash"]).lower() for r in log.to_pylist() if r["tx_hash"]}
    confirmed_hashes = {
        str(r["tx_hash"]).lower() for r in current.values() if r["status"] == CONFIRMED
    }
    mined_ok = {t.tx_hash for t in transfers if t.ok}
    if {t.tx_hash for t in transfers} - recorded:
        res.violate(f"{name}: mined wallet transactions the ledger never recorded")
    if not confirmed_hashes <= mined_ok or (settled and mined_ok != confirmed_hashes):
        res.violate(f"{name}: confirmed records and mined transfers differ (by tx hash)")
    sent = [r for r in current.values() if r["tx_hash"] and r["status"] != FAILED]
    sent += [r for r in current.values() if r["status"] == FAILED and r["block_number"]]
    mined = pool.chain.nonce(pool.address, "latest")
    if mined > len(sent) or (settled and mined != len(sent)):
        res.violate(f"{name}: wallet mined {mined} transactions, the ledger records {len(sent)}")
    for part in PARTS:
        snap = SnapshotStore(pool.state, part).latest()
        summ = worker_summary(snap, part, LIMITS.threshold_wei, partition_payouts(log, str(part)))
        for r in summ.workers:
            earned = pool.earnings.get((str(part), r["eth_address"]))
            if earned is None:
                continue
            total = r["paid_wei"] + r["in_flight_wei"] + r["payable_wei"]
            if total != earned or r["payable_wei"] < 0:
                res.violate(f"{name}: {part} {r['eth_address']}: paid+in flight+payable {total}")
            if r["paid_wei"] != confirmed.get((str(part), r["eth_address"]), 0):
                res.violate(f"{name}: {part} {r['eth_address']}: summary paid != confirmed")
    if settled:
        unpaid = [k for k, v in pool.earnings.items() if confirmed.get(k, 0) != v]
        stuck = [p for p, r in current.items() if r["status"] != CONFIRMED]
        if unpaid or stuck:
            res.violate(f"{name}: {len(unpaid)} earnings unpaid, {len(stuck)} not confirmed")
            res.add(data_lost=len(unpaid))
