"""Composition root of notify: builds the app; nothing connects at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from services.notify import consumers
from services.notify.adapters import DeliveryLedger, SubscriberRepository, WebhookSender
from services.notify.api import build_router
from services.notify.handlers import Notify
from shared.kafka import EventPublisher, kafka_check, make_broker
from shared.settings import Settings
from shared.web import Authenticator, install_error_handlers, ops_router, redis_check


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    broker = make_broker(settings.kafka_bootstrap, "homeward-notify")
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    publisher = EventPublisher(broker, source="/homeward/notify")
    client = httpx.AsyncClient(
        timeout=settings.webhook_timeout_s, follow_redirects=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
    )
    notify = Notify(settings, SubscriberRepository(redis), DeliveryLedger(redis),
                    WebhookSender(client), publisher)
    consumers.register(broker, notify, publisher)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await client.aclose()
            await redis.aclose()

    app = FastAPI(title="Homeward notify service", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(ops_router({"kafka": kafka_check(broker), "redis": redis_check(redis)}))
    app.include_router(build_router(Authenticator(settings), notify))
    return app
