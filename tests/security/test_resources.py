"""Issue 12, "Resources": a body limit checked before anything parses the body or checks a
token, in every service; live streams capped per principal and per process, read through one
Redis reader per process apart from the consumers' connections."""

from __future__ import annotations

import asyncio
import contextlib
import json

import httpx
import pytest
from redis.asyncio import Redis

from deploy.local.stack import ServiceProcess
from shared.auth import Role
from shared.settings import Settings
from tests.helpers import eventually, report_body
from tests.security.conftest import SECURITY_DB, bearer

pytestmark = pytest.mark.e2e

GB = 1024 ** 3
CHUNK = b"x" * 65536
# Far below the gigabyte: what a client could push into socket buffers before the answer.
MOST_READ = 16 * 1024 * 1024

# A JSON-bodied endpoint of each service; called WITHOUT a token (the size comes first).
BODY_ENDPOINTS = {
    "alert": "/api/v1/reports",
    "dispatch": "/api/v1/cases/140403-x/close",
    "notify": "/api/v1/subscribers",
}


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent before it closed the connection. A server that answers
    before reading the body closes with that body unread, so the kernel ends the connection
    with a reset after the answer: what came before the reset is the answer, and
    `StreamReader.read()` would drop it with the reset."""
    received = bytearray()
    with contextlib.suppress(ConnectionError):
        while block := await reader.read(65536):
            received += block
    return bytes(received)


async def post_gigabyte(port: int, path: str, chunked: bool) -> tuple[int, dict[str, object],
                                                                        int]:
    """POST a 1 GB body the way a streaming client does: a chunk only after the last one was
    taken, stopping as soon as an answer arrives. Returns (status, JSON body, bytes sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {GB}"
    writer.write((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                  f"\r\n{framing}\r\n\r\n").encode())
    answer = asyncio.ensure_future(read_until_closed(reader))
    sent = 0
    try:
        if not chunked:
            # Declared: the answer must come before a single body byte is sent.
            await asyncio.wait({answer}, timeout=10)
        while not answer.done() and sent < MOST_READ:
            writer.write(f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n" if chunked else CHUNK)
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(writer.drain(), timeout=10)
            sent += len(CHUNK)
            await asyncio.wait({answer}, timeout=0.01)
        raw = await asyncio.wait_for(answer, timeout=10) if sent < MOST_READ else b""
    finally:
        answer.cancel()
        writer.close()
    if not raw:
        return 0, {}, sent
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return status, json.loads(body or b"{}"), sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("service", sorted(BODY_ENDPOINTS))
async def test_gigabyte_body_is_refused_without_being_read(
    service: str, chunked: bool, security_stack: dict[str, ServiceProcess],
) -> None:
    status, body, sent = await post_gigabyte(security_stack[service].port,
                                             BODY_ENDPOINTS[service], chunked)
    assert sent < MOST_READ, "the service kept reading the body"
    if not chunked:
        assert sent == 0
    assert status == 413
    assert body["error"]["code"] == "body_too_large"  # type: ignore[index]


async def open_streams(http: httpx.AsyncClient, stack: contextlib.AsyncExitStack, url: str,
                       headers: list[dict[str, str]]) -> list[httpx.Response]:
    async def one(h: dict[str, str]) -> httpx.Response:
        return await stack.enter_async_context(http.stream("GET", url, headers=h))

    return list(await asyncio.gather(*(one(h) for h in headers)))


async def register_hub(http: httpx.AsyncClient, notify: str, name: str) -> str:
    hub = await http.post(f"{notify}/api/v1/subscribers", headers=bearer(Role.admin, "000000"),
                          json={"kind": "hub", "name": name, "region_code": "140403",
                                "location": {"lat": 36.2, "lon": 113.1},
                                "channel": {"type": "console"}})
    assert hub.status_code == 201, hub.text
    return str(hub.json()["subscriber_id"])


async def test_stream_flood_is_refused_and_case_groups_still_form(
    security_stack: dict[str, ServiceProcess],
) -> None:
    """200 streams from one token: all but the cap answered 429 with Retry-After, and a new
    report still gets its case group while the accepted ones stay open."""
    alert, dispatch, notify = (security_stack[n].url for n in ("alert", "dispatch", "notify"))
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30), limits=limits) as http, \
            contextlib.AsyncExitStack() as held:
        hub_id = await register_hub(http, notify, "洪泛站")
        floods = {
            f"{dispatch}/api/v1/stream": bearer(Role.commander, "140400", sub="flooder"),
            f"{notify}/api/v1/hubs/{hub_id}/stream": bearer(Role.hub, "140400", hub_id=hub_id,
                                                           sub="flood-desk"),
        }
        for url, token in floods.items():
            answers = await open_streams(http, held, url, [token] * 200)
            statuses = [a.status_code for a in answers]
            assert statuses.count(200) == Settings().stream_max_per_principal, url
            refused = [a for a in answers if a.status_code != 200]
            assert {a.status_code for a in refused} == {429}, url
            for answer in refused:
                assert answer.headers["retry-after"].isdigit()
                assert json.loads(await answer.aread())["error"]["code"] == "too_many_streams"

        posted = await http.post(f"{alert}/api/v1/reports", headers=bearer(Role.operator,
                                 "140403"), json=report_body(reporter__phone="13512340002",
                                                             child__name="洪泛测试"))
        assert posted.status_code == 202, posted.text
        case_id = posted.json()["case_id"]
        commander = bearer(Role.commander, "140400", sub="on-duty")

        async def group_formed() -> bool:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=commander)
            return got.status_code == 200 and got.json().get("leader") is not None

        # A polling wait with a generous bound (speed is measured in bench/, not here).
        await eventually(group_formed, timeout=30)


async def test_one_redis_reader_per_process_for_all_streams(
    security_stack: dict[str, ServiceProcess], security_redis_url: str,
) -> None:
    """40 consoles following live streams hold at most one blocking Redis read per process
    (each service's reader), not one connection each."""
    dispatch, notify = security_stack["dispatch"].url, security_stack["notify"].url
    redis = Redis.from_url(security_redis_url, decode_responses=True)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30), limits=limits) as http, \
                contextlib.AsyncExitStack() as held:
            hub_id = await register_hub(http, notify, "共享读取站")
            consoles = await open_streams(http, held, f"{dispatch}/api/v1/stream", [
                bearer(Role.commander, "140400", sub=f"desk-{i}") for i in range(20)])
            desks = await open_streams(http, held, f"{notify}/api/v1/hubs/{hub_id}/stream", [
                bearer(Role.hub, "140400", hub_id=hub_id, sub=f"hub-desk-{i}")
                for i in range(20)])
            assert {a.status_code for a in consoles + desks} == {200}

            async def blocked_readers() -> list[dict[str, object]]:
                clients = await redis.client_list()
                return [c for c in clients if str(c.get("db")) == str(SECURITY_DB)
                        and c.get("cmd") in ("xread", "xreadgroup")]

            readers = await eventually(blocked_readers, timeout=20)
            await asyncio.sleep(1)  # every stream has had time to start reading
            readers = await blocked_readers()
            assert 1 <= len(readers) <= 2, readers
    finally:
        await redis.aclose()
