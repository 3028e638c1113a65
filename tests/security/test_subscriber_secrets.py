"""Issue 12, "Secrets and authority" for subscribers: secrets and channel URLs sealed at rest in
Kafka and Redis, rotation with overlapping signatures, re-registering never hands out an
existing secret, admins act within their region, every hub has a region and every hub read is
scoped by it.

Against the real Kafka and Redis of the session and local HTTP sinks (the notify stack of
tests/integration/test_notify_delivery.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import encode_basic_auth
from redis.asyncio import Redis
from standardwebhooks import Webhook, WebhookVerificationError

from services.notify.audience import Subscriber, SubscriberKind
from services.notify.logs import SubscriberLog
from services.notify.sealing import SealError, SubscriberSeal, new_key
from services.notify.subscribers import newest
from shared import topics
from shared.auth import Role
from shared.events import CASE_MEMBER_ADDED, CASE_OPENED
from shared.settings import Settings
from tests.helpers import read_topic
from tests.integration.test_notify_delivery import (  # noqa: F401  (fixtures)
    Stack,
    north,
    sinks,
    stack_factory,
)


def _hub(name: str, channel: dict[str, Any], region: str | None = "140403",
         hub_id: str | None = None, km: float = 10) -> dict[str, Any]:
    lat, lon = north(km)
    body: dict[str, Any] = {"kind": "hub", "name": name, "location": {"lat": lat, "lon": lon},
                            "channel": channel, "hub_id": hub_id or f"H-{uuid.uuid4().hex[:8]}"}
    if region:
        body["region_code"] = region
    return body


async def _register(stack: Stack, body: dict[str, Any], region: str = "140000") -> Any:
    return await stack.http.post("/api/v1/subscribers", json=body,
                                 headers=stack.token(Role.admin, region))


def _verifies(secret: str, request: dict[str, Any]) -> bool:
    try:
        Webhook(secret).verify(request["body"], request["headers"])
    except WebhookVerificationError:
        return False
    return True


# --- sealed at rest ----------------------------------------------------------------------------


async def test_the_subscriber_log_and_redis_hold_no_secret_and_no_channel_url_in_clear(
    stack_factory: Any, sinks: Any, redis: Redis  # noqa: F811
) -> None:
    leader_sink = sinks("seal-gw-+863551000001")
    gateway = leader_sink.url.replace("http://", "json://").replace("+863551000001", "{phone}")
    # (The session's one subscriber log is shared by every test: the stack's own key here,
    # since a record no key opens stops a rebuild; other keys are the next test's.)
    stack: Stack = await stack_factory(notify_group_apprise_url=gateway)
    hook, chat = sinks("seal-hook"), sinks("seal-chat")
    token = uuid.uuid4().hex  # a chat token embedded in an Apprise URL
    chat_url = chat.url.replace("http://", f"json://bot:{token}@") + f"?+X-Token={token}"
    made = await _register(stack, _hub("密封站", {"type": "webhook", "url": hook.url}))
    chat_made = await _register(stack, _hub("密封群", {"type": "apprise", "url": chat_url}))
    assert made.status_code == chat_made.status_code == 201, (made.text, chat_made.text)
    first = made.json()["secret"]
    rotated = await stack.http.post(
        f"/api/v1/subscribers/{made.json()['subscriber_id']}/rotate-secret",
        headers=stack.token(Role.admin, "140000"))
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["secret"]
    case_id = await stack.report()
    await stack.dispatch(CASE_OPENED, case_id, report_id="R", opened_at=datetime.now(
        UTC).isoformat(), priority="high", mechanisms=["rapid_search"], leader={
            "organ_code": "140403", "organ_name": "长治市公安局潞州分局", "name": "褚卫东",
            "title": "局长", "phone": "0355-1000001"})
    # The hubs: the Alert, then the Update carrying the leader (issue 18 §5); the leader: one.
    assert len(hook.requests) == len(chat.requests) == 2 and len(leader_sink.requests) == 1
    assert [json.loads(r["body"])["msg_type"] for r in hook.requests] == ["Alert", "Update"]
    assert "褚卫东" in json.loads(hook.requests[1]["body"])["text"]
    # Apprise's JSON target as Apprise would post it: its credentials and headers opened.
    assert chat.requests[0]["headers"]["Authorization"] == encode_basic_auth("bot", token)
    assert chat.requests[0]["headers"]["X-Token"] == token

    clear = [first, second, token, hook.url, chat.url.split("//")[1], "863551000001",
             *(s.removeprefix("whsec_") for s in (first, second))]
    records = [r for r in await read_topic(stack.settings.kafka_bootstrap, topics.SUBSCRIBERS)
               if r["key"] in {made.json()["subscriber_id"], chat_made.json()["subscriber_id"]}]
    assert len(records) == 3  # registered, registered, rotated
    stored = [await redis.get(k) async for k in redis.scan_iter("notify:sub:*")]
    assert len(stored) == 3  # the two hubs and the case group's leader
    for raw in [r["raw"].decode() for r in records] + stored:
        for secret in clear:
            assert secret not in raw
        record = json.loads(raw)
        assert "secret" not in record and "channel" not in record and record["sealed"]
        assert record["channel_type"] in {"webhook", "apprise"}

    # The log still rebuilds Redis, and what it rebuilds signs and sends as before.
    await redis.flushdb()
    assert await stack.notify.rebuild_subscribers(
        SubscriberLog(stack.settings.kafka_bootstrap, topics.SUBSCRIBERS)) >= 2
    back = await stack.notify.subscribers.get(made.json()["subscriber_id"])
    assert back is not None and back.secret == second and str(back.channel.url) == hook.url  # type: ignore[union-attr]
    # Without the key, a record opens to nothing.
    with pytest.raises(SealError):
        SubscriberSeal([new_key("dev")]).loads(stored[0])


def test_keys_rotate_first_seals_each_opens_its_own_and_none_is_defaulted_in_production(
) -> None:
    old, new = new_key("2026a"), new_key("2026b")
    sub = Subscriber.model_validate({
        "kind": "hub", "name": "站", "location": {"lat": 36, "lon": 113},
        "region_code": "140403", "channel": {"type": "webhook", "url": "https://hub.example/h"},
        "subscriber_id": "H-1", "secret": "whsec_" + "A" * 43})
    sealed_old = SubscriberSeal([old]).dumps(sub)
    assert json.loads(sealed_old)["sealed"].startswith("2026a.")
    ring = SubscriberSeal([new, old])
    assert ring.loads(sealed_old) == sub
    resealed = ring.reseal(sealed_old)
    assert json.loads(resealed)["sealed"].startswith("2026b.")
    assert SubscriberSeal([new]).loads(resealed) == sub
    for wrong in ([old], [new_key("2026b")]):  # the key gone, or another key under its id
        with pytest.raises(SealError):
            SubscriberSeal(wrong).loads(resealed)
    # The sealed part is bound to its subscriber: moved to another record, it does not open.
    moved = {**json.loads(resealed), "subscriber_id": "H-2"}
    with pytest.raises(SealError):
        ring.loads(json.dumps(moved))
    for bad in (["no-colon"], ["k:" + "A" * 10], [new, new]):
        with pytest.raises(ValueError):
            SubscriberSeal(bad)
    with pytest.raises(ValueError, match="SUBSCRIBER_KEYS"):
        SubscriberSeal.from_settings(Settings(environment="production", jwt_secret="x" * 48,
                                              notify_subscriber_keys=[]))
    assert SubscriberSeal.from_settings(Settings(environment="production", jwt_secret="x" * 48,
                                                 notify_subscriber_keys=[new]))


# --- rotation ----------------------------------------------------------------------------------


async def test_rotation_signs_with_both_secrets_during_the_overlap_then_the_new_one_only(
    stack_factory: Any, sinks: Any  # noqa: F811
) -> None:
    stack: Stack = await stack_factory(notify_secret_overlap_s=3600)
    hook = sinks("rotate-hook")
    made = (await _register(stack, _hub("轮换站", {"type": "webhook", "url": hook.url}))).json()
    old = made["secret"]
    got = await stack.http.post(f"/api/v1/subscribers/{made['subscriber_id']}/rotate-secret",
                                headers=stack.token(Role.admin, "140000"))
    assert got.status_code == 200 and set(got.json()) == {"secret"}
    new = got.json()["secret"]
    assert new != old and new.startswith("whsec_")

    await stack.report()
    push = hook.requests[-1]
    signatures = push["headers"]["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert _verifies(old, push) and _verifies(new, push)
    assert not _verifies("whsec_" + "B" * 43, push)

    # After the overlap (the clock moved past it), only the new secret signs.
    stack.notify.clock = lambda: datetime.now(UTC) + timedelta(hours=2)
    await stack.report()
    push = hook.requests[-1]
    assert len(push["headers"]["webhook-signature"].split(" ")) == 1
    assert _verifies(new, push) and not _verifies(old, push)


async def test_rotation_is_for_admins_of_the_subscribers_region(stack_factory: Any) -> None:  # noqa: F811
    stack: Stack = await stack_factory()
    made = (await _register(stack, _hub("辖区站", {"type": "console"}))).json()
    url = f"/api/v1/subscribers/{made['subscriber_id']}/rotate-secret"
    for role, region, status in [(Role.admin, "110000", 404), (Role.commander, "140000", 403),
                                 (Role.admin, "140400", 200), (Role.admin, "000000", 200)]:
        got = await stack.http.post(url, headers=stack.token(role, region))
        assert got.status_code == status, (role, region, got.text)
        if status != 200:
            assert "secret" not in got.text
    missing = await stack.http.post("/api/v1/subscribers/H-none/rotate-secret",
                                    headers=stack.token(Role.admin, "000000"))
    assert missing.status_code == 404


# --- re-registering and regions ------------------------------------------------------------------


async def test_re_registering_a_hub_is_refused_and_never_repoints_its_channel(
    stack_factory: Any, sinks: Any  # noqa: F811
) -> None:
    stack: Stack = await stack_factory()
    hook, thief = sinks("own-hook"), sinks("thief-hook")
    hub_id = f"H-{uuid.uuid4().hex[:8]}"
    made = await _register(stack, _hub("原站", {"type": "webhook", "url": hook.url},
                                       hub_id=hub_id))
    assert made.status_code == 201
    again = await _register(stack, _hub("冒名站", {"type": "webhook", "url": thief.url},
                                        hub_id=hub_id))
    assert again.status_code == 409 and again.json()["error"]["code"] == "subscriber_exists"
    assert again.json()["error"]["field"] == "hub_id"
    assert made.json()["secret"] not in again.text and "secret" not in again.json()
    await stack.report()
    assert len(hook.requests) == 1 and thief.requests == []
    assert _verifies(made.json()["secret"], hook.requests[0])


async def test_an_admin_registers_only_within_its_region(stack_factory: Any) -> None:  # noqa: F811
    stack: Stack = await stack_factory()
    outside = await _register(stack, _hub("外省站", {"type": "console"}, region="110101"),
                              region="140000")
    assert outside.status_code == 403
    assert outside.json()["error"]["field"] == "region_code" and "secret" not in outside.text
    # Without a region, the hub's own location decides (长治 is in 140000, not in 110000).
    derived = await _register(stack, _hub("无码站", {"type": "console"}, region=None),
                              region="110000")
    assert derived.status_code == 403
    inside = await _register(stack, _hub("本省站", {"type": "console"}, region=None),
                             region="140000")
    assert inside.status_code == 201


# An admin's hub is registered under a region code the admin holds, and its location must lie
# there: which alerts a hub receives (restricted: ID number, family phone, suspect) is decided
# by its location alone. (location, region_code, admin's region, status, error field)
PLACED = [
    ((39.8947, 116.3220), "140403", "140000", 422, "location"),  # 北京西站 under 长治's code
    ((39.8947, 116.3220), "140000", "140000", 422, "location"),  # ... under 山西's
    ((39.8947, 116.3220), None, "140000", 403, "region_code"),  # derived 北京: not the admin's
    ((31.1979, 121.3363), "140400", "000000", 422, "location"),  # 虹桥 under 长治市, national admin
    ((36.22, 113.12), "140403", "140000", 201, None),  # 长治 in 潞州区
    ((36.09, 113.11), "140403", "140000", 201, None),  # 4 km into 上党区: a border's slack
    ((36.0, 113.0), "140400", "140000", 201, None),  # in 长治市, under the city
    ((36.0, 113.0), "140403", "140000", 422, "location"),  # 上党区, 15 km off 潞州区
    # 新星市 (2021, by 哈密) has no polygon in the boundary data: anywhere in 新疆
    ((42.80, 93.50), "659011", "000000", 201, None),
    ((36.2, 113.1), "659011", "000000", 422, "location"),
    ((39.88, 116.4), "110103", "000000", 422, "location"),  # 崇文区: merged into 东城 in 2010
]


async def test_a_hub_stands_where_its_region_is(stack_factory: Any) -> None:  # noqa: F811
    stack: Stack = await stack_factory()
    for where, region, admin, status, field in PLACED:
        body = _hub("定位站", {"type": "console"}, region=region)
        body["location"] = {"lat": where[0], "lon": where[1]}
        got = await _register(stack, body, region=admin)
        assert got.status_code == status, (where, region, admin, got.text)
        if field is not None:
            assert got.json()["error"]["field"] == field and "secret" not in got.text


async def test_every_hub_has_a_region_and_hub_reads_are_scoped_by_it(
    stack_factory: Any  # noqa: F811
) -> None:
    stack: Stack = await stack_factory()
    made = await _register(stack, _hub("长治站", {"type": "console"}, region=None),
                           region="000000")
    assert made.status_code == 201
    hub_id = made.json()["subscriber_id"]
    stored = await stack.notify.subscribers.get(hub_id)
    assert stored is not None and stored.region_code and stored.region_code.startswith("1404")
    case_id = await stack.report()
    reads = [f"/api/v1/hubs/{hub_id}", f"/api/v1/hubs/{hub_id}/alerts",
             f"/api/v1/hubs/{hub_id}/stream"]
    for path in reads:
        got = await stack.http.get(path, headers=stack.token(Role.commander, "110000"))
        assert got.status_code == 404, path
        assert "张小明" not in got.text
        other_hub = await stack.http.get(path, headers=stack.token(Role.hub, "140403",
                                                                    hub_id="H-other"))
        assert other_hub.status_code == 403, path
    for path in reads[:2]:
        got = await stack.http.get(path, headers=stack.token(Role.commander, "140400"))
        assert got.status_code == 200, path
    assert "张小明" in (await stack.http.get(reads[1], headers=stack.token(
        Role.hub, "140403", hub_id=hub_id))).text
    elsewhere = await stack.http.get("/api/v1/deliveries", params={"case_id": case_id},
                                     headers=stack.token(Role.commander, "110000"))
    assert elsewhere.status_code == 404

    # A hub stored without a region (before this rule) is no exception: national scope only.
    legacy = stored.model_copy(update={"subscriber_id": "H-legacy", "hub_id": "H-legacy",
                                       "region_code": None})
    await stack.notify.subscribers.add(legacy)
    for region, status in [("140400", 404), ("140000", 404), ("000000", 200)]:
        got = await stack.http.get("/api/v1/hubs/H-legacy",
                                   headers=stack.token(Role.commander, region))
        assert got.status_code == status, region


async def test_member_numbers_reach_the_gateway_validated_and_url_encoded(
    stack_factory: Any, sinks: Any  # noqa: F811
) -> None:
    """A member's number goes into the gateway's URL only as E.164, URL-encoded; a number that
    is not one (here smuggling a path and a query) is left out."""
    gateway_sink = sinks("gw-+8613912345678")
    template = gateway_sink.url.replace("http://", "json://").replace("+8613912345678",
                                                                       "{phone}")
    stack: Stack = await stack_factory(notify_group_apprise_url=template)
    case_id = await stack.report()
    await stack.dispatch(CASE_MEMBER_ADDED, case_id, details={"member": {
        "name": "甲", "title": "检察官", "phone": "139 1234 5678"}})
    await stack.dispatch(CASE_MEMBER_ADDED, case_id, details={"member": {
        "name": "乙", "title": "检察官", "phone": "1/../../hook/gw-evil?x=1"}})
    assert len(gateway_sink.requests) == 1
    assert gateway_sink.requests[0]["path"].endswith("/hook/gw-+8613912345678")
    rows = (await stack.deliveries(case_id))["deliveries"]
    assert [r["name"] for r in rows if r["kind"] == "member"] == ["甲检察官"]


async def test_reseal_turns_a_clear_record_from_before_sealing_into_a_sealed_one(
    stack_factory: Any, sinks: Any, redis: Redis  # noqa: F811
) -> None:
    """What an upgrade finds on the log: records in clear, hubs without a region."""
    stack: Stack = await stack_factory()
    hook = sinks("legacy-hook")
    secret = "whsec_" + "L" * 43
    legacy_id = f"H-legacy-{uuid.uuid4().hex[:6]}"
    lat, lon = north(10)
    clear = {"kind": "hub", "name": "旧站", "location": {"lat": lat, "lon": lon},
             "region_code": None, "channel": {"type": "webhook", "url": hook.url},
             "drills": False, "hub_id": legacy_id, "subscriber_id": legacy_id,
             "secret": secret, "active": True}
    await stack.notify.publisher.broker.publish(json.dumps(clear).encode(), topics.SUBSCRIBERS,
                                                key=legacy_id.encode())
    log = SubscriberLog(stack.settings.kafka_bootstrap, topics.SUBSCRIBERS)
    assert await stack.notify.reseal_subscribers(log) >= 1
    latest = (await log.read_latest())[legacy_id].decode()
    assert secret not in latest and hook.url not in latest and json.loads(latest)["sealed"]
    back = await stack.notify.subscribers.get(legacy_id)
    assert back is not None and back.secret == secret
    assert back.region_code is not None and back.region_code.startswith("1404")
    assert secret not in (await redis.get(f"notify:sub:{legacy_id}") or "")


async def test_reseal_keeps_the_newer_of_the_logs_and_redis_copy(
    stack_factory: Any, sinks: Any, redis: Redis  # noqa: F811
) -> None:
    """Redis can lag the log (the log is written first: a crash between the two writes) and,
    during a re-seal, lead it (a change written after the re-seal read the log). The re-seal
    keeps the newer of the two by revision, never writing a stale copy back over a new one."""
    stack: Stack = await stack_factory()
    subs = stack.notify.subscribers
    lagging = await stack.subscribe("滞后站", SubscriberKind.hub, *north(10))
    leading = await stack.subscribe("领先站", SubscriberKind.hub, *north(11))
    # Logged, but the Redis write was lost: only the log has the rotated secret.
    before = await subs.get(lagging["subscriber_id"])
    assert before is not None and before.revision == 1
    rotated = before.model_copy(update={"secret": "whsec_" + "N" * 43, "revision": 2})
    await stack.notify.registry.log(rotated)
    # Written to Redis after the log was read: only Redis has it.
    newer = await subs.get(leading["subscriber_id"])
    assert newer is not None
    await subs.add(newer.model_copy(update={"active": False, "revision": 5}))

    log = SubscriberLog(stack.settings.kafka_bootstrap, topics.SUBSCRIBERS)
    assert await stack.notify.reseal_subscribers(log) >= 2
    kept = await subs.get(lagging["subscriber_id"])
    assert kept is not None and kept.secret == rotated.secret and kept.revision == 3
    still_out = await subs.get(leading["subscriber_id"])
    assert still_out is not None and not still_out.active and still_out.revision == 6
    latest = await log.read_latest()
    assert subs.seal.loads(latest[leading["subscriber_id"]]) == still_out  # the log caught up


async def test_rebuild_keeps_a_change_written_since_the_log_was_read(
    stack_factory: Any, redis: Redis  # noqa: F811
) -> None:
    """Redis rebuilt from the subscriber log (after a loss) while another instance changes
    subscribers: a copy Redis holds with a higher revision stays; a lagging copy, a copy no
    key opens and a lost one are put back from the log."""
    stack: Stack = await stack_factory()
    subs = stack.notify.subscribers
    made = [await stack.subscribe(name, SubscriberKind.hub, *north(20 + n))
            for n, name in enumerate(("领先站", "滞后站", "失钥站", "丢失站"))]
    leading, lagging, unreadable, lost = [str(m["subscriber_id"]) for m in made]
    # Taken out of service on another instance after the rebuild read the log.
    current = await subs.get(leading)
    assert current is not None
    out = current.model_copy(update={"active": False, "revision": current.revision + 1})
    await subs.add(out)
    # Logged, but the Redis write was lost: only the log has the rotated secret.
    current = await subs.get(lagging)
    assert current is not None
    rotated = current.model_copy(update={"secret": "whsec_" + "R" * 43,
                                         "revision": current.revision + 1})
    await stack.notify.registry.log(rotated)
    # Sealed with a key this instance does not hold (its copy cannot be compared).
    current = await subs.get(unreadable)
    assert current is not None
    await redis.set(f"notify:sub:{unreadable}",
                    SubscriberSeal([new_key("elsewhere")]).dumps(current))
    # Gone with the loss, geo index and all.
    await redis.delete(f"notify:sub:{lost}")
    await redis.zrem("notify:geo:hub", lost)

    log = SubscriberLog(stack.settings.kafka_bootstrap, topics.SUBSCRIBERS)
    assert await stack.notify.rebuild_subscribers(log) >= 4
    assert await subs.get(leading) == out
    assert await subs.get(lagging) == rotated
    assert await subs.get(unreadable) == current
    back = await subs.get(lost)
    assert back is not None and back.active
    lat, lon = north(23)
    assert lost in await subs.ids_within(SubscriberKind.hub, lat, lon, 1)


async def test_a_change_landing_during_the_rebuilds_read_is_read_again_not_overwritten(
    stack_factory: Any,  # noqa: F811
) -> None:
    """The rebuild's optimistic transaction: a change written between its read of Redis and
    its write (here from inside the comparison) makes it read again, and the change stays."""
    import redis as redis_sync

    stack: Stack = await stack_factory()
    subs = stack.notify.subscribers
    sid = str((await stack.subscribe("并发站", SubscriberKind.hub, *north(30)))["subscriber_id"])
    logged = await subs.get(sid)
    assert logged is not None
    changed = logged.model_copy(update={"active": False, "revision": logged.revision + 1})
    other_instance = redis_sync.Redis.from_url(stack.settings.redis_url)
    seen: list[Subscriber | None] = []

    def keep(from_log: Subscriber, stored: Subscriber | None) -> Subscriber:
        seen.append(stored)
        if len(seen) == 1:
            other_instance.set(f"notify:sub:{sid}", subs.seal.dumps(changed))
        return newest(from_log, stored)

    try:
        assert await subs.restore_many([logged], keep) == 0
    finally:
        other_instance.close()
    assert seen == [logged, changed]
    assert await subs.get(sid) == changed
