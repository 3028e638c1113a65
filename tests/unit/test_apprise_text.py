"""Chat pushes are plain text (services/notify/outbound.py AppriseSender): a plugin that sends
markup escapes what the push says. Telegram posts with parse_mode HTML and answers 400 to
markup that does not parse, so "身高<120cm" or "A&B" in a description would lose the push."""

from __future__ import annotations

import asyncio
import json
import socket
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from services.notify.content import fit_bytes
from services.notify.outbound import AppriseSender, OutboundPolicy


class _Public(AbstractResolver):
    """api.telegram.org -> one of its public addresses, without a network."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="149.154.167.220", port=port, family=family,
                              proto=0, flags=0)]

    async def close(self) -> None:
        return None


def _send(url: str, text: str, answer: bytes) -> tuple[bool, dict[str, Any]]:
    """AppriseSender.send of `text` to `url` (the host resolved to a public address, the
    service's HTTP answer `answer`): whether it counted as sent, and the JSON it posted."""
    scheme = url.split(":", 1)[0]
    policy = OutboundPolicy(apprise_schemes=frozenset({scheme}), resolver=_Public())
    sender = AppriseSender(SimpleNamespace(policy=policy))  # type: ignore[arg-type]
    sent: dict[str, Any] = {}

    class Answer:
        status_code = 200
        content = answer

    def post(_url: str, data: Any = None, **_: Any) -> Answer:
        sent.update(json.loads(data))
        return Answer()

    with mock.patch("requests.post", post):
        result = asyncio.run(sender.send(url, "儿童失踪协查", text))
    return result.ok, sent


# Text shaped like Telegram's own tags (<b>…</b>) is rebuilt by Apprise's plugin into balanced
# HTML, which Telegram accepts; what is checked here is what would break the markup.
@pytest.mark.parametrize("text", ["身高<120cm，穿A&B牌外套", "1 < 2 > 0", "A&B & C<D", "<<<", "&",
                                  "车牌晋D·12345 & 晋K<5678>"])
def test_a_telegram_push_carries_the_text_as_written(text: str) -> None:
    ok, sent = _send("tgram://123456789:AABBCCDDEEFFGGHHIIJJKKLLMMNNOOPPQQR/12345", text,
                     b'{"ok": true}')
    assert ok
    assert sent["parse_mode"] == "HTML"
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert sent["text"].endswith(escaped)


TAIL = " 核验码：ZB45W-6VVCV，真伪核验：https://v.example.cn/verify?code=ZB45W6VVCV 详见：https://n/a/1"


@given(st.text(min_size=0, max_size=1200), st.integers(200, 3000))
def test_a_text_fits_its_bytes_and_keeps_its_code_and_links(head: str, max_bytes: int) -> None:
    text = "【儿童失踪协查】" + head + TAIL
    fitted = fit_bytes(text, max_bytes)
    assert len(fitted.encode()) <= max_bytes
    assert fitted.endswith(TAIL)
    if fitted != text:
        kept = fitted[: -len(TAIL)]
        assert kept.endswith("…") and text.startswith(kept[:-1])


@given(st.text(max_size=1500), st.sampled_from([" 核验码：", " 详见：", ""]),
       st.text(max_size=1500), st.integers(3, 3000))
def test_a_text_never_exceeds_its_bytes_whatever_it_says(before: str, mark: str, after: str,
                                                          max_bytes: int) -> None:
    """A sighting's push has no code or links at its end, and its words may hold a mark."""
    assert len(fit_bytes(before + mark + after, max_bytes).encode()) <= max_bytes


def test_a_wecom_push_stays_within_its_2048_bytes() -> None:
    text = "【儿童失踪协查】张小明，男7岁，115cm。" + "穿蓝色羽绒服" * 160 + TAIL  # ~1,000 chars
    ok, sent = _send("wecombot://abcdef0123456789", text, b'{"errcode": 0, "errmsg": "ok"}')
    assert ok
    content = sent["text"]["content"]
    assert len(content.encode()) <= 2048 and content.endswith(TAIL)
