"""Composition root of dispatch: builds the app; nothing connects at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from services.dispatch import consumers, found
from services.dispatch.adapters import CaseRepository
from services.dispatch.amend import build_amend_router
from services.dispatch.api import UI, build_pages, build_retention_router, build_router
from services.dispatch.checks_api import build_checks_router
from services.dispatch.found_api import build_found_router
from services.dispatch.handlers import Dispatch
from services.dispatch.previews import NotifyPreviews
from services.dispatch.roster import load_roster
from services.dispatch.rules import load_rules
from services.dispatch.timers import TIMERS_KEY
from services.dispatch.tips_api import build_tips_router
from services.dispatch.tips_handlers import SightingRules
from shared import asyncapi, metrics, topics
from shared.casekeys import CaseKeys
from shared.faults import RETRYING_NOW
from shared.kafka import EventPublisher, KafkaAccess, client_options, kafka_check, make_broker
from shared.pii import MasterKeys
from shared.settings import Settings
from shared.streams import make_fanout, make_limits
from shared.web import (
    API_DOCS_OFF,
    Authenticator,
    harden,
    install_error_handlers,
    mount_shared_ui,
    ops_router,
    redis_check,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    access = KafkaAccess.from_settings(settings)
    broker = make_broker(settings.kafka_bootstrap, "homeward-dispatch", access)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    publisher = EventPublisher(broker, source="/homeward/dispatch")
    cases = CaseRepository(redis, repeat_s=settings.dispatch_overdue_repeat_s,
                           stream_maxlen=settings.dispatch_stream_maxlen,
                           duplicate_window_h=settings.dispatch_duplicate_window_h,
                           purge_grace_s=settings.purge_grace_s)
    keys = CaseKeys(redis, access, MasterKeys.parse(settings.pii_master_keys))
    # Rules and roster are validated here: a bad file stops the service before it serves.
    dispatch = Dispatch(cases, load_roster(settings.roster_file), publisher,
                        policy=load_rules(settings.dispatch_rules_file),
                        deadline_scale=settings.dispatch_deadline_scale,
                        duplicate_km=settings.dispatch_duplicate_km,
                        identity_secret=settings.identity_secret, keys=keys,
                        sightings=SightingRules(settings.radius_tiers_km, settings.radius_max_km,
                                                settings.notify_tier_unit_s,
                                                settings.dispatch_check_deadline_s))
    consumers.register(broker, dispatch, publisher, settings.dispatch_consumers)
    found_children = found.FoundChildren(dispatch, found.RecordStore(redis),
                                         settings.match_min_score,
                                         settings.match_record_window_days)
    found.register(broker, found_children, publisher)
    asyncapi.declare_publishers(broker, {t: asyncapi.SHARED_PAYLOADS[t] for t in (
        topics.DISPATCH, topics.PROGRESS, topics.dlq(topics.REPORTS), topics.dlq(topics.TIPS),
        topics.dlq(topics.UNIDENTIFIED))})
    previews = NotifyPreviews(settings.notify_url)
    # Live streams read Redis through their own reader, never the consumers' pool (issue 12).
    fanout = make_fanout(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await cases.load_availability(dispatch.roster)
        if await cases.is_empty():
            if settings.dispatch_replay_on_empty:
                # Before consuming: a redelivered report must find the case it opened.
                await dispatch.rebuilder.rebuild(access)
            else:
                await cases.mark_ready()
        await broker.start()
        await fanout.start()
        stop = asyncio.Event()
        timers = asyncio.create_task(
            dispatch.timers.run(settings.dispatch_timer_tick_s, stop),
            name="dispatch-overdue-timers")
        sampling = asyncio.create_task(metrics.sample_forever([metrics.KafkaSampler(
            client_options(access),
            {consumers.GROUP: [topics.REPORTS], consumers.TIPS_GROUP: [topics.TIPS]},
            [topics.dlq(topics.REPORTS), topics.dlq(topics.TIPS)])],
            settings.metrics_sample_s), name="metrics-sampling")
        try:
            yield
        finally:
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
            stop.set()
            done, _ = await asyncio.wait({timers}, timeout=10)
            if not done:
                timers.cancel()
            await fanout.stop()
            await broker.stop()
            await keys.stop()
            await previews.close()
            await redis.aclose()

    app = FastAPI(title="Homeward dispatch service", version="0.2.0", lifespan=lifespan,
                  **API_DOCS_OFF)
    app.state.asyncapi = lambda: asyncapi.document(broker, app.title, app.version)
    install_error_handlers(app)
    harden(app, settings)
    app.include_router(ops_router({
        "kafka": kafka_check(broker), "redis": redis_check(redis),
        # 503 while a consumer or the timers retry a transient fault (Redis OOM, READONLY...)
        "consuming": RETRYING_NOW.check(consumers.GROUP, consumers.TIPS_GROUP, found.GROUP,
                                        TIMERS_KEY)}))
    app.include_router(build_router(Authenticator(settings), cases, dispatch, fanout,
                                    make_limits(settings), previews=previews))
    app.include_router(build_retention_router(Authenticator(settings), cases,
                                              settings.purge_grace_s))
    app.include_router(build_tips_router(Authenticator(settings), cases,
                                         settings.dispatch_tip_park_s))
    app.include_router(build_checks_router(Authenticator(settings), cases, dispatch.tips))
    app.include_router(build_found_router(Authenticator(settings), found_children))
    app.include_router(build_amend_router(Authenticator(settings), dispatch))
    app.include_router(build_pages(settings))
    app.mount("/static/dispatch", StaticFiles(directory=UI), name="dispatch-static")
    mount_shared_ui(app, settings)
    return app
