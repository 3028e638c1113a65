"""Delivery decisions of notify, free of I/O (the `domain` of the delivery workers, issue 18):
what a try's outcome makes of a delivery, when the next try is, which lane a recipient's jobs
travel on, whether a Cancel reaches a recipient and whether an Update is their first message; the
seconds a receiver's Retry-After asks for.

The retry schedule follows Standard Webhooks' spirit (https://www.standardwebhooks.com/, "retry
schedule": at once, then seconds, minutes, hours): the first try at once, then exponential
backoff with equal jitter from `notify_retry_base_s` doubling up to `notify_retry_cap_s` (hours
by default). A delivery that may die (media, volunteers, the case group, cancellations) is
`dead` after `notify_retry_max_attempts` tries; a hub's push of an alert that is still active
never dies (issue 18 §4: persistence while the child is missing) — it keeps retrying at the cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from services.notify.audience import SubscriberKind
from services.notify.formats import cap_references
from shared import topics
from shared.events import DeliveryStatus
from shared.faults import backoff_s as jittered
from shared.settings import Settings

# Statuses whose retry is worth it; anything else non-2xx is refused (`failed`).
RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
RESTRICTED_KINDS = frozenset({SubscriberKind.hub, SubscriberKind.member})
SETTLED = frozenset({DeliveryStatus.sent, DeliveryStatus.acknowledged, DeliveryStatus.failed,
                     DeliveryStatus.dead, DeliveryStatus.gone, DeliveryStatus.dropped})


class TryOutcome(Protocol):
    """What a try returned (services.notify.outbound.SendResult)."""

    ok: bool
    status: int | None
    retry_after: float | None
    retryable: bool


@dataclass(frozen=True)
class RetryPolicy:
    """`base_s`, `cap_s`, `retry_after_cap_s` in seconds; `max_attempts` tries of a delivery
    that may die (the first included)."""

    base_s: float
    cap_s: float
    max_attempts: int
    retry_after_cap_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """Retry-After is honoured up to the ack deadline (issue 18 §4): a receiver cannot
        put a push off past the moment its commander is told it was not acknowledged."""
        return cls(settings.notify_retry_base_s, settings.notify_retry_cap_s,
                   settings.notify_retry_max_attempts, settings.notify_ack_deadline_s)


@dataclass(frozen=True)
class Decision:
    """The delivery's state after a try; `delay_s` (seconds) until the next try when
    `retrying`; `disable` the subscriber (410)."""

    state: DeliveryStatus
    delay_s: float | None = None
    disable: bool = False


def backoff_s(attempts: int, policy: RetryPolicy, retry_after: float | None = None) -> float:
    """Seconds before the try after `attempts` tries: `base_s · 2^(attempts-1)` capped at
    `cap_s`, with equal jitter (shared.faults.backoff_s: half fixed, half random, so the
    schedule still grows); a receiver's Retry-After is a floor, honoured up to
    `retry_after_cap_s`."""
    # (The exponent is bounded: a hub's push may retry for days, 2^n would overflow a float.)
    delay = jittered(min(attempts, 64), policy.base_s, policy.cap_s)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_cap_s))
    return delay


def decide_attempt(result: TryOutcome, attempts: int, policy: RetryPolicy,
                   persistent: bool = False) -> Decision:
    """What try number `attempts` (1-based) makes of the delivery. `persistent`: a hub's push of
    an active alert, retried for as long as the alert is active (never `dead`). 2xx → sent;
    410 → gone (the subscriber is disabled); a retryable failure (no answer, 408/425/429/5xx)
    → retrying while tries remain, else dead; anything else → failed."""
    if result.ok:
        return Decision(DeliveryStatus.sent)
    if result.status == 410:
        return Decision(DeliveryStatus.gone, disable=True)
    retryable = result.retryable and (result.status is None or result.status in RETRYABLE)
    if not retryable:
        return Decision(DeliveryStatus.failed)
    if persistent or attempts < policy.max_attempts:
        return Decision(DeliveryStatus.retrying,
                        backoff_s(attempts, policy, result.retry_after))
    return Decision(DeliveryStatus.dead)


def lane_of(kind: SubscriberKind) -> str:
    """The jobs topic of a recipient: hubs and the case group on the restricted lane, media
    and volunteers on the public bulk lane (issue 18 §3: priority lanes)."""
    return (topics.DELIVERY_JOBS_RESTRICTED if kind in RESTRICTED_KINDS
            else topics.DELIVERY_JOBS_PUBLIC)


def received(record: Mapping[str, str]) -> bool:
    """The recipient has this earlier version: it answered 2xx (or acknowledged)."""
    return record.get("state") in (DeliveryStatus.sent, DeliveryStatus.acknowledged)


def reached(record: Mapping[str, str]) -> bool:
    """The recipient may have this earlier version: received, or a try was made whose outcome
    was not a refusal (a time-out may have arrived; a 5xx receiver may have stored it)."""
    if received(record):
        return True
    tried = int(record.get("attempts", "0") or 0) >= 1
    return tried and record.get("state") not in (DeliveryStatus.failed, DeliveryStatus.gone)


def cancel_reaches(earlier: Iterable[Mapping[str, str]]) -> bool:
    """A Cancel goes to every recipient who received an earlier version, and only to them
    (issue 18 §5): one whose earlier versions were all dropped or refused never heard of the
    alert."""
    return any(reached(r) for r in earlier)


def first_message(body: dict[str, Any], earlier: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """Every recipient's first message about an alert is an `Alert` (issue 18 §5): an Update to
    someone who received no earlier version goes out as an Alert, without references."""
    if body.get("msg_type") != "Update" or any(received(r) for r in earlier):
        return body
    return {**body, "msg_type": "Alert"}


def for_recipient(body: dict[str, Any], earlier: Iterable[Mapping[str, str]],
                  sent: Mapping[int, datetime], sender: str) -> dict[str, Any]:
    """The version's push body as this recipient gets it (issue 18 §5): an Update to someone
    who received no earlier version is an `Alert` (first_message); an Update or Cancel
    references the earlier versions that reached THIS recipient (`reached`: received, or tried
    without a refusal), never versions it was not sent — `references` their numbers and
    `cap_references` the CAP 1.2 form (space-separated `sender,identifier,sent`, OASIS CAP
    1.2 §3.2.1). `earlier`: the recipient's ledger records of the alert's earlier versions;
    `sent`: version → its `sent` time (AlertState.versions)."""
    earlier = list(earlier)
    if body.get("msg_type") != "Cancel":
        body = first_message(body, earlier)
    versions = sorted({int(r["version"]) for r in earlier if reached(r) and r.get("version")})
    return as_pushed(body, str(body.get("msg_type", "")), versions, sent, sender)


def as_pushed(body: dict[str, Any], msg_type: str, references: Iterable[int],
              sent: Mapping[int, datetime], sender: str) -> dict[str, Any]:
    """The version's push body with the CAP msgType and references one recipient got (the
    live path's for_recipient; a rebuild's hub console from the receipt's `msg_type` and
    `references`). An Alert carries no references; an Update or Cancel `references` (version
    numbers) and `cap_references` (CAP 1.2 form, OASIS CAP 1.2 §3.2.1)."""
    if msg_type and msg_type != body.get("msg_type"):
        body = {**body, "msg_type": msg_type}
    if body.get("msg_type") not in ("Update", "Cancel"):
        return body
    versions = sorted(set(references))
    return {**body, "references": versions, "cap_references": cap_references(
        sender, str(body["alert_id"]), [(v, sent[v]) for v in versions if v in sent])}


def superseded(earlier: Iterable[tuple[str, Mapping[str, str]]]) -> list[str]:
    """Delivery ids of earlier versions still waiting for a retry: a later version of the same
    alert to the same recipient supersedes them (it carries everything they did)."""
    return [did for did, r in earlier
            if r.get("state") in (DeliveryStatus.retrying, DeliveryStatus.pending)
            and int(r.get("attempts", "0") or 0) >= 1]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
