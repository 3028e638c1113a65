"""Use cases of notify; dependencies are passed in."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notify import domain, tip_push
from services.notify.adapters import (
    AlertLog,
    AlertRepository,
    AppriseSender,
    DeliveryLedger,
    GroupCommit,
    HubFeed,
    SendResult,
    SubscriberLog,
    SubscriberRepository,
    WebhookSender,
)
from services.notify.children import ChildAlerts
from services.notify.domain import AlertState, Subscriber, SubscriberKind
from services.notify.purge import purge_alert, pushed_report
from services.notify.signing import Keyring
from services.notify.subscribers import new_secret, region_of, registered
from shared import metrics, topics
from shared.casekeys import ALERT_FIELDS, BODY_FIELDS, CaseKeys, sealed_json
from shared.events import (
    CASE_FOUND,
    CASE_MEMBER_ADDED,
    CASE_OPENED,
    CASE_PURGED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    CASE_REPORT_UNLINKED,
    DELIVERY_ACKNOWLEDGED,
    DELIVERY_FAILED,
    DELIVERY_SENT,
    CaseEvent,
    CaseFound,
    CaseOpened,
    CasePurged,
    CaseReopened,
    CloudEvent,
    DeliveryReceipt,
    ReleaseApproved,
    ReportUnlinked,
)
from shared.faults import RETRYING_NOW, is_transient
from shared.identity import LinkEvidence
from shared.kafka import Bootstrap, EventPublisher, replay_topic
from shared.regions import within
from shared.report import ReportAccepted
from shared.settings import Settings

log = logging.getLogger(__name__)

DELIVERY_ACK_OVERDUE = "homeward.delivery.ack_overdue.v1"
DELIVERY_DEAD = "homeward.delivery.dead.v1"
DELIVERY_RETRYING = "homeward.delivery.retrying.v1"  # a try failed; the next is scheduled

RETRIES, WIDEN, ACKS = "retry", "widen", "ack"
TIMERS_KEY = "homeward-notify-timers"  # readiness: 503 while the timers meet transient faults


class NotFound(LookupError):
    pass


class Forbidden(PermissionError):
    pass


class Conflict(ValueError):
    pass


@dataclass
class Notify:
    settings: Settings
    subscribers: SubscriberRepository
    alerts: AlertRepository
    ledger: DeliveryLedger
    feed: HubFeed
    webhooks: WebhookSender
    publisher: EventPublisher
    apprise: AppriseSender
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    keyring: Keyring | None = None  # the issuer's signing keys (issue 17); None: unsigned
    keys: CaseKeys | None = None  # seals what notify logs of a case (issue 13)

    def __post_init__(self) -> None:
        self._timer_faults = 0  # transient faults met by timers (readiness)
        self.receipts: GroupCommit[tuple[str, CloudEvent]] = GroupCommit(self._publish_many)
        self.children = ChildAlerts(self)

    async def _publish_many(self, events: list[tuple[str, CloudEvent]]) -> None:
        """Receipts of many deliveries: handed to the producer together, then confirmed
        together (acks=all), so the producer batches them."""
        broker = self.publisher.broker
        futures = [await broker.publish(e.value(), topic, key=e.subject.encode(),
                                        headers=e.headers(), no_confirm=True)
                   for topic, e in events]
        await asyncio.gather(*futures)

    # --- subscribers ---------------------------------------------------------------------------

    async def register(self, request: domain.SubscriberRequest,
                       within_region: str = "000000") -> Subscriber:
        """A new subscriber with a new signing secret (returned once, by the caller). Raises
        UnsafeUrl (channel.url), ValueError (no region for the location), Forbidden (its
        region is outside `within_region`, the registering admin's), Conflict (a hub with that
        hub_id exists: registering never returns an existing secret nor repoints a channel)."""
        subscriber = registered(request)
        if not within(within_region, subscriber.region_code or ""):
            raise Forbidden(subscriber.region_code)
        channel = request.channel
        if isinstance(channel, domain.WebhookChannel | domain.AppriseChannel):
            await self.webhooks.policy.check(str(channel.url),
                                             apprise=isinstance(channel, domain.AppriseChannel))
        if request.kind == SubscriberKind.hub and request.hub_id:
            # A hub's id is the one in its staff's tokens.
            subscriber.subscriber_id = request.hub_id
            if await self.subscribers.get(request.hub_id) is not None:
                raise Conflict(request.hub_id)
        else:
            subscriber.subscriber_id = f"S{uuid.uuid4().hex[:16]}"
        await self._log_subscriber(subscriber)
        await self.subscribers.add(subscriber)
        return subscriber

    async def rotate_secret(self, subscriber_id: str, within_region: str) -> str:
        """A new signing secret for the subscriber (returned once); the old one keeps signing
        for `notify_secret_overlap_s`. NotFound also when it lies outside `within_region`."""
        sub = await self.subscribers.get(subscriber_id)
        if (sub is None or sub.kind == SubscriberKind.member
                or not within(within_region, sub.region_code or "")):
            raise NotFound(subscriber_id)
        secret = new_secret()
        rotated = sub.rotated(secret, self.clock(),
                              timedelta(seconds=self.settings.notify_secret_overlap_s))
        await self._log_subscriber(rotated)
        await self.subscribers.add(rotated)
        return secret

    async def _log_subscriber(self, subscriber: Subscriber) -> None:
        """The system of record first: the compacted subscriber log, keyed by id (sealed)."""
        await self.publisher.broker.publish(self.subscribers.seal.dumps(subscriber).encode(),
                                            topics.SUBSCRIBERS,
                                            key=subscriber.subscriber_id.encode())

    async def disable(self, subscriber_id: str) -> None:
        subscriber = await self.subscribers.get(subscriber_id)
        if subscriber is not None and subscriber.active:
            subscriber.active = False
            await self._log_subscriber(subscriber)
            await self.subscribers.add(subscriber)

    async def rebuild_subscribers(self, log: SubscriberLog) -> int:
        """Redis lost its subscribers: put back the latest record of each from the log."""
        subscribers = await log.read_all(self.subscribers.seal)
        for start in range(0, len(subscribers), 5000):
            await self.subscribers.add_many(subscribers[start:start + 5000])
        return len(subscribers)

    async def reseal_subscribers(self, log: SubscriberLog) -> int:
        """Every subscriber written again, sealed with the first key: after a new key was put
        first (key rotation), or for records from before sealing (which also get the region
        of their location when they had none)."""
        subscribers = await log.read_all(self.subscribers.seal)
        for subscriber in subscribers:
            if subscriber.region_code is None:
                subscriber.region_code = region_of(subscriber.location.lat,
                                                   subscriber.location.lon)
            await self._log_subscriber(subscriber)
        await self.rebuild_subscribers(log)
        return len(subscribers)

    async def rebuild(self, bootstrap: Bootstrap) -> dict[str, int]:
        """Redis lost notify's state: put it back from the topics before consuming, sending
        nothing. Subscribers from their log; alert state and push bodies from the alerts log;
        dispatch's notes by folding homeward.dispatch.v1; the delivery ledger, who received each
        alert and the hub consoles by folding the receipts on homeward.deliveries.v1; then the
        widening timers of open alerts and the ack deadlines of unacknowledged hub pushes."""
        counts = {"subscribers": await self.rebuild_subscribers(
            SubscriberLog(bootstrap, topics.SUBSCRIBERS))}
        alerts, bodies = await AlertLog(bootstrap, topics.ALERTS).read_all(keys=self.keys)
        notes: dict[str, domain.CaseNotes] = {}

        async def on_dispatch(event: CloudEvent) -> None:
            if event.type in (CASE_OPENED, CASE_MEMBER_ADDED, CASE_RELEASE_APPROVED, CASE_FOUND,
                              CASE_REOPENED):
                notes[event.subject] = domain.fold_notes(
                    notes.get(event.subject, domain.CaseNotes()), event.type, event.data)

        records: dict[str, dict[str, str]] = {}
        first_at: dict[str, datetime] = {}

        async def on_delivery(event: CloudEvent) -> None:
            if event.type not in (DELIVERY_SENT, DELIVERY_FAILED, DELIVERY_ACKNOWLEDGED,
                                  DELIVERY_ACK_OVERDUE, DELIVERY_RETRYING):
                return
            receipt = DeliveryReceipt.model_validate(event.data)
            did = receipt.delivery_id
            records[did] = domain.fold_receipt(records.get(did, {}), receipt, event.id)
            first_at.setdefault(did, receipt.at)

        await replay_topic(bootstrap, on_dispatch, topics.DISPATCH, client="notify")
        await replay_topic(bootstrap, on_delivery, topics.DELIVERIES, client="notify")
        for case_id, case_notes in notes.items():
            await self.alerts.save_notes(case_id, case_notes)
        by_id = {a.alert_id: a for a in alerts}
        for alert in alerts:
            await self.alerts.save(alert)
            await self.children.restore_identity(alert)
        for key, body in bodies.items():
            await self.ledger.put_body(key, body)
        await self.ledger.restore(records)
        # Who heard of each alert, and from which version (the cancellation reaches them all).
        first: dict[str, dict[str, int]] = {}
        for r in records.values():
            if r.get("scope") != "cancel":
                seen = first.setdefault(r["alert_id"], {})
                seen[r["subscriber_id"]] = min(seen.get(r["subscriber_id"], 10**9),
                                               int(r["version"]))
        for alert_id, seen in first.items():
            for version in sorted(set(seen.values())):
                await self.alerts.add_recipients(
                    alert_id, [i for i, v in seen.items() if v == version], version)
        await self._rebuild_group_members(alerts, notes)
        await self._rebuild_hub_feeds(records, first_at, bodies)
        await self._rebuild_timers(by_id, records)
        await self.alerts.mark_ready()
        counts.update(alerts=len(alerts), deliveries=len(records), cases=len(notes))
        return counts

    async def _rebuild_group_members(self, alerts: list[AlertState],
                                     notes: dict[str, domain.CaseNotes]) -> None:
        """Case-group members are recipients derived from dispatch's notes, never logged."""
        template = self.settings.notify_group_apprise_url
        if not template:
            return
        members = []
        for alert in alerts:
            case_notes = notes.get(alert.case_id, domain.CaseNotes())
            members += domain.group_members(
                alert, [p for p in [alert.leader or case_notes.leader, *case_notes.members]
                        if p], template)
        if members:
            await self.subscribers.add_many(members)

    async def _rebuild_hub_feeds(self, records: dict[str, dict[str, str]],
                                 first_at: dict[str, datetime],
                                 bodies: dict[str, dict[str, Any]]) -> None:
        """Each hub's console as the pushes left it: in the order they were first made, a
        cancellation scrubbing the earlier pushes of its alert, then the ack reminders."""
        feeds: dict[str, list[dict[str, Any]]] = {}
        for did in sorted((d for d, r in records.items() if r.get("kind") == "hub"),
                          key=lambda d: first_at[d]):
            r = records[did]
            body = bodies.get(r.get("body_key", ""))
            if body is None:
                continue
            feed = feeds.setdefault(r["subscriber_id"], [])
            if body["type"] == domain.ALERT_CANCELLED:
                feed[:] = [e for e in feed if e["alert_id"] != body["alert_id"]]
            feed.append({**body, "delivery_id": did})
            sent = int(r.get("reminders", "0") or 0)
            for n in range(1, min(sent, self.settings.notify_ack_repush_max) + 1):
                feed.append({**body, "reminder": n, "delivery_id": did})
        for hub_id, entries in feeds.items():
            for entry in entries:
                await self.feed.add(hub_id, entry)

    async def _rebuild_timers(self, alerts: dict[str, AlertState],
                              records: dict[str, dict[str, str]]) -> None:
        """Widening of every open alert; the ack deadline of every hub push neither
        acknowledged nor past its last reminder, counted from its last send; the next try of
        every delivery left retrying, at once (`_retry` drops those of cancelled alerts)."""
        now = self.clock()
        for alert in alerts.values():
            if not alert.cancelled:
                await self._schedule_widening(alert, now)
        for did, r in records.items():
            if r.get("state") == "retrying":
                await self.ledger.schedule(RETRIES, did, now.timestamp())
        deadline = self.settings.notify_ack_deadline_s
        for did, r in records.items():
            of = alerts.get(r.get("alert_id", ""))
            if (r.get("kind") != "hub" or r.get("state") != "sent" or r.get("scope") == "cancel"
                    or of is None or of.cancelled):
                continue
            if int(r.get("reminders", "0") or 0) > self.settings.notify_ack_repush_max:
                continue
            due = datetime.fromisoformat(r["at"]).timestamp() + deadline
            await self.ledger.schedule(ACKS, did, due)

    # --- events from the reports and dispatch topics -------------------------------------------

    def _unit(self) -> float:
        return self.settings.notify_tier_unit_s

    def _radius(self, seen_at: datetime, now: datetime) -> float:
        return domain.radius_km(now - seen_at, self.settings.radius_tiers_km,
                                self.settings.radius_max_km, self._unit())

    async def _schedule_widening(self, alert: AlertState, now: datetime) -> None:
        nxt = domain.next_boundary(alert.seen_at, now, self.settings.radius_tiers_km,
                                   self._unit())
        if nxt is not None and not alert.cancelled:
            await self.ledger.schedule(WIDEN, alert.alert_id, nxt.timestamp())

    async def on_report_accepted(self, event: CloudEvent) -> None:
        """Hubs inside the radius of the elapsed time get the restricted bulletin at once;
        media and volunteers the public one if release came with the report. A report of a
        child who already has an alert (shared/identity.py, decided by an atomic claim on the
        child's identity keys, without waiting for dispatch) becomes an Update of that alert."""
        accepted = ReportAccepted.model_validate(event.data)
        alert_id = domain.alert_id_of(accepted.case_id)
        merged_into = await self.alerts.merged_into(accepted.case_id)
        if merged_into is not None:  # a redelivery of a merged report: finish the Update
            await self.children.merge(merged_into, accepted, None)
            return
        same: tuple[str, LinkEvidence] | None = None
        async with self._locked(alert_id):
            alert = await self.alerts.get(alert_id)
            if alert is None:
                same = await self.children.same_child(accepted, alert_id)
                if same is None:
                    alert = await self._open(accepted)
                    if alert is None:
                        return  # found before we heard of the report: nobody is told anything
            # else: a redelivery; finish what the first run started
        if alert is None and same is not None:
            if await self.children.merge(same[0], accepted, same[1]):
                return
            async with self._locked(alert_id):  # that alert ended meanwhile: one of its own
                alert = await self.alerts.get(alert_id) or await self._open(accepted)
            if alert is None:
                return
        assert alert is not None
        if alert.cancelled:
            await self._cancel_fan_out(alert)
        else:
            metrics.alert_opened(alert.alert_id, accepted.accepted_at)
            await self._fan_out(alert)
            await self._push_group(alert)

    async def _open(self, accepted: ReportAccepted) -> AlertState | None:
        report = accepted.report
        seen = report.last_seen
        now = self.clock()
        notes = await self.alerts.notes(accepted.case_id)
        radius = self._radius(seen.at, now)
        alert = AlertState(
            alert_id=domain.alert_id_of(accepted.case_id), case_id=accepted.case_id,
            region_code=seen.region_code, exercise=report.exercise,
            released=report.release.public or notes.released, seen_at=seen.at, lat=seen.lat,
            lon=seen.lon, radius_km=radius, issued_at=now,
            versions=[domain.VersionInfo(version=1, msg_type="Alert", sent=now,
                                         radius_km=radius)],
            report=pushed_report(report.model_dump(mode="json")), leader=notes.leader,
        )
        if notes.found:
            alert.cancelled, alert.outcome, alert.report = True, notes.outcome, None
            await self._save(alert)
            return None
        await self._save(alert)
        await self._schedule_widening(alert, now)
        return alert

    async def on_case_event(self, event: CloudEvent) -> None:
        """Dispatch's events, validated against their models (a violation is dead-lettered)."""
        if event.type == CASE_OPENED:
            opened = CaseOpened.model_validate(event.data)
            if opened.leader is not None:
                leader = opened.leader.model_dump(mode="json")
                notes = await self.alerts.notes(opened.case_id)
                notes.leader = leader
                await self.alerts.save_notes(opened.case_id, notes)
                async with self._locked(domain.alert_id_of(opened.case_id)):
                    alert = await self.alerts.get(domain.alert_id_of(opened.case_id))
                    if alert is not None and not alert.cancelled:
                        alert.leader = leader
                        await self._save(alert)
                if alert is not None and not alert.cancelled:
                    await self._push_group(alert)
        elif event.type == CASE_MEMBER_ADDED:
            added = CaseEvent.model_validate(event.data)
            member = added.details.get("member", added.details)
            if isinstance(member, dict) and member.get("phone"):
                notes = await self.alerts.notes(added.case_id)
                if all(m.get("phone") != member["phone"] for m in notes.members):
                    notes.members.append(member)
                    await self.alerts.save_notes(added.case_id, notes)
                alert = await self.alerts.get(domain.alert_id_of(added.case_id))
                if alert is not None and not alert.cancelled:
                    await self._push_group(alert)
        elif event.type == CASE_RELEASE_APPROVED:
            await self.release(ReleaseApproved.model_validate(event.data).case_id)
        elif event.type == CASE_FOUND:
            found = CaseFound.model_validate(event.data)
            await self.cancel(found.case_id, found.outcome)
        elif event.type == CASE_REOPENED:
            await self.children.reopen(CaseReopened.model_validate(event.data).case_id)
        elif event.type == CASE_REPORT_UNLINKED:
            await self.children.unlink(ReportUnlinked.model_validate(event.data))
        elif event.type == CASE_PURGED:
            await purge_alert(self, CasePurged.model_validate(event.data).case_id)
        elif event.type in tip_push.TYPES:  # sightings to the case group (issue 16)
            await tip_push.push(self, event)

    async def release(self, case_id: str) -> None:
        notes = await self.alerts.notes(case_id)
        if not notes.released:
            notes.released = True
            await self.alerts.save_notes(case_id, notes)
        async with self._locked(domain.alert_id_of(case_id)):
            alert = await self.alerts.get(domain.alert_id_of(case_id))
            if alert is None or alert.cancelled:
                return
            if not alert.released:
                alert.released = True
                alert.bump("Update", self.clock(), note="release_approved")
                await self._save(alert)
        await self._fan_out(alert)

    async def cancel(self, case_id: str, outcome: str) -> None:
        notes = await self.alerts.notes(case_id)
        if not notes.found:
            notes.found, notes.outcome = True, outcome
            await self.alerts.save_notes(case_id, notes)
        async with self._locked(domain.alert_id_of(case_id)):
            alert = await self.alerts.get(domain.alert_id_of(case_id))
            if alert is None:
                return
            if not alert.cancelled:
                alert.cancelled, alert.outcome = True, outcome
                # Kept (never rendered) for a reopen; the public copies lose it now.
                alert.held_report = alert.report
                alert.report, alert.leader = None, None
                alert.bump("Cancel", self.clock(), note=outcome)
                await self._save(alert)  # drops it from the public feed at once
                await self.ledger.unschedule(WIDEN, alert.alert_id)
        await self._cancel_fan_out(alert)

    async def _save(self, alert: AlertState) -> None:
        """The system of record first: the alert's state on the compacted alerts log."""
        value = await sealed_json(self.keys, alert.case_id, alert.model_dump(mode="json"),
                                  ALERT_FIELDS)
        await self.publisher.broker.publish(value, topics.ALERTS,
                                            key=f"alert:{alert.alert_id}".encode())
        await self.alerts.save(alert)

    def _locked(self, alert_id: str) -> Any:
        """One writer of an alert's state at a time across processes (the consumer of its
        partition, and whichever process claimed its timer)."""
        return self.alerts.redis.lock(f"notify:lock:{alert_id}", timeout=30,
                                      blocking_timeout=30)

    # --- fan-out -------------------------------------------------------------------------------

    def link(self, alert_id: str) -> str:
        return f"{self.settings.notify_url.rstrip('/')}/api/v1/alerts/{alert_id}.xml"

    def verify_base(self) -> str:
        """Where the public verifies an alert (issue 17 §2): the setting, else notify itself."""
        return (self.settings.verify_base_url or self.settings.notify_url).rstrip("/")

    async def _recipients(self, alert: AlertState, everyone: bool = False) -> list[Subscriber]:
        kinds = [SubscriberKind.hub]
        if alert.released:
            kinds += list(domain.PUBLIC_KINDS)
        ids: list[str] = []
        for kind in kinds:
            ids += await self.subscribers.ids_within(kind, alert.lat, alert.lon, alert.radius_km)
        already = await self.alerts.recipients(alert.alert_id)
        # Each recipient hears of the alert once (the first version that covers it), then the
        # cancellation; a recipient first covered by this version may be resumed. New details
        # (a second report of the child, a reopen) go to everyone who had the alert too.
        if everyone:  # the case group is told by _push_group
            fresh = list(dict.fromkeys([*ids, *already]))
        else:
            fresh = [i for i in ids if already.get(i, alert.version) >= alert.version]
        subs = [s for s in await self.subscribers.get_many(fresh)
                if s.active and s.kind != SubscriberKind.member]
        if alert.exercise:
            subs = [s for s in subs if s.drills]
        return subs

    async def _fan_out(self, alert: AlertState, everyone: bool = False) -> None:
        subs = await self._recipients(alert, everyone)
        await self.alerts.add_recipients(alert.alert_id, [s.subscriber_id for s in subs],
                                         alert.version)
        now = self.clock()
        bodies = {scope: domain.push_body(alert, scope, self.link(alert.alert_id),
                                          self.settings.notify_official_contact,
                                          self.settings.notify_push_max_chars, now,
                                          self.settings.display_timezone, self.verify_base())
                  for scope in ("restricted", "public")}
        await self._deliver_all(
            [(s, bodies["restricted" if s.kind == SubscriberKind.hub else "public"])
             for s in subs])

    async def _push_group(self, alert: AlertState, everyone: bool = False) -> None:
        """The case group's leader and members get the restricted bulletin over Apprise (an
        SMS gateway's URL with {phone}), when one is configured; never for drills."""
        template = self.settings.notify_group_apprise_url
        if not template or alert.exercise:
            return
        notes = await self.alerts.notes(alert.case_id)
        people = [p for p in [alert.leader or notes.leader, *notes.members]
                  if p and p.get("phone")]
        members = domain.group_members(alert, people, template)
        already = await self.alerts.recipients(alert.alert_id)
        members = [m for m in members if everyone or already.get(m.subscriber_id, alert.version)
                   >= alert.version]
        if not members:
            return
        await self.subscribers.add_many(members)  # so the cancellation finds them
        await self.alerts.add_recipients(alert.alert_id, [m.subscriber_id for m in members],
                                         alert.version)
        body = domain.push_body(alert, "restricted", self.link(alert.alert_id),
                                self.settings.notify_official_contact,
                                self.settings.notify_push_max_chars, self.clock(),
                                self.settings.display_timezone, self.verify_base())
        await self._deliver_all([(m, body) for m in members])

    async def _cancel_fan_out(self, alert: AlertState) -> None:
        recipients = await self.alerts.recipients(alert.alert_id)
        subs = await self.subscribers.get_many(recipients)
        body = domain.cancel_body(alert, self.clock())
        await self._deliver_all([(s, body) for s in subs if s.active])

    async def _deliver_all(self, work: list[tuple[Subscriber, dict[str, Any]]]) -> None:
        """Write every `before` record in one batch, then send what is new or was left pending
        by a crash (same webhook-id), at most `notify_fanout_parallel` at a time."""
        limit = asyncio.Semaphore(self.settings.notify_fanout_parallel)
        payloads: dict[int, str] = {}  # one serialisation per distinct body
        chunk = 2000
        for start in range(0, len(work), chunk):
            part = work[start:start + chunk]
            records = {}
            stored: set[str] = set()
            for sub, body in part:
                did = domain.delivery_id(str(body["alert_id"]), int(body["version"]),
                                         sub.subscriber_id)
                records[did] = self._record(sub, body)
                if records[did]["body_key"] not in stored:
                    stored.add(records[did]["body_key"])
                    await self._put_body(records[did]["body_key"], body)
            claimed = await self.ledger.claim_many(records)

            async def one(did: str, sub: Subscriber, body: dict[str, Any], made: int) -> None:
                payload = payloads.get(id(body))
                if payload is None:
                    payload = payloads[id(body)] = json.dumps(
                        body, ensure_ascii=False, separators=(",", ":"))
                await self.attempt(did, sub, body, made, payload, limit)

            jobs = []
            for (sub, body), (did, (state, made)) in zip(part, claimed.items(), strict=True):
                if state is None or state == "pending":  # settled, or waiting for its retry
                    jobs.append(one(did, sub, body, made))
            await asyncio.gather(*jobs)

    async def _put_body(self, key: str, body: dict[str, Any]) -> None:
        """A version's push body, logged (the hub consoles and retries are rebuilt from it)."""
        value = await sealed_json(self.keys, str(body["case_id"]), body, BODY_FIELDS)
        await self.publisher.broker.publish(value, topics.ALERTS, key=f"body:{key}".encode())
        await self.ledger.put_body(key, body)

    @staticmethod
    def _record(sub: Subscriber, body: dict[str, Any]) -> dict[str, str]:
        return {
            "subscriber_id": sub.subscriber_id, "kind": sub.kind.value,
            "channel": sub.channel.type, "alert_id": str(body["alert_id"]),
            "case_id": str(body["case_id"]), "version": str(body["version"]),
            "scope": _scope(sub, body), "name": sub.name,
            "body_key": f"{body['alert_id']}:{body['version']}:{body.get('scope', 'cancel')}",
        }

    async def deliver(self, sub: Subscriber, body: dict[str, Any]) -> None:
        await self._deliver_all([(sub, body)])

    async def _send(self, did: str, sub: Subscriber, body: dict[str, Any],
                    payload: str | None = None) -> SendResult:
        channel = sub.channel
        if isinstance(channel, domain.WebhookChannel):
            return await self.webhooks.send(str(channel.url), sub.signing_secrets(self.clock()),
                                            did, body, payload)
        if isinstance(channel, domain.AppriseChannel):
            return await self.apprise.send(channel.url, "儿童失踪协查", str(body.get("text", "")))
        return SendResult(True, None)  # console: the hub feed below is the delivery

    async def attempt(self, did: str, sub: Subscriber, body: dict[str, Any],
                      made: int | None = None, payload: str | None = None,
                      limit: asyncio.Semaphore | None = None) -> None:
        """One try of a delivery (`made` tries before it, read from the ledger if not given).
        `limit` bounds the requests in flight; the records written after the request do not
        hold a slot, so waiting for Redis and Kafka does not slow the sending down."""
        if made is None:
            made = int((await self.ledger.get(did)).get("attempts", "0") or 0)
        attempts = made + 1
        if sub.kind == SubscriberKind.hub and attempts == 1:
            if body["type"] == domain.ALERT_CANCELLED:
                await self.feed.scrub(sub.subscriber_id, str(body["alert_id"]))
            await self.feed.add(sub.subscriber_id, {**body, "delivery_id": did})
        if limit is None:
            result = await self._send(did, sub, body, payload)
        else:
            async with limit:
                result = await self._send(did, sub, body, payload)
        status = str(result.status or "")
        done_at = self.clock()  # the ledger's time and the receipt's, the same instant
        at = done_at.isoformat()
        if result.ok:
            await self.ledger.mark(did, "sent", attempts=str(attempts), http_status=status,
                                   error="", at=at, sent_at=at)
            if sub.kind == SubscriberKind.hub and body["type"] == domain.ALERT_ISSUED:
                await self.ledger.schedule(ACKS, did,
                                           time.time() + self.settings.notify_ack_deadline_s)
            await self._receipt(did, sub, body, "sent", result, attempts, done_at)
            return
        if result.status == 410:
            await self.ledger.mark(did, "gone", attempts=str(attempts), http_status=status,
                                   error=result.error, at=at)
            await self.disable(sub.subscriber_id)
            await self._receipt(did, sub, body, "gone", result, attempts, done_at)
            return
        retryable = result.retryable and (result.status is None
                                          or result.status in domain.RETRYABLE)
        if retryable and attempts < self.settings.notify_retry_max_attempts:
            delay = domain.backoff_s(attempts, self.settings.notify_retry_base_s,
                                     self.settings.notify_retry_cap_s, result.retry_after)
            await self.ledger.mark(did, "retrying", attempts=str(attempts), http_status=status,
                                   error=result.error, next_at=str(time.time() + delay), at=at)
            await self.ledger.schedule(RETRIES, did, time.time() + delay)
            # Recorded too, so that a rebuilt ledger retries it (the alert service ignores it).
            await self._receipt(did, sub, body, "retrying", result, attempts, done_at)
            return
        state = "dead" if retryable else "failed"
        await self.ledger.mark(did, state, attempts=str(attempts), http_status=status,
                               error=result.error, at=at)
        await self._receipt(did, sub, body, state, result, attempts, done_at)
        if state == "dead":
            await self._dead_letter(did, sub, body, result, attempts, done_at)

    async def _receipt(self, did: str, sub: Subscriber, body: dict[str, Any], state: str,
                       result: SendResult, attempts: int, at: datetime) -> None:
        receipt = DeliveryReceipt(
            delivery_id=did, alert_id=str(body["alert_id"]), case_id=str(body["case_id"]),
            version=int(body["version"]), subscriber_id=sub.subscriber_id,
            scope=_scope(sub, body), channel=sub.channel.type, status=state,
            http_status=result.status, attempts=attempts, error=result.error, at=at,
            kind=sub.kind.value, name=sub.name,
        )
        metrics.delivery_receipt(state, receipt.kind, receipt.channel, at, receipt.alert_id,
                                 body.get("issued_at"))
        kind = {"sent": DELIVERY_SENT, "retrying": DELIVERY_RETRYING}.get(state, DELIVERY_FAILED)
        event_id = f"{did}:{state}" + (f":{attempts}" if state == "retrying" else "")
        await self.receipts.add((topics.DELIVERIES, CloudEvent.of(
            kind, self.publisher.source, receipt.case_id, receipt, event_id=event_id)))

    async def _dead_letter(self, did: str, sub: Subscriber, body: dict[str, Any],
                           result: SendResult, attempts: int, at: datetime) -> None:
        receipt = DeliveryReceipt(
            delivery_id=did, alert_id=str(body["alert_id"]), case_id=str(body["case_id"]),
            version=int(body["version"]), subscriber_id=sub.subscriber_id,
            scope=_scope(sub, body), channel=sub.channel.type, status="dead",
            http_status=result.status, attempts=attempts, error=result.error, at=at,
            kind=sub.kind.value, name=sub.name,
        )
        metrics.dead_lettered(topics.DELIVERIES_DLQ)
        await self.publisher.publish(
            topics.DELIVERIES_DLQ,
            CloudEvent.of(DELIVERY_DEAD, self.publisher.source, receipt.case_id, receipt,
                          event_id=f"{did}:dead"))

    # --- durable timers ------------------------------------------------------------------------

    async def tick(self) -> int:
        """Run what is due: retries, widenings, ack deadlines. Returns how many ran."""
        done = 0
        work: tuple[tuple[str, Callable[[str], Any]], ...] = (
            (RETRIES, self._retry), (WIDEN, self.widen), (ACKS, self._ack_overdue))
        for timer, run in work:
            lease, members = await self.ledger.due(timer)
            for member in members:
                done += 1
                await self._guard(timer, member, lease, run(member))
        return done

    async def _guard(self, timer: str, member: str, lease: float, work: Any) -> None:
        """Run one timer's work; settle it only when the work is done (a failure leaves the
        timer due again when its lease ends: never lost, even when Redis refuses writes)."""
        try:
            await work
        except Exception as exc:
            if is_transient(exc):
                RETRYING_NOW.failed(TIMERS_KEY, exc)
                self._timer_faults += 1
            log.exception("timer %s for %s failed; due again after its lease", timer, member)
            return
        await self.ledger.settle(timer, member, lease)

    async def run_timers(self) -> None:
        while True:
            try:
                faults = self._timer_faults
                await self.tick()
                if self._timer_faults == faults:
                    RETRYING_NOW.passed(TIMERS_KEY)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    RETRYING_NOW.failed(TIMERS_KEY, exc)
                log.exception("notify timers")
            await asyncio.sleep(self.settings.notify_tick_s)

    async def _retry(self, did: str) -> None:
        record = await self.ledger.get(did)
        if record.get("state") != "retrying":
            return
        body = await self.ledger.get_body(record.get("body_key", ""))
        if body is None:
            await self.ledger.mark(did, "dropped", error="push body expired")
            return
        alert = await self.alerts.get(str(body["alert_id"]))
        if body["type"] == domain.ALERT_ISSUED and (alert is None or alert.cancelled):
            await self.ledger.mark(did, "dropped", error="alert cancelled")
            return
        sub = await self.subscribers.get(record["subscriber_id"])
        if sub is None or not sub.active:
            await self.ledger.mark(did, "dropped", error="subscriber disabled")
            return
        await self.attempt(did, sub, body)

    async def widen(self, alert_id: str) -> None:
        async with self._locked(alert_id):
            alert = await self.alerts.get(alert_id)
            if alert is None or alert.cancelled:
                return
            now = self.clock()
            radius = self._radius(alert.seen_at, now)
            widened = radius > alert.radius_km
            if widened:
                alert.radius_km = radius
                alert.bump("Update", now, note=f"radius {radius:g} km")
                await self._save(alert)
        if widened:
            await self._fan_out(alert)
        await self._schedule_widening(alert, now)

    async def _ack_overdue(self, did: str) -> None:
        record = await self.ledger.get(did)
        if record.get("state") != "sent":
            return  # acknowledged, or no longer pending
        alert = await self.alerts.get(record.get("alert_id", ""))
        if alert is None or alert.cancelled:
            return
        reminders = int(record.get("reminders", "0") or 0)
        sub = await self.subscribers.get(record["subscriber_id"])
        now = self.clock()
        await self.ledger.mark(did, "sent", overdue="1", reminders=str(reminders + 1),
                               at=now.isoformat())
        receipt = DeliveryReceipt(
            delivery_id=did, alert_id=alert.alert_id, case_id=alert.case_id,
            version=int(record.get("version", "1")), subscriber_id=record["subscriber_id"],
            scope=record.get("scope", "restricted"), channel=record.get("channel", ""),
            status="ack_overdue", attempts=int(record.get("attempts", "1")),
            error=f"region {alert.region_code}: not acknowledged within "
                  f"{self.settings.notify_ack_deadline_s:g}s", at=now,
            kind=record.get("kind", ""), name=record.get("name", ""),
        )
        metrics.delivery_receipt("ack_overdue", receipt.kind, receipt.channel, now)
        await self.publisher.publish(
            topics.DELIVERIES,
            CloudEvent.of(DELIVERY_ACK_OVERDUE, self.publisher.source, alert.case_id, receipt,
                          event_id=f"{did}:overdue:{reminders + 1}"))
        if sub is None or not sub.active or reminders >= self.settings.notify_ack_repush_max:
            return
        body = {**(await self.ledger.get_body(record.get("body_key", "")) or {}),
                "reminder": reminders + 1}
        if "alert_id" not in body:
            return
        await self.feed.add(sub.subscriber_id, {**body, "delivery_id": did})
        result = await self._send(f"{did}_r{reminders + 1}", sub, body)
        if result.ok:
            await self.ledger.schedule(ACKS, did,
                                       time.time() + self.settings.notify_ack_deadline_s)

    # --- hub console and commander views -------------------------------------------------------

    async def acknowledge(self, did: str, hub_id: str | None, admin: bool = False) -> str:
        record = await self.ledger.get(did)
        if not record:
            raise NotFound(did)
        if not admin and record.get("subscriber_id") != hub_id:
            raise Forbidden(did)
        if record.get("state") == "acknowledged":
            return record.get("acked_at", "")
        at = self.clock()
        await self.ledger.mark(did, "acknowledged", acked_at=at.isoformat(), at=at.isoformat())
        metrics.hub_acknowledged(record, at)
        metrics.delivery_receipt("acknowledged", record.get("kind", ""),
                                 record.get("channel", ""), at)
        await self.ledger.unschedule(ACKS, did)
        receipt = DeliveryReceipt(
            delivery_id=did, alert_id=record.get("alert_id", ""),
            case_id=record.get("case_id", ""), version=int(record.get("version", "1")),
            subscriber_id=record.get("subscriber_id", ""), scope=record.get("scope", ""),
            channel=record.get("channel", ""), status="acknowledged",
            attempts=int(record.get("attempts", "1") or 1), at=at,
            kind=record.get("kind", ""), name=record.get("name", ""),
        )
        await self.publisher.publish(
            topics.DELIVERIES,
            CloudEvent.of(DELIVERY_ACKNOWLEDGED, self.publisher.source, receipt.case_id,
                          receipt, event_id=f"{did}:acknowledged"))
        return at.isoformat()

    async def deliveries(self, case_id: str) -> list[dict[str, Any]]:
        out = []
        for r in await self.ledger.of_case(case_id):
            out.append({
                "delivery_id": r["delivery_id"], "subscriber_id": r.get("subscriber_id", ""),
                "name": r.get("name", ""), "kind": r.get("kind", ""),
                "channel": r.get("channel", ""), "alert_id": r.get("alert_id", ""),
                "version": int(r.get("version", "0") or 0), "scope": r.get("scope", ""),
                "state": r.get("state", "pending"),
                "attempts": int(r.get("attempts", "0") or 0),
                "http_status": int(r["http_status"]) if r.get("http_status") else None,
                "error": r.get("error", ""), "overdue": r.get("overdue") == "1",
                "acked_at": r.get("acked_at") or None, "at": r.get("at", ""),
            })
        return out

    async def spread(self, case_id: str) -> tuple[AlertState, list[tuple[str, float, float, str]]]:
        alert = await self.alerts.get(domain.alert_id_of(case_id))
        if alert is None:
            raise NotFound(case_id)
        tiers = [km for _, km in self.settings.radius_tiers_km] + [self.settings.radius_max_km]
        rows = await self.subscribers.hubs_with_coords(alert.lat, alert.lon, max(tiers))
        states: dict[str, str] = {}
        for r in await self.ledger.of_case(case_id):
            if r.get("kind") != "hub":
                continue
            s = r.get("state", "")
            mark = ("acknowledged" if s == "acknowledged" else
                    "pushed" if s == "sent" else "not_yet")
            best = states.get(r.get("subscriber_id", ""), "not_yet")
            order = ["not_yet", "pushed", "acknowledged"]
            states[r.get("subscriber_id", "")] = max(best, mark, key=order.index)
        subs = {s.subscriber_id: s.name
                for s in await self.subscribers.get_many([r[0] for r in rows])}
        return alert, [(subs.get(i, i), lat, lon, states.get(i, "not_yet"))
                       for i, lat, lon in rows]


def _scope(sub: Subscriber, body: dict[str, Any]) -> str:
    """The receipt's audience: `group` for the case group (the alert service counts
    `restricted` receipts as hubs pushed), `cancel` for cancellations."""
    if sub.kind == SubscriberKind.member:
        return "group"
    return str(body.get("scope", "cancel"))
