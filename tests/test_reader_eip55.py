"""The reader's EIP-55 checksums (pycryptodome's Keccak-256) equal eth_utils' on any address."""

from __future__ import annotations

from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from openpool.ingest.reader.eip55 import checksummed, keccak256

hex40 = st.binary(min_size=20, max_size=20).map(lambda b: b.hex())


@settings(max_examples=50, deadline=None)
@given(st.lists(hex40, max_size=40))
def test_checksummed_addresses_equal_eth_utils(digits: list[str]) -> None:
    addrs = [f"0x{d}" for d in digits] + [f"0x{d.upper()}" for d in digits[:3]]
    assert checksummed(addrs) == [to_checksum_address(a) for a in addrs]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=40, max_size=40), min_size=1, max_size=10))
def test_keccak256_of_40_byte_messages_equals_eth_utils(messages: list[bytes]) -> None:
    assert [keccak256(m) for m in messages] == [keccak(m) for m in messages]


def test_the_spec_samples_addresses_keep_their_checksum() -> None:
    for addr in (
        "0xA4c123B1612dd272d1371C17149d439536b3216F",
        "0xdAeeb975729fAE923D5A4fd12aAbFe228F219e9C",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",  # EIP-55's own examples
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ):
        assert checksummed([addr.lower()]) == [addr]
