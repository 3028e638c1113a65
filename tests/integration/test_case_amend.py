"""The commander amends the child's details (issue 18 §5): `PATCH /api/v1/cases/{id}/details`
→ `homeward.case.details_amended.v1` (new values sealed, field names clear) → notify sends an
Update with them to every hub that had the alert; the timeline shows who amended what."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.notify.audience import SubscriberKind, SubscriberRequest
from shared import topics
from shared.auth import Role
from shared.casekeys import open_event
from shared.events import CASE_DETAILS_AMENDED, REPORT_AMENDED, CloudEvent, ReportAmended
from tests.helpers import eventually, read_topic
from tests.integration.test_dispatch import (  # noqa: F401  (fixtures)
    COMMANDER,
    ELSEWHERE,
    Stack,
    bearer,
    new_case_id,
    stack,
)
from tests.integration.test_notify_delivery import sinks  # noqa: F401  (fixture)

PHOTO = "https://photos.example.cn/p/amended.jpg"


async def test_amendment_is_authorised_logged_sealed_and_reaches_every_hub_that_had_it(
    stack: Stack, sinks: Any,  # noqa: F811
) -> None:
    stack.notify_overrides = {"webhook_allow_networks": ["127.0.0.1/32"]}
    async with stack.serving(notify=True):
        notify = stack.notify
        assert notify is not None
        hubs = [sinks(f"amend-hub-{i}") for i in range(2)]
        for i, sink in enumerate(hubs):
            await notify.register(SubscriberRequest.model_validate({
                "kind": SubscriberKind.hub.value, "name": f"修正站{i}",
                "location": {"lat": 36.19 + 0.05 * i, "lon": 113.11},
                "region_code": "140403", "channel": {"type": "webhook", "url": sink.url}}))
        case_id = new_case_id()
        await stack.report(case_id)
        await stack.opened(case_id)
        assert all(len(s.requests) == 1 for s in hubs)

        path = f"{stack.url}/api/v1/cases/{case_id}/details"
        body = {"photo_urls": [PHOTO], "description": "穿红色外套，蓝色书包",
                "reason": "家属补充照片"}
        assert (await stack.http.patch(path, json={}, headers=COMMANDER)).status_code == 422
        unknown = await stack.http.patch(path, json={"name": "x"}, headers=COMMANDER)
        assert unknown.status_code == 422  # only the amendable fields
        assert (await stack.http.patch(path, json=body, headers=ELSEWHERE)).status_code == 404
        operator = await stack.http.patch(path, json=body,
                                          headers=bearer(Role.operator, "140403"))
        assert operator.status_code == 403
        escalated = await stack.post(f"/cases/{case_id}/escalate",
                                     {"level": "city", "reason": "重大"})
        assert escalated.status_code == 200, escalated.text
        county = await stack.http.patch(path, json=body,
                                        headers=bearer(Role.commander, "140403"))
        assert county.status_code == 403
        assert county.json()["error"]["code"] == "below_leader_level"
        done = await stack.http.patch(path, json=body, headers=COMMANDER)
        assert done.status_code == 200, done.text
        assert done.json()["amended"] == ["description", "photo_urls"]

        timeline = (await stack.case(case_id)).json()["timeline"]
        entry = timeline[-1]
        assert entry["action"] == "details_amended"
        assert entry["what"] == "description, photo_urls"
        assert entry["actor"] == "commander-140400" and entry["why"] == "家属补充照片"

        logged = [m for m in await read_topic(stack.settings.kafka_bootstrap, topics.DISPATCH)
                  if m["key"] == case_id and m["headers"]["ce_type"] == CASE_DETAILS_AMENDED]
        assert len(logged) == 1
        assert "红色外套" not in logged[0]["raw"].decode()  # sealed with the case key
        assert logged[0]["value"]["details"]["fields"] == ["description", "photo_urls"]
        event = CloudEvent.from_kafka(logged[0]["headers"], logged[0]["raw"])
        await notify.on_case_event(await open_event(event, notify.keys))
        for sink in hubs:
            bodies = sink.bodies()
            assert [b["msg_type"] for b in bodies] == ["Alert", "Update"]
            assert bodies[1]["child"]["photo_urls"] == [PHOTO]
            assert bodies[1]["child"]["description"] == "穿红色外套，蓝色书包"


async def test_an_operators_report_amendment_is_recorded_on_the_case_once(
    stack: Stack,  # noqa: F811
) -> None:
    """alert's homeward.report.amended.v1 (the operators amended the report while its case
    was being opened) reaches dispatch after its report: the case's timeline shows the operator
    and the fields, its log carries the values sealed; a redelivery adds nothing."""
    async with stack.serving():
        case_id = new_case_id()
        accepted = await stack.report(case_id)
        await stack.opened(case_id)
        amended = ReportAmended(
            case_id=case_id, region_code="140403", actor="op-city", reason="家属补充",
            at=datetime.now(UTC), report_id=accepted.report_id,
            details={"amended": {"vehicle": "晋D·77777"}, "fields": ["vehicle"]})
        event = CloudEvent.of(REPORT_AMENDED, "/test/alert", case_id, amended,
                              event_id=f"A-{case_id}")
        await stack.publisher.publish(topics.REPORTS, event)
        await stack.publisher.publish(topics.REPORTS, event)  # a redelivery
        later = amended.model_copy(update={"actor": "op-filer", "reason": "身高",
                                           "details": {"amended": {"height_cm": 121},
                                                       "fields": ["height_cm"]}})
        await stack.publisher.publish(topics.REPORTS, CloudEvent.of(
            REPORT_AMENDED, "/test/alert", case_id, later, event_id=f"B-{case_id}"))

        async def recorded() -> list[dict[str, Any]] | None:
            timeline = (await stack.case(case_id)).json()["timeline"]
            found = [e for e in timeline if e["action"] == "details_amended"]
            return found if found and found[-1]["actor"] == "op-filer" else None

        entries = await eventually(recorded, timeout=30)  # the partition is read in order
        assert [(e["actor"], e["what"], e["why"]) for e in entries] == [
            ("op-city", "vehicle", "家属补充"), ("op-filer", "height_cm", "身高")]
        logged = [m for m in await read_topic(stack.settings.kafka_bootstrap, topics.DISPATCH)
                  if m["key"] == case_id and m["headers"]["ce_type"] == CASE_DETAILS_AMENDED]
        assert len(logged) == 2 and "77777" not in logged[0]["raw"].decode()  # sealed
