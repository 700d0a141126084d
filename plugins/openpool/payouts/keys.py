"""The hot wallet's key: a JSON keystore plus a password file, decrypted only to sign.

The account object never reaches logs, XCom, Parquet, plans or exception text: its repr
shows only the address, and decryption errors are re-raised without the password.
"""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from openpool.errors import ConfigError


class HotWallet:
    """Signs transactions; prints as its address only."""

    def __init__(self, account: LocalAccount) -> None:
        self._account = account
        self.address: str = account.address

    def sign(self, tx: dict) -> tuple[bytes, str]:
        signed = self._account.sign_transaction(tx)
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()

    def __repr__(self) -> str:
        return f"HotWallet({self.address})"

    __str__ = __repr__

    def __reduce__(self):  # never pickled into XCom or anywhere else
        raise TypeError("HotWallet cannot be serialised")


def load_wallet(keystore: str | None, password_file: str | None) -> HotWallet:
    if not keystore or not password_file:
        raise ConfigError("HOT_WALLET_KEYSTORE and HOT_WALLET_PASSWORD_FILE must both be set")
    try:
        doc = json.loads(Path(keystore).read_text())
        password = Path(password_file).read_text().rstrip("\n")
    except OSError as exc:
        raise ConfigError(f"cannot read the hot wallet files: {exc.strerror}") from None
    try:
        key = Account.decrypt(doc, password)
    except Exception:
        raise ConfigError("hot wallet keystore could not be decrypted (wrong password?)") from None
    return HotWallet(Account.from_key(key))


def write_keystore(private_key: bytes, password: str, path: Path) -> str:
    """Create a keystore file (used by the demo and the tests); returns the address."""
    acct = Account.from_key(private_key)
    path.write_text(json.dumps(Account.encrypt(private_key, password)))
    return acct.address
