"""Issue 18 §5 lines on versions, against the real broker and Redis: a Cancel goes only to
recipients an earlier version reached; the Atom feed keeps a public alert's Cancel entry (no
personal data) for `notify_feed_cancel_keep_s`, then drops it; `GET …/{alert_id}.xml?version=N`
is version N as it went out, its references the versions before N."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.notify.audience import SubscriberKind
from services.notify.domain import alert_id_of
from services.notify.formats import cap_identifier
from shared.auth import Role
from shared.events import CASE_FOUND, CASE_RELEASE_APPROVED
from tests.integration.test_notify_delivery import (  # noqa: F401  (fixtures)
    PII,
    north,
    sinks,
    stack_factory,
)


async def test_a_cancel_reaches_only_who_had_the_alert_and_the_feed_keeps_it_a_while(
    stack_factory: Any, sinks: Any,  # noqa: F811
) -> None:
    stack = await stack_factory(notify_feed_cancel_keep_s=3600.0)
    took, refused, media = sinks("v-took"), sinks("v-refused", status=400), sinks("v-media")
    await stack.subscribe("收到站", SubscriberKind.hub, *north(5), url=took.url)
    await stack.subscribe("拒收站", SubscriberKind.hub, *north(6), url=refused.url)
    await stack.subscribe("媒体", SubscriberKind.media, *north(7), url=media.url)
    case_id = await stack.report()
    alert_id = alert_id_of(case_id)
    assert media.requests == []  # restricted until released
    await stack.dispatch(CASE_RELEASE_APPROVED, case_id)
    assert [b["msg_type"] for b in media.bodies()] == ["Alert"]  # its first message
    assert [b["msg_type"] for b in took.bodies()] == ["Alert"]
    assert len(refused.requests) == 1  # answered 400: failed, never retried

    # ?version=N: the public message of version 2 (released) and its references.
    v2 = await stack.http.get(f"/api/v1/alerts/{alert_id}.xml?version=2")
    assert v2.status_code == 200 and "<msgType>Update</msgType>" in v2.text
    assert f"{cap_identifier(alert_id, 1)}," in v2.text
    commander = stack.token(Role.commander, "140400")
    v1 = await stack.http.get(f"/api/v1/alerts/{alert_id}.xml?version=1", headers=commander)
    assert "<msgType>Alert</msgType>" in v1.text and "<references>" not in v1.text
    assert (await stack.http.get(f"/api/v1/alerts/{alert_id}.xml?version=3",
                                 headers=commander)).status_code == 404

    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    assert [b["msg_type"] for b in took.bodies()] == ["Alert", "Cancel"]
    assert took.bodies()[-1]["references"] == [1]
    assert [b["msg_type"] for b in media.bodies()] == ["Alert", "Cancel"]
    assert media.bodies()[-1]["references"] == [2]  # the public first heard of version 2
    assert len(refused.requests) == 1  # it never had the alert: no Cancel
    rows = {(r["name"], r["version"]): r for r in
            (await stack.deliveries(case_id))["deliveries"]}
    assert rows[("拒收站", 3)]["state"] == "dropped"

    feed = await stack.http.get("/api/v1/alerts/active.atom")
    assert f"urn:homeward:alert:{alert_id}" in feed.text and "协查已解除" in feed.text
    assert "张小明" not in feed.text and not any(s in feed.text for s in PII)
    real_clock = stack.notify.clock
    stack.notify.clock = lambda: real_clock() + timedelta(hours=2)  # past the keep
    later = await stack.http.get("/api/v1/alerts/active.atom")
    assert f"urn:homeward:alert:{alert_id}" not in later.text
