"""Notify's pure delivery decisions (services/notify/delivery_rules.py, issue 18)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.delivery_rules import (
    RetryPolicy,
    backoff_s,
    cancel_reaches,
    decide_attempt,
    first_message,
    lane_of,
    superseded,
)
from services.notify.domain import SubscriberKind
from shared import topics
from shared.events import DeliveryStatus
from shared.settings import Settings

POLICY = RetryPolicy(base_s=2.0, cap_s=10800.0, max_attempts=5, retry_after_cap_s=600.0)


@dataclass
class Result:
    ok: bool
    status: int | None
    retry_after: float | None = None
    retryable: bool = True


@pytest.mark.parametrize(("result", "attempts", "persistent", "state"), [
    (Result(True, 204), 1, False, DeliveryStatus.sent),
    (Result(True, None), 9, True, DeliveryStatus.sent),           # console / Apprise
    (Result(False, 410), 1, True, DeliveryStatus.gone),           # 410 disables, even a hub
    (Result(False, 400), 1, True, DeliveryStatus.failed),         # refused: never retried
    (Result(False, 302), 1, False, DeliveryStatus.failed),        # redirects are not followed
    (Result(False, None, retryable=False), 1, True, DeliveryStatus.failed),  # policy refusal
    (Result(False, 503), 1, False, DeliveryStatus.retrying),
    (Result(False, None), 4, False, DeliveryStatus.retrying),     # no answer
    (Result(False, 503), 5, False, DeliveryStatus.dead),          # tries exhausted
    (Result(False, 503), 5, True, DeliveryStatus.retrying),       # a hub, alert active
    (Result(False, 429), 500, True, DeliveryStatus.retrying),
])
def test_decide_attempt(result: Result, attempts: int, persistent: bool,
                        state: DeliveryStatus) -> None:
    decision = decide_attempt(result, attempts, POLICY, persistent)
    assert decision.state == state
    assert (decision.delay_s is not None) == (state == DeliveryStatus.retrying)
    assert decision.disable == (state == DeliveryStatus.gone)


@given(attempts=st.integers(1, 10_000), status=st.sampled_from([None, 408, 429, 500, 503]),
       retry_after=st.none() | st.floats(0, 10**6))
def test_a_persistent_delivery_never_dies_and_waits_at_most_the_cap(
    attempts: int, status: int | None, retry_after: float | None,
) -> None:
    decision = decide_attempt(Result(False, status, retry_after), attempts, POLICY, True)
    assert decision.state == DeliveryStatus.retrying and decision.delay_s is not None
    assert 0 < decision.delay_s <= max(POLICY.cap_s, POLICY.retry_after_cap_s)
    if retry_after is not None:
        assert decision.delay_s >= min(retry_after, POLICY.retry_after_cap_s)


@given(attempts=st.integers(1, 40))
def test_backoff_grows_from_seconds_to_hours_and_stays_under_the_cap(attempts: int) -> None:
    step = min(POLICY.cap_s, POLICY.base_s * 2 ** (attempts - 1))
    assert step / 2 <= backoff_s(attempts, POLICY) <= step


def test_default_schedule_reaches_hours_and_dies_after_hours() -> None:
    policy = RetryPolicy.from_settings(Settings())
    assert policy.cap_s >= 3600 and policy.base_s <= 5
    worst = sum(min(policy.cap_s, policy.base_s * 2 ** (n - 1))
                for n in range(1, policy.max_attempts))
    assert worst >= 6 * 3600  # a public delivery keeps trying for hours before `dead`


def _r(state: str, attempts: int = 1) -> dict[str, str]:
    return {"state": state, "attempts": str(attempts)}


@pytest.mark.parametrize(("earlier", "reaches"), [
    ([], False),
    ([_r("sent")], True),
    ([_r("acknowledged")], True),
    ([_r("retrying", 2)], True),        # a try may have arrived (time-out)
    ([_r("pending", 0)], False),        # never tried
    ([_r("dropped", 0)], False),        # dropped before any try
    ([_r("failed")], False),            # refused
    ([_r("gone")], False),
    ([_r("dropped", 0), _r("sent")], True),
])
def test_a_cancel_reaches_only_who_an_earlier_version_reached(
    earlier: list[dict[str, str]], reaches: bool,
) -> None:
    assert cancel_reaches(earlier) is reaches


def test_first_message_is_an_alert() -> None:
    update = {"msg_type": "Update", "version": 3}
    assert first_message(update, [])["msg_type"] == "Alert"
    assert first_message(update, [_r("retrying", 3)])["msg_type"] == "Alert"
    assert first_message(update, [_r("sent")]) is update
    cancel = {"msg_type": "Cancel"}
    assert first_message(cancel, []) is cancel


def test_a_later_version_supersedes_retries_of_earlier_ones() -> None:
    earlier = [("a", _r("retrying", 2)), ("b", _r("sent")), ("c", _r("pending", 0)),
               ("d", _r("pending", 1))]
    assert superseded(earlier) == ["a", "d"]


@pytest.mark.parametrize(("kind", "lane"), [
    (SubscriberKind.hub, topics.DELIVERY_JOBS_RESTRICTED),
    (SubscriberKind.member, topics.DELIVERY_JOBS_RESTRICTED),
    (SubscriberKind.media, topics.DELIVERY_JOBS_PUBLIC),
    (SubscriberKind.volunteer, topics.DELIVERY_JOBS_PUBLIC),
])
def test_lanes(kind: SubscriberKind, lane: str) -> None:
    assert lane_of(kind) == lane
