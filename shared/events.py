"""CloudEvents 1.0 in Kafka binary mode, and the event payloads that cross services.

The value of a message is the JSON `data`; the attributes travel as `ce_*` headers, with
`ce_subject` the case id, which is also the message key.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.identity import LinkEvidence
from shared.report import PlaceConflict

# alert → homeward.reports.v1 / homeward.tips.v1
REPORT_ACCEPTED = "homeward.report.accepted.v1"
# alert → homeward.reports.v1 (key: case id; data: ReportAmended): the operators who took a
# report amended the child's details before the case group was formed (issue 18, Contract:
# alert `PATCH /api/v1/reports/{report_id}`); notify turns it into an Update as it does
# CASE_DETAILS_AMENDED. After the case group is formed the case is the place (dispatch).
REPORT_AMENDED = "homeward.report.amended.v1"
TIP_RECEIVED = "homeward.tip.received.v1"

# alert → homeward.unidentified-children.v1 (issue 16): a child met or found without a guardian
# (data: shared.unidentified.UnidentifiedChildReported, keyed by record id)
UNIDENTIFIED_CHILD_REPORTED = "homeward.unidentified_child.reported.v1"

# dispatch → homeward.dispatch.v1 (the only writer of case state)
CASE_OPENED = "homeward.case.opened.v1"
CASE_LEADER_ASSIGNED = "homeward.case.leader_assigned.v1"
CASE_MEMBER_ADDED = "homeward.case.member_added.v1"
CASE_ESCALATED = "homeward.case.escalated.v1"
CASE_TASK_ASSIGNED = "homeward.case.task_assigned.v1"
CASE_TASK_COMPLETED = "homeward.case.task_completed.v1"
CASE_TASK_OVERDUE = "homeward.case.task_overdue.v1"
CASE_RELEASE_APPROVED = "homeward.case.release_approved.v1"
CASE_TIP_ATTACHED = "homeward.case.tip_attached.v1"
CASE_FOUND = "homeward.case.found.v1"
CASE_CLOSED = "homeward.case.closed.v1"
CASE_REPORT_LINKED = "homeward.case.report_linked.v1"  # a second report of the same child
# A tip for a case dispatch has not seen yet, held until the case appears (data: TipReceived
# plus `parked_at`); the tip's later `case.tip_attached` settles it. Not a case event.
TIP_PARKED = "homeward.tip.parked.v1"
# The commander undid a link (details: ReportUnlinked); the report's own case group is opened.
CASE_REPORT_UNLINKED = "homeward.case.report_unlinked.v1"
# A found (or false report) undone by the leader's level: every alert of the case is issued
# again to everyone who got its cancellation (details: reason, previous outcome).
CASE_REOPENED = "homeward.case.reopened.v1"
# Several children of one incident (siblings, a group): the commander ties their cases together
# under the leading case (details: IncidentTied). Each child keeps its own alert, found, Cancel.
CASE_INCIDENT_TIED = "homeward.case.incident_tied.v1"
# Personal data of the case purged everywhere after its outcome and the grace period (issue 13):
# the case's data key is gone, every service drops what it holds (details: CasePurged).
CASE_PURGED = "homeward.case.purged.v1"
# Issue 16: an unidentified-child record scored against the case (details: a candidate with
# score and reasons, services/dispatch/candidates.py); a candidate confirmed as this case's child
# (by the commander, or by a DNA match); a DNA sample recorded or moved on (references and
# statuses only, services/dispatch/dna.py).
CASE_CANDIDATE_PROPOSED = "homeward.case.candidate_proposed.v1"
CASE_CANDIDATE_CONFIRMED = "homeward.case.candidate_confirmed.v1"
CASE_DNA_SAMPLE_RECORDED = "homeward.case.dna_sample_recorded.v1"
CASE_DNA_SAMPLE_UPDATED = "homeward.case.dna_sample_updated.v1"
# The case events dispatch copies to homeward.progress.v1 (shared.topics.PROGRESS), same id: all
# the intake side may learn of its reports' cases (issue 14, least privilege) — the leader
# (alert shows it to the operator), the close (alert refuses tips on it, 410) ...
PROGRESS_TYPES: frozenset[str] = frozenset({
    CASE_OPENED, CASE_CLOSED,
    # ... and what alert's photo access and outbox retention follow (issue 13): a photo is
    # public while the alert is released and not ended; a purge deletes photos and outbox rows.
    CASE_RELEASE_APPROVED, CASE_FOUND, CASE_REOPENED, CASE_PURGED,
    # ... and a report linked to another child's case (or unlinked again): its case group is
    # formed, so the operators' amendment through alert is refused (issue 18, Contract).
    CASE_REPORT_LINKED, CASE_REPORT_UNLINKED})
# Roster changes (keyed by organ code): availability of a head or deputy; replayed with cases.
ORGAN_AVAILABILITY_CHANGED = "homeward.organ.availability_changed.v1"

# The commander amended the child's description, photos, height, clothing, suspect or vehicle
# (issue 18 §5, dispatch `PATCH /api/v1/cases/{case_id}/details`; details: DetailsAmended):
# notify sends an Update to every earlier recipient of the alert.
CASE_DETAILS_AMENDED = "homeward.case.details_amended.v1"

# notify → homeward.deliveries.v1 (receipts: DeliveryReceipt)
DELIVERY_SENT = "homeward.delivery.sent.v1"
DELIVERY_FAILED = "homeward.delivery.failed.v1"  # status failed, dead or gone
DELIVERY_ACKNOWLEDGED = "homeward.delivery.acknowledged.v1"
DELIVERY_RETRYING = "homeward.delivery.retrying.v1"  # a try failed; the next is scheduled
DELIVERY_ACK_OVERDUE = "homeward.delivery.ack_overdue.v1"  # a hub did not acknowledge in time
# notify → homeward.deliveries.dlq: retries exhausted (never a hub's push of an active alert)
DELIVERY_DEAD = "homeward.delivery.dead.v1"
# notify's planner → its delivery workers, on shared.topics.JOB_TOPICS keyed by recipient
DELIVERY_JOB = "homeward.delivery.job.v1"


class PoisonMessage(ValueError):
    """A message that can never be processed: it goes to the topic's DLQ."""


class CloudEvent(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    source: str
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any]

    def headers(self) -> dict[str, str]:
        return {
            "ce_specversion": "1.0",
            "ce_id": self.id,
            "ce_type": self.type,
            "ce_source": self.source,
            "ce_subject": self.subject,
            "ce_time": self.time.isoformat(),
            "content-type": "application/json",
        }

    def value(self) -> bytes:
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def of(
        cls, type_: str, source: str, subject: str, data: BaseModel, event_id: str | None = None
    ) -> CloudEvent:
        return cls(
            id=event_id or uuid.uuid4().hex,
            type=type_,
            source=source,
            subject=subject,
            data=data.model_dump(mode="json"),
        )

    @staticmethod
    def encode(
        type_: str, source: str, subject: str, data: BaseModel, event_id: str
    ) -> tuple[dict[str, str], bytes]:
        """Headers and value of a binary-mode message, serialised once (the intake hot path)."""
        headers = CloudEvent(id=event_id, type=type_, source=source, subject=subject,
                             data={}).headers()
        return headers, data.model_dump_json().encode()

    @classmethod
    def from_kafka(cls, headers: dict[str, Any], value: bytes) -> CloudEvent:
        """Parse a binary-mode message; raise PoisonMessage naming what is wrong."""

        def header(name: str) -> str:
            raw = headers.get(name)
            if raw is None:
                raise PoisonMessage(f"missing header {name}")
            return raw.decode() if isinstance(raw, bytes) else str(raw)

        if header("ce_specversion") != "1.0":
            raise PoisonMessage("ce_specversion must be 1.0")
        try:
            data = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PoisonMessage(f"value is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PoisonMessage("value must be a JSON object")
        raw_time = header("ce_time")
        try:
            time = datetime.fromisoformat(raw_time)
        except ValueError as exc:
            raise PoisonMessage(f"ce_time is not ISO 8601: {exc}") from exc
        return cls(
            id=header("ce_id"),
            type=header("ce_type"),
            source=header("ce_source"),
            subject=header("ce_subject"),
            time=time,
            data=data,
        )


class Leader(BaseModel):
    organ_code: str
    organ_name: str
    name: str
    title: str
    phone: str = ""
    post: str = Field(default="head", description="head, or deputy when the head is away")


class ChildProfile(BaseModel):
    """What an unidentified child is matched on (issue 16), from the report; `description` is
    sealed with the case's key (shared.pii.CASE_OPENED_FIELDS)."""

    sex: str
    age: int = Field(description="completed years at the last sighting")
    height_cm: int | None = None
    description: str = ""


class CaseOpened(BaseModel):
    """Data of `homeward.case.opened.v1`."""

    case_id: str
    report_id: str
    region_code: str
    opened_at: datetime
    priority: str
    mechanisms: list[str]
    leader: Leader | None
    exercise: bool = False
    # What the case projection is rebuilt from on replay (all optional for older events).
    child_name: str = ""
    kind: str = "missing"
    subject: str = "child"
    last_seen_at: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    operator_region: str = ""
    leader_level: str = "county"
    supervision: str | None = None
    may_add_members: list[str] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list,
                                        description="the rules applied, with their sources")
    duplicate_keys: list[str] = Field(
        default_factory=list, description="child-identity keys (keyed HMACs, shared/identity.py) "
        "the case claims; internal, never served by an API")
    place_conflict: PlaceConflict | None = Field(
        default=None, description="the report's place parts disagreed at intake (issue 11)")
    linked_to: str | None = Field(
        default=None, description="a second report of the same child: the case id of the one "
        "case group it joined (no group of its own); found/closed/release of that case are "
        "mirrored under this case id")
    child_profile: ChildProfile | None = Field(
        default=None, description="sex, age, height and description for matching "
        "unidentified-child records (issue 16)")


class CaseEvent(BaseModel):
    """Data of every `homeward.case.*.v1` event after `opened`: who did what to which case, why.

    `details` carries the type-specific part (e.g. the task for task_*, the member for
    member_added, `{"level": "city"}` for escalated); the types notify relies on have their own
    models below.
    """

    case_id: str
    region_code: str
    actor: str = Field(description="`sub` of who acted, or `dispatch` for the rules engine")
    reason: str = ""
    at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


class ReportLinked(CaseEvent):
    """Data of `homeward.case.report_linked.v1`, keyed by the case the report joined."""

    report_id: str
    duplicate_case_id: str = Field(description="the case id the report's operator was given")
    evidence: LinkEvidence


class ReportUnlinked(CaseEvent):
    """Data of `homeward.case.report_unlinked.v1`, keyed by the case the report had joined:
    the report is a child of its own again (its case group is opened under
    `duplicate_case_id`, and notify gives it an alert of its own)."""

    report_id: str
    duplicate_case_id: str


class IncidentTied(CaseEvent):
    """Data of `homeward.case.incident_tied.v1`, on every case of the incident: the leading
    case's id and every case (child) of the incident. Nothing is mirrored between them."""

    incident_id: str = Field(description="the leading case's id")
    cases: list[str]


class CaseReopened(CaseEvent):
    """Data of `homeward.case.reopened.v1`: the search goes on; the radius continues from the
    original last-seen time."""

    previous_outcome: str = ""


class ReleaseApproved(CaseEvent):
    """Data of `homeward.case.release_approved.v1`: public audiences may now be told."""


class CaseFound(CaseEvent):
    """Data of `homeward.case.found.v1`: every recipient gets a cancellation."""

    outcome: Literal["found_safe", "found_harmed", "found_deceased", "false_report",
                     "placed_with_civil_affairs"]
    found_at: datetime
    receiving_organisation: str = Field(
        default="", description="placed_with_civil_affairs: the civil-affairs organisation "
        "that received the child (002 §三㈥4.: 交由民政部门予以妥善安置)")
    record_id: str | None = Field(
        default=None, description="the unidentified-child record the child was found as "
        "(a confirmed candidate, issue 16)")


class CasePurged(CaseEvent):
    """Data of `homeward.case.purged.v1`: personal data of the case's child, reporter and
    tipsters is gone (its data key deleted, shared/casekeys.py); ids, region, times, leader,
    duties, decisions and outcomes stay (issue 13 §3)."""

    outcome: str = Field(description="the outcome the purge followed (found_*, false_report, "
                         "closed)")
    ended_at: datetime = Field(description="when the case ended; the purge is grace later")


class TipLocation(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str = Field(default="", max_length=200)


class TipReceived(BaseModel):
    """Data of `homeward.tip.received.v1` (alert → dispatch, keyed by case id)."""

    tip_id: str
    case_id: str
    seen_at: datetime
    location: TipLocation
    description: str
    contact: str = ""
    received_at: datetime
    source: Literal["public", "hub"] = "public"
    hub_id: str | None = None


class DeliveryScope(StrEnum):
    """Who a delivery's content was made for: `restricted` (hubs: the police bulletin),
    `public` (media, volunteers), `group` (the case group over Apprise; not counted as a hub
    push), `cancel` (a cancellation: ids and outcome only)."""

    restricted = "restricted"
    public = "public"
    group = "group"
    cancel = "cancel"


class DeliveryStatus(StrEnum):
    """A delivery's state (the ledger's and the receipts'): `pending` (claimed, not settled),
    `retrying` (a try failed, the next is scheduled), `sent`, `acknowledged` (a hub confirmed),
    `failed` (refused, not retried), `dead` (retries exhausted), `gone` (410: subscriber
    disabled), `dropped` (superseded before its try: alert cancelled, subscriber disabled, body
    purged), `ack_overdue` (a receipt only: the hub did not acknowledge within the deadline)."""

    pending = "pending"
    retrying = "retrying"
    sent = "sent"
    acknowledged = "acknowledged"
    failed = "failed"
    dead = "dead"
    gone = "gone"
    dropped = "dropped"
    ack_overdue = "ack_overdue"


class RecipientKind(StrEnum):
    """The kind of a delivery's recipient (notify's subscriber kinds)."""

    hub = "hub"
    media = "media"
    volunteer = "volunteer"
    member = "member"  # of the case group


class DeliveryReceipt(BaseModel):
    """Data of every `homeward.delivery.*.v1` (and `homeward.delivery.dead.v1` on the DLQ).
    The alert service reads `scope` and `status` (hubs pushed), so they are contracts."""

    delivery_id: str
    alert_id: str
    case_id: str
    version: int
    subscriber_id: str
    scope: DeliveryScope
    channel: str
    status: DeliveryStatus
    http_status: int | None = None
    attempts: int = 1
    error: str = ""
    at: datetime
    # the recipient's kind and name, so the ledger can be rebuilt from receipts ("" in old ones)
    kind: RecipientKind | Literal[""] = ""
    name: str = ""
    # when the delivery first failed (status retrying): the commander sees "retrying since"
    since: datetime | None = None
    # What this try's push said to this recipient (issue 18 §5): its CAP msgType (an Update to
    # someone who had no earlier version goes out as an Alert) and the earlier versions it
    # references, so a rebuilt hub console shows the push as it was sent (None/[] in old ones).
    msg_type: Literal["Alert", "Update", "Cancel"] | None = None
    references: list[int] = Field(default_factory=list)


class DeliveryJob(BaseModel):
    """Data of `homeward.delivery.job.v1`: one delivery of one alert version to one recipient,
    published by notify's planner to a lane of shared.topics.JOB_TOPICS keyed by
    `subscriber_id`. No personal data: the content is the logged push body `body_key`
    (sealed on homeward.alerts.v1, deleted by a purge, after which the job is dropped)."""

    delivery_id: str = Field(description="msg_<hash> of (alert, version, recipient): the "
                             "Standard Webhooks webhook-id")
    alert_id: str
    case_id: str
    version: int = Field(ge=1)
    msg_type: Literal["Alert", "Update", "Cancel"]
    subscriber_id: str
    scope: DeliveryScope
    body_key: str = Field(description="<alert id>:<version>:<body scope> of the push body")


class DetailsAmended(CaseEvent):
    """Data of `homeward.case.details_amended.v1` (dispatch `PATCH /api/v1/cases/{id}/details`):
    `details.amended` the new values (field → value, keys of AMENDABLE_DETAILS; personal:
    sealed with the case key, shared.casekeys.DISPATCH_FIELDS), `details.fields` their names
    (clear: the timeline's "who amended what")."""

    @property
    def amended(self) -> dict[str, Any]:
        value = self.details.get("amended")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def fields(self) -> list[str]:
        return [str(f) for f in self.details.get("fields", [])]


class ReportAmended(DetailsAmended):
    """Data of `homeward.report.amended.v1` (alert `PATCH /api/v1/reports/{report_id}`): the
    same shape as DetailsAmended (`details.amended` sealed with the case key under the same
    path, `details.fields` clear), plus the report it amends; `actor` the operator's `sub`."""

    report_id: str


# What `PATCH /api/v1/cases/{case_id}/details` may change (issue 18 §5): paths into the report
# (shared.report; clothing is part of the child's `description` there).
AMENDABLE_DETAILS: dict[str, tuple[str, str]] = {
    "description": ("child", "description"),
    "photo_urls": ("child", "photo_urls"),
    "height_cm": ("child", "height_cm"),
    "weight_kg": ("child", "weight_kg"),
    "suspect": ("circumstances", "suspect"),
    "vehicle": ("circumstances", "vehicle"),
}


# The `error` of a failed delivery attempt as commanders see it (issue 12): a class, never the
# socket's own text, so the deliveries view cannot be used to map hosts and ports.
DELIVERY_ERROR_CLASSES = (
    "refused_by_policy",  # the URL's scheme or the address its host resolves to is not allowed
    "dns_failed",         # the host does not resolve
    "connect_failed",     # no connection (refused, reset, unreachable)
    "tls_failed",         # the TLS handshake or certificate failed
    "timeout",            # no answer within the time allowed
    "http_3xx",           # a redirect (never followed)
    "http_4xx",           # the receiver refused the request
    "http_5xx",           # the receiver failed
    "target_refused",     # a chat/SMS service (Apprise) reported failure
)
# How a search ends (the `outcome` of CaseFound); named for the Cancel preview (issue 17 §4).
Outcome = Literal["found_safe", "found_harmed", "found_deceased", "false_report",
                  "placed_with_civil_affairs"]


# --- sightings: tips pushed, triaged, checked locally (issue 16 §1–3) ----------------------------
# The commander's verdict on a tip (details: tip_id, verdict, linked_case_id?, check_id?).
CASE_TIP_TRIAGED = "homeward.case.tip_triaged.v1"
# A local check (核查) for the county where a tip places the child (details: `check`, a
# LocalCheck as dispatch serves it; `notify`: the county organ's head). 003 §三(二).
CASE_CHECK_ASSIGNED = "homeward.case.check_assigned.v1"
# That county's answer (details: check_id, result, note); the check is closed.
CASE_CHECK_REPORTED = "homeward.case.check_reported.v1"
# A check past its deadline, unreported (details: check_id, count, check_region; `notify`: the
# case leader and the checking county's head); repeated like an overdue task.
CASE_CHECK_OVERDUE = "homeward.case.check_overdue.v1"
# The push of a tip to the case group (notify's body `type`; receipts carry SCOPE_GROUP).
TIP_PUSHED = "homeward.tip.pushed.v1"
SCOPE_GROUP = "group"  # DeliveryReceipt.scope of a push to a case-group member

TipVerdict = Literal["credible", "not_credible", "duplicate"]
CheckResult = Literal["confirmed", "not_found", "note"]
Plausibility = Literal["near", "ground", "air", "implausible"]


class TipAssessment(BaseModel):
    """Where and when a tip places the child relative to the last-seen point, as dispatch
    computed it when the tip was attached (`details.assessment` of `homeward.case.tip_attached.v1`;
    rules and their sources: services/dispatch/tips_domain.py)."""

    distance_km: float | None = Field(description="great-circle distance from the last-seen "
                                      "point, km; None when the case has no coordinates")
    bearing_deg: float | None = Field(description="initial bearing from the last-seen point, "
                                      "degrees clockwise from north")
    compass: str = Field(default="", description="the bearing as one of 8 compass points "
                         "(N, NE, ... NW)")
    elapsed_min: float | None = Field(description="minutes from last seen to the sighting "
                                      "(negative: seen before)")
    speed_kmh: float | None = Field(description="straight-line speed the sighting implies")
    plausibility: Plausibility = Field(description="near: within walking/GPS slack; ground: "
                                       "reachable by road or rail; air: only by air; "
                                       "implausible: too fast for any (marked, never dropped)")
    radius_km: float = Field(description="the alert radius at the time of the push")
    inside_radius: bool | None = None
    county: str = Field(default="", description="county-level code where the tip lies, '' "
                        "when outside every county")
    rank: int = Field(default=1, description="0 for hub sightings (first), 1 otherwise")
    summary: str = Field(default="", description="the above in one Chinese line, as pushed")
