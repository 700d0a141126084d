"""EIP-55 checksummed addresses, with pycryptodome's Keccak-256.

The reader checks every distinct ``ethAddress`` of a file against its EIP-55 checksum. The
usual library for it (eth_utils) costs ~0.2 s to import, which every ingest task would pay
in its fresh process for a few hundred hashes; the standard library's ``sha3_256`` is not
Keccak-256 (different padding). pycryptodome (already installed as eth-hash's backend)
imports in ~40 ms and is a well-kept implementation, so the hash comes from it and only
EIP-55's case rule is written here. tests/test_reader_eip55.py checks it against eth_utils.
"""

from __future__ import annotations

from Crypto.Hash import keccak


def keccak256(message: bytes) -> bytes:
    return keccak.new(data=message, digest_bits=256).digest()


def checksummed(addresses: list[str]) -> list[str]:
    """The EIP-55 form of each ``0x`` + 40-hex-digit address (any case in, mixed case out):
    hex digit i is uppercased when nibble i of the Keccak-256 of the lowercase digits is
    8 or more."""
    out = []
    for addr in addresses:
        lower = addr[2:].lower()
        digest = keccak256(lower.encode("ascii")).hex()[:40]
        cased = (c.upper() if int(h, 16) >= 8 else c for c, h in zip(lower, digest, strict=True))
        out.append("0x" + "".join(cased))
    return out
