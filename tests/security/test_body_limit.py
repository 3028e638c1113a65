"""Issue 12, "Resources": shared.web.BodySizeLimit as a property. Whatever the chunking, a body
is refused with 413 `body_too_large` exactly when it is over the limit, no chunk is taken from
the client after the one that crossed it, and a declared Content-Length over the limit is
refused before any chunk is taken."""

from __future__ import annotations

import asyncio
import json
from itertools import accumulate
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from shared.web_hardening import BodySizeLimit

LIMIT = 1000


async def reads_everything(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that parses only after reading the whole body (as FastAPI does)."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client gone")
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def call(chunks: list[bytes], declared: int | None) -> tuple[int, dict[str, Any], int]:
    """(status, JSON body or {}, chunks taken from the client)."""
    taken = 0
    sent: list[Message] = []
    headers = [(b"content-length", str(declared).encode())] if declared is not None else []

    async def receive() -> Message:
        nonlocal taken
        taken += 1
        if taken > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[taken - 1],
                "more_body": taken < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/x", "headers": headers}
    asyncio.run(BodySizeLimit(reads_everything, LIMIT)(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body) if status == 413 else {}, taken


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=12),
       declare=st.booleans())
def test_refused_exactly_over_the_limit_and_never_read_past_it(sizes: list[int],
                                                               declare: bool) -> None:
    chunks = [b"x" * n for n in sizes]
    total = sum(sizes)
    status, body, taken = call(chunks, total if declare else None)
    if total <= LIMIT:
        assert (status, taken) == (200, len(chunks))
        return
    assert status == 413
    assert body["error"]["code"] == "body_too_large" and body["error"]["field"] == "body"
    if declare:
        assert taken == 0  # refused on the header alone
    else:  # the chunk that crossed the limit was the last one taken
        assert taken == next(i for i, so_far in enumerate(accumulate(sizes), start=1)
                             if so_far > LIMIT)
