"""Use cases of notify; dependencies are passed in."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.notify import domain
from services.notify.adapters import (
    DeliveryLedger,
    SubscriberRepository,
    WebhookSender,
    check_webhook_url,
)
from shared import topics
from shared.events import DELIVERY_FAILED, DELIVERY_SENT, CloudEvent, DeliveryReceipt
from shared.kafka import EventPublisher
from shared.report import ReportAccepted
from shared.settings import Settings


@dataclass
class Notify:
    settings: Settings
    subscribers: SubscriberRepository
    ledger: DeliveryLedger
    sender: WebhookSender
    publisher: EventPublisher
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    max_parallel: int = 100

    async def register(self, request: domain.SubscriberRequest) -> domain.Subscriber:
        await check_webhook_url(str(request.channel.url), self.settings.webhook_allow_private)
        subscriber = domain.Subscriber(
            **request.model_dump(),
            subscriber_id=f"S{uuid.uuid4().hex[:16]}",
            secret="whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        )
        await self.subscribers.add(subscriber)
        return subscriber

    async def on_report_accepted(self, event: CloudEvent) -> None:
        """Push the restricted bulletin to every hub inside the radius of the elapsed time."""
        accepted = ReportAccepted.model_validate(event.data)
        seen = accepted.report.last_seen
        now = self.clock()
        radius = domain.radius_km(now - seen.at, self.settings.radius_tiers_km,
                                  self.settings.radius_max_km)
        hubs = await self.subscribers.within(domain.SubscriberKind.hub, seen.lat, seen.lon, radius)
        body = domain.restricted_alert(accepted, version=1, radius=radius, issued_at=now)
        limit = asyncio.Semaphore(self.max_parallel)

        async def deliver(hub: domain.Subscriber) -> None:
            async with limit:
                await self.deliver(hub, body)

        await asyncio.gather(*(deliver(hub) for hub in hubs))

    async def deliver(self, subscriber: domain.Subscriber, body: dict[str, object]) -> None:
        alert_id, version = str(body["alert_id"]), int(str(body["version"]))
        delivery_id = domain.delivery_id(alert_id, version, subscriber.subscriber_id)
        if await self.ledger.state(delivery_id) == "sent":
            return
        await self.ledger.mark(delivery_id, "sending", subscriber_id=subscriber.subscriber_id)
        result = await self.sender.send(str(subscriber.channel.url), subscriber.secret,
                                        delivery_id, body)
        state = "sent" if result.ok else "failed"
        await self.ledger.mark(delivery_id, state, http_status=str(result.status or ""))
        receipt = DeliveryReceipt(
            delivery_id=delivery_id, alert_id=alert_id, case_id=str(body["case_id"]),
            version=version, subscriber_id=subscriber.subscriber_id, scope=str(body["scope"]),
            channel="webhook", status=state, http_status=result.status, error=result.error,
            at=self.clock(),
        )
        await self.publisher.publish(
            topics.DELIVERIES,
            CloudEvent.of(DELIVERY_SENT if result.ok else DELIVERY_FAILED,
                          self.publisher.source, receipt.case_id, receipt,
                          event_id=f"{delivery_id}:{state}"),
        )
