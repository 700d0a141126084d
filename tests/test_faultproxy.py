"""The chaos campaign's S3 fault proxy: the faults issue 18 added do what they claim.

Each kind at rate 1 through a real moto server: a conditional PUT meets 409
ConditionalRequestConflict (retried, then given up on, never created), a request meets
403 AccessDenied/ExpiredToken (a clean StorageError, not retried into success), and a
listing leaves a key out (the proxy says which).
"""

from __future__ import annotations

import pytest

from openpool.errors import StorageError
from openpool.storage import S3Store, make_s3_client
from tests.chaos.common import s3_client
from tests.chaos.faultproxy import FaultConfig, FaultProxy

pytestmark = pytest.mark.s3


def _through(proxy: FaultProxy, bucket: str) -> S3Store:
    return S3Store(f"s3://{bucket}/p", client=s3_client(proxy.url))


def test_a_conditional_put_meets_409_and_is_never_half_created(
    moto_endpoint: str, s3_bucket: str
) -> None:
    direct = S3Store(f"s3://{s3_bucket}/p", client=make_s3_client())
    with FaultProxy(moto_endpoint, FaultConfig(conflict=1.0)) as proxy:
        store = _through(proxy, s3_bucket)
        store.put("plain", b"x")  # not conditional: nothing to conflict with
        with pytest.raises(StorageError, match="ConditionalRequestConflict"):
            store.put_if_absent("claimed", b"y")
        assert proxy.counts["conflict"] >= 2  # retried before giving up
    assert direct.get("plain") == b"x" and not direct.exists("claimed")


def test_a_denied_request_fails_cleanly_and_is_not_retried_into_success(
    moto_endpoint: str, s3_bucket: str
) -> None:
    S3Store(f"s3://{s3_bucket}/p", client=make_s3_client()).put("k", b"v")
    with FaultProxy(moto_endpoint, FaultConfig(denied=1.0), seed=3) as proxy:
        with pytest.raises(StorageError, match=r"AccessDenied|ExpiredToken"):
            _through(proxy, s3_bucket).get("k")
        assert proxy.counts["denied"] >= 1


def test_a_stale_listing_leaves_one_key_out_and_says_which(
    moto_endpoint: str, s3_bucket: str
) -> None:
    direct = S3Store(f"s3://{s3_bucket}/p", client=make_s3_client())
    for i in range(5):
        direct.put(f"k{i}", b"v")
    with FaultProxy(moto_endpoint, FaultConfig(stale_list=1.0), seed=1) as proxy:
        seen = [o.key for o in _through(proxy, s3_bucket).list("")]
        assert direct.get("k0") == b"v"
    assert len(seen) == 4 and len(proxy.hidden) == 1
    assert set(seen) | {proxy.hidden[0].decode().removeprefix("p/")} == {f"k{i}" for i in range(5)}
