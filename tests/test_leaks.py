"""The leak search finds a secret in every form the key-leak tests and the campaign claim.

The earlier key-leak check searched raw object bytes for the lower-case hex key: a key in
a compressed Parquet column, or written upper-case, passed it. Each case here is a leak
that check missed or a form it never looked for.
"""

from __future__ import annotations

import base64
import io
import secrets

import pyarrow as pa
import pyarrow.parquet as pq

from tests.helpers.leaks import Secrets, leaks, leaks_in_files


def _parquet(text: str) -> bytes:
    """``text`` in a zstd-compressed column, between smaller and larger values (the footer's
    min/max statistics hold those two in plain bytes, not it)."""
    out = io.BytesIO()
    notes = ["0 first"] * 50 + [f"5 {text}"] * 50 + ["9 last"] * 50
    pq.write_table(pa.table({"note": notes}), out, compression="zstd")
    return out.getvalue()


def test_a_key_in_any_form_and_a_password_are_found_parquet_decoded(tmp_path) -> None:
    key = secrets.token_bytes(32)
    hunted = Secrets()
    hunted.add_key(key)
    hunted.add_password("correct horse battery staple")

    hidden = _parquet("signed with " + key.hex())  # compressed: not in the raw bytes
    assert key.hex().encode() not in hidden  # what the old check searched, and missed
    assert leaks(hunted, hidden, "f.parquet") == ["private key in f.parquet (decoded Parquet)"]
    for form in (key.hex().upper(), "0x" + key.hex(), base64.b64encode(key).decode()):
        assert leaks(hunted, f"log: {form}".encode(), "log"), form
    assert leaks(hunted, b"\x00" + key + b"\x00", "raw") == ["private key in raw"]
    assert leaks(hunted, b"pw=correct horse battery staple", "env") == ["keystore password in env"]
    assert leaks(hunted, _parquet("nothing to see"), "x") == []
    assert leaks(hunted, key.hex()[:-1].encode(), "x") == []
    torn = hidden[: len(hidden) // 2]  # cannot be decoded: reported, never passed as clean
    assert leaks(hunted, torn, "torn.parquet") == ["torn.parquet: Parquet that cannot be decoded"]

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "attempt=1.log").write_text("x " + key.hex().upper())
    (tmp_path / "state.parquet").write_bytes(hidden)
    found, files, parquet = leaks_in_files(hunted, [tmp_path])
    assert len(found) == 2 and files == 2 and parquet == 1
