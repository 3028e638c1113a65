"""Hub acknowledgements: a hub confirms a push (`POST /api/v1/deliveries/{id}/ack`); a push
not acknowledged within `notify_ack_deadline_s` is reported to the case's commander
(`homeward.delivery.ack_overdue.v1`, naming the region) and pushed again, up to
`notify_ack_repush_max` times."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from services.notify import domain
from services.notify.context import Context
from services.notify.errors import Forbidden, NotFound
from services.notify.sending import ACKS, Sender
from shared import metrics, topics
from shared.events import (
    DELIVERY_ACK_OVERDUE,
    DELIVERY_ACKNOWLEDGED,
    CloudEvent,
    DeliveryReceipt,
    DeliveryStatus,
)


def receipt_of(did: str, record: dict[str, str], **fields: object) -> DeliveryReceipt:
    """A receipt of a delivery from its ledger record, with `fields` (status, at...)."""
    return DeliveryReceipt.model_validate({
        "delivery_id": did, "alert_id": record.get("alert_id", ""),
        "case_id": record.get("case_id", ""), "version": int(record.get("version", "1")),
        "subscriber_id": record.get("subscriber_id", ""),
        "scope": record.get("scope", "restricted"), "channel": record.get("channel", ""),
        "attempts": int(record.get("attempts", "1") or 1), "kind": record.get("kind", ""),
        "name": record.get("name", ""), **fields})


@dataclass
class Acks:
    ctx: Context
    sender: Sender

    async def acknowledge(self, did: str, hub_id: str | None, admin: bool = False) -> str:
        """The hub `hub_id` (or an admin) confirms delivery `did`: when, ISO 8601. NotFound,
        Forbidden (another hub's delivery).

        A desk acknowledges the alert as it stands: its console shows the latest version (the
        leader's Update often follows the Alert within seconds), so acknowledging that one
        also acknowledges this hub's earlier deliveries of the alert still waiting for it —
        above all the Alert whose ack deadline escalates (issue 18 §4-5)."""
        ctx = self.ctx
        record = await ctx.ledger.get(did)
        if not record:
            raise NotFound(message=did)
        if not admin and record.get("subscriber_id") != hub_id:
            raise Forbidden(message=did)
        if record.get("state") == DeliveryStatus.acknowledged:
            return record.get("acked_at", "")
        at = ctx.clock()
        alert_id, sub_id = record.get("alert_id", ""), record.get("subscriber_id", "")
        earlier = [domain.delivery_id(alert_id, v, sub_id)
                   for v in range(1, int(record.get("version", "1") or 1))]
        waiting = [(d, r) for d, r in zip(earlier, await ctx.ledger.get_many(earlier),
                                          strict=True)
                   if r and r.get("state") == DeliveryStatus.sent]
        for earlier_did, earlier_record in [*waiting, (did, record)]:
            await self._acknowledged(earlier_did, earlier_record, at)
        return at.isoformat()

    async def _acknowledged(self, did: str, record: dict[str, str], at: datetime) -> None:
        ctx = self.ctx
        await ctx.ledger.mark(did, DeliveryStatus.acknowledged, acked_at=at.isoformat(),
                              at=at.isoformat())
        metrics.hub_acknowledged(record, at)
        metrics.delivery_receipt("acknowledged", record.get("kind", ""),
                                 record.get("channel", ""), at)
        await ctx.timers.unschedule(ACKS, did)
        receipt = receipt_of(did, record, status=DeliveryStatus.acknowledged, at=at)
        await ctx.publisher.publish(topics.DELIVERIES, CloudEvent.of(
            DELIVERY_ACKNOWLEDGED, ctx.publisher.source, receipt.case_id, receipt,
            event_id=f"{did}:acknowledged"))

    async def overdue(self, did: str) -> None:
        """The ack deadline of hub push `did` passed (the timer)."""
        ctx = self.ctx
        record = await ctx.ledger.get(did)
        if record.get("state") != DeliveryStatus.sent:
            return  # acknowledged, or no longer pending
        alert = await ctx.alerts.get(record.get("alert_id", ""))
        if alert is None or alert.cancelled:
            return
        reminders = int(record.get("reminders", "0") or 0)
        sub = await ctx.subscribers.get(record["subscriber_id"])
        now = ctx.clock()
        await ctx.ledger.mark(did, DeliveryStatus.sent, overdue="1",
                              reminders=str(reminders + 1), at=now.isoformat())
        receipt = receipt_of(
            did, record, status=DeliveryStatus.ack_overdue, at=now,
            error=f"region {alert.region_code}: not acknowledged within "
                  f"{ctx.settings.notify_ack_deadline_s:g}s")
        metrics.delivery_receipt("ack_overdue", receipt.kind, receipt.channel, now)
        await ctx.publisher.publish(topics.DELIVERIES, CloudEvent.of(
            DELIVERY_ACK_OVERDUE, ctx.publisher.source, alert.case_id, receipt,
            event_id=f"{did}:overdue:{reminders + 1}"))
        if sub is None or not sub.active or reminders >= ctx.settings.notify_ack_repush_max:
            return
        # Acks are awaited only for a push that went out as an Alert (the hub's first message
        # of the alert, even when its version was an Update): the reminder repeats it as one.
        body = {**(await ctx.ledger.get_body(record.get("body_key", "")) or {}),
                "msg_type": "Alert", "reminder": reminders + 1}
        if "alert_id" not in body:
            return
        await ctx.feed.add(sub.subscriber_id, {**body, "delivery_id": did})
        result = await self.sender.send(f"{did}_r{reminders + 1}", sub, body)
        if result.ok:
            await ctx.timers.schedule(ACKS, did,
                                      time.time() + ctx.settings.notify_ack_deadline_s)
