"""EIP-55 checksummed addresses for many addresses at once (Keccak-256 in numpy).

The reader checks every distinct ``ethAddress`` of a file against its EIP-55 checksum. The
usual library for it (eth_utils) costs ~0.15 s to import, which every ingest task would pay
in its fresh process for a few hundred hashes; the standard library's ``sha3_256`` is not
Keccak-256 (different padding). So the hash is computed here, vectorised over all the
addresses: one Keccak-f[1600] permutation per address (40 ASCII hex digits fit one block),
its 25 lanes as numpy arrays. tests/test_reader_eip55.py checks it against eth_utils.
"""

from __future__ import annotations

import numpy as np

_RATE = 136  # bytes per block of Keccak-256
_ROUNDS = (
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
)  # fmt: skip
_RC = np.array(_ROUNDS, dtype=np.uint64)
# Rotation of lane (x, y), indexed [x][y].
_ROT = np.array(
    [
        [0, 36, 3, 41, 18],
        [1, 44, 10, 45, 2],
        [62, 6, 43, 15, 61],
        [28, 55, 25, 21, 56],
        [27, 20, 39, 8, 14],
    ],
    dtype=np.uint64,
)[:, :, None]
_ROT_BACK = (np.uint64(64) - _ROT) % np.uint64(64)
_ROTATED = _ROT != 0
# pi: B[y, 2x + 3y] = A[x, y]; as a gather, B[X, Y] = A[(X + 3Y) % 5, X].
_PI_X = np.array([[(x + 3 * y) % 5 for y in range(5)] for x in range(5)])
_PI_Y = np.array([[x for _ in range(5)] for x in range(5)])
_ONE, _SIXTY_THREE = np.uint64(1), np.uint64(63)


def _keccak_f(a: np.ndarray) -> None:
    """Keccak-f[1600] in place on states ``a`` of shape (5, 5, n): lanes [x][y] per state."""
    for rc in _RC:
        c = np.bitwise_xor.reduce(a, axis=1)
        rolled = np.roll(c, -1, axis=0)
        d = np.roll(c, 1, axis=0) ^ ((rolled << _ONE) | (rolled >> _SIXTY_THREE))
        a ^= d[:, None, :]
        rot = np.where(_ROTATED, (a << _ROT) | (a >> _ROT_BACK), a)
        b = rot[_PI_X, _PI_Y]
        a[:] = b ^ (~np.roll(b, -1, axis=0) & np.roll(b, -2, axis=0))
        a[0, 0] ^= rc


def keccak256_hex40(digits: list[bytes]) -> np.ndarray:
    """Keccak-256 of each 40-byte message, as an (n, 32) uint8 array."""
    n = len(digits)
    block = np.zeros((n, _RATE), dtype=np.uint8)
    if n:
        block[:, :40] = np.frombuffer(b"".join(digits), dtype=np.uint8).reshape(n, 40)
    block[:, 40] ^= 0x01  # pad10*1 with Keccak's domain byte
    block[:, _RATE - 1] ^= 0x80
    lanes = block.view("<u8")  # (n, 17): lane i is (x, y) = (i % 5, i // 5)
    state = np.zeros((5, 5, n), dtype=np.uint64)
    for i in range(_RATE // 8):
        state[i % 5, i // 5] = lanes[:, i]
    _keccak_f(state)
    out = np.stack([state[x, 0] for x in range(4)], axis=1).astype("<u8")
    return out.view(np.uint8).reshape(n, 32)


def checksummed(addresses: list[str]) -> list[str]:
    """The EIP-55 form of each ``0x`` + 40-hex-digit address (any case in, mixed case out)."""
    if not addresses:
        return []
    lower = [a[2:].lower().encode("ascii") for a in addresses]
    digest = keccak256_hex40(lower)
    # nibble i of the hash decides the case of hex digit i: uppercase when >= 8
    nibbles = np.empty((len(lower), 40), dtype=np.uint8)
    nibbles[:, 0::2] = digest[:, :20] >> 4
    nibbles[:, 1::2] = digest[:, :20] & 0x0F
    text = np.frombuffer(b"".join(lower), dtype=np.uint8).reshape(len(lower), 40).copy()
    upper = (nibbles >= 8) & (text >= ord("a"))
    text[upper] -= 0x20
    return ["0x" + row.tobytes().decode("ascii") for row in text]
