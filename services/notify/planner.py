"""The alert planner (issue 18 §1): consumes reports and dispatch's events, decides versions
(Alert, Update, Cancel), audiences and recipients with the rules of `domain`,
`audience` and `content`, logs the push
bodies and publishes one delivery job per (version, recipient) to the lane of the recipient
(services.notify.lanes). It sends nothing itself: the delivery workers do.

Per-recipient order: a version's jobs are published under the alert's lock, after the state
that decided them was saved, so on each recipient's partition the jobs of an alert follow the
order of its versions (an Alert before its Updates, the Cancel last).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notify import audience, content, domain, tip_push
from services.notify.audience import Subscriber, SubscriberKind
from services.notify.children import ChildAlerts
from services.notify.context import Context
from services.notify.domain import AlertState
from services.notify.lanes import Job, Lanes, Then
from services.notify.purge import purge_alert, pushed_report
from services.notify.recipients import Selection
from shared import metrics
from shared.events import (
    AMENDABLE_DETAILS,
    CASE_DETAILS_AMENDED,
    CASE_FOUND,
    CASE_MEMBER_ADDED,
    CASE_OPENED,
    CASE_PURGED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    CASE_REPORT_UNLINKED,
    CaseEvent,
    CaseFound,
    CaseOpened,
    CasePurged,
    CaseReopened,
    CloudEvent,
    DeliveryJob,
    DeliveryScope,
    DetailsAmended,
    ReleaseApproved,
    ReportUnlinked,
)
from shared.identity import LinkEvidence
from shared.report import ReportAccepted

log = logging.getLogger(__name__)

WIDEN = "widen"


def body_key(body: dict[str, Any]) -> str:
    """Where a version's push body is kept: `<alert id>:<version>:<scope>`."""
    return f"{body['alert_id']}:{body['version']}:{body.get('scope', 'cancel')}"


def job_scope(sub: Subscriber, body: dict[str, Any]) -> DeliveryScope:
    """The receipt's audience: `group` for the case group (the alert service counts
    `restricted` receipts as hubs pushed), `cancel` for cancellations."""
    if sub.kind == SubscriberKind.member:
        return DeliveryScope.group
    return DeliveryScope(str(body.get("scope", "cancel")))


def job_of(sub: Subscriber, body: dict[str, Any]) -> DeliveryJob:
    return DeliveryJob(
        delivery_id=domain.delivery_id(str(body["alert_id"]), int(body["version"]),
                                       sub.subscriber_id),
        alert_id=str(body["alert_id"]), case_id=str(body["case_id"]),
        version=int(body["version"]), msg_type=body.get("msg_type", "Alert"),
        subscriber_id=sub.subscriber_id, scope=job_scope(sub, body), body_key=body_key(body))


@dataclass
class Planner:
    ctx: Context
    lanes: Lanes
    children: ChildAlerts = field(init=False)
    selection: Selection = field(init=False)

    def __post_init__(self) -> None:
        self.children = ChildAlerts(self)
        self.selection = Selection(self.ctx)

    # --- time and radius -----------------------------------------------------------------------

    def radius(self, seen_at: datetime, now: datetime) -> float:
        s = self.ctx.settings
        return domain.radius_km(now - seen_at, s.radius_tiers_km, s.radius_max_km,
                                s.notify_tier_unit_s)

    async def schedule_widening(self, alert: AlertState, now: datetime) -> None:
        s = self.ctx.settings
        nxt = domain.next_boundary(alert.seen_at, now, s.radius_tiers_km, s.notify_tier_unit_s)
        if nxt is not None and not alert.cancelled:
            await self.ctx.ledger.schedule(WIDEN, alert.alert_id, nxt.timestamp())

    # --- reports -------------------------------------------------------------------------------

    async def on_report_accepted(self, event: CloudEvent) -> None:
        """Hubs inside the radius of the elapsed time get the restricted bulletin at once;
        media and volunteers the public one if release came with the report. A report of a
        child who already has an alert (shared/identity.py, decided by an atomic claim on the
        child's identity keys, without waiting for dispatch) becomes an Update of that alert."""
        ctx = self.ctx
        accepted = ReportAccepted.model_validate(event.data)
        alert_id = domain.alert_id_of(accepted.case_id)
        merged_into = await ctx.alerts.merged_into(accepted.case_id)
        if merged_into is not None:  # a redelivery of a merged report: finish the Update
            await self.children.merge(merged_into, accepted, None)
            return
        same: tuple[str, LinkEvidence] | None = None
        async with ctx.locked(alert_id):
            alert = await ctx.alerts.get(alert_id)
            if alert is None:
                same = await self.children.same_child(accepted, alert_id)
                if same is None:
                    alert = await self.open(accepted)
                    if alert is None:
                        return  # found before we heard of the report: nobody is told anything
            # else: a redelivery; finish what the first run started
        if alert is None and same is not None:
            if await self.children.merge(same[0], accepted, same[1]):
                return
            async with ctx.locked(alert_id):  # that alert ended meanwhile: one of its own
                alert = await ctx.alerts.get(alert_id) or await self.open(accepted)
            if alert is None:
                return
        assert alert is not None
        if alert.cancelled:
            await self.cancel_fan_out(alert)
        else:
            metrics.alert_opened(alert.alert_id, accepted.accepted_at)
            await self.fan_out(alert)
            await self.push_group(alert)

    async def open(self, accepted: ReportAccepted) -> AlertState | None:
        """Version 1 of the alert of a report (the caller holds the alert's lock); None when
        dispatch's found came first."""
        ctx = self.ctx
        report = accepted.report
        seen = report.last_seen
        now = ctx.clock()
        notes = await ctx.alerts.notes(accepted.case_id)
        radius = self.radius(seen.at, now)
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
            await ctx.save(alert)
            return None
        await ctx.save(alert)
        await self.schedule_widening(alert, now)
        return alert

    # --- dispatch's events ---------------------------------------------------------------------

    async def on_case_event(self, event: CloudEvent) -> None:
        """Dispatch's events, validated against their models (a violation is dead-lettered)."""
        if event.type == CASE_OPENED:
            await self.leader_known(CaseOpened.model_validate(event.data))
        elif event.type == CASE_MEMBER_ADDED:
            await self.member_added(CaseEvent.model_validate(event.data))
        elif event.type == CASE_RELEASE_APPROVED:
            await self.release(ReleaseApproved.model_validate(event.data).case_id)
        elif event.type == CASE_FOUND:
            found = CaseFound.model_validate(event.data)
            await self.cancel(found.case_id, found.outcome)
        elif event.type == CASE_REOPENED:
            await self.children.reopen(CaseReopened.model_validate(event.data).case_id)
        elif event.type == CASE_REPORT_UNLINKED:
            await self.children.unlink(ReportUnlinked.model_validate(event.data))
        elif event.type == CASE_DETAILS_AMENDED:
            await self.amend(DetailsAmended.model_validate(event.data))
        elif event.type == CASE_PURGED:
            await purge_alert(self.ctx, CasePurged.model_validate(event.data).case_id)
        elif event.type in tip_push.TYPES:  # sightings to the case group (issue 16)
            await tip_push.push(self, event)

    async def leader_known(self, opened: CaseOpened) -> None:
        """The leader's name and phone, usually known after the first hub push (issue 18 §5):
        the hubs that had the alert get an Update carrying them; the case group is told."""
        if opened.leader is None:
            return
        ctx = self.ctx
        leader = opened.leader.model_dump(mode="json")
        notes = await ctx.alerts.notes(opened.case_id)
        notes.leader = leader
        await ctx.alerts.save_notes(opened.case_id, notes)
        changed = False
        async with ctx.locked(domain.alert_id_of(opened.case_id)):
            alert = await ctx.alerts.get(domain.alert_id_of(opened.case_id))
            if alert is None or alert.cancelled:
                return
            if alert.leader != leader:
                changed = True
                alert.leader = leader
                if await ctx.alerts.recipients(alert.alert_id):
                    alert.bump("Update", ctx.clock(), note="leader")
                await ctx.save(alert)
        if changed:
            await self.fan_out(alert, everyone=True, kinds=(SubscriberKind.hub,))
        await self.push_group(alert)

    async def member_added(self, added: CaseEvent) -> None:
        ctx = self.ctx
        member = added.details.get("member", added.details)
        if not isinstance(member, dict) or not member.get("phone"):
            return
        notes = await ctx.alerts.notes(added.case_id)
        if all(m.get("phone") != member["phone"] for m in notes.members):
            notes.members.append(member)
            await ctx.alerts.save_notes(added.case_id, notes)
        alert = await ctx.alerts.get(domain.alert_id_of(added.case_id))
        if alert is not None and not alert.cancelled:
            await self.push_group(alert)

    async def amend(self, amended: DetailsAmended) -> None:
        """The commander amended the child's details (issue 18 §5): a new version whose Update
        goes to every earlier recipient (hubs, the case group and, when released, the public)
        and to anyone newly in range. Fields outside AMENDABLE_DETAILS are ignored. Also the
        operators' amendment of a report before its case group (ReportAmended, alert `PATCH
        /api/v1/reports/{report_id}`): a report merged into another child's alert amends that
        alert."""
        ctx = self.ctx
        alert_id = (await ctx.alerts.merged_into(amended.case_id)
                    or domain.alert_id_of(amended.case_id))
        async with ctx.locked(alert_id):
            alert = await ctx.alerts.get(alert_id)
            if alert is None or alert.cancelled or alert.report is None:
                return
            report = domain.amend_report(alert.report, amended.amended, AMENDABLE_DETAILS)
            note = "amended " + ",".join(sorted(amended.amended))
            if report == alert.report:
                # A redelivery. When this amendment is the latest version, the planner may
                # have died between saving it and handing its jobs on: hand them on again
                # (same delivery ids: nobody gets it twice). Otherwise nothing pushed changed.
                if alert.versions[-1].note != note:
                    return
            else:
                alert.report = report
                alert.bump("Update", ctx.clock(), note=note)
                await ctx.save(alert)
        await self.fan_out(alert, everyone=True)
        await self.push_group(alert, everyone=True)

    async def release(self, case_id: str) -> None:
        ctx = self.ctx
        notes = await ctx.alerts.notes(case_id)
        if not notes.released:
            notes.released = True
            await ctx.alerts.save_notes(case_id, notes)
        async with ctx.locked(domain.alert_id_of(case_id)):
            alert = await ctx.alerts.get(domain.alert_id_of(case_id))
            if alert is None or alert.cancelled:
                return
            if not alert.released:
                alert.released = True
                alert.bump("Update", ctx.clock(), note="release_approved")
                await ctx.save(alert)
        await self.fan_out(alert)

    async def cancel(self, case_id: str, outcome: str) -> None:
        ctx = self.ctx
        notes = await ctx.alerts.notes(case_id)
        if not notes.found:
            notes.found, notes.outcome = True, outcome
            await ctx.alerts.save_notes(case_id, notes)
        async with ctx.locked(domain.alert_id_of(case_id)):
            alert = await ctx.alerts.get(domain.alert_id_of(case_id))
            if alert is None:
                return
            if not alert.cancelled:
                alert.cancelled, alert.outcome = True, outcome
                # Kept (never rendered) for a reopen; the public copies lose it now.
                alert.held_report = alert.report
                alert.report, alert.leader = None, None
                alert.bump("Cancel", ctx.clock(), note=outcome)
                await ctx.save(alert)  # drops it from the public feed at once
                await ctx.ledger.unschedule(WIDEN, alert.alert_id)
        await self.cancel_fan_out(alert)

    async def widen(self, alert_id: str) -> None:
        """A tier boundary passed: a new version with the wider radius, to the recipients it
        newly covers only (the annulus and anyone in range not told yet, in pages:
        services.notify.selection). The durable timer is settled only after the fan-out, so a
        planner dying between pages gets this called again: the version is then the latest
        and already saved, and its fan-out runs again to finish the remaining pages."""
        ctx = self.ctx
        async with ctx.locked(alert_id):
            alert = await ctx.alerts.get(alert_id)
            if alert is None or alert.cancelled:
                return
            now = ctx.clock()
            radius = self.radius(alert.seen_at, now)
            widened = radius > alert.radius_km
            note = f"radius {radius:g} km"
            # A redelivery after a planner died mid-fan-out: finish this widening's pages.
            unfinished = not widened and alert.versions[-1].note == note
            if widened:
                alert.radius_km = radius
                alert.bump("Update", now, note=note)
                await ctx.save(alert)
        if widened or unfinished:
            await self.fan_out(alert)
        await self.schedule_widening(alert, now)

    # --- recipients and jobs -------------------------------------------------------------------

    def body(self, alert: AlertState, scope: Any) -> dict[str, Any]:
        s = self.ctx.settings
        return content.push_body(alert, scope, self.ctx.link(alert.alert_id),
                                s.notify_official_contact, s.notify_push_max_chars,
                                self.ctx.clock(), s.display_timezone, self.ctx.verify_base())

    async def fan_out(self, alert: AlertState, everyone: bool = False,
                      kinds: tuple[SubscriberKind, ...] | None = None) -> None:
        """This version's jobs, page by page as `pages` finds them, all under the alert's lock
        (as one publish was): a later version or the Cancel waits for the last page, so no
        recipient gets them before this version. A planner dying between pages leaves the
        work to the redelivery of what triggered it (selection.py, rule 6)."""
        ctx = self.ctx
        bodies = {scope: self.body(alert, scope) for scope in ("restricted", "public")}
        thens: list[Then] = []
        logged: set[str] = set()  # each body logged once per run, not once per page
        async with ctx.locked(alert.alert_id) as lock:
            async for subs in self.selection.pages(alert, everyone, kinds):
                await lock.reacquire()  # a long fan-out keeps its lock while it progresses
                then = await self._hand_on(alert.alert_id, [
                    (s, bodies["restricted" if s.kind == SubscriberKind.hub else "public"])
                    for s in subs], alert.version, logged)
                if then is not None:
                    thens.append(then)
        for then in thens:  # in-process lanes deliver here, outside the lock
            await then()

    async def push_group(self, alert: AlertState, everyone: bool = False) -> None:
        """The case group's leader and members get the restricted bulletin over Apprise (an
        SMS gateway's URL with {phone}), when one is configured; never for drills."""
        ctx = self.ctx
        template = ctx.settings.notify_group_apprise_url
        if not template or alert.exercise:
            return
        notes = await ctx.alerts.notes(alert.case_id)
        people = [p for p in [alert.leader or notes.leader, *notes.members]
                  if p and p.get("phone")]
        members = audience.group_members(alert, people, template)
        already = await ctx.alerts.recipients(alert.alert_id)
        members = [m for m in members if everyone or already.get(m.subscriber_id, alert.version)
                   >= alert.version]
        if not members:
            return
        await ctx.subscribers.add_many(members)  # so the cancellation finds them
        body = self.body(alert, "restricted")
        await self.publish(alert.alert_id, [(m, body) for m in members], alert.version)

    async def cancel_fan_out(self, alert: AlertState) -> None:
        """Every recipient of an earlier version gets the Cancel (a worker sends it only to
        those an earlier version reached)."""
        recipients = await self.ctx.alerts.recipients(alert.alert_id)
        subs = await self.ctx.subscribers.get_many(recipients)
        body = content.cancel_body(alert, self.ctx.clock())
        await self.publish(alert.alert_id, [(s, body) for s in subs if s.active], None)

    async def publish(self, alert_id: str, work: list[tuple[Subscriber, dict[str, Any]]],
                      version: int | None) -> None:
        """`_hand_on` under the alert's lock, so that a later version's jobs never overtake
        this one's."""
        if not work:
            return
        async with self.ctx.locked(alert_id):
            then = await self._hand_on(alert_id, work, version)
        if then is not None:  # in-process lanes deliver here, outside the lock
            await then()

    async def _hand_on(self, alert_id: str, work: list[tuple[Subscriber, dict[str, Any]]],
                       version: int | None, stored: set[str] | None = None) -> Then | None:
        """Log each distinct body (not those whose keys are in `stored`, which it adds to),
        record who hears of the alert from `version` (None: a cancellation, nobody new), then
        hand one job per recipient to its lane (the caller holds the alert's lock)."""
        if not work:
            return None
        ctx = self.ctx
        stored = set() if stored is None else stored
        jobs: list[Job] = []
        for sub, body in work:
            key = body_key(body)
            if key not in stored:
                stored.add(key)
                await ctx.put_body(key, body)
            jobs.append((sub, job_of(sub, body)))
        if version is not None:
            await ctx.alerts.add_recipients(alert_id, [s.subscriber_id for s, _ in work],
                                            version)
        return await self.lanes.publish(jobs)
