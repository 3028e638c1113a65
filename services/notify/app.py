"""Composition root of notify: builds the app; nothing connects at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from services.notify import consumers
from services.notify.adapters import AlertRepository, HubFeed, SubscriberRepository, make_redis
from services.notify.api import UI, build_router, build_ui_router
from services.notify.audience import Subscriber
from services.notify.context import Context
from services.notify.domain import AlertState
from services.notify.handlers import ACKS, RETRIES, TIMERS_KEY, Notify
from services.notify.keystore import load_keyring
from services.notify.lanes import InlineLanes, KafkaLanes, Lanes
from services.notify.ledger import DeliveryLedger
from services.notify.logs import CompactedLog
from services.notify.outbound import AppriseSender, OutboundPolicy, WebhookSender
from services.notify.public_api import build_public_router
from services.notify.sealing import SubscriberSeal
from services.notify.signing import Keyring
from services.notify.timer_store import DurableTimers
from shared import asyncapi, metrics, topics
from shared.casekeys import CaseKeys
from shared.faults import RETRYING_NOW
from shared.kafka import (
    EventPublisher,
    KafkaAccess,
    client_options,
    ensure_topics,
    kafka_check,
    make_broker,
)
from shared.kafka_acl import JOB_GROUPS
from shared.pii import MasterKeys
from shared.settings import Settings
from shared.streams import make_fanout, make_limits
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
# notify's compacted logs, keyed by record id (AsyncAPI payloads; push bodies of ALERTS too).
OWN_LOGS: dict[str, asyncapi.Payloads] = {topics.SUBSCRIBERS: (Subscriber,),
                                          topics.ALERTS: (AlertState,)}


def make_notify_broker(bootstrap: str, access: KafkaAccess | None = None) -> KafkaBroker:
    """shared.kafka.make_broker's producer (idempotent, acks=all) with room to batch: a fan-out
    publishes a receipt per delivery, thousands at once, and 16 KB batches with one request in
    flight would make them wait on each other."""
    return make_broker(bootstrap, "homeward-notify", access, max_batch_size=512 * 1024,
                       linger_ms=2)


def build_notify(settings: Settings, redis: Redis, publisher: EventPublisher,
                 keyring: Keyring | None = None, lanes: Lanes | None = None) -> Notify:
    """`keyring`: the issuer's signing keys (services.notify.keystore.load_keyring); `lanes`:
    where the planner's jobs go (default: this process's worker, InlineLanes). Raises
    ValueError on an outbound policy, a case-group gateway URL or subscriber keys it cannot
    use."""
    policy = OutboundPolicy.from_settings(settings)
    if settings.notify_group_apprise_url:
        # Its scheme and form now; its host's addresses at every send.
        policy.target(settings.notify_group_apprise_url.replace("{phone}", "%2B8613800000000"),
                      apprise=True)
    webhooks = WebhookSender(settings.webhook_timeout_s, settings.notify_per_endpoint_limit,
                             policy=policy,
                             signer=keyring.sign_body if keyring is not None else None)
    ctx = Context(
        settings, SubscriberRepository(redis, SubscriberSeal.from_settings(settings)),
        AlertRepository(redis), DeliveryLedger(redis), DurableTimers(redis), HubFeed(redis),
        publisher,
        keys=CaseKeys(redis, KafkaAccess.from_settings(settings),
                      MasterKeys.parse(settings.pii_master_keys)),
    )
    return Notify(ctx, webhooks, AppriseSender(webhooks), lanes or InlineLanes(),
                  keyring=keyring)


def create_app(settings: Settings | None = None, timers: bool = True,
               consume: bool = True) -> FastAPI:
    """`timers` and `consume` off: tests drive the handlers themselves (the planner's jobs are
    then worked in process, InlineLanes); on: the planner publishes them to the delivery-jobs
    topics and this process's delivery workers consume both lanes."""
    settings = settings or Settings()
    access = KafkaAccess.from_settings(settings)
    broker = make_notify_broker(settings.kafka_bootstrap, access)
    redis = make_redis(settings.redis_url)
    publisher = EventPublisher(broker, source="/homeward/notify")
    notify = build_notify(settings, redis, publisher, load_keyring(settings),
                          KafkaLanes(publisher) if consume else None)
    # Hub consoles follow their feeds through one reader of their own (issue 12).
    fanout = make_fanout(settings)
    workers = (consumers.register(broker, notify, publisher, access, settings.notify_planner,
                                  settings.notify_lanes) if consume else [])
    asyncapi.declare_publishers(broker, {
        **{t: asyncapi.SHARED_PAYLOADS[t] for t in (
            topics.DELIVERIES, topics.DELIVERIES_DLQ, topics.dlq(topics.REPORTS),
            topics.dlq(topics.DISPATCH), *topics.JOB_TOPICS,
            *(topics.dlq(t) for t in topics.JOB_TOPICS))},
        **OWN_LOGS})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for topic in (topics.SUBSCRIBERS, topics.ALERTS):
            await CompactedLog(access, topic).ensure_topic(
                settings.kafka_replication_factor, settings.kafka_min_insync_replicas)
        if consume:  # the lanes, declared in shared.topic_policy (`make up` creates them too)
            await ensure_topics(access, settings.kafka_replication_factor,
                                settings.kafka_min_insync_replicas,
                                names=[*topics.JOB_TOPICS,
                                       *(topics.dlq(t) for t in topics.JOB_TOPICS)],
                                reconfigure=False)
        if not await notify.alerts.is_ready():
            if settings.notify_rebuild_on_empty:
                # Before consuming: a redelivered message must find what it did the first time.
                log.warning("notify rebuilt from the topics: %s",
                            await notify.rebuild(access))
            else:
                await notify.alerts.mark_ready()
        await broker.start()
        for lane in workers:
            await lane.start()
        await fanout.start()
        worker = asyncio.create_task(notify.run_timers()) if timers else None
        sampling = asyncio.create_task(metrics.sample_forever([
            metrics.timers_sample(lambda: notify.ctx.timers.count(RETRIES),
                                  # an ack timer is due when its deadline has passed
                                  lambda: notify.ctx.timers.count(ACKS, time.time())),
            metrics.KafkaSampler(client_options(access),
                                 {consumers.GROUP: [topics.REPORTS, topics.DISPATCH]},
                                 [topics.dlq(topics.REPORTS), topics.dlq(topics.DISPATCH),
                                  topics.DELIVERIES_DLQ]),
        ], settings.metrics_sample_s), name="metrics-sampling")
        try:
            yield
        finally:
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            for lane in workers:
                await lane.stop()
            await fanout.stop()
            await broker.stop()
            await notify.webhooks.close()
            if notify.keys is not None:
                await notify.keys.stop()
            await redis.aclose()

    app = FastAPI(title="Homeward notify service", version="0.2.0", lifespan=lifespan,
                  **API_DOCS_OFF)
    app.state.notify = notify
    app.state.asyncapi = lambda: asyncapi.document(  # the lanes are read by batch consumers
        broker, app.title, app.version, OWN_LOGS,
        receives={t: JOB_GROUPS[t] for t in topics.JOB_TOPICS})
    app.state.lanes = workers  # the delivery workers' consumers, one per lane
    install_error_handlers(app)
    harden(app, settings)
    allow_consoles(app, settings.dispatch_url, settings.alert_url)
    app.include_router(ops_router({
        "kafka": kafka_check(broker), "redis": redis_check(redis),
        # 503 while a consumer or the timers retry a transient fault (Redis OOM, READONLY...)
        "consuming": RETRYING_NOW.check(consumers.GROUP, TIMERS_KEY)}))
    app.include_router(build_router(Authenticator(settings), notify, settings, fanout,
                                    make_limits(settings)))
    app.include_router(build_ui_router(settings))
    app.include_router(build_public_router(notify, settings))
    mount_shared_ui(app, settings)
    app.mount("/static/notify", StaticFiles(directory=UI), name="notify-static")
    return app
