"""The little of Ethereum JSON-RPC that payouts use, behind one class (web3.py underneath)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_typing import BlockIdentifier, HexStr
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint, Wei

from openpool.errors import SendRefused

_TRANSIENT = (ConnectionError, TimeoutError, OSError)
_retry = retry(
    retry=retry_if_exception_type(_TRANSIENT),
    wait=wait_exponential(multiplier=0.2, max=5),
    stop=stop_after_attempt(6),
    reraise=True,
)


def _reason(exc: BaseException) -> str:
    """The node's message (a JSON-RPC error's ``message`` when there is one)."""
    response = getattr(exc, "rpc_response", None)
    error = response.get("error") if isinstance(response, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])[:300]
    return str(exc)[:300]


@dataclass
class Receipt:
    status: int
    block_number: int
    gas_used: int
    tx_hash: str = ""  # the transaction it is the receipt of


class Chain:
    def __init__(self, rpc_url: str, timeout: float = 10.0) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))

    @_retry
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    @_retry
    def balance(self, address: str) -> int:
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    @_retry
    def nonce(self, address: str, block: BlockIdentifier = "pending") -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), block))

    @_retry
    def base_fee(self) -> int:
        return int(self.w3.eth.get_block("latest")["baseFeePerGas"])

    @_retry
    def priority_fee(self) -> int:
        return int(self.w3.eth.max_priority_fee)

    @_retry
    def estimate_gas(self, sender: str, to: str, value: int) -> int:
        return int(
            self.w3.eth.estimate_gas(
                {
                    "from": Web3.to_checksum_address(sender),
                    "to": Web3.to_checksum_address(to),
                    "value": Wei(value),
                }
            )
        )

    def send_raw(self, raw: bytes) -> str:
        """Broadcast; returns "sent", "known" or "nonce_too_low" (the caller then looks up).

        Any other answer (priced out, underpriced replacement, node unreachable after the
        retries...) is :class:`SendRefused` with the node's reason: the caller reports it
        and keeps the record open, it never decides that the payment failed.
        """
        try:
            self._send(raw)
            return "sent"
        except (Web3RPCError, ValueError) as exc:
            text = str(exc).lower()
            if "already known" in text or "already imported" in text:
                return "known"
            if "nonce too low" in text:
                return "nonce_too_low"
            raise SendRefused(_reason(exc)) from None
        except _TRANSIENT as exc:
            raise SendRefused(f"node unreachable: {type(exc).__name__}") from None

    @_retry
    def _send(self, raw: bytes) -> None:
        self.w3.eth.send_raw_transaction(raw)

    @_retry
    def receipt(self, tx_hash: str) -> Receipt | None:
        try:
            r = self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except TransactionNotFound:
            return None
        if r is None or r.get("blockNumber") is None:
            return None
        return Receipt(int(r["status"]), int(r["blockNumber"]), int(r["gasUsed"]), tx_hash)

    @_retry
    def known(self, tx_hash: str) -> bool:
        """Whether the node knows the transaction (pending or mined)."""
        try:
            return self.w3.eth.get_transaction(HexStr(tx_hash)) is not None
        except TransactionNotFound:
            return False

    @_retry
    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    @_retry
    def sent_in_block(self, number: int, sender: str) -> list[dict[str, Any]]:
        """The transactions ``sender`` sent in block ``number`` (for reconciling a ledger)."""
        block = self.w3.eth.get_block(number, full_transactions=True)
        out = []
        for tx in block["transactions"]:
            if not isinstance(tx, Mapping):  # full_transactions=True gives TxData, not hashes
                raise TypeError(f"block {number}: transaction hashes, not transactions")
            if str(tx["from"]).lower() == sender.lower():
                out.append(
                    {
                        "nonce": int(tx["nonce"]),
                        "tx_hash": "0x" + bytes(tx["hash"]).hex(),
                        "to": str(tx["to"]) if tx.get("to") else None,
                        "value": int(tx["value"]),
                        "gas": int(tx["gas"]),
                        "max_fee_per_gas": int(tx.get("maxFeePerGas") or tx.get("gasPrice") or 0),
                        "block_number": number,
                    }
                )
        return out

    def rpc(self, method: str, params: list[Any]) -> Any:
        """A raw call (tests and the demo use anvil's own methods)."""
        resp = self.w3.provider.make_request(RPCEndpoint(method), params)
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp.get("result")
