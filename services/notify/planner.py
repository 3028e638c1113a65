"""The alert planner (issue 18 §1): consumes reports and dispatch's events, decides versions
(Alert, Update, Cancel), audiences and recipients with the rules of `domain`, and hands each
version to its fan-out (services.notify.fanout: logs the push bodies, publishes one delivery
job per (version, recipient) to the lane of the recipient). It sends nothing itself: the
delivery workers do. The use cases that know children (one alert per child, unlink, reopen)
are in services.notify.children.

Per-recipient order: a version's jobs are published under the alert's lock, after the state
that decided them was saved, so on each recipient's partition the jobs of an alert follow the
order of its versions (an Alert before its Updates, the Cancel last).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from services.notify import domain, tip_push
from services.notify.audience import SubscriberKind
from services.notify.children import ChildAlerts
from services.notify.context import Context
from services.notify.domain import AlertState
from services.notify.fanout import FanOut
from services.notify.lanes import Lanes
from services.notify.purge import purge_alert, pushed_report
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
    DetailsAmended,
    ReleaseApproved,
    ReportAmended,
    ReportUnlinked,
)
from shared.identity import LinkEvidence
from shared.report import ReportAccepted

log = logging.getLogger(__name__)

WIDEN = "widen"


@dataclass
class Planner:
    """Loads an alert, decides its next version with `domain`'s rules, saves it and hands it
    to `fanout`, under the alert's lock."""

    ctx: Context
    lanes: Lanes
    children: ChildAlerts = field(init=False)
    fanout: FanOut = field(init=False)

    def __post_init__(self) -> None:
        self.children = ChildAlerts(self)
        self.fanout = FanOut(self.ctx, self.lanes)

    # --- time and radius -----------------------------------------------------------------------

    def radius(self, seen_at: datetime, now: datetime) -> float:
        s = self.ctx.settings
        return domain.radius_km(now - seen_at, s.radius_tiers_km, s.radius_max_km,
                                s.notify_tier_unit_s)

    async def schedule_widening(self, alert: AlertState, now: datetime) -> None:
        s = self.ctx.settings
        nxt = domain.next_boundary(alert.seen_at, now, s.radius_tiers_km, s.notify_tier_unit_s)
        if nxt is not None and not alert.cancelled:
            await self.ctx.timers.schedule(WIDEN, alert.alert_id, nxt.timestamp())

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
            await self.fanout.cancel_fan_out(alert)
        else:
            metrics.alert_opened(alert.alert_id, accepted.accepted_at)
            await self.fanout.fan_out(alert)
            await self.fanout.push_group(alert)

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
            await self.fanout.fan_out(alert, everyone=True, kinds=(SubscriberKind.hub,))
        await self.fanout.push_group(alert)

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
            await self.fanout.push_group(alert)

    async def amend(self, amended: DetailsAmended) -> None:
        """The commander amended the child's details (issue 18 §5): a new version whose Update
        goes to every earlier recipient (hubs, the case group and, when released, the public)
        and to anyone newly in range. Fields outside AMENDABLE_DETAILS are ignored. Also the
        operators' amendment of a report before its case group (ReportAmended, alert `PATCH
        /api/v1/reports/{report_id}`). A report merged into another child's alert (the same
        child) adds to that alert what its amendment adds, as the report itself did
        (domain.merge_report: a description or suspect appended, photos added, a height only
        where none was given) and replaces nothing: that alert is another case's, whose details
        its own commander amends at its leader's level (dispatch `PATCH /cases/{id}/details`),
        and dispatch records the report's amendment on no case (services.dispatch.amend)."""
        ctx = self.ctx
        merged = (await ctx.alerts.merged_into(amended.case_id)
                  if isinstance(amended, ReportAmended) else None)
        alert_id = merged or domain.alert_id_of(amended.case_id)
        async with ctx.locked(alert_id):
            alert = await ctx.alerts.get(alert_id)
            if alert is None or alert.cancelled or alert.report is None:
                return
            if merged:
                report = domain.merge_report(alert.report, domain.amend_report(
                    {}, amended.amended, AMENDABLE_DETAILS))
            else:
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
        await self.fanout.fan_out(alert, everyone=True)
        await self.fanout.push_group(alert, everyone=True)

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
        await self.fanout.fan_out(alert)

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
                await ctx.timers.unschedule(WIDEN, alert.alert_id)
        await self.fanout.cancel_fan_out(alert)

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
            await self.fanout.fan_out(alert)
        await self.schedule_widening(alert, now)
