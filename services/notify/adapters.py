"""Redis (subscribers and their geo index, the delivery ledger) and HTTP (signed webhooks)."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from redis.asyncio import Redis
from standardwebhooks import Webhook

from services.notify.domain import Subscriber, SubscriberKind, is_public_address


class SubscriberRepository:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, subscriber: Subscriber) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"notify:sub:{subscriber.subscriber_id}", subscriber.model_dump_json())
            pipe.geoadd(f"notify:geo:{subscriber.kind.value}",
                        (subscriber.location.lon, subscriber.location.lat,
                         subscriber.subscriber_id))
            await pipe.execute()

    async def get(self, subscriber_id: str) -> Subscriber | None:
        raw = await self.redis.get(f"notify:sub:{subscriber_id}")
        return Subscriber.model_validate_json(raw) if raw else None

    async def within(
        self, kind: SubscriberKind, lat: float, lon: float, radius_km: float
    ) -> list[Subscriber]:
        ids = await self.redis.geosearch(f"notify:geo:{kind.value}", longitude=lon, latitude=lat,
                                         radius=radius_km, unit="km")
        if not ids:
            return []
        raws = await self.redis.mget([f"notify:sub:{i!s}" for i in ids])
        subs = [Subscriber.model_validate_json(r) for r in raws if r]
        return [s for s in subs if s.active]


class DeliveryLedger:
    """One delivery per (alert version, recipient): `sending` is written before the request and
    `sent` after it; a redelivered message skips what is `sent` and resends what was left
    `sending` with the same webhook-id, so a receiver can drop the duplicate."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def state(self, delivery_id: str) -> str | None:
        raw = await self.redis.hget(f"notify:delivery:{delivery_id}", "state")
        return str(raw) if raw is not None else None

    async def mark(self, delivery_id: str, state: str, **fields: str) -> None:
        mapping: dict[str | bytes, str] = {"state": state, "at": datetime.now(UTC).isoformat()}
        mapping.update(fields)
        await self.redis.hset(f"notify:delivery:{delivery_id}", mapping=mapping)  # type: ignore[arg-type]


class UnsafeUrl(ValueError):
    pass


async def check_webhook_url(url: str, allow_private: bool) -> None:
    """SSRF guard: refuse URLs whose host resolves to a non-public address."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UnsafeUrl("only http(s) URLs with a host are accepted")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, port,
                                                             type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"host {parts.hostname} does not resolve") from exc
    for info in infos:
        address = str(info[4][0])
        if not is_public_address(address):
            raise UnsafeUrl(f"host {parts.hostname} resolves to non-public address {address}")


@dataclass
class SendResult:
    ok: bool
    status: int | None
    error: str = ""


class WebhookSender:
    """POSTs a JSON body signed per Standard Webhooks (webhook-id/-timestamp/-signature)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(
        self, url: str, secret: str, webhook_id: str, body: dict[str, object]
    ) -> SendResult:
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(webhook_id, now, payload),
        }
        try:
            response = await self.client.post(url, content=payload.encode(), headers=headers)
        except httpx.HTTPError as exc:
            return SendResult(False, None, f"{type(exc).__name__}: {exc}")
        return SendResult(200 <= response.status_code < 300, response.status_code)
