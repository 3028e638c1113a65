"""Delivery workers (issue 18 §2): take the planner's jobs, send, retry, record receipts.

A batch of jobs is worked recipient by recipient: the jobs of one recipient one after the
other, in the order the planner published them (they share a partition: jobs are keyed by
recipient), different recipients at once (at most `notify_fanout_parallel` requests in flight,
`notify_per_endpoint_limit` per host). For each job:

* the ledger record is claimed before the first request (one webhook-id per version and
  recipient: a job seen again — a redelivery after a crash or a rebalance — skips a settled
  delivery and resends a `pending` one with the same webhook-id);
* a job of an alert that is cancelled, of a disabled subscriber, or whose body was purged is
  `dropped` (a purge leaves nothing to resurrect: jobs carry no personal data); a Cancel to a
  hub out of service is shown on its console, sent nowhere, and `dropped` too;
* a Cancel goes only to a recipient an earlier version reached (delivery_rules.cancel_reaches)
  and supersedes that recipient's retries of earlier versions; a later version supersedes
  earlier ones still retrying; an Update to someone who received no earlier version goes out
  as an Alert, and each Update and Cancel references the versions that reached that recipient
  (delivery_rules.for_recipient: `references`, `cap_references` in CAP 1.2 form), on the
  first try and on every retry;
* the try itself and all that follows it are the sender's (services.notify.sending.Sender): its
  outcome is decided by delivery_rules.decide_attempt — a hub's push of an active alert keeps
  retrying (never `dead`), others die after `notify_retry_max_attempts` tries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.notify import content, domain
from services.notify.audience import Subscriber, SubscriberKind
from services.notify.context import Context
from services.notify.delivery_rules import cancel_reaches, for_recipient, superseded
from services.notify.domain import AlertState
from services.notify.lanes import Job
from services.notify.ledger_rules import BODY_GONE, CANCELLED, DISABLED, NOT_REACHED, SUPERSEDED
from services.notify.outbound import AppriseSender, WebhookSender
from services.notify.sending import RETRIES, Sender
from services.notify.signing import Keyring
from shared import telemetry
from shared.events import CloudEvent, DeliveryJob, DeliveryStatus
from shared.faults import is_transient

log = logging.getLogger(__name__)


# A message that failed for good, by its event id (a job's is `<delivery id>:job`).
OnError = Callable[[str, Exception], Awaitable[None]]
# A batch's push bodies by key, each read once (`DeliveryWorker._body`).
Bodies = dict[str, "asyncio.Future[dict[str, Any] | None]"]


def record_of(sub: Subscriber | None, job: DeliveryJob) -> dict[str, str]:
    """What the ledger record of a delivery says of it, set when it is claimed."""
    return {
        "subscriber_id": job.subscriber_id, "kind": sub.kind.value if sub else "",
        "channel": sub.channel.type if sub else "", "alert_id": job.alert_id,
        "case_id": job.case_id, "version": str(job.version), "scope": job.scope.value,
        "name": sub.name if sub else "", "body_key": job.body_key,
    }


@dataclass
class DeliveryWorker:
    """Works the planner's jobs: claims each ledger record, drops or supersedes what must not
    go out, makes each recipient's body, and hands the try to `sender`; the retry timer's next
    try of a delivery left `retrying`."""

    ctx: Context
    webhooks: WebhookSender
    apprise: AppriseSender
    disable: Callable[[str], Awaitable[None]]
    keyring: Keyring | None = None
    sender: Sender = field(init=False)

    def __post_init__(self) -> None:
        self.sender = Sender(self.ctx, self.webhooks, self.apprise, self.disable)

    # --- jobs ----------------------------------------------------------------------------------

    async def handle(self, events: list[CloudEvent], on_error: OnError,
                     traces: Mapping[str, Mapping[str, Any]] | None = None,
                     topic: str = "") -> None:
        """A batch of `homeward.delivery.job.v1` from the lane `topic`
        (shared.kafka.BatchConsumer); a message that is not a job goes to `on_error` alone (the
        rest are worked). `traces`: each event's Kafka headers by event id (its trace)."""
        jobs: list[DeliveryJob] = []
        traced: dict[str, Mapping[str, Any]] = {}
        for event in events:
            try:
                job = DeliveryJob.model_validate(event.data)
            except ValueError as exc:
                await on_error(event.id, exc)
                continue
            jobs.append(job)
            if traces and event.id in traces:
                traced[job.delivery_id] = traces[event.id]
        subs = {s.subscriber_id: s for s in await self.ctx.subscribers.get_many(
            dict.fromkeys(j.subscriber_id for j in jobs))}
        await self.run([(subs.get(j.subscriber_id) or _missing(j), j) for j in jobs], on_error,
                       traced, topic)

    async def run(self, jobs: list[Job], on_error: OnError | None = None,
                  traces: Mapping[str, Mapping[str, Any]] | None = None,
                  topic: str = "") -> None:
        """Work `jobs`: claim every ledger record in one round trip, then each recipient's
        jobs in order, recipients at once. `on_error` takes a job that failed for good (a
        transient fault is raised: the batch is worked again, idempotently)."""
        if not jobs:
            return
        claimed = await self.ctx.ledger.claim_many(
            {job.delivery_id: record_of(sub, job) for sub, job in jobs})
        by_recipient: dict[str, list[Job]] = {}
        seen: set[str] = set()
        for sub, job in jobs:  # a job published twice (a planner's redelivery) is worked once
            if job.delivery_id not in seen:
                seen.add(job.delivery_id)
                by_recipient.setdefault(job.subscriber_id, []).append((sub, job))
        limit = asyncio.Semaphore(self.ctx.settings.notify_fanout_parallel)
        bodies: Bodies = {}
        payloads: dict[tuple[str, str, str], str] = {}
        alerts = BatchAlerts(self.ctx.alerts.get)

        async def recipient(work: list[Job]) -> None:
            for sub, job in work:
                state, made = claimed[job.delivery_id]
                if state is not None and state != DeliveryStatus.pending:
                    continue  # settled, or waiting for its retry
                try:
                    with telemetry.consumer_span(topic, (traces or {}).get(job.delivery_id)):
                        await self.deliver(job, sub, made, bodies, payloads, limit, alerts)
                except Exception as exc:
                    if on_error is None or is_transient(exc):
                        raise
                    await on_error(f"{job.delivery_id}:job", exc)

        await asyncio.gather(*(recipient(w) for w in by_recipient.values()))

    async def _body(self, key: str, cache: Bodies) -> dict[str, Any] | None:
        """The push body `key`, read once per batch: the recipients of a batch start at once,
        and each would otherwise read (and parse) it before the first read had come back."""
        if key not in cache:
            cache[key] = asyncio.ensure_future(self.ctx.ledger.get_body(key))
        return await cache[key]

    async def deliver(self, job: DeliveryJob, sub: Subscriber, made: int,
                      bodies: Bodies,
                      payloads: dict[tuple[str, str, str], str],
                      limit: asyncio.Semaphore | None, alerts: BatchAlerts) -> None:
        """One job of a batch (`run`); `alerts` reads the alert's state for the batch."""
        ctx = self.ctx
        did = job.delivery_id
        cancel = job.msg_type == "Cancel"
        # A hub out of service still takes a Cancel on its console (below); nothing else.
        if not sub.active and not (cancel and sub.kind == SubscriberKind.hub):
            await ctx.ledger.mark(did, DeliveryStatus.dropped, error=DISABLED)
            return
        body = await self._body(job.body_key, bodies)
        if body is None:
            await ctx.ledger.mark(did, DeliveryStatus.dropped, error=BODY_GONE)
            return
        alert = await alerts.get(job.alert_id)
        if not cancel and alert is not None and alert.cancelled:
            await ctx.ledger.mark(did, DeliveryStatus.dropped, error=CANCELLED)
            return
        earlier = await self._earlier(job)
        if cancel and not cancel_reaches(r for _, r in earlier):
            await ctx.ledger.mark(did, DeliveryStatus.dropped, error=NOT_REACHED)
            return
        for old in superseded(earlier):
            await ctx.ledger.mark(old, DeliveryStatus.dropped,
                                  error=CANCELLED if cancel else SUPERSEDED)
            await ctx.timers.unschedule(RETRIES, old)
        body = self._for_recipient(body, [r for _, r in earlier], alert)
        if not sub.active:  # nothing is sent; no child's data stays on a closed station's screen
            await self.sender.show_on_console(did, sub, body)
            await ctx.ledger.mark(did, DeliveryStatus.dropped, error=DISABLED)
            return
        # One serialisation per (body, message type, references) in a batch. Keyed by value,
        # never by id(): the Alert made of an Update for a first-time recipient is a new dict,
        # and the id of a freed one is reused by the next (another case's payload under this
        # webhook-id); recipients with the same history share one.
        shared_as = (job.body_key, str(body.get("msg_type", "")),
                     str(body.get("cap_references", "")))
        payload = payloads.get(shared_as)
        if payload is None:
            payload = payloads[shared_as] = json.dumps(body, ensure_ascii=False,
                                                      separators=(",", ":"))
        active = alert is None or not alert.cancelled
        await self.sender.attempt(did, sub, body, made, payload, limit, active=active)

    async def _earlier(self, job: DeliveryJob) -> list[tuple[str, dict[str, str]]]:
        """The ledger records of this recipient's deliveries of the alert's earlier versions."""
        return await self._earlier_of(job.alert_id, job.version, job.subscriber_id)

    async def _earlier_of(self, alert_id: str, version: int,
                          subscriber_id: str) -> list[tuple[str, dict[str, str]]]:
        ids = [domain.delivery_id(alert_id, v, subscriber_id) for v in range(1, version)]
        records = await self.ctx.ledger.get_many(ids)
        return [(did, r) for did, r in zip(ids, records, strict=True) if r]

    def _for_recipient(self, body: dict[str, Any], earlier: list[dict[str, str]],
                       alert: AlertState | None) -> dict[str, Any]:
        """delivery_rules.for_recipient with the alert's versions' times and our sender."""
        sent = {v.version: v.sent for v in alert.versions} if alert is not None else {}
        return for_recipient(body, earlier, sent, self.ctx.settings.notify_sender)

    # --- one try -------------------------------------------------------------------------------
    # --- the retry timer -----------------------------------------------------------------------

    async def retry(self, did: str) -> None:
        """The next try of a delivery left `retrying`; dropped when the alert was cancelled
        (unless it is the Cancel), the subscriber disabled or the body purged."""
        ctx = self.ctx
        record = await ctx.ledger.get(did)
        if record.get("state") != DeliveryStatus.retrying:
            return
        body = await ctx.ledger.get_body(record.get("body_key", ""))
        if body is None:
            await ctx.ledger.mark(did, DeliveryStatus.dropped, error=BODY_GONE)
            return
        alert = await ctx.alerts.get(str(body["alert_id"]))
        active = alert is not None and not alert.cancelled
        if body["type"] == content.ALERT_ISSUED and not active:
            await ctx.ledger.mark(did, DeliveryStatus.dropped, error=CANCELLED)
            return
        sub = await ctx.subscribers.get(record["subscriber_id"])
        if sub is None or not sub.active:
            await ctx.ledger.mark(did, DeliveryStatus.dropped, error=DISABLED)
            return
        if alert is not None and await self._later(alert.alert_id, int(body["version"]),
                                                   alert.version, sub.subscriber_id):
            await ctx.ledger.mark(did, DeliveryStatus.dropped, error=SUPERSEDED)
            return
        earlier = await self._earlier_of(str(body["alert_id"]), int(body["version"]),
                                         sub.subscriber_id)
        body = self._for_recipient(body, [r for _, r in earlier], alert)
        await self.sender.attempt(did, sub, body, active=active, since=record.get("since", ""))

    async def _later(self, alert_id: str, version: int, latest: int, subscriber_id: str) -> bool:
        """A later version of the alert was taken on for this recipient: it carries what this
        one did (a retry of the earlier one would only repeat it)."""
        ids = [domain.delivery_id(alert_id, v, subscriber_id) for v in range(version + 1,
                                                                             latest + 1)]
        return any(await self.ctx.ledger.get_many(ids))


class BatchAlerts:
    """Alert states as a batch of jobs reads them: one read serves every job of the alert for
    `max_age_s` (0.25 s), then the next job reads it again. A batch's jobs (up to 500) would
    otherwise each read and parse the same state; bounding its age keeps a Cancel decided
    meanwhile stopping the alert's remaining jobs within that time (they are `dropped`), as a
    read per job did."""

    def __init__(self, read: Callable[[str], Awaitable[AlertState | None]],
                 max_age_s: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self.max_age_s = max_age_s
        self._clock = clock
        self._got: dict[str, tuple[float, asyncio.Future[AlertState | None]]] = {}

    async def get(self, alert_id: str) -> AlertState | None:
        now = self._clock()
        hit = self._got.get(alert_id)
        if hit is None or now - hit[0] > self.max_age_s or (
                hit[1].done() and hit[1].exception() is not None):
            hit = self._got[alert_id] = (now, asyncio.ensure_future(self._read(alert_id)))
        return await hit[1]


def _missing(job: DeliveryJob) -> Subscriber:
    """A stand-in for a subscriber no longer known: inactive, so its job is dropped."""
    return Subscriber.model_validate({
        "subscriber_id": job.subscriber_id, "kind": "media", "name": "?", "secret": "",
        "active": False, "location": {"lat": 0, "lon": 0}, "channel": {"type": "console"}})
