"""Issue 12, "Resources": the stream caps answer 429 per token subject and 503 per process,
both with Retry-After, and count down again as streams close."""

import pytest

from shared.auth import Principal, Role
from shared.streams import StreamLimits
from shared.web_errors import ApiError


def test_stream_limits_per_principal_and_per_process() -> None:
    limits = StreamLimits(per_principal=2, total=3, retry_after_s=7)
    a = Principal(sub="a", role=Role.commander, region="140400")
    b = Principal(sub="b", role=Role.commander, region="140400")
    first = [limits.acquire(a), limits.acquire(a)]
    with pytest.raises(ApiError) as over:
        limits.acquire(a)
    assert (over.value.status, over.value.code) == (429, "too_many_streams")
    assert over.value.headers == {"Retry-After": "7"}
    limits.acquire(b)
    with pytest.raises(ApiError) as full:
        limits.acquire(b)
    assert full.value.status == 503 and full.value.headers == {"Retry-After": "7"}
    first[0].release()
    first[0].release()  # idempotent
    limits.acquire(b)
    assert limits.open == {"a": 1, "b": 2}
