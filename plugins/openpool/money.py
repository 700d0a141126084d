"""Money, exactly: wei as decimal128(38,0), commission as a rational, ETH as text, payable.

No binary floating point touches an amount. Commission per job is floor(fees x p / q) for
the rate p/q parsed exactly from its decimal string. Ingest, payouts and analytics all take
their money arithmetic from here, so none of them imports another for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

WEI = pa.decimal128(38, 0)  # every amount in storage: 128-bit integer wei

_INT64_MAX = 2**63 - 1
_SQRT_INT64 = 3_037_000_499  # q below this keeps (f mod q) * p inside int64


def to_wei_array(values: list[int]) -> pa.Array:
    """Python ints to decimal128(38,0), exactly."""
    return pa.array([Decimal(v) for v in values], WEI)


def wei_ints(arr: pa.Array | pa.ChunkedArray) -> list[int]:
    """decimal128 column to Python ints (exact); for small result sets and tests."""
    return [int(v) if v is not None else 0 for v in arr.to_pylist()]


def commission(fees: pa.Array | pa.ChunkedArray, rate: Fraction) -> pa.Array:
    """Per-job commission floor(fees * rate), exact, as decimal128(38,0).

    Vectorised in int64 when every fee fits and the rate's denominator is small enough
    that no intermediate overflows (always, for rates written with up to 9 decimals);
    otherwise falls back to exact Python integers.
    """
    p, q = rate.numerator, rate.denominator
    fees = fees.combine_chunks() if isinstance(fees, pa.ChunkedArray) else fees
    if len(fees) == 0:
        return pa.array([], WEI)
    if fees.null_count:
        raise ValueError("commission over null fees")
    mx = pc.max(fees).as_py()
    if q <= _SQRT_INT64 and mx is not None and int(mx) <= _INT64_MAX:
        f = pc.cast(fees, pa.int64()).to_numpy(zero_copy_only=False)
        whole, rest = np.divmod(f, q)
        out = whole * p + (rest * p) // q
        return pc.cast(pa.array(out, pa.int64()), WEI)
    return to_wei_array([(int(v) * p) // q for v in fees.to_pylist()])


def wei_sum(arr: pa.Array | pa.ChunkedArray) -> int:
    """Exact sum of a decimal128 column as a Python int (0 for empty).

    Summed as decimal256: Arrow sums decimal128 in 128 bits and wraps silently past
    10**38, which a total of many 38-digit amounts can reach."""
    if len(arr) == 0:
        return 0
    total = pc.sum(pc.cast(arr, pa.decimal256(76, 0))).as_py()
    return int(total) if total is not None else 0


def subtract(a: pa.Array | pa.ChunkedArray, b: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Exact ``a - b`` for wei columns, as decimal128(38,0).

    Arrow widens a decimal difference to precision 39, which decimal128 cannot hold, so
    the operands are narrowed to precision 37 first (checked); values that do not fit
    take the exact Python-integer path.
    """
    narrow = pa.decimal128(37, 0)
    try:
        out = pc.subtract(pc.cast(a, narrow), pc.cast(b, narrow))
    except pa.ArrowInvalid:
        return to_wei_array([x - y for x, y in zip(wei_ints(a), wei_ints(b), strict=True)])
    return pc.cast(out, WEI)


def eth(wei: int) -> str:
    """Exact ETH for ``wei`` as a decimal string (no float, and no decimal context: its
    28 digits would round amounts above ~10**28 wei)."""
    whole, frac = divmod(abs(int(wei)), 10**18)
    sign = "-" if wei < 0 else ""
    return f"{sign}{whole}.{frac:018d}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Settled:
    """One worker's payments in one partition: confirmed (paid) and still open (in flight,
    including payments under investigation: neither may be planned again)."""

    paid_wei: int = 0
    in_flight_wei: int = 0
    payment_count: int = 0  # confirmed payments
    last_paid_at: datetime | None = None


NOTHING = Settled()


def payable(earnings_wei: int, settled: Settled | None) -> int:
    """The one formula: earnings - paid - in flight (negative only if the ledger says more
    left than was earned, which every caller must treat as nothing payable)."""
    s = settled or NOTHING
    return int(earnings_wei) - s.paid_wei - s.in_flight_wei
