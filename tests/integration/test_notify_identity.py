"""One alert per child at the hubs (issue 19 §2–§4), on real Kafka and Redis: a second report
of the same child is an Update of its alert, never a second Alert; siblings from one phone are
separate children and a found cancels only its own child; unlink gives the second report its
own alert; a reopen re-alerts everyone who got the Cancel."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from services.notify.audience import SubscriberKind
from services.notify.content import ALERT_CANCELLED, ALERT_ISSUED
from services.notify.domain import alert_id_of
from shared.events import CASE_FOUND, CASE_REOPENED, CASE_REPORT_UNLINKED
from tests.integration import test_notify_delivery as delivery

stack_factory, sinks, north = delivery.stack_factory, delivery.sinks, delivery.north

NAME = "阿依努尔·买买提"


def pushes(sink: Any) -> list[tuple[str, str, str]]:
    return [(b["type"], b["msg_type"], b["alert_id"]) for b in sink.bodies()]


async def test_mother_then_father_one_alert_per_hub_the_second_an_update(
    stack_factory: Any, sinks: Any
) -> None:
    stack = await stack_factory()
    hubs = [sinks(f"mf{i}") for i in range(3)]
    for i, sink in enumerate(hubs):
        await stack.subscribe(f"站{i}", SubscriberKind.hub, *north(10 + 20 * i), url=sink.url)
    mother = await stack.report(child__name=NAME, child__id_number=None,
                                child__birth_date="2019-05-01", reporter__phone="13800000000")
    first = alert_id_of(mother)
    assert all(pushes(s) == [(ALERT_ISSUED, "Alert", first)] for s in hubs)  # at once

    # The father, from another phone, the name with U+30FB, a detail the mother did not give.
    father_overrides: dict[str, Any] = {
        "child__name": NAME.replace("·", "・"), "child__id_number": None,
        "child__birth_date": "2019-05-01",
        "child__description": "背红色书包", "reporter__phone": "13900000001",
        "reporter__name": "买买提", "last_seen__lat": 36.21}
    father = await stack.report(**father_overrides)
    for sink in hubs:
        assert pushes(sink) == [(ALERT_ISSUED, "Alert", first), (ALERT_ISSUED, "Update", first)]
        update = sink.bodies()[1]
        assert "背红色书包" in update["child"]["description"]
        assert "蓝色羽绒服" in update["child"]["description"]  # the mother's details stay
        assert update["version"] == 2
    assert await stack.notify.alerts.get(alert_id_of(father)) is None
    merged = await stack.notify.alerts.get(first)
    assert merged is not None and [m.case_id for m in merged.merged] == [father]
    assert merged.merged[0].evidence.rule == "name_birth_date"

    await stack.report_as(father, **father_overrides)  # redelivered: nothing new
    assert all(len(s.requests) == 2 for s in hubs)

    # The commander unlinks: the father's report is a child of its own after all.
    await stack.dispatch(CASE_REPORT_UNLINKED, mother, report_id=f"R{father}",
                         duplicate_case_id=father, reason="不是同一儿童")
    for sink in hubs:
        assert pushes(sink)[-1] == (ALERT_ISSUED, "Alert", alert_id_of(father))
        assert sink.bodies()[-1]["version"] == 1
    assert await stack.notify.alerts.merged_into(father) is None


async def test_siblings_from_one_phone_are_separate_and_found_cancels_only_one(
    stack_factory: Any, sinks: Any
) -> None:
    stack = await stack_factory(notify_tier_unit_s=2.0)  # one "hour" of the tiers is 2 s
    near, far = sinks("sib-near"), sinks("sib-far")
    await stack.subscribe("近站", SubscriberKind.hub, *north(20), url=near.url)
    await stack.subscribe("远站", SubscriberKind.hub, *north(150), url=far.url)
    children = [("张小明", "2019-05-01"), ("张小红", "2017-03-02"), ("张小刚", "2021-08-09")]
    ids = [await stack.report(seen_ago_s=0.2, child__name=name, child__birth_date=born,
                              child__id_number=None, reporter__phone="13800000000")
           for name, born in children]
    alerts = [alert_id_of(c) for c in ids]
    assert pushes(near) == [(ALERT_ISSUED, "Alert", a) for a in alerts]  # three children

    await stack.dispatch(CASE_FOUND, ids[0], outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    cancels = [p for p in pushes(near) if p[0] == ALERT_CANCELLED]
    assert cancels == [(ALERT_CANCELLED, "Cancel", alerts[0])]
    for alert_id in alerts[1:]:
        state = await stack.notify.alerts.get(alert_id)
        assert state is not None and not state.cancelled
    # The radius of children 2 and 3 keeps widening: the 150 km hub hears of them, not of 1.
    await delivery.run_timers_until(stack.notify, lambda: len(far.requests) >= 2, timeout=15)
    await asyncio.sleep(0.3)
    assert sorted(a for _, _, a in pushes(far)) == sorted(alerts[1:])


async def test_twins_sharing_an_id_number_have_two_alerts_and_one_found_cancels_one(
    stack_factory: Any, sinks: Any
) -> None:
    """Twin B's report carries twin A's ID number: contradicted evidence (the names differ,
    shared.identity.contradiction) is no merge, so B has an alert of its own, A's found cancels
    only A's, and a later report of B by name and birth date is an Update of B's."""
    stack = await stack_factory()
    hub = sinks("twins")
    await stack.subscribe("双胞胎站", SubscriberKind.hub, *north(10), url=hub.url)
    tag = uuid.uuid4().hex[:4]
    shared_id = delivery.id_number(f"14040320190501{int(tag, 16) % 1000:03d}")
    born = {"child__birth_date": "2019-05-01"}
    a = await stack.report(child__name=f"张乐乐{tag}", child__id_number=shared_id,
                           reporter__phone="13800000000", **born)
    b = await stack.report(child__name=f"张欢欢{tag}", child__id_number=shared_id,
                           reporter__phone="13800000001", **born)
    assert pushes(hub) == [(ALERT_ISSUED, "Alert", alert_id_of(a)),
                           (ALERT_ISSUED, "Alert", alert_id_of(b))]
    await stack.dispatch(CASE_FOUND, a, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    assert [p for p in pushes(hub) if p[0] == ALERT_CANCELLED] == [
        (ALERT_CANCELLED, "Cancel", alert_id_of(a))]
    state = await stack.notify.alerts.get(alert_id_of(b))
    assert state is not None and not state.cancelled
    await stack.report(child__name=f"张欢欢{tag}", child__id_number=None,
                       reporter__phone="13800000002", **born)
    assert pushes(hub)[-1] == (ALERT_ISSUED, "Update", alert_id_of(b))


async def test_wrong_found_then_reopen_re_alerts_everyone_who_got_the_cancel(
    stack_factory: Any, sinks: Any
) -> None:
    stack = await stack_factory()
    hubs = [sinks(f"ro{i}") for i in range(2)]
    media = sinks("ro-media")
    for i, sink in enumerate(hubs):
        await stack.subscribe(f"站{i}", SubscriberKind.hub, *north(10 + 30 * i), url=sink.url)
    await stack.subscribe("媒体", SubscriberKind.media, *north(15), url=media.url)
    # Last seen 90 minutes ago: 200 km now; the radius continues from that time.
    case_id = await stack.report(seen_ago_s=5400, release__public=True)
    alert_id = alert_id_of(case_id)
    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    for sink in (*hubs, media):
        assert [p[1] for p in pushes(sink)] == ["Alert", "Cancel"]

    await stack.dispatch(CASE_REOPENED, case_id, reason="认错了孩子",
                         previous_outcome="found_safe")
    await stack.dispatch(CASE_REOPENED, case_id, reason="认错了孩子")  # redelivered
    for sink in (*hubs, media):
        assert [p[1] for p in pushes(sink)] == ["Alert", "Cancel", "Alert"], sink.url
        again = sink.bodies()[-1]
        assert again["alert_id"] == alert_id and again["version"] == 3
        assert again["radius_km"] == 200.0 and again["child"]["name"].startswith("张小明")
    state = await stack.notify.alerts.get(alert_id)
    assert state is not None and not state.cancelled and state.public_listed
    assert await stack.notify.ledger.redis.zscore("notify:timer:widen", alert_id) is not None


async def test_two_parents_at_the_same_moment_one_alert(stack_factory: Any, sinks: Any) -> None:
    """Both reports handled at once (as by two notify instances): the atomic claim on the
    child's identity gives one Alert per hub and one Update, whichever report wins."""
    stack = await stack_factory()
    hub = sinks("both-hub")
    await stack.subscribe("站", SubscriberKind.hub, *north(10), url=hub.url)
    same = {"child__id_number": delivery.id_number("11010120190501999"),
            "child__birth_date": "2019-05-01"}
    ids = await asyncio.gather(
        stack.report(child__name=NAME, reporter__phone="13800000000", **same),
        # the father: the same ID number, the name with another dot (a name that contradicts
        # the number would be another child: shared.identity.contradiction)
        stack.report(child__name=NAME.replace("·", "・"), reporter__phone="13900000001",
                     **same))
    got = pushes(hub)
    assert [p[1] for p in got] == ["Alert", "Update"]
    assert got[0][2] == got[1][2] and got[0][2] in {alert_id_of(c) for c in ids}
    state = await stack.notify.alerts.get(got[0][2])
    assert state is not None and state.merged[0].evidence.rule == "id_number"
