"""Public tips (issue 12): limits per client with IPv6 grouped by /64 and X-Forwarded-For read
only from trusted proxies; the per-case limit not exhaustible by a few clients; tips on a closed
case refused (410); the limiter fails closed (503). Real Redis and Kafka (session fixtures)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from deploy.local.stack import free_port
from services.alert.adapters.limiter import Bucket, LimiterUnavailable, RateLimiter
from services.alert.adapters.progress import ProgressStore
from services.alert.app import create_app
from services.alert.domain import client_key, trusted_networks
from services.alert.handlers import Progress
from shared.events import CASE_CLOSED, CaseEvent, CloudEvent
from shared.settings import Settings

PROXY = "10.1.2.3"
TRUSTED = ["10.0.0.0/8", "fd00::/8"]


@pytest.fixture(autouse=True)
async def one_window(request: pytest.FixtureRequest) -> None:
    """The limiter counts in fixed windows aligned to the epoch (RateLimiter): a test that
    counts exact acceptances and refusals (the ones on `local`'s limits) must run inside one
    window, so it starts early in one (a boundary in the middle of its posts would open a
    fresh count: 6 accepted where the limit is 5)."""
    if "local" not in request.fixturenames:
        return
    window = request.getfixturevalue("local").tip_window_s
    left = window - time.time() % window
    if left < 20:
        await asyncio.sleep(left + 0.05)


def tip(case_id: str) -> dict[str, Any]:
    return {"case_id": case_id, "seen_at": "2026-11-22T10:00:00+08:00",
            "location": {"lat": 36.2, "lon": 113.1, "address": "长治站候车室"},
            "description": "一个穿蓝色羽绒服的男孩和一名中年男子"}


def new_case() -> str:
    return f"140403-20261122-{uuid.uuid4().hex[:6].upper()}"


@asynccontextmanager
async def alert_app(settings: Settings) -> AsyncIterator[Any]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def client(app: Any, peer: str) -> httpx.AsyncClient:
    """A client whose TCP peer address is `peer` (as the ASGI server would see it)."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://alert")


async def post(app: Any, peer: str, case_id: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with client(app, peer) as http:
        got = await http.post("/api/v1/tips", json=tip(case_id), headers=headers)
    return got.status_code


# --- who the client is --------------------------------------------------------------------------

CLIENTS = [
    # (peer, X-Forwarded-For, expected key)
    ("203.0.113.7", None, "203.0.113.7"),
    ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # untrusted peer: its header is ignored
    (PROXY, "198.51.100.1", "198.51.100.1"),
    (PROXY, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a client-forged first hop ignored
    (PROXY, "198.51.100.1, 10.9.9.9", "198.51.100.1"),  # our inner proxy skipped
    (PROXY, "10.9.9.9, 10.8.8.8", "10.9.9.9"),  # all trusted: the first hop
    (PROXY, "garbage, 198.51.100.1", "198.51.100.1"),
    (PROXY, "198.51.100.1, garbage", PROXY),  # our proxy wrote garbage: the peer counts
    (PROXY, None, PROXY),
    ("2001:db8:1:2:aaaa::1", None, "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:fffe", None, "2001:db8:1:2::/64"),  # same /64
    ("2001:db8:1:3::1", None, "2001:db8:1:3::/64"),  # the next /64 is another client
    (PROXY, "2001:db8:1:2::99", "2001:db8:1:2::/64"),
    (PROXY, "[2001:db8:1:2::99]:5555", "2001:db8:1:2::/64"),
    (PROXY, "198.51.100.1:5555", "198.51.100.1"),
    ("::ffff:203.0.113.9", None, "203.0.113.9"),  # IPv4-mapped is its IPv4 address
    ("fd00::1", "2001:db8:9::1", "2001:db8:9::/64"),  # a trusted IPv6 proxy
    ("testclient", None, "unknown"),
]


@pytest.mark.parametrize(("peer", "forwarded", "key"), CLIENTS)
def test_client_key(peer: str, forwarded: str | None, key: str) -> None:
    assert client_key(peer, forwarded, trusted_networks(TRUSTED)) == key


# --- floods -------------------------------------------------------------------------------------


@pytest.fixture
def local(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={
        "data_dir": tmp_path, "trusted_proxies": TRUSTED, "alert_relay_enabled": False,
        # The shipped limits (asserted so that this test keeps meaning what it says).
        "tip_limit_per_client": 10, "tip_limit_per_case_client": 5,
        "tip_limit_per_case": 1000, "tip_window_s": 60})


async def test_rotating_ipv6_addresses_in_one_slash_64_are_one_client(
    local: Settings, redis: Redis,
) -> None:
    case_id = new_case()
    async with alert_app(local) as app:
        # Directly, and through the trusted proxy: every address a new one in 2001:db8:7:7::/64.
        codes = [await post(app, f"2001:db8:7:7::{n:x}", case_id) for n in range(1, 16)]
        codes += [await post(app, PROXY, case_id, forwarded=f"2001:db8:7:7:{n:x}::1")
                  for n in range(1, 16)]
        assert codes.count(202) == 5 and set(codes[5:]) == {429}
        # Across many cases the per-client limit holds the /64 too.
        other = [await post(app, f"2001:db8:7:7::{n:x}:1", new_case()) for n in range(20)]
        assert other.count(202) == 5 and set(other[5:]) == {429}
        # A tipster in another /64 is accepted.
        assert await post(app, "2001:db8:7:8::1", case_id) == 202
        assert await post(app, PROXY, case_id, forwarded="2001:db8:7:9::1") == 202


async def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(
    local: Settings, redis: Redis,
) -> None:
    case_id = new_case()
    async with alert_app(local) as app:
        codes = [await post(app, "198.51.100.77", case_id, forwarded=f"192.0.2.{n}")
                 for n in range(1, 12)]
    assert codes.count(202) == 5 and set(codes[5:]) == {429}


async def test_a_client_line_before_the_proxys_own_forwarded_for_line_is_not_the_client(
    local: Settings, redis: Redis,
) -> None:
    """A proxy that adds an X-Forwarded-For line of its own (HAProxy `option forwardfor`)
    leaves the client's forged line first: every line is read, in order, from the right."""
    case_id = new_case()
    async with alert_app(local) as app, client(app, PROXY) as http:
        codes = []
        for n in range(1, 12):
            got = await http.post("/api/v1/tips", json=tip(case_id), headers=[
                ("X-Forwarded-For", f"192.0.2.{n}"), ("X-Forwarded-For", "198.51.100.78")])
            codes.append(got.status_code)
    assert codes.count(202) == 5 and set(codes[5:]) == {429}


async def test_twenty_addresses_flooding_one_case_do_not_lock_out_a_fresh_tipster(
    local: Settings, redis: Redis,
) -> None:
    case_id = new_case()
    async with alert_app(local) as app:
        for n in range(20):
            codes = [await post(app, PROXY, case_id, forwarded=f"198.51.100.{n + 1}")
                     for _ in range(8)]
            assert codes.count(202) == 5 and set(codes[5:]) == {429}, (n, codes)
        assert await post(app, PROXY, case_id, forwarded="192.0.2.200") == 202
        assert await post(app, "203.0.113.200", case_id) == 202


async def test_the_per_case_cap_refuses_once_full(local: Settings, redis: Redis) -> None:
    case_id = new_case()
    async with alert_app(local.model_copy(update={"tip_cap_per_case": 3})) as app:
        codes = [await post(app, f"198.51.100.{n}", case_id) for n in range(1, 5)]
        async with client(app, "203.0.113.5") as http:
            full = await http.post("/api/v1/tips", json=tip(case_id))
    assert codes == [202, 202, 202, 429]
    assert full.status_code == 429 and full.json()["error"]["code"] == "tip_cap_reached"
    assert full.json()["error"]["field"] == "case_id"


async def test_tips_on_a_closed_case_are_refused_with_410(local: Settings, redis: Redis) -> None:
    case_id, open_id = new_case(), new_case()
    closed = CaseEvent(case_id=case_id, region_code="140403", actor="commander",
                       reason="破案", at=datetime.now(UTC))
    async with alert_app(local) as app:
        assert await post(app, "198.51.100.1", case_id) == 202
        # What the alert service learns from homeward.dispatch.v1 when dispatch closes it.
        await Progress(ProgressStore(redis)).on_case_event(CloudEvent(
            type=CASE_CLOSED, source="/homeward/dispatch", subject=case_id,
            data=closed.model_dump(mode="json")))
        async with client(app, "198.51.100.2") as http:
            got = await http.post("/api/v1/tips", json=tip(case_id),
                                  headers={"Accept-Language": "en"})
        assert got.status_code == 410, got.text
        assert got.json()["error"]["message"] == "this case is closed and takes no more tips"
        assert got.json()["error"] == {**got.json()["error"], "code": "case_closed",
                                       "field": "case_id"}
        assert await post(app, "198.51.100.2", open_id) == 202


async def test_the_limiter_fails_closed_when_redis_is_down(
    local: Settings, redis: Redis,
) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    refused = Redis.from_url(down, decode_responses=True)
    try:
        with pytest.raises(LimiterUnavailable):
            await RateLimiter(refused, "t").hit_all([Bucket("client:x", 10, 60)])
    finally:
        await refused.aclose()
    async with alert_app(local.model_copy(update={"redis_url": down})) as app:
        async with client(app, "198.51.100.3") as http:
            got = await http.post("/api/v1/tips", json=tip(new_case()))
    assert got.status_code == 503, got.text
    assert got.json()["error"]["code"] == "unavailable" and got.headers["retry-after"]


async def test_the_limiter_counts_nothing_for_a_refused_request(redis: Redis) -> None:
    limiter = RateLimiter(redis, f"t{uuid.uuid4().hex[:6]}")
    shared, own = Bucket("case:c", 3, 60), Bucket("client:a", 2, 60)
    assert [await limiter.hit_all([own, shared]) is None for _ in range(5)] == \
        [True, True, False, False, False]
    # The flood refused per client used one slot of the shared bucket per accepted tip only.
    assert await limiter.hit_all([Bucket("client:b", 2, 60), shared]) is None
    refused = await limiter.hit_all([Bucket("client:c", 2, 60), shared])
    assert refused is not None and refused[0] == shared and 1 <= refused[1] <= 61
