"""A subscriber taken out of service and put back by an admin (issue 18 §4: a hub's push of an
active alert never goes dead, so a closed station must be taken out by a person, or it is
retried for as long as the child is missing). Real Kafka and Redis, local HTTP sinks (the
notify stack of test_notify_delivery)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

from services.notify.audience import SubscriberKind
from services.notify.handlers import ACKS, RETRIES
from services.notify.ledger_rules import DISABLED
from services.notify.logs import SubscriberLog
from shared import topics
from shared.auth import Role
from shared.errors import Unavailable
from shared.events import CASE_FOUND
from shared.faults import is_transient
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
    spread = await stack.http.get(f"/api/v1/cases/{case_id}/spread.svg",
                                  headers=stack.token(Role.commander, "140400"))
    assert spread.status_code == 200
    assert "关闭站：已停用" in spread.text and "值守站：已推送" in spread.text  # not "未推送"
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


async def test_changes_to_one_subscriber_at_once_keep_every_one(
    stack_factory: Any, sinks: Any  # noqa: F811
) -> None:
    """Two secret rotations and a 410's disable at the same moment: each reads the record,
    logs its change and writes it back. Without a lock per subscriber the last write wins and
    a rotated secret (the one just handed to the hub's admin) or the disable is lost. Under
    `SubscriberRepository.changing` they take turns: both rotations' secrets still sign, the
    hub is out of service, and the compacted log ends where Redis does."""
    stack: Stack = await stack_factory()
    made = await stack.subscribe("并发站", SubscriberKind.hub, *north(14),
                                 url=sinks("svc-race").url)
    sid = made["subscriber_id"]
    registry = stack.notify.registry
    log = SubscriberLog(stack.settings.kafka_bootstrap, topics.SUBSCRIBERS)
    for _ in range(3):
        first, second, _ = await asyncio.gather(
            registry.rotate_secret(sid, "140000"), registry.rotate_secret(sid, "000000"),
            registry.disable(sid))
        sub = await stack.notify.subscribers.get(sid)
        assert sub is not None and not sub.active
        assert sub.secret in (first, second)
        assert {first, second} - {sub.secret} <= {p.secret for p in sub.previous_secrets}
        latest = (await log.read_latest())[sid]
        assert stack.notify.subscribers.seal.loads(latest) == sub
        back = await registry.set_active(sid, True, "140000", actor="admin-140000")
        assert back.active and back.secret == sub.secret


async def test_a_change_waits_its_turn_and_a_dead_holders_turn_expires(
    stack_factory: Any  # noqa: F811
) -> None:
    stack: Stack = await stack_factory()
    subs = stack.notify.subscribers
    held = f"H-held-{uuid.uuid4().hex[:6]}"
    async with subs.changing(held):
        with pytest.raises(Unavailable, match=held) as refused:  # 503: the admin retries
            async with subs.changing(held, wait_s=0.2):
                pass
        assert is_transient(refused.value)  # a consumer's 410 disable: its batch is retried
        async with subs.changing(f"H-other-{uuid.uuid4().hex[:6]}", wait_s=0.2):
            pass  # another subscriber is not held up
    async with subs.changing(held, wait_s=0.2):
        pass  # freed when the change ended
    # A holder that died never frees its turn: the lock expires (hold_s), and a living
    # holder's change is stopped well before that, so no second change overlaps it.
    slow = f"H-slow-{uuid.uuid4().hex[:6]}"
    began = time.monotonic()
    with pytest.raises(Unavailable, match="took over") as stopped:
        async with subs.changing(slow, hold_s=0.6):
            ttl = await subs.redis.pttl(f"notify:sub-lock:{slow}")
            assert 0 < ttl <= 600  # expires by itself
            await asyncio.sleep(5)
    assert time.monotonic() - began < 1 and is_transient(stopped.value)
    async with subs.changing(slow, wait_s=0.1):
        pass  # freed at once, not after its expiry


async def test_a_station_whose_receiver_moved_gets_the_alert_at_its_new_address_at_once(
    stack_factory: Any, sinks: Any  # noqa: F811
) -> None:
    """The duty officer's receiver moved: the old address answers 503 with Retry-After and the
    hub's next try is minutes away. The admin repoints the channel; the retry is made due at
    once and the alert arrives at the new address, signed with the same secret."""
    stack: Stack = await stack_factory()
    old, new = sinks("svc-old", status=503), sinks("svc-new")
    old.script = [(503, {"Retry-After": "600"})] * 5
    made = await stack.subscribe("迁址站", SubscriberKind.hub, *north(10), url=old.url)
    sid = made["subscriber_id"]
    case_id = await stack.report()
    await run_timers_until(stack.notify, lambda: len(old.requests) >= 1, timeout=10)
    row = (await stack.deliveries(case_id))["deliveries"][0]
    assert row["state"] == "retrying"
    assert float(row["next_at"]) - time.time() > 60  # without the repoint: nothing for minutes
    url = f"/api/v1/subscribers/{sid}/channel"
    body = {"channel": {"type": "webhook", "url": new.url}}
    assert (await stack.http.put(url, json=body, headers=stack.token(Role.commander, "140400"))
            ).status_code == 403
    assert (await stack.http.put(url, json=body, headers=stack.token(Role.admin, "110000"))
            ).status_code == 404  # another province's admin does not see it
    bad = await stack.http.put(url, json={"channel": {"type": "webhook", "url": "ftp://x"}},
                               headers=stack.token(Role.admin, "140400"))
    assert bad.status_code == 422 and "channel" in bad.text
    got = await stack.http.put(url, json=body, headers=stack.token(Role.admin, "140400"))
    assert got.status_code == 200, got.text
    assert got.json() == {"subscriber_id": sid, "active": True, "channel_type": "webhook"}
    assert new.url not in got.text and new.url not in (
        await stack.notify.subscribers.redis.get(f"notify:sub:{sid}"))  # sealed at rest
    await run_timers_until(stack.notify, lambda: len(new.requests) >= 1, timeout=5)
    rows = {d["name"]: d for d in (await stack.deliveries(case_id))["deliveries"]}
    assert rows["迁址站"]["state"] == "sent"
    assert new.requests[0]["headers"]["webhook-id"] == old.requests[0]["headers"]["webhook-id"]
    pushed = Webhook(made["secret"]).verify(new.requests[0]["body"], new.requests[0]["headers"])
    assert pushed["case_id"] == case_id
