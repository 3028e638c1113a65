"""Composition root of the alert service: builds the app; nothing connects at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from services.alert import consumers
from services.alert.adapters.limiter import RateLimiter
from services.alert.adapters.outbox import Outbox
from services.alert.adapters.photos import PhotoStore
from services.alert.adapters.progress import ProgressStore
from services.alert.adapters.relay import Relay
from services.alert.adapters.relay_wake import RelayWake
from services.alert.amend import ReportAmendments, build_amend_router
from services.alert.api import MAX_PHOTO_BYTES, UI, build_pages, build_router
from services.alert.duties import Duties, held
from services.alert.handlers import Intake, Progress, TipLimits
from services.alert.retention import OutboxRetention, PhotoAccess
from services.alert.unidentified import (
    UnidentifiedIntake,
    build_unidentified_page,
    build_unidentified_router,
)
from shared import asyncapi, metrics, topics
from shared.boundaries import boundary_index
from shared.casekeys import CaseKeys
from shared.faults import RETRYING_NOW
from shared.kafka import EventPublisher, KafkaAccess, client_options, keep_starting, make_broker
from shared.pii import MasterKeys
from shared.regions import region_index
from shared.serve import OpsServer
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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    redis = Redis.from_url(settings.redis_url, decode_responses=True,
                           socket_connect_timeout=2, socket_timeout=2)
    outbox = Outbox(settings.data_dir / "alert-outbox.sqlite3")
    kafka_access = KafkaAccess.from_settings(settings)
    relay = Relay(outbox, kafka_access, idle_s=settings.alert_relay_poll_s
                  if settings.alert_shared_outbox else 1.0)
    # Several workers: each commit wakes the relay wherever it runs (adapters.relay_wake).
    wake = RelayWake(settings.data_dir, outbox.new_rows) if settings.alert_shared_outbox \
        else None
    if wake is not None:
        outbox.after_commit(wake.ring)
    broker = make_broker(settings.kafka_bootstrap, "homeward-alert", kafka_access)
    progress = ProgressStore(redis)
    keys = CaseKeys(redis, kafka_access, MasterKeys.parse(settings.pii_master_keys))
    photos = PhotoStore(settings.data_dir / "photos")
    access = PhotoAccess(redis, photos)
    retention = OutboxRetention(outbox, settings.outbox_published_grace_s)
    consumers.register(broker, Progress(progress), EventPublisher(broker, "/homeward/alert"),
                       [access.on_case_event, retention.on_case_event, keys.on_case_event])
    # What the outbox relay publishes, and the DLQs of what it consumes (issue 15: AsyncAPI).
    asyncapi.declare_publishers(broker, {t: asyncapi.SHARED_PAYLOADS[t] for t in (
        topics.REPORTS, topics.TIPS, topics.CASE_KEYS, topics.UNIDENTIFIED,
        topics.dlq(topics.PROGRESS),
        topics.dlq(topics.DELIVERIES))})
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

    background: list[asyncio.Task[None]] = []
    ops_server: list[OpsServer] = []

    async def start_duties() -> None:
        """The relay, the progress consumer, pruning and sampling (in one worker only when
        several share the outbox, with the ops port: services.alert.duties)."""
        if settings.alert_shared_outbox:
            ops_server.append(await OpsServer.start(app, settings, "alert"))
        background.append(asyncio.create_task(keep_starting(broker), name="progress-consumer"))
        background.append(asyncio.create_task(prune_outbox(retention), name="outbox-pruning"))
        if settings.alert_relay_enabled:
            if wake is not None:
                wake.listen()
            background.append(asyncio.create_task(relay.run(), name="outbox-relay"))
        background.append(asyncio.create_task(metrics.sample_forever([
            metrics.outbox_sample(outbox.backlog),
            metrics.KafkaSampler(client_options(kafka_access),
                                 {consumers.GROUP: [topics.PROGRESS, topics.DELIVERIES]},
                                 [topics.dlq(topics.PROGRESS), topics.dlq(topics.DELIVERIES)]),
        ], settings.metrics_sample_s), name="metrics-sampling"))

    async def stop_duties() -> None:
        if settings.alert_relay_enabled and background:
            await relay.drain(timeout_s=5)  # a rolling restart leaves no backlog behind
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        background.clear()
        if wake is not None:
            wake.stop_listening()
        await relay.stop()
        await broker.stop()
        for server in ops_server:
            await server.stop()
        ops_server.clear()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await outbox.start()
        await asyncio.to_thread(boundary_index)  # ~1.5 s once per process, not on a report
        elected = None
        if settings.alert_shared_outbox:
            elected = asyncio.create_task(duties.run(), name="alert-duties")
        else:
            await start_duties()
        try:
            yield
        finally:
            if elected is not None:
                elected.cancel()
                await asyncio.gather(elected, return_exceptions=True)
            else:
                await stop_duties()
            await keys.stop()
            await outbox.stop()
            if wake is not None:
                wake.close()
            await redis.aclose()

    duties = Duties(settings.data_dir / "alert-duties.lock", start_duties, stop_duties)

    async def outbox_ready() -> bool:
        """Ready while reports can be made durable; Kafka being away only grows the backlog."""
        await outbox.backlog()  # raises when the outbox cannot be read
        return True

    app = FastAPI(title="Homeward alert service", version="0.2.0", lifespan=lifespan,
                  **API_DOCS_OFF)
    app.state.asyncapi = lambda: asyncapi.document(broker, app.title, app.version)
    install_error_handlers(app)
    harden(app, settings, {"/api/v1/photos": MAX_PHOTO_BYTES})
    app.include_router(ops_router(
        {"outbox": outbox_ready},
        informational={"kafka": relay.kafka_ok, "redis": redis_check(redis),
                       # several workers: one of them holds the relay (services.alert.duties)
                       **({"relay": duties_held(duties)} if settings.alert_shared_outbox
                          else {}),
                       # the progress consumer retrying a transient fault (shown, not failing)
                       "consuming": RETRYING_NOW.check(consumers.GROUP)},
        details=outbox_details(outbox),
    ))
    auth = Authenticator(settings)
    app.include_router(build_router(auth, intake, region_index(), photos, settings.alert_url,
                                    access, settings.trusted_proxies))
    app.include_router(build_pages(photos, auth, access))
    app.include_router(build_unidentified_router(auth, UnidentifiedIntake(intake)))
    app.include_router(build_amend_router(auth, ReportAmendments(intake)))
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


def duties_held(duties: Duties) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return duties.holding or held(duties.path)

    return check


def outbox_details(outbox: Outbox) -> Callable[[], Awaitable[dict[str, object]]]:
    async def details() -> dict[str, object]:
        count, age = await outbox.backlog()
        return {"backlog": count, "oldest_unpublished_s": round(age, 1)}

    return details
