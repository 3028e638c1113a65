"""Composition root of the alert service: builds the app; nothing connects at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from services.alert.adapters import ReportStatusStore
from services.alert.api import build_router
from services.alert.handlers import Intake
from shared.kafka import EventPublisher, kafka_check, make_broker
from shared.settings import Settings
from shared.web import Authenticator, install_error_handlers, ops_router, redis_check


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    broker = make_broker(settings.kafka_bootstrap, "homeward-alert")
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    publisher = EventPublisher(broker, source="/homeward/alert")
    statuses = ReportStatusStore(redis)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await redis.aclose()

    app = FastAPI(title="Homeward alert service", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(ops_router({"kafka": kafka_check(broker), "redis": redis_check(redis)}))
    app.include_router(build_router(Authenticator(settings), Intake(publisher, statuses), statuses))
    return app
