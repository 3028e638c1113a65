"""The planner's hand-off (issue 18 §1-2): a version's recipients, found page by page
(services.notify.recipients), become one delivery job per (version, recipient) on the
recipient's lane (services.notify.lanes). The push bodies are logged first (sealed, on
homeward.alerts.v1, then Redis) and who heard of the alert from which version is recorded;
jobs carry no personal data, only the body's key.

Per-recipient order: every hand-off runs under the alert's lock, after the state that decided
it was saved, so on each recipient's partition the jobs of an alert follow the order of its
versions (an Alert before its Updates, the Cancel last).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.notify import audience, content, domain
from services.notify.audience import Subscriber, SubscriberKind
from services.notify.context import Context
from services.notify.domain import AlertState
from services.notify.lanes import Job, Lanes, Then
from services.notify.recipients import Selection
from shared.events import DeliveryJob, DeliveryScope

__all__ = ["FanOut", "body_key", "job_of", "job_scope"]


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
class FanOut:
    """Bodies logged, recipients recorded, jobs handed to the lanes: what the planner decided,
    published (the planner holds one as `planner.fanout`)."""

    ctx: Context
    lanes: Lanes
    selection: Selection = field(init=False)

    def __post_init__(self) -> None:
        self.selection = Selection(self.ctx)

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
        those an earlier version reached); a hub out of service too, whose console the worker
        clears without sending anything."""
        recipients = await self.ctx.alerts.recipients(alert.alert_id)
        subs = await self.ctx.subscribers.get_many(recipients)
        body = content.cancel_body(alert, self.ctx.clock())
        await self.publish(alert.alert_id, [(s, body) for s in subs
                                            if s.active or s.kind == SubscriberKind.hub], None)

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
