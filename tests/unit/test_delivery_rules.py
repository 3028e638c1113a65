"""Notify's pure delivery decisions (services/notify/delivery_rules.py, issue 18)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.audience import SubscriberKind
from services.notify.delivery_rules import (
    RetryPolicy,
    as_pushed,
    backoff_s,
    cancel_reaches,
    decide_attempt,
    first_message,
    for_recipient,
    lane_of,
    reached,
    received,
    superseded,
)
from services.notify.formats import cap_identifier, cap_time
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


# --- CAP references per recipient (issue 18 §5) ----------------------------------------------

SENDER = "homeward@mps.example.cn"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SENT = {v: T0 + timedelta(minutes=10 * v) for v in range(1, 9)}


def _v(version: int, state: str, attempts: int = 1) -> dict[str, str]:
    return {"version": str(version), "state": state, "attempts": str(attempts)}


def _triples(refs: str) -> list[tuple[str, str, str]]:
    return [tuple(t.split(",")) for t in refs.split()]  # type: ignore[misc]


@pytest.mark.parametrize(("msg_type", "earlier", "as_type", "refs"), [
    # a hub that had v1 and v2 gets v4's Update referencing both (v3 never went to it)
    ("Update", [_v(1, "sent"), _v(2, "acknowledged")], "Update", [1, 2]),
    # a volunteer first reached by v2 of a widening: its Update of v3 references v2 only
    ("Update", [_v(2, "sent")], "Update", [2]),
    # a version that was refused or dropped is not referenced
    ("Update", [_v(1, "failed"), _v(2, "sent"), _v(3, "dropped", 0)], "Update", [2]),
    # nothing received yet: the first message is an Alert, with no references
    ("Update", [], "Alert", None),
    ("Update", [_v(1, "retrying", 2)], "Alert", None),
    ("Alert", [], "Alert", None),
    # a Cancel references what reached the recipient (a try that may have arrived counts)
    ("Cancel", [_v(1, "sent"), _v(3, "retrying", 2)], "Cancel", [1, 3]),
    ("Cancel", [_v(2, "dead", 6)], "Cancel", [2]),
    ("Cancel", [_v(1, "gone"), _v(2, "sent")], "Cancel", [2]),
])
def test_updates_and_cancels_reference_what_this_recipient_received(
    msg_type: str, earlier: list[dict[str, str]], as_type: str, refs: list[int] | None,
) -> None:
    body = {"alert_id": "ALa", "version": 5, "msg_type": msg_type, "references": [1, 2, 3, 4]}
    out = for_recipient(body, earlier, SENT, SENDER)
    assert out["msg_type"] == as_type
    if refs is None:
        assert "cap_references" not in out
        return
    assert out["references"] == refs
    assert _triples(out["cap_references"]) == [
        (SENDER, cap_identifier("ALa", v), cap_time(SENT[v])) for v in refs]
    assert body["references"] == [1, 2, 3, 4]  # the shared version body is not changed


@given(st.dictionaries(st.integers(1, 7), st.sampled_from(list(DeliveryStatus)), max_size=7),
       st.sampled_from(["Update", "Cancel"]))
def test_references_are_exactly_the_versions_that_reached_the_recipient(
    states: dict[int, DeliveryStatus], msg_type: str,
) -> None:
    earlier = [_v(v, s.value) for v, s in states.items()]
    out = for_recipient({"alert_id": "ALb", "version": 8, "msg_type": msg_type}, earlier,
                        SENT, SENDER)
    got = {v for v, s in states.items() if reached(_v(v, s.value))}
    if out["msg_type"] == "Alert":  # an Update to someone who received nothing yet
        assert msg_type == "Update" and not any(received(r) for r in earlier)
        assert "references" not in out
        return
    assert out["references"] == sorted(got)
    identifiers = [t[1] for t in _triples(out["cap_references"])]
    assert identifiers == [cap_identifier("ALb", v) for v in sorted(got)]


@given(st.dictionaries(st.integers(1, 7), st.sampled_from(list(DeliveryStatus)), max_size=7),
       st.sampled_from(["Alert", "Update", "Cancel"]))
def test_a_push_is_remade_exactly_from_its_receipt(
    states: dict[int, DeliveryStatus], msg_type: str,
) -> None:
    """A rebuilt hub console (services/notify/rebuild.py) remakes each push from the version's
    body and what its receipt recorded (msg_type, references): the same push as was sent."""
    body = {"alert_id": "ALc", "version": 8, "msg_type": msg_type,
            **({"references": [1, 2, 3, 4, 5, 6, 7]} if msg_type == "Cancel" else {})}
    pushed = for_recipient(body, [_v(v, s.value) for v, s in states.items()], SENT, SENDER)
    receipt = {"msg_type": pushed["msg_type"], "references": pushed.get("references", [])}
    assert as_pushed(body, receipt["msg_type"], receipt["references"], SENT, SENDER) == pushed
