"""A subscriber taken out of service and put back by an admin (issue 18 §4: a hub's push of an
active alert never goes dead, so a closed station must be taken out by a person, or it is
retried for as long as the child is missing). Real Kafka and Redis, local HTTP sinks (the
notify stack of test_notify_delivery)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from services.notify.audience import SubscriberKind
from services.notify.handlers import ACKS, RETRIES
from services.notify.ledger_rules import DISABLED
from shared import topics
from shared.auth import Role
from shared.events import CASE_FOUND
from shared.settings import Settings
from tests.helpers import read_topic
from tests.integration.test_notify_delivery import (  # noqa: F401  (fixtures)
    Stack,
    north,
    run_timers_until,
    sinks,
    stack_factory,
)


async def test_a_closed_station_is_retried_until_taken_out_then_its_retries_are_dropped(
    stack_factory: Any, sinks: Any, settings: Settings  # noqa: F811
) -> None:
    stack: Stack = await stack_factory(notify_retry_max_attempts=2)
    closed, open_ = sinks("svc-closed", status=503), sinks("svc-open")
    made = await stack.subscribe("关闭站", SubscriberKind.hub, *north(10), url=closed.url)
    await stack.subscribe("值守站", SubscriberKind.hub, *north(12), url=open_.url)
    case_id = await stack.report()
    # Past its tries and still retrying: an active alert's hub push never goes dead.
    await run_timers_until(stack.notify, lambda: len(closed.requests) >= 4, timeout=10)
    states = {d["name"]: d for d in (await stack.deliveries(case_id))["deliveries"]}
    assert states["关闭站"]["state"] == "retrying"

    url = f"/api/v1/subscribers/{made['subscriber_id']}/disable"
    got = await stack.http.post(url, headers=stack.token(Role.admin, "140400"))
    assert got.status_code == 200, got.text
    assert got.json() == {"subscriber_id": made["subscriber_id"], "active": False}
    again = await stack.http.post(url, headers=stack.token(Role.admin, "140400"))
    assert again.status_code == 200 and again.json()["active"] is False  # idempotent

    # Its retry is made due at once and dropped (its schedule had grown to seconds): no more
    # requests, and the commander sees why.
    tried = len(closed.requests)
    for _ in range(100):
        await stack.notify.tick()
        rows = {d["name"]: d for d in (await stack.deliveries(case_id))["deliveries"]}
        if rows["关闭站"]["state"] == "dropped":
            break
        await asyncio.sleep(0.05)
    rows = {d["name"]: d for d in (await stack.deliveries(case_id))["deliveries"]}
    assert rows["关闭站"]["state"] == "dropped" and rows["关闭站"]["error"] == DISABLED
    assert rows["关闭站"]["delivery_id"] not in await stack.notify.timers.store.members(RETRIES)
    assert rows["值守站"]["state"] == "sent"
    for _ in range(10):
        await stack.notify.tick()
    assert len(closed.requests) <= tried + 1  # at most the try already in flight

    # A new case does not select it; the station still in service gets it.
    before = len(open_.requests)
    second = await stack.report()
    names = {d["name"] for d in (await stack.deliveries(second))["deliveries"]}
    assert names == {"值守站"} and len(open_.requests) == before + 1

    # Put back in service: selected again for what is planned from then on.
    closed.status = 204
    back = await stack.http.post(f"/api/v1/subscribers/{made['subscriber_id']}/enable",
                                 headers=stack.token(Role.admin, "140000"))
    assert back.status_code == 200 and back.json()["active"] is True
    third = await stack.report()
    rows = {d["name"]: d for d in (await stack.deliveries(third))["deliveries"]}
    assert rows["关闭站"]["state"] == "sent"
    assert closed.requests[-1]["headers"]["webhook-id"] != closed.requests[0]["headers"][
        "webhook-id"]

    # The change is on the subscriber log (the system of record): a rebuild keeps it.
    logged = [m for m in await read_topic(settings.kafka_bootstrap, topics.SUBSCRIBERS)
              if m["key"] == made["subscriber_id"]]
    assert len(logged) >= 3  # registered, taken out, put back


async def test_only_an_admin_of_the_subscribers_region_takes_it_out_of_service(
    stack_factory: Any  # noqa: F811
) -> None:
    stack: Stack = await stack_factory()
    made = await stack.subscribe("辖区外站", SubscriberKind.hub, *north(10))
    url = f"/api/v1/subscribers/{made['subscriber_id']}/disable"
    for role, region, status in [(Role.admin, "110000", 404), (Role.commander, "140000", 403),
                                 (Role.operator, "140403", 403), (Role.admin, "140403", 200)]:
        got = await stack.http.post(url, headers=stack.token(role, region))
        assert got.status_code == status, (role, region, got.text)
    assert (await stack.http.post(url)).status_code == 401
    missing = await stack.http.post("/api/v1/subscribers/H-none/disable",
                                    headers=stack.token(Role.admin, "000000"))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = await stack.http.post("/api/v1/subscribers/a%20b/enable",
                                headers=stack.token(Role.admin, "000000"))
    assert bad.status_code == 422
    sub = await stack.notify.subscribers.get(made["subscriber_id"])
    assert sub is not None and not sub.active


async def test_a_station_out_of_service_keeps_no_personal_data_after_the_child_is_found(
    stack_factory: Any  # noqa: F811
) -> None:
    """Its console had the alert; taken out of service, it is sent nothing more, but the
    Cancel still replaces the alert on its console (no child's data left on a closed
    station's screen) and its ack deadline is withdrawn."""
    stack: Stack = await stack_factory()
    console = await stack.subscribe("停用控制台站", SubscriberKind.hub, *north(5),
                                    hub_id=f"HS{uuid.uuid4().hex[:6]}")
    hub_id = console["subscriber_id"]
    case_id = await stack.report(child__name="王小红")
    view = await stack.http.get(f"/api/v1/hubs/{hub_id}/alerts",
                                headers=stack.token(Role.hub, hub_id=hub_id))
    assert "王小红" in view.text
    acks = await stack.notify.timers.store.members(ACKS)
    mine = [d["delivery_id"] for d in (await stack.deliveries(case_id))["deliveries"]
            if d["name"] == "停用控制台站"]
    assert mine and mine[0] in acks  # its ack deadline runs

    got = await stack.http.post(f"/api/v1/subscribers/{hub_id}/disable",
                                headers=stack.token(Role.admin, "140403"))
    assert got.status_code == 200
    assert mine[0] not in await stack.notify.timers.store.members(ACKS)
    info = await stack.http.get(f"/api/v1/hubs/{hub_id}",
                                headers=stack.token(Role.hub, hub_id=hub_id))
    assert info.status_code == 200 and info.json()["active"] is False

    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    view = await stack.http.get(f"/api/v1/hubs/{hub_id}/alerts",
                                headers=stack.token(Role.hub, hub_id=hub_id))
    assert view.status_code == 200 and "王小红" not in view.text
    assert [a["type"] for a in view.json()["alerts"]] == ["homeward.alert.cancelled.v1"]
    rows = {d["name"]: d for d in (await stack.deliveries(case_id))["deliveries"]}
    assert rows["停用控制台站"]["state"] in {"sent", "dropped"}
