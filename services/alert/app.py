"""Composition root of the alert service: builds the app; nothing connects at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import Gauge
from redis.asyncio import Redis

from services.alert import consumers
from services.alert.adapters import Outbox, PhotoStore, ProgressStore, RateLimiter, Relay
from services.alert.api import MAX_PHOTO_BYTES, UI, build_pages, build_router
from services.alert.handlers import Intake, Progress, TipLimits
from services.alert.retention import OutboxRetention, PhotoAccess
from services.alert.unidentified import (
    UnidentifiedIntake,
    build_unidentified_page,
    build_unidentified_router,
)
from shared.boundaries import boundary_index
from shared.casekeys import CaseKeys
from shared.faults import RETRYING_NOW
from shared.kafka import EventPublisher, KafkaAccess, keep_starting, make_broker
from shared.pii import MasterKeys
from shared.regions import region_index
from shared.settings import Settings
from shared.web import (
    API_DOCS_OFF,
    Authenticator,
    allow_consoles,
    harden,
    install_error_handlers,
    mount_shared_ui,
    ops_router,
    redis_check,
)

log = logging.getLogger(__name__)
BACKLOG = Gauge("homeward_alert_outbox_backlog", "outbox rows not yet published to Kafka")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    redis = Redis.from_url(settings.redis_url, decode_responses=True,
                           socket_connect_timeout=2, socket_timeout=2)
    outbox = Outbox(settings.data_dir / "alert-outbox.sqlite3")
    kafka_access = KafkaAccess.from_settings(settings)
    relay = Relay(outbox, kafka_access)
    broker = make_broker(settings.kafka_bootstrap, "homeward-alert", kafka_access)
    progress = ProgressStore(redis)
    keys = CaseKeys(redis, kafka_access, MasterKeys.parse(settings.pii_master_keys))
    photos = PhotoStore(settings.data_dir / "photos")
    access = PhotoAccess(redis, photos)
    retention = OutboxRetention(outbox, settings.outbox_published_grace_s)
    consumers.register(broker, Progress(progress), EventPublisher(broker, "/homeward/alert"),
                       [access.on_case_event, retention.on_case_event])
    intake = Intake(
        outbox, RateLimiter(redis, "alert:tips"),
        TipLimits(settings.tip_limit_per_client, settings.tip_limit_per_case,
                  settings.tip_window_s, settings.tip_limit_per_case_client,
                  settings.tip_cap_per_case),
        regions=region_index(),
        progress=progress,
        keys=keys,
        photos=access,
        public_url=settings.alert_url,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await outbox.start()
        await asyncio.to_thread(boundary_index)  # ~1.5 s once per process, not on a report
        follow = asyncio.create_task(keep_starting(broker), name="progress-consumer")
        pruning = asyncio.create_task(prune_outbox(retention), name="outbox-pruning")
        relay_task = None
        if settings.alert_relay_enabled:
            relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        try:
            yield
        finally:
            if relay_task is not None:
                await relay.drain(timeout_s=5)  # a rolling restart leaves no backlog behind
                relay_task.cancel()
                await asyncio.gather(relay_task, return_exceptions=True)
            await relay.stop()
            await keys.stop()
            follow.cancel()
            pruning.cancel()
            await asyncio.gather(follow, pruning, return_exceptions=True)
            await broker.stop()
            await outbox.stop()
            await redis.aclose()

    async def outbox_ready() -> bool:
        """Ready while reports can be made durable; Kafka being away only grows the backlog."""
        count, _ = await outbox.backlog()
        BACKLOG.set(count)
        return True

    app = FastAPI(title="Homeward alert service", version="0.2.0", lifespan=lifespan,
                  **API_DOCS_OFF)
    install_error_handlers(app)
    harden(app, settings, {"/api/v1/photos": MAX_PHOTO_BYTES})
    app.include_router(ops_router(
        {"outbox": outbox_ready},
        informational={"kafka": relay.kafka_ok, "redis": redis_check(redis),
                       # the progress consumer retrying a transient fault (shown, not failing)
                       "consuming": RETRYING_NOW.check(consumers.GROUP)},
        details=outbox_details(outbox),
    ))
    auth = Authenticator(settings)
    app.include_router(build_router(auth, intake, region_index(), photos, settings.alert_url,
                                    access, settings.trusted_proxies))
    app.include_router(build_pages(photos, auth, access))
    app.include_router(build_unidentified_router(auth, UnidentifiedIntake(intake)))
    app.include_router(build_unidentified_page(UI))
    app.mount("/static/alert", StaticFiles(directory=UI), name="alert-static")
    mount_shared_ui(app, settings)
    allow_consoles(app, settings.notify_url)  # the hub console files sightings as tips
    return app


async def prune_outbox(retention: OutboxRetention) -> None:
    """Delete published outbox rows past their grace, every minute (or grace, if shorter)."""
    while True:
        try:
            await retention.prune()
        except Exception:
            log.exception("outbox pruning failed; retrying")
        await asyncio.sleep(max(0.5, min(60.0, retention.grace_s / 2)))


def outbox_details(outbox: Outbox) -> Callable[[], Awaitable[dict[str, object]]]:
    async def details() -> dict[str, object]:
        count, age = await outbox.backlog()
        return {"backlog": count, "oldest_unpublished_s": round(age, 1)}

    return details
