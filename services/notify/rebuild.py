"""Notify's Redis put back from the topics (README "Rebuilding Redis from the topics"), before
it consumes and without sending anything.

Subscribers from their compacted log; alert state and push bodies from the alerts log;
dispatch's notes by folding homeward.dispatch.v1; the delivery ledger (with `retrying ... since`),
who received each alert and the hub consoles by folding the receipts on homeward.deliveries.v1;
then the widening timers of open alerts, the retries of deliveries left retrying and the ack
deadlines of unacknowledged hub pushes. The delivery-jobs topics need nothing: a worker commits
a batch's offsets only after each job's outcome was recorded and its receipt confirmed, so a
committed job is in the receipts, and an uncommitted one is consumed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.notify import audience, content, domain, ledger_rules
from services.notify.delivery_rules import as_pushed
from services.notify.domain import AlertState
from services.notify.logs import AlertLog, SubscriberLog
from services.notify.planner import Planner
from services.notify.registry import Registry
from services.notify.sending import ACKS, RETRIES
from shared import topics
from shared.events import (
    CASE_FOUND,
    CASE_MEMBER_ADDED,
    CASE_OPENED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    DELIVERY_ACK_OVERDUE,
    DELIVERY_ACKNOWLEDGED,
    DELIVERY_FAILED,
    DELIVERY_RETRYING,
    DELIVERY_SENT,
    CloudEvent,
    DeliveryReceipt,
)
from shared.kafka import Bootstrap, replay_topic

NOTE_TYPES = (CASE_OPENED, CASE_MEMBER_ADDED, CASE_RELEASE_APPROVED, CASE_FOUND, CASE_REOPENED)
RECEIPT_TYPES = (DELIVERY_SENT, DELIVERY_FAILED, DELIVERY_ACKNOWLEDGED, DELIVERY_ACK_OVERDUE,
                 DELIVERY_RETRYING)


@dataclass
class Rebuild:
    planner: Planner
    registry: Registry

    async def run(self, bootstrap: Bootstrap) -> dict[str, int]:
        ctx = self.planner.ctx
        counts = {"subscribers": await self.registry.rebuild(
            SubscriberLog(bootstrap, topics.SUBSCRIBERS))}
        alerts, bodies = await AlertLog(bootstrap, topics.ALERTS).read_all(keys=ctx.keys)
        notes: dict[str, domain.CaseNotes] = {}

        async def on_dispatch(event: CloudEvent) -> None:
            if event.type in NOTE_TYPES:
                notes[event.subject] = domain.fold_notes(
                    notes.get(event.subject, domain.CaseNotes()), event.type, event.data)

        records: dict[str, dict[str, str]] = {}
        first_at: dict[str, datetime] = {}
        pushed_as: dict[str, DeliveryReceipt] = {}  # the first try's receipt: what it said

        async def on_delivery(event: CloudEvent) -> None:
            if event.type not in RECEIPT_TYPES:
                return
            receipt = DeliveryReceipt.model_validate(event.data)
            did = receipt.delivery_id
            records[did] = ledger_rules.fold_receipt(records.get(did, {}), receipt, event.id)
            first_at.setdefault(did, receipt.at)
            if receipt.msg_type is not None and receipt.status != "acknowledged":
                pushed_as.setdefault(did, receipt)

        await replay_topic(bootstrap, on_dispatch, topics.DISPATCH, client="notify")
        await replay_topic(bootstrap, on_delivery, topics.DELIVERIES, client="notify")
        for case_id, case_notes in notes.items():
            await ctx.alerts.save_notes(case_id, case_notes)
        by_id = {a.alert_id: a for a in alerts}
        for alert in alerts:
            await ctx.alerts.save(alert)
            await self.planner.children.restore_identity(alert)
        for key, body in bodies.items():
            await ctx.ledger.put_body(key, body)
        await ctx.ledger.restore(records)
        # Who heard of each alert, and from which version (the cancellation reaches them all).
        first: dict[str, dict[str, int]] = {}
        for r in records.values():
            if r.get("scope") != "cancel":
                seen = first.setdefault(r["alert_id"], {})
                seen[r["subscriber_id"]] = min(seen.get(r["subscriber_id"], 10**9),
                                               int(r["version"]))
        for alert_id, seen in first.items():
            for version in sorted(set(seen.values())):
                await ctx.alerts.add_recipients(
                    alert_id, [i for i, v in seen.items() if v == version], version)
        await self._group_members(alerts, notes)
        await self._hub_feeds(records, first_at, bodies, pushed_as, by_id)
        await self._timers(by_id, records)
        await ctx.alerts.mark_ready()
        counts.update(alerts=len(alerts), deliveries=len(records), cases=len(notes))
        return counts

    async def _group_members(self, alerts: list[AlertState],
                             notes: dict[str, domain.CaseNotes]) -> None:
        """Case-group members are recipients derived from dispatch's notes, never logged."""
        ctx = self.planner.ctx
        template = ctx.settings.notify_group_apprise_url
        if not template:
            return
        members = []
        for alert in alerts:
            case_notes = notes.get(alert.case_id, domain.CaseNotes())
            members += audience.group_members(
                alert, [p for p in [alert.leader or case_notes.leader, *case_notes.members]
                        if p], template)
        if members:
            await ctx.subscribers.add_many(members)

    async def _hub_feeds(self, records: dict[str, dict[str, str]],
                         first_at: dict[str, datetime],
                         bodies: dict[str, dict[str, Any]],
                         pushed_as: dict[str, DeliveryReceipt],
                         alerts: dict[str, AlertState]) -> None:
        """Each hub's console as the pushes left it: in the order they were first made, each
        push as its first try said it (msgType and references from the receipt), a
        cancellation scrubbing the earlier pushes of its alert, then the ack reminders."""
        ctx = self.planner.ctx
        sender = ctx.settings.notify_sender
        feeds: dict[str, list[dict[str, Any]]] = {}
        for did in sorted((d for d, r in records.items() if r.get("kind") == "hub"),
                          key=lambda d: first_at[d]):
            r = records[did]
            raw = bodies.get(r.get("body_key", ""))
            if raw is None:
                continue
            body, said = raw, pushed_as.get(did)
            if said is not None:
                alert = alerts.get(said.alert_id)
                times = {v.version: v.sent for v in alert.versions} if alert else {}
                body = as_pushed(raw, str(said.msg_type), said.references, times, sender)
            feed = feeds.setdefault(r["subscriber_id"], [])
            if body["type"] == content.ALERT_CANCELLED:
                feed[:] = [e for e in feed if e["alert_id"] != body["alert_id"]]
            feed.append({**body, "delivery_id": did})
            reminders = int(r.get("reminders", "0") or 0)
            for n in range(1, min(reminders, ctx.settings.notify_ack_repush_max) + 1):
                feed.append({**raw, "msg_type": "Alert", "reminder": n, "delivery_id": did})
        for hub_id, entries in feeds.items():
            for entry in entries:
                await ctx.feed.add(hub_id, entry)

    async def _timers(self, alerts: dict[str, AlertState],
                      records: dict[str, dict[str, str]]) -> None:
        """Widening of every open alert; the ack deadline of every hub's first push of an alert
        neither acknowledged nor past its last reminder, counted from its last send; the next try of
        every delivery left retrying, at once (the retry drops those of cancelled alerts)."""
        ctx = self.planner.ctx
        now = ctx.clock()
        for alert in alerts.values():
            if not alert.cancelled:
                await self.planner.schedule_widening(alert, now)
        for did, r in records.items():
            if r.get("state") == "retrying":
                await ctx.timers.schedule(RETRIES, did, now.timestamp())
        deadline = ctx.settings.notify_ack_deadline_s
        # A hub acknowledges its first message of an alert: its earliest version's delivery.
        first: dict[tuple[str, str], int] = {}
        for r in records.values():
            if r.get("kind") == "hub" and r.get("scope") != "cancel":
                key = (r.get("alert_id", ""), r.get("subscriber_id", ""))
                first[key] = min(first.get(key, 10**9), int(r.get("version", "0") or 0))
        for did, r in records.items():
            key = (r.get("alert_id", ""), r.get("subscriber_id", ""))
            if first.get(key) != int(r.get("version", "0") or 0):
                continue
            of = alerts.get(r.get("alert_id", ""))
            if (r.get("kind") != "hub" or r.get("state") != "sent" or r.get("scope") == "cancel"
                    or of is None or of.cancelled):
                continue
            if int(r.get("reminders", "0") or 0) > ctx.settings.notify_ack_repush_max:
                continue
            due = datetime.fromisoformat(r["at"]).timestamp() + deadline
            await ctx.timers.schedule(ACKS, did, due)
