"""A funded hot wallet for a local chain: a keystore and its password file, both 0600.

The private key is random, lives only in the encrypted keystore, and is never printed.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from openpool.devstack.net import json_rpc

ETH = 10**18


@dataclass(frozen=True)
class HotWalletFiles:
    keystore: Path
    password_file: Path
    address: str

    def env(self) -> dict[str, str]:
        """The settings the payout code reads (see README, 'Paying workers')."""
        return {
            "HOT_WALLET_KEYSTORE": str(self.keystore),
            "HOT_WALLET_PASSWORD_FILE": str(self.password_file),
            "HOT_WALLET_ADDRESS": self.address,
        }


def write_private(path: Path, data: str) -> None:
    """Create ``path`` readable by its owner only, before any secret is written to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.chmod(path, 0o600)


def new_hot_wallet(directory: Path) -> HotWalletFiles:
    """A new random key, encrypted in ``directory/hot-wallet.json`` (password file beside)."""
    from openpool.payouts.keys import write_keystore  # eth-account: imported when needed

    password_file, keystore = directory / "hot-wallet.password", directory / "hot-wallet.json"
    password = secrets.token_urlsafe(24)
    write_private(password_file, password)
    write_private(keystore, "")
    address = write_keystore(secrets.token_bytes(32), password, keystore)
    return HotWalletFiles(keystore, password_file, address)


def funded_hot_wallet(directory: Path, rpc_url: str, eth: int = 100) -> HotWalletFiles:
    """A new hot wallet under ``directory``, given ``eth`` ETH on the anvil at ``rpc_url``."""
    wallet = new_hot_wallet(directory)
    json_rpc(rpc_url, "anvil_setBalance", [wallet.address, hex(eth * ETH)])
    return wallet
