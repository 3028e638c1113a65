"""One alert per child (issue 19 §1–§4), the part of notify's use cases that knows children:
a report of a child who already has a live alert becomes an Update of it (decided with the
child-identity rule of shared/identity.py, by an atomic claim, without waiting for dispatch);
an unlink gives the report its own alert; a reopen issues a cancelled alert again to everyone
who got its Cancel. Held by the planner (planner.py) as `planner.children`."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from services.notify import domain
from services.notify.domain import AlertState, MergedReport
from shared.events import ReportUnlinked
from shared.identity import (
    ChildIdentity,
    LinkEvidence,
    Sighting,
    contradiction,
    identity_of,
    link_evidence,
    sighting_of,
)
from shared.identity_claims import IdentityClaims, claimant_record
from shared.report import ReportAccepted

if TYPE_CHECKING:
    from services.notify.planner import Planner


class ChildAlerts:
    """Notify's use cases that know children; holds the child-identity claims."""

    def __init__(self, planner: Planner, claim_wait_s: float = 10.0) -> None:
        self.planner = planner
        self.notify = notify = planner.ctx
        self.claim_wait_s = claim_wait_s
        # The same child-identity rule and window as dispatch (shared/identity.py, settings).
        self.window = timedelta(hours=notify.settings.dispatch_duplicate_window_h)
        self.claims = IdentityClaims(notify.alerts.redis, "notify:child:",
                                     int(self.window.total_seconds()))

    async def same_child(self, accepted: ReportAccepted,
                         alert_id: str) -> tuple[str, LinkEvidence] | None:
        """The live alert of the same child, near in time and place, with the evidence; None
        when this report is the child's first (its alert then owns the child's keys)."""
        child = identity_of(accepted)
        keyed = child.keyed(self.notify.settings.identity_secret)
        keys = [k for _, k in keyed]
        owner, at = await self.claims.claim(keys, alert_id)
        if at is None or owner == alert_id:
            return None
        existing = await self.claimed_alert(owner)
        if existing is None or existing.cancelled:
            # Ended, or never came to be (its report dead-lettered): this report starts anew.
            await self.claims.take_over(keys, alert_id)
            return None
        had = (existing.report or {}).get("child") or {}
        first = ChildIdentity(name=str(had.get("name", "")), exercise=existing.exercise,
                              birth_date=had.get("birth_date"), id_number=had.get("id_number"))
        secret = self.notify.settings.identity_secret
        if contradiction(keyed[at][0], first.name, first.keys(secret), child, keyed):
            # Another child (twins): an alert of its own, with the keys the claim gave that one
            await self.claims.hand_over([k for i, k in enumerate(keys) if i != at], owner,
                                        alert_id)
            return None
        evidence = link_evidence(
            keyed[at][0], first, Sighting(at=existing.seen_at, lat=existing.lat,
                                          lon=existing.lon),
            child, sighting_of(accepted), self.notify.settings.dispatch_duplicate_km, self.window)
        return (owner, evidence) if evidence is not None else None

    async def claimed_alert(self, alert_id: str) -> AlertState | None:
        """The alert that claimed the child: another consumer may still be opening it, so wait
        up to `claim_wait_s`; None if it never appears."""
        return await claimant_record(lambda: self.notify.alerts.get(alert_id),
                                     self.claim_wait_s)

    async def merge(self, alert_id: str, accepted: ReportAccepted,
                    evidence: LinkEvidence | None) -> bool:
        """The second report's details reach everyone who had the alert, as an Update (one
        version per merged report: a redelivery resends the same version, same webhook-ids).
        The second report's `release.public` does not release the alert: its operator may sit
        in another county or province, and the alert's public release is its case leader's
        decision (dispatch `POST /cases/{id}/release`, leader level or above); it was the
        operator's to make for their own report only.
        False when the alert ended meanwhile (the report then needs an alert of its own)."""
        async with self.notify.locked(alert_id):
            alert = await self.notify.alerts.get(alert_id)
            if alert is None or alert.cancelled:
                return False
            if evidence is not None and all(m.report_id != accepted.report_id
                                            for m in alert.merged):
                alert.merged.append(MergedReport(
                    report_id=accepted.report_id, case_id=accepted.case_id,
                    accepted=accepted.model_dump(mode="json"), evidence=evidence))
                alert.report = domain.merge_report(alert.report or {},
                                                   accepted.report.model_dump(mode="json"))
                alert.bump("Update", self.notify.clock(), note=f"report {accepted.report_id}")
                await self.notify.save(alert)
            await self.notify.alerts.set_merged(accepted.case_id, alert_id)
        await self.planner.fanout.fan_out(alert, everyone=True)
        await self.planner.fanout.push_group(alert, everyone=True)
        return True

    async def reopen(self, case_id: str) -> None:
        """A wrong found undone: everyone who got the Cancel gets the alert again, as a new
        Alert, at once; the radius continues from the original last-seen time."""
        notes = await self.notify.alerts.notes(case_id)
        if notes.found:
            notes.found, notes.outcome = False, ""
            await self.notify.alerts.save_notes(case_id, notes)
        now = self.notify.clock()
        async with self.notify.locked(domain.alert_id_of(case_id)):
            alert = await self.notify.alerts.get(domain.alert_id_of(case_id))
            if alert is None or not alert.cancelled or alert.held_report is None:
                return
            alert.cancelled, alert.outcome = False, ""
            alert.report, alert.held_report = alert.held_report, None
            alert.leader = notes.leader
            alert.radius_km = self.planner.radius(alert.seen_at, now)
            alert.bump("Alert", now, note="reopened")
            await self.notify.save(alert)
        await self.planner.fanout.fan_out(alert, everyone=True)
        await self.planner.fanout.push_group(alert, everyone=True)
        await self.planner.schedule_widening(alert, now)

    async def unlink(self, unlinked: ReportUnlinked) -> None:
        """The commander undid a link: the report's child gets an alert of its own again."""
        alert_id = await self.notify.alerts.merged_into(unlinked.duplicate_case_id)
        if alert_id is None:
            return  # never merged here (or already unlinked)
        held: dict[str, Any] | None = None
        async with self.notify.locked(alert_id):
            alert = await self.notify.alerts.get(alert_id)
            if alert is not None:
                held = next((m.accepted for m in alert.merged
                             if m.report_id == unlinked.report_id), None)
                alert.merged = [m for m in alert.merged if m.report_id != unlinked.report_id]
                await self.notify.save(alert)
        notes = await self.notify.alerts.notes(unlinked.duplicate_case_id)
        if notes.found:  # a found of the other child mirrored while linked
            notes.found, notes.outcome = False, ""
            await self.notify.alerts.save_notes(unlinked.duplicate_case_id, notes)
        await self.notify.alerts.set_merged(unlinked.duplicate_case_id, None)
        if held is not None:
            accepted = ReportAccepted.model_validate(held)
            async with self.notify.locked(domain.alert_id_of(accepted.case_id)):
                own = await self.notify.alerts.get(domain.alert_id_of(accepted.case_id)) \
                    or await self.planner.open(accepted)
            if own is not None and not own.cancelled:
                await self.planner.fanout.fan_out(own)
                await self.planner.fanout.push_group(own)

    async def restore_identity(self, alert: AlertState) -> None:
        """The child's claim (a live alert within the window) and the reports merged into it."""
        for merged in alert.merged:
            await self.notify.alerts.set_merged(merged.case_id, alert.alert_id)
        child = (alert.report or {}).get("child")
        if alert.cancelled or not child or self.notify.clock() - alert.issued_at > self.window:
            return
        identity = ChildIdentity.model_validate({**child, "exercise": alert.exercise})
        keys = identity.keys(self.notify.settings.identity_secret)
        await self.claims.restore(keys, alert.alert_id)
