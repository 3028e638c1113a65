"""The events that cross services: their type names (`homeward.<entity>.<what>.v1`, the
CloudEvents `type`), which topic each travels on and who writes it, and, re-exported from the
modules that define them, the envelope and the payloads:

- shared.cloudevents: CloudEvent (Kafka binary mode) and PoisonMessage
- shared.case_events: dispatch's case events and the amendments of a child's details
- shared.tip_events: tips as filed and as dispatch assessed them (issue 16)
- shared.delivery_events: notify's delivery jobs and receipts
"""

from __future__ import annotations

from shared.case_events import (
    AMENDABLE_DETAILS,
    CaseEvent,
    CaseFound,
    CaseOpened,
    CasePurged,
    CaseReopened,
    ChildProfile,
    DetailsAmended,
    IncidentTied,
    Leader,
    Outcome,
    ReleaseApproved,
    ReportAmended,
    ReportLinked,
    ReportUnlinked,
)
from shared.cloudevents import CloudEvent, PoisonMessage
from shared.delivery_events import (
    DELIVERY_ERROR_CLASSES,
    DeliveryJob,
    DeliveryReceipt,
    DeliveryScope,
    DeliveryStatus,
    RecipientKind,
)
from shared.tip_events import (
    CheckResult,
    Plausibility,
    TipAssessment,
    TipLocation,
    TipReceived,
    TipVerdict,
)

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

# The type names above, and the envelope and payloads imported from their modules.
__all__ = ["AMENDABLE_DETAILS", "CASE_CANDIDATE_CONFIRMED", "CASE_CANDIDATE_PROPOSED",
           "CASE_CHECK_ASSIGNED", "CASE_CHECK_OVERDUE", "CASE_CHECK_REPORTED", "CASE_CLOSED",
           "CASE_DETAILS_AMENDED", "CASE_DNA_SAMPLE_RECORDED", "CASE_DNA_SAMPLE_UPDATED",
           "CASE_ESCALATED", "CASE_FOUND", "CASE_INCIDENT_TIED", "CASE_LEADER_ASSIGNED",
           "CASE_MEMBER_ADDED", "CASE_OPENED", "CASE_PURGED", "CASE_RELEASE_APPROVED",
           "CASE_REOPENED", "CASE_REPORT_LINKED", "CASE_REPORT_UNLINKED", "CASE_TASK_ASSIGNED",
           "CASE_TASK_COMPLETED", "CASE_TASK_OVERDUE", "CASE_TIP_ATTACHED", "CASE_TIP_TRIAGED",
           "DELIVERY_ACKNOWLEDGED", "DELIVERY_ACK_OVERDUE", "DELIVERY_DEAD",
           "DELIVERY_ERROR_CLASSES", "DELIVERY_FAILED", "DELIVERY_JOB", "DELIVERY_RETRYING",
           "DELIVERY_SENT", "ORGAN_AVAILABILITY_CHANGED", "PROGRESS_TYPES", "REPORT_ACCEPTED",
           "REPORT_AMENDED", "SCOPE_GROUP", "TIP_PARKED", "TIP_PUSHED", "TIP_RECEIVED",
           "UNIDENTIFIED_CHILD_REPORTED", "CaseEvent", "CaseFound", "CaseOpened", "CasePurged",
           "CaseReopened", "CheckResult", "ChildProfile", "CloudEvent", "DeliveryJob",
           "DeliveryReceipt", "DeliveryScope", "DeliveryStatus", "DetailsAmended", "IncidentTied",
           "Leader", "Outcome", "Plausibility", "PoisonMessage", "RecipientKind",
           "ReleaseApproved", "ReportAmended", "ReportLinked", "ReportUnlinked", "TipAssessment",
           "TipLocation", "TipReceived", "TipVerdict"]
