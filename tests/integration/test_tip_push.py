"""Notify pushes sightings to people (issue 16 §1–2) over the case group's gateway, on real Kafka
and Redis: a tip to the leader and the investigation member, a local check to the checking
county's head; receipts of scope `group`; once per person even when the event comes again;
never for a drill; the bodies gone at the purge (issue 13)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.events import (
    CASE_CHECK_ASSIGNED,
    CASE_PURGED,
    CASE_TIP_ATTACHED,
    SCOPE_GROUP,
)
from tests.integration.test_notify_delivery import sinks, stack_factory  # noqa: F401

LEADER = {"duty": "leader", "name": "褚卫东", "title": "局长", "phone": "+863551000001",
          "organ_code": "140403", "organ_name": "长治市公安局潞州分局"}
INVESTIGATOR = {"duty": "investigation", "name": "蒋晓军", "title": "刑侦大队长",
                "phone": "+863551000003", "organ_code": "140403"}
HEAD = {"duty": "local_check", "name": "曹立军", "title": "局长", "phone": "+862520000001",
        "organ_code": "320102", "organ_name": "南京市公安局玄武分局"}


def tip_details(tip_id: str, source: str = "public") -> dict[str, Any]:
    return {
        "tip": {"tip_id": tip_id, "seen_at": datetime.now(UTC).isoformat(),
                "location": {"lat": 36.2, "lon": 113.1, "address": "长治站"},
                "description": "候车室里看到一个穿蓝色羽绒服的男孩", "contact": "13911112222",
                "source": source, "hub_id": "H-1" if source == "hub" else None},
        "notify": [LEADER, INVESTIGATOR],
        "assessment": {"distance_km": 1.2, "bearing_deg": 300.0, "compass": "NW",
                       "elapsed_min": 12.0, "speed_kmh": 6.0, "plausibility": "near",
                       "radius_km": 100.0, "inside_radius": True, "county": "140403",
                       "rank": 0 if source == "hub" else 1,
                       "summary": "距最后出现地西北 1.2 公里，失踪后 12 分钟，"
                                  "当前推送半径 100 公里（半径内）"},
    }


def gateway(make_sink: Any, *people: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    made = {p["phone"]: make_sink(f"sms-{p['phone']}") for p in people}
    first = next(iter(made.values()))
    template = first.url.replace("http://", "json://").replace(people[0]["phone"], "{phone}")
    return template, made


def messages(sink: Any) -> list[str]:
    return [json.loads(r["body"])["message"] for r in sink.requests]


async def test_a_tip_goes_to_the_leader_and_the_investigator_once(
    stack_factory: Any, sinks: Any,  # noqa: F811
) -> None:
    template, sms = gateway(sinks, LEADER, INVESTIGATOR)
    stack = await stack_factory(notify_group_apprise_url=template)
    case_id = await stack.report()
    before = {p: len(s.requests) for p, s in sms.items()}  # the case group's own bulletin
    tip_id = uuid.uuid4().hex
    for _ in range(2):  # redelivered: one push per person all the same
        await stack.dispatch(CASE_TIP_ATTACHED, case_id, details=tip_details(tip_id, "hub"))
    for phone, sink in sms.items():
        got = messages(sink)[before[phone]:]
        assert len(got) == 1, phone
        assert "【失踪儿童线索】" in got[0] and "枢纽 H-1 工作人员目击" in got[0]
        assert "西北 1.2 公里" in got[0] and "当前推送半径 100 公里" in got[0]
        assert "候车室" in got[0] and "13911112222" not in got[0]  # never the contact
    rows = [r for r in (await stack.deliveries(case_id))["deliveries"]
            if r["alert_id"] == f"T-{tip_id}"]
    assert len(rows) == 2 and {r["scope"] for r in rows} == {SCOPE_GROUP}
    assert {r["state"] for r in rows} == {"sent"}


async def test_a_check_goes_to_the_checking_countys_head(
    stack_factory: Any, sinks: Any,  # noqa: F811
) -> None:
    template, sms = gateway(sinks, HEAD)
    stack = await stack_factory(notify_group_apprise_url=template)
    case_id = await stack.report()
    await stack.dispatch(CASE_CHECK_ASSIGNED, case_id, details={
        "check": {"check_id": "K1", "tip_id": "T1", "region_code": "320102",
                  "organ_name": "南京市公安局玄武分局", "due_at": datetime.now(UTC).isoformat()},
        "check_region": "320102", "notify": [HEAD]})
    [text] = messages(sms[HEAD["phone"]])
    assert "【核查任务】南京市公安局玄武分局" in text and case_id in text


async def test_drills_and_a_missing_gateway_reach_nobody(
    stack_factory: Any, sinks: Any,  # noqa: F811
) -> None:
    template, sms = gateway(sinks, LEADER)
    stack = await stack_factory(notify_group_apprise_url=template)
    drill = await stack.report(exercise=True)
    await stack.dispatch(CASE_TIP_ATTACHED, drill, details=tip_details(uuid.uuid4().hex))
    assert sms[LEADER["phone"]].requests == []
    quiet = await stack_factory()
    case_id = await quiet.report()
    await quiet.dispatch(CASE_TIP_ATTACHED, case_id, details=tip_details(uuid.uuid4().hex))
    rows = (await quiet.deliveries(case_id))["deliveries"]
    assert [r for r in rows if r["alert_id"].startswith("T-")] == []


async def test_tip_push_bodies_go_at_the_purge(
    stack_factory: Any, sinks: Any,  # noqa: F811
) -> None:
    template, _ = gateway(sinks, LEADER, INVESTIGATOR)
    stack = await stack_factory(notify_group_apprise_url=template)
    case_id = await stack.report()
    tip_id = uuid.uuid4().hex
    await stack.dispatch(CASE_TIP_ATTACHED, case_id, details=tip_details(tip_id))
    redis = stack.notify.ledger.redis
    key = f"notify:body:T-{tip_id}:1:restricted"
    assert await redis.exists(key)
    # No expiry of its own: kept for the retries for as long as the search goes on.
    bodies = [key, *await redis.keys(f"notify:body:*{case_id}:*")]
    assert [await redis.ttl(k) for k in bodies] == [-1] * len(bodies)
    await stack.dispatch(CASE_PURGED, case_id, outcome="found_safe",
                         ended_at=datetime.now(UTC).isoformat())
    assert not await redis.exists(key)
