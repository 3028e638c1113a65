"""One try of a delivery and what follows from it (issue 18 §2, §4): the request over the
recipient's channel (a signed webhook, Apprise, or the hub console alone), the outcome decided
by delivery_rules.decide_attempt (a hub's push of an active alert never dies; others are `dead`
after `notify_retry_max_attempts` tries), the ledger record, the retry or ack-deadline timer,
the receipt on homeward.deliveries.v1 (group-committed, confirmed before the batch's offsets
are) and, for a dead delivery, its dead letter. The delivery workers (services.notify.delivery)
decide whether a job is tried at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notify import audience, content
from services.notify.audience import Subscriber, SubscriberKind
from services.notify.context import Context
from services.notify.delivery_rules import RetryPolicy, decide_attempt
from services.notify.group_commit import GroupCommit
from services.notify.outbound import AppriseSender, SendResult, WebhookSender
from shared import metrics, topics
from shared.events import (
    DELIVERY_DEAD,
    DELIVERY_FAILED,
    DELIVERY_RETRYING,
    DELIVERY_SENT,
    CloudEvent,
    DeliveryReceipt,
    DeliveryStatus,
)

__all__ = ["ACKS", "RETRIES", "Sender"]

# The durable timers a try schedules (services.notify.timers).
RETRIES, ACKS = "retry", "ack"


@dataclass
class Sender:
    """Tries deliveries: `send` makes the request, `attempt` makes a try of it and records all
    that follows. `disable` takes a subscriber whose endpoint answered 410."""

    ctx: Context
    webhooks: WebhookSender
    apprise: AppriseSender
    disable: Callable[[str], Awaitable[None]]
    sent: int = 0  # requests this process made (a fair share of a fan-out, in the tests)
    receipts: GroupCommit[tuple[str, CloudEvent]] = field(init=False)

    def __post_init__(self) -> None:
        self.policy = RetryPolicy.from_settings(self.ctx.settings)
        self.receipts = GroupCommit(self._publish_many)

    async def _publish_many(self, events: list[tuple[str, CloudEvent]]) -> None:
        """Receipts of many deliveries: handed to the producer together, then confirmed
        together (acks=all), so the producer batches them."""
        await self.ctx.publisher.publish_many(events)

    async def send(self, did: str, sub: Subscriber, body: dict[str, Any],
                   payload: str | None = None) -> SendResult:
        channel = sub.channel
        if isinstance(channel, audience.WebhookChannel):
            self.sent += 1
            return await self.webhooks.send(str(channel.url),
                                            sub.signing_secrets(self.ctx.clock()), did, body,
                                            payload)
        if isinstance(channel, audience.AppriseChannel):
            self.sent += 1
            return await self.apprise.send(channel.url, "儿童失踪协查", str(body.get("text", "")))
        return SendResult(True, None)  # console: the hub feed below is the delivery

    async def show_on_console(self, did: str, sub: Subscriber, body: dict[str, Any]) -> None:
        """Delivery `did` on hub `sub`'s console (its feed); a Cancel first removes the pushes
        of its alert, which carry the child's personal data."""
        if body["type"] == content.ALERT_CANCELLED:
            await self.ctx.feed.scrub(sub.subscriber_id, str(body["alert_id"]))
        await self.ctx.feed.add(sub.subscriber_id, {**body, "delivery_id": did})

    async def attempt(self, did: str, sub: Subscriber, body: dict[str, Any],
                      made: int | None = None, payload: str | None = None,
                      limit: asyncio.Semaphore | None = None, active: bool = True,
                      since: str = "") -> None:
        """One try of a delivery (`made` tries before it, read from the ledger if not given).
        `limit` bounds the requests in flight; the records written after the request do not
        hold a slot. `active`: the alert is not cancelled (a hub's push then never dies);
        `since`: when the delivery first failed."""
        ctx = self.ctx
        if made is None:
            made = int((await ctx.ledger.get(did)).get("attempts", "0") or 0)
        attempts = made + 1
        if sub.kind == SubscriberKind.hub and attempts == 1:
            await self.show_on_console(did, sub, body)
        if limit is None:
            result = await self.send(did, sub, body, payload)
        else:
            async with limit:
                result = await self.send(did, sub, body, payload)
        persistent = (sub.kind == SubscriberKind.hub and active
                      and body["type"] == content.ALERT_ISSUED)
        decision = decide_attempt(result, attempts, self.policy, persistent)
        status = str(result.status or "")
        done_at = ctx.clock()  # the ledger's time and the receipt's, the same instant
        at = done_at.isoformat()
        state = decision.state
        if decision.disable:
            # Before the ledger says `gone`: a disable that fails (its lock busy) leaves the job
            # pending, so the job worked again disables it then.
            await self.disable(sub.subscriber_id)
        fields = {"attempts": str(attempts), "http_status": status,
                  "error": "" if state == DeliveryStatus.sent else result.error, "at": at}
        if state == DeliveryStatus.retrying:
            assert decision.delay_s is not None
            since = since or at
            due = time.time() + decision.delay_s
            await ctx.ledger.mark(did, state, next_at=str(due), since=since, **fields)
            await ctx.timers.schedule(RETRIES, did, due)
        elif state == DeliveryStatus.sent:
            await ctx.ledger.mark(did, state, sent_at=at, **fields)  # hub ack time (metrics)
        else:
            await ctx.ledger.mark(did, state, **fields)
        # A hub acknowledges its first message of an alert (an Alert; a reopen is one again),
        # not each Update after it.
        if state == DeliveryStatus.sent and sub.kind == SubscriberKind.hub \
                and body["type"] == content.ALERT_ISSUED and body.get("msg_type") == "Alert":
            await ctx.timers.schedule(ACKS, did, time.time() + ctx.settings.notify_ack_deadline_s)
        receipt = self._receipt(did, sub, body, state, result, attempts, done_at,
                                since if state == DeliveryStatus.retrying else "")
        kind = {DeliveryStatus.sent: DELIVERY_SENT,
                DeliveryStatus.retrying: DELIVERY_RETRYING}.get(state, DELIVERY_FAILED)
        # Retrying is recorded too, so that a rebuilt ledger retries it (alert ignores it).
        event_id = f"{did}:{state}" + (f":{attempts}" if state == DeliveryStatus.retrying
                                       else "")
        await self.receipts.add((topics.DELIVERIES, CloudEvent.of(
            kind, ctx.publisher.source, receipt.case_id, receipt, event_id=event_id)))
        metrics.delivery_receipt(state, receipt.kind, receipt.channel, done_at, receipt.alert_id,
                                 body.get("issued_at"))
        if state == DeliveryStatus.dead:
            metrics.dead_lettered(topics.DELIVERIES_DLQ)
            await ctx.publisher.publish(topics.DELIVERIES_DLQ, CloudEvent.of(
                DELIVERY_DEAD, ctx.publisher.source, receipt.case_id, receipt,
                event_id=f"{did}:dead"))

    def _receipt(self, did: str, sub: Subscriber, body: dict[str, Any], state: str,
                 result: SendResult, attempts: int, at: datetime,
                 since: str) -> DeliveryReceipt:
        scope = "group" if sub.kind == SubscriberKind.member else body.get("scope", "cancel")
        return DeliveryReceipt.model_validate({
            "delivery_id": did, "alert_id": str(body["alert_id"]),
            "case_id": str(body["case_id"]), "version": int(body["version"]),
            "subscriber_id": sub.subscriber_id, "scope": scope, "channel": sub.channel.type,
            "status": state, "http_status": result.status, "attempts": attempts,
            "error": result.error, "at": at, "kind": sub.kind.value, "name": sub.name,
            "since": since or None, "msg_type": body.get("msg_type"),
            "references": body.get("references", [])})
