"""Subscribers' use cases: register, rotate a secret, take out of service and back, disable
(a 410); rebuild and reseal from the
compacted subscriber log (homeward.subscribers.v1, written before Redis, sealed)."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from services.notify import audience
from services.notify.audience import Subscriber, SubscriberKind
from services.notify.context import Context
from services.notify.errors import Conflict, Forbidden, NotFound
from services.notify.logs import SubscriberLog
from services.notify.outbound import WebhookSender
from services.notify.sending import ACKS, RETRIES
from services.notify.subscribers import new_secret, newest, region_of, registered
from shared import topics
from shared.regions import within

log = logging.getLogger(__name__)


@dataclass
class Registry:
    ctx: Context
    webhooks: WebhookSender

    async def register(self, request: audience.SubscriberRequest,
                       within_region: str = "000000") -> Subscriber:
        """A new subscriber with a new signing secret (returned once, by the caller). Raises
        UnsafeUrl (channel.url), ValueError (no region for the location),
        LocationOutsideRegion (the location lies outside the region given), Forbidden (its
        region is outside `within_region`, the registering admin's), Conflict (a hub with that
        hub_id exists: registering never returns an existing secret nor repoints a channel)."""
        if request.region_code and not within(within_region, request.region_code):
            raise Forbidden(message=request.region_code)  # before the location is looked at
        subscriber = registered(request)
        if not within(within_region, subscriber.region_code or ""):
            raise Forbidden(message=subscriber.region_code or "")
        await self._check(request.channel)
        # A hub's id is the one in its staff's tokens.
        hub_id = request.hub_id if request.kind == SubscriberKind.hub else None
        subscriber.subscriber_id = hub_id or f"S{uuid.uuid4().hex[:16]}"
        async with self.ctx.subscribers.changing(subscriber.subscriber_id):
            if hub_id and await self.ctx.subscribers.get(subscriber.subscriber_id) is not None:
                raise Conflict(message=subscriber.subscriber_id)
            await self._write(subscriber)
        return subscriber

    async def rotate_secret(self, subscriber_id: str, within_region: str) -> str:
        """A new signing secret for the subscriber (returned once); the old one keeps signing
        for `notify_secret_overlap_s`. NotFound also when it lies outside `within_region`."""
        ctx = self.ctx
        async with self._administering(subscriber_id, within_region) as sub:
            secret = new_secret()
            await self._write(sub.rotated(secret, ctx.clock(),
                                          timedelta(seconds=ctx.settings.notify_secret_overlap_s)))
        return secret

    async def set_active(self, subscriber_id: str, active: bool, within_region: str,
                         actor: str = "") -> Subscriber:
        """An admin (`actor`) takes a subscriber out of service (a station closed, a channel
        retired: `active` False) or puts it back. Out of service, it is selected for no alert,
        each of its deliveries still retrying is made due at once and so dropped
        (`subscriber disabled`), and its ack deadlines are withdrawn: a hub's push of an
        active alert never goes dead (issue 18 §4), so without this a closed station would be
        retried for as long as the child is missing. A Cancel still clears its console (the
        delivery worker). Back in service, it is selected again for what is planned from then
        on (an alert already out reaches it with its next version to everyone). Idempotent;
        logged before Redis. Raises NotFound when unknown, a case-group member (their
        membership is dispatch's) or outside `within_region`."""
        async with self._administering(subscriber_id, within_region) as sub:
            changed = sub.active != active
            if changed:
                sub.active = active
                await self._write(sub)
        if changed:
            log.warning("subscriber %s (%s, %s) %s by %s", sub.subscriber_id, sub.kind.value,
                        sub.name, "put back in service" if active else "taken out of service",
                        actor or "?")
        if not active:
            await self._retire_pending(subscriber_id)
        return sub

    async def set_channel(self, subscriber_id: str, channel: audience.Channel,
                          within_region: str, actor: str = "") -> Subscriber:
        """An admin (`actor`) repoints a subscriber's channel: a station's receiver moved, a
        chat group replaced. The URL is checked as at registration; the change is logged
        (sealed) before Redis and the admin named in the log (the URL is not: it may hold a
        chat token). Its deliveries still retrying are made due at once, so a hub waiting
        on an alert gets it at its new address now rather than at its next backoff. Whether
        it is in service does not change (one a 410 took out stays out until enabled). Raises
        UnsafeUrl (channel.url), NotFound as `set_active`."""
        await self._check(channel)
        async with self._administering(subscriber_id, within_region) as sub:
            before = sub.channel.type
            sub = sub.model_copy(update={"channel": channel})
            await self._write(sub)
        log.warning("subscriber %s (%s, %s) channel repointed (%s -> %s) by %s",
                    sub.subscriber_id, sub.kind.value, sub.name, before, channel.type,
                    actor or "?")
        if sub.active:
            await self._retry_now(subscriber_id)
        return sub

    async def _check(self, channel: audience.Channel) -> None:
        """UnsafeUrl unless the channel's URL may be reached (services.notify.outbound)."""
        if isinstance(channel, audience.WebhookChannel | audience.AppriseChannel):
            await self.webhooks.policy.check(str(channel.url),
                                             apprise=isinstance(channel, audience.AppriseChannel))

    @contextlib.asynccontextmanager
    async def _administering(self, subscriber_id: str,
                             within_region: str) -> AsyncIterator[Subscriber]:
        """Under the subscriber's lock (SubscriberRepository.changing), the subscriber an
        admin of `within_region` may change. NotFound when unknown, a case-group member (their
        membership is dispatch's) or outside the region."""
        subs = self.ctx.subscribers
        async with subs.changing(subscriber_id):
            sub = await subs.get(subscriber_id)
            if (sub is None or sub.kind == SubscriberKind.member
                    or not within(within_region, sub.region_code or "")):
                raise NotFound(message=subscriber_id)
            yield sub

    async def _retire_pending(self, subscriber_id: str) -> None:
        """The subscriber's retries due now (the worker drops them: it is out of service) and
        its ack deadlines withdrawn (no one is there to acknowledge)."""
        await self._retry_now(subscriber_id)
        await self.ctx.timers.unschedule(ACKS, *await self._waiting(ACKS, subscriber_id))

    async def _retry_now(self, subscriber_id: str) -> None:
        """The subscriber's deliveries still retrying, made due at once."""
        now = time.time()
        for did in await self._waiting(RETRIES, subscriber_id):
            await self.ctx.timers.schedule(RETRIES, did, now)

    async def _waiting(self, timer: str, subscriber_id: str) -> list[str]:
        """The deliveries to `subscriber_id` that `timer` holds."""
        members = await self.ctx.timers.members(timer)
        records = await self.ctx.ledger.get_many(members)
        return [m for m, r in zip(members, records, strict=True)
                if r.get("subscriber_id") == subscriber_id]

    async def log(self, subscriber: Subscriber) -> None:
        """The system of record first: the compacted subscriber log, keyed by id (sealed)."""
        subs = self.ctx.subscribers
        await self.ctx.publisher.broker.publish(subs.seal.dumps(subscriber).encode(),
                                                topics.SUBSCRIBERS,
                                                key=subscriber.subscriber_id.encode())

    async def _write(self, subscriber: Subscriber) -> None:
        """A change made under `subscribers.changing`: its revision raised, logged, then
        written to Redis."""
        subscriber.revision += 1
        await self.log(subscriber)
        await self.ctx.subscribers.add(subscriber)

    async def disable(self, subscriber_id: str) -> None:
        """Out of service after its endpoint answered 410 Gone (services.notify.sending)."""
        async with self.ctx.subscribers.changing(subscriber_id):
            subscriber = await self.ctx.subscribers.get(subscriber_id)
            if subscriber is not None and subscriber.active:
                subscriber.active = False
                await self._write(subscriber)

    async def rebuild(self, log: SubscriberLog) -> int:
        """Redis lost its subscribers: put back the latest record of each from the log. A
        copy Redis holds with a higher revision (a change another instance wrote since the
        log was read, under its lock) is kept: `newest`, the re-seal's rule, without taking a
        lock per subscriber (an optimistic transaction per batch of 5,000)."""
        subscribers = await log.read_all(self.ctx.subscribers.seal)
        for start in range(0, len(subscribers), 5000):
            await self.ctx.subscribers.restore_many(subscribers[start:start + 5000], newest)
        return len(subscribers)

    async def reseal(self, log: SubscriberLog) -> int:
        """Every subscriber written again, sealed with the first key: after a new key was put
        first (key rotation), or for records from before sealing (which also get the region
        of their location when they had none)."""
        subs = self.ctx.subscribers
        logged = await log.read_all(subs.seal)
        for from_log in logged:
            async with subs.changing(from_log.subscriber_id):
                # A change written since the log was read is kept; a stale Redis is not.
                subscriber = newest(from_log, await subs.readable(from_log.subscriber_id))
                if subscriber.region_code is None:
                    subscriber.region_code = region_of(subscriber.location.lat,
                                                       subscriber.location.lon)
                await self._write(subscriber)
        return len(logged)
