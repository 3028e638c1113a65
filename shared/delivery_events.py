"""Payloads of notify's deliveries: the jobs its planner hands its delivery workers, and the
receipts it publishes on homeward.deliveries.v1 (the alert service reads their `scope` and
`status`), with the states, scopes and recipient kinds they name and the classes a failed try
is reported as (issue 12). The event type names are shared.events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["DELIVERY_ERROR_CLASSES", "DeliveryJob", "DeliveryReceipt", "DeliveryScope",
           "DeliveryStatus", "RecipientKind"]


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
