"""Use cases of the alert service; dependencies are passed in."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from redis.exceptions import RedisError

from services.alert import domain, place
from services.alert.adapters.limiter import Bucket, LimiterUnavailable, RateLimiter
from services.alert.adapters.outbox import Outbox
from services.alert.adapters.outbox_rows import (
    Appended,
    IdempotencyConflict,
    IdempotencyKey,
    OutboxEntry,
)
from services.alert.adapters.progress import ProgressStore
from services.alert.retention import PhotoAccess, photo_names
from shared import case_ids, pii, topics
from shared.auth import Principal
from shared.boundaries import boundary_index
from shared.casekeys import CaseKeys, CasePurged
from shared.events import (
    CASE_CLOSED,
    CASE_OPENED,
    CASE_REPORT_LINKED,
    CASE_REPORT_UNLINKED,
    DELIVERY_SENT,
    REPORT_ACCEPTED,
    TIP_RECEIVED,
    CaseEvent,
    CaseOpened,
    CloudEvent,
    DeliveryReceipt,
    ReportLinked,
    ReportUnlinked,
    TipLocation,
    TipReceived,
)
from shared.regions import region_index
from shared.report import Report, ReportAccepted, TipRequest

log = logging.getLogger(__name__)
CASE_ID_DRAWS = 3  # held draws of an id before one is taken unclaimed (Intake.new_owner)

CAP_WINDOW_S = 365 * 24 * 3600  # the per-case cap counts a year of tips


@dataclass
class TipLimits:
    """Public tips (issue 12): per client (an IPv4 address or an IPv6 /64), per client on one
    case, all clients on one case (high: a few clients cannot exhaust it, since each is held
    to per_case_client), and the cap of tips kept per case."""

    per_client: int = 10
    per_case: int = 1000
    window_s: int = 60
    per_case_client: int = 5
    cap_per_case: int = 5000

    def buckets(self, case_id: str, client: str) -> list[Bucket]:
        return [Bucket(f"client:{client}", self.per_client, self.window_s),
                Bucket(f"case:{case_id}:client:{client}", self.per_case_client, self.window_s),
                Bucket(f"case:{case_id}", self.per_case, self.window_s),
                Bucket(f"total:{case_id}", self.cap_per_case, CAP_WINDOW_S)]


@dataclass
class Intake:
    outbox: Outbox
    limiter: RateLimiter
    tip_limits: TipLimits = field(default_factory=TipLimits)
    regions: place.RegionLookup = field(default_factory=region_index)
    boundaries: Callable[[], place.BoundaryLookup] | None = boundary_index  # loaded on first use
    progress: ProgressStore | None = None
    keys: CaseKeys | None = None  # seals personal fields with the case's key (issue 13)
    photos: PhotoAccess | None = None  # the report's photos follow its case (issue 13)
    public_url: str = ""
    source: str = "/homeward/alert"
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def file_report(
        self, report: Report, operator: Principal, idempotency_key: str | None = None
    ) -> Appended:
        """Commit the report to the outbox (durable before this returns); the relay publishes
        it. With an Idempotency-Key, a retry of the same body gets the first answer."""
        domain.check_release(report, operator)
        where = place.resolve_place(report, self.regions,
                                    self.boundaries() if self.boundaries else None)
        resolved = where.report
        region_code = resolved.last_seen.region_code
        now = self.clock()
        report_id = domain.new_report_id()
        case_id, fresh = await self.new_owner(lambda: case_ids.new_case_id(region_code, now))
        accepted = ReportAccepted(
            report_id=report_id, case_id=case_id, accepted_at=now, operator=operator.sub,
            operator_region=operator.region, report=resolved, place_derived=where.derived,
            place_conflict=where.conflict, region_code_replaced=where.replaced,
        )
        headers, value = CloudEvent.encode(REPORT_ACCEPTED, self.source, case_id, accepted,
                                           event_id=report_id)
        key_row: list[OutboxEntry] = []
        if fresh is not None:
            data = accepted.model_dump(mode="json")
            # The age stays clear when the birth date is sealed (the rules need it).
            data["report"]["child"]["age"] = resolved.child.age_at(resolved.last_seen.at.date())
            # The case is new (its id was just made): its key is committed with the report, in
            # one transaction and one fsync, the key's row first (published before the event
            # it seals); Redis caches it (readers without it read the topic).
            key, record = fresh
            key_row.append(self._key_entry(case_id, region_code, operator.sub, record))
            value = _json(pii.seal(data, pii.REPORT_FIELDS, case_id, key, copy=False))
        entry = OutboxEntry(
            record_id=report_id, kind="report", topic=topics.REPORTS, key=case_id,
            headers=headers, value=value,
            answer={"report_id": report_id, "case_id": case_id, "status": "accepted",
                    "place": where.answer()},
            region=region_code, operator=operator.sub,
        )
        if self.photos is not None:
            await self.photos.attach(case_id, region_code, photo_names(
                resolved.child.photo_urls, self.public_url), resolved.release.public, operator)
        idem = None
        if idempotency_key:
            idem = IdempotencyKey(operator.sub, idempotency_key, domain.body_hash(report))
        try:
            return await self.outbox.append(entry, idem, before=key_row)
        except IdempotencyConflict as exc:
            raise domain.IntakeRefused(409, "idempotency_conflict", "Idempotency-Key") from exc

    async def new_owner(self, draw: Callable[[], str]) -> tuple[str, tuple[bytes, bytes] | None]:
        """A new id from `draw` (a case id, or an unidentified child's record id: the owners
        of a data key) and, when personal data is sealed, its fresh data key and key record.

        The id is claimed in Redis (every alert pod's cache of case keys) before the report is
        committed: an id another owner holds (two reports drew one suffix, shared.case_ids) is
        drawn again, so neither the second report nor the first owner's key is lost to it.
        When Redis does not answer, the report is taken all the same (intake needs no Redis)
        and the 8 random symbols alone keep ids apart; readers fill their cache from the
        topic. So is a further draw, unclaimed, after `CASE_ID_DRAWS` held ones, which chance
        does not make (a Redis answering wrongly does): a report is never refused for it, and
        never given an id Redis said was held."""
        for attempt in range(CASE_ID_DRAWS + 1):
            case_id = draw()
            if self.keys is None:
                return case_id, None
            fresh = self.keys.fresh(case_id)
            if attempt == CASE_ID_DRAWS:
                return case_id, fresh
            try:
                if await self.keys.claim(case_id, fresh[1]):
                    return case_id, fresh
            except (RedisError, OSError):
                return case_id, fresh
            log.error("id %s is held by another case or record: drawing another", case_id)
        raise AssertionError("unreachable")

    async def report_status(self, report_id: str, who: Principal) -> dict[str, Any] | None:
        """accepted (durable, waiting for Kafka) or published. Visible to the operator who
        filed it and to operators whose region covers the last-seen place."""
        stored = await self.outbox.get(report_id)
        if stored is None or stored.kind != "report":
            return None
        if stored.operator != who.sub and not who.can_see(stored.region):
            return None
        answer: dict[str, Any] = {**stored.answer,
                                  "status": "published" if stored.published else "accepted"}
        if self.progress is not None:
            try:
                answer["progress"] = await self.progress.get(stored.answer["case_id"])
            except (RedisError, OSError):
                answer["progress"] = None  # the report's own status does not need Redis
        return answer

    async def file_tip(self, tip: TipRequest, client: str, hub_id: str | None = None) -> str:
        """Accept a public tip from `client` (domain.client_key): durable in the outbox when
        this returns; `hub_id` marks a hub staff's sighting (source hub). Raises IntakeRefused
        410 case_closed / 429 tip_cap_reached, RateLimited, or LimiterUnavailable when Redis
        cannot tell (fails closed: 503)."""
        if self.progress is not None:
            try:
                closed = await self.progress.is_closed(tip.case_id)
            except (RedisError, OSError) as exc:
                raise LimiterUnavailable(str(exc)) from exc
            if closed:
                raise domain.IntakeRefused(410, "case_closed", "case_id")
        refused = await self.limiter.hit_all(self.tip_limits.buckets(tip.case_id, client))
        if refused is not None:
            bucket, retry_after = refused
            if bucket.name.startswith("total:"):
                raise domain.IntakeRefused(429, "tip_cap_reached", "case_id")
            raise RateLimited(retry_after)
        now = self.clock()
        received = TipReceived(
            tip_id=domain.new_tip_id(), case_id=tip.case_id, seen_at=tip.seen_at,
            location=TipLocation(**tip.location.model_dump()), description=tip.description,
            contact=tip.contact, received_at=now,
            source="hub" if hub_id else "public", hub_id=hub_id,
        )
        event = CloudEvent.of(TIP_RECEIVED, self.source, tip.case_id, received,
                              event_id=received.tip_id)
        if self.keys is not None:  # CasePurged (no key is made again) reaches the API: 410
            key = await self.keys.find(tip.case_id)
            if key is None:
                if await self.keys.purged(tip.case_id):
                    raise CasePurged(tip.case_id)
                key = await self._new_case_key(tip.case_id, tip.case_id[:6], "public")
            event.data = pii.seal(event.data, pii.TIP_FIELDS, tip.case_id, key)
        await self.outbox.append(OutboxEntry(
            record_id=received.tip_id, kind="tip", topic=topics.TIPS, key=tip.case_id,
            headers=event.headers(), value=event.value(), answer={"tip_id": received.tip_id},
            region=tip.case_id[:6], operator="public",
        ))
        return received.tip_id

    async def commit(self, entry: OutboxEntry, idempotency_key: str | None = None,
                     digest: str = "", key_record: bytes | None = None) -> Appended:
        """`entry` durable in the outbox when this returns (the relay publishes it); with
        `key_record` (from `new_owner`), the owner's key record first, in the same transaction
        (published to homeward.case-keys.v1 before what it seals). With an Idempotency-Key (of
        `entry.operator`), a retry whose body has the same `digest` gets the first answer and
        commits neither; another body under that key is IntakeRefused 409
        `idempotency_conflict`."""
        idem = IdempotencyKey(entry.operator, idempotency_key, digest) if idempotency_key \
            else None
        before = [] if key_record is None else [
            self._key_entry(entry.key, entry.region, entry.operator, key_record)]
        try:
            return await self.outbox.append(entry, idem, before=before)
        except IdempotencyConflict as exc:
            raise domain.IntakeRefused(409, "idempotency_conflict", "Idempotency-Key") from exc

    async def new_data_key(self, owner_id: str, region: str, operator: str) -> bytes:
        """A fresh data key for an existing case that has none (an amendment of a report taken
        before sealing), durable through the outbox as `_new_case_key`."""
        return await self._new_case_key(owner_id, region, operator)

    async def _new_case_key(self, case_id: str, region: str, operator: str) -> bytes:
        """A data key for a case that has none: made durable through the outbox (published to
        homeward.case-keys.v1 before the event it seals, whether or not Kafka is up now) and
        cached in Redis when Redis answers (readers refill from the topic)."""
        assert self.keys is not None
        key, record = self.keys.fresh(case_id)
        await self.outbox.append(self._key_entry(case_id, region, operator, record))
        return await self._remember(case_id, record) or key

    @staticmethod
    def _key_entry(case_id: str, region: str, operator: str, record: bytes) -> OutboxEntry:
        """The outbox row publishing a case's new key record to homeward.case-keys.v1."""
        return OutboxEntry(
            record_id=f"case-key:{case_id}:{uuid.uuid4().hex[:8]}", kind="case-key",
            topic=topics.CASE_KEYS, key=case_id, headers={}, value=record, answer={},
            region=region, operator=operator)

    async def _remember(self, case_id: str, record: bytes) -> bytes | None:
        """Cache the key record in Redis: the key the case holds, None when Redis is away."""
        assert self.keys is not None
        try:
            return await self.keys.remember(case_id, record)
        except (RedisError, OSError):
            return None


def _json(data: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (pydantic-core's serializer: the intake hot path, issue 15)."""
    return pydantic_core.to_json(data)


@dataclass
class Progress:
    store: ProgressStore

    async def on_case_event(self, event: CloudEvent) -> None:
        if event.type == CASE_OPENED:
            opened = CaseOpened.model_validate(event.data)
            await self.store.set_opened(opened.case_id)
            if opened.leader is not None:
                await self.store.set_leader(opened.case_id, opened.leader.model_dump())
        elif event.type == CASE_REPORT_LINKED:  # the report joined another child's case
            linked = ReportLinked.model_validate(event.data)
            await self.store.set_opened(linked.duplicate_case_id, linked.case_id)
        elif event.type == CASE_REPORT_UNLINKED:  # its own case group is opened under its id
            # ... and is live, even when the group it had joined was closed (its tips were
            # refused 410 by the mirrored close).
            await self.store.set_own_group(ReportUnlinked.model_validate(event.data)
                                           .duplicate_case_id)
        elif event.type == CASE_CLOSED:
            # Tips on it are refused (410); linked reports' ids get their own (mirrored) event.
            await self.store.set_closed(CaseEvent.model_validate(event.data).case_id)

    async def on_deliveries(self, events: list[CloudEvent]) -> None:
        """The hubs reached (a `sent` receipt of a restricted alert) of a batch of delivery
        events, added per case in one round trip. Raises pydantic's ValidationError for a
        malformed receipt (the consumer then finds it alone: dead-lettered)."""
        hubs: dict[str, set[str]] = {}
        for event in events:
            if event.type == DELIVERY_SENT:
                receipt = DeliveryReceipt.model_validate(event.data)
                if receipt.scope == "restricted":
                    hubs.setdefault(receipt.case_id, set()).add(receipt.subscriber_id)
        if hubs:
            await self.store.add_hubs(hubs)


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after
