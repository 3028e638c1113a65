"""The operators who took a report amend it before the case group is formed (issue 18,
Contract: alert `PATCH /api/v1/reports/{report_id}`), against the real broker and Redis: the
amendment is durable and sealed on homeward.reports.v1 after its report; notify's planner (fed
from the topic through its reports consumer) sends the Update to every hub that had the alert,
each Update and Cancel referencing the versions THAT hub received (CAP 1.2 `sender,identifier,
sent`); once dispatch's case.opened reaches alert's progress consumer the answer is 409 naming
the case and dispatch's `PATCH /api/v1/cases/{case_id}/details`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from services.alert.adapters.progress import ProgressStore
from services.notify.audience import SubscriberKind
from services.notify.consumers import reports_handler
from services.notify.domain import alert_id_of
from services.notify.formats import cap_identifier, cap_time
from shared import topics
from shared.auth import Role
from shared.events import (
    CASE_FOUND,
    CASE_OPENED,
    CASE_REPORT_LINKED,
    CASE_REPORT_UNLINKED,
    REPORT_AMENDED,
    CaseOpened,
    CloudEvent,
    ReportLinked,
    ReportUnlinked,
)
from shared.identity import LinkEvidence
from shared.kafka import EventPublisher, make_broker
from shared.settings import Settings
from tests.helpers import eventually, read_topic, report_body
from tests.integration.test_alert_intake import alert_client, auth, status_of
from tests.integration.test_notify_delivery import (  # noqa: F401  (fixtures)
    north,
    sinks,
    stack_factory,
)

PHOTO = "https://photos.example.cn/p/amended.jpg"


async def events_of(settings: Settings, case_id: str, ce_type: str) -> list[dict[str, Any]]:
    return [m for m in await read_topic(settings.kafka_bootstrap, topics.REPORTS)
            if m["key"] == case_id and m["headers"]["ce_type"] == ce_type]


async def test_amended_before_the_case_group_then_refused_with_the_case_named(
    settings: Settings, redis: Redis, tmp_path: Path, stack_factory: Any,  # noqa: F811
    sinks: Any,  # noqa: F811
) -> None:
    stack = await stack_factory()
    first_hub, later_hub = sinks("ra-first"), sinks("ra-later")
    await stack.subscribe("先到站", SubscriberKind.hub, *north(5), url=first_hub.url)
    on_reports = reports_handler(stack.notify)
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as alert:
        filer, colleague = auth(sub="op-filer"), auth(region="140400", sub="op-city")
        filed = await alert.post("/api/v1/reports", json=report_body(), headers=filer)
        assert filed.status_code == 202, filed.text
        report_id, case_id = filed.json()["report_id"], filed.json()["case_id"]
        await eventually(status_of(alert, report_id, filer))
        accepted = await events_of(settings, case_id, "homeward.report.accepted.v1")
        await on_reports(CloudEvent.from_kafka(accepted[0]["headers"], accepted[0]["raw"]))
        assert [b["msg_type"] for b in first_hub.bodies()] == ["Alert"]
        # A hub that joins in range after version 1 hears of the alert from the amendment.
        await stack.subscribe("后到站", SubscriberKind.hub, *north(8), url=later_hub.url)

        path = f"/api/v1/reports/{report_id}"
        refused = await alert.patch(path, json={"height_cm": 500}, headers=filer)
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "height_cm"
        stranger = await alert.patch(path, json={"height_cm": 120},
                                     headers=auth(region="140402", sub="op-x"))
        assert stranger.status_code == 404  # another county's operator: not theirs
        body = {"photo_urls": [PHOTO], "description": "穿红色外套，蓝色书包",
                "reason": "家属补充照片"}
        done = await alert.patch(path, json=body, headers=colleague)
        assert done.status_code == 202, done.text
        assert done.json()["amended"] == ["description", "photo_urls"]
        assert done.json()["case_id"] == case_id

        async def amended() -> list[dict[str, Any]] | None:
            return await events_of(settings, case_id, REPORT_AMENDED) or None

        logged = await eventually(amended)
        assert len(logged) == 1
        assert "红色外套" not in logged[0]["raw"].decode()  # sealed with the case key
        assert logged[0]["value"]["details"]["fields"] == ["description", "photo_urls"]
        assert logged[0]["value"]["actor"] == "op-city"
        event = CloudEvent.from_kafka(logged[0]["headers"], logged[0]["raw"])
        await on_reports(event)
        await on_reports(event)  # a redelivery: nothing new

        alert_state = await stack.notify.alerts.get(alert_id_of(case_id))
        assert alert_state is not None and alert_state.version == 2
        sent = {v.version: v.sent for v in alert_state.versions}
        sender, alert_id = stack.settings.notify_sender, alert_state.alert_id
        update = first_hub.bodies()[-1]
        assert [b["msg_type"] for b in first_hub.bodies()] == ["Alert", "Update"]
        assert update["child"]["photo_urls"] == [PHOTO]
        assert update["child"]["description"] == "穿红色外套，蓝色书包"
        assert update["references"] == [1]
        assert update["cap_references"] == \
            f"{sender},{cap_identifier(alert_id, 1)},{cap_time(sent[1])}"
        # Its first message is an Alert (with the amended content), referencing nothing.
        first = later_hub.bodies()
        assert [b["msg_type"] for b in first] == ["Alert"]
        assert first[0]["child"]["photo_urls"] == [PHOTO] and "references" not in first[0]

        # Dispatch opens the case (its progress copy reaches alert): the case is the place.
        opened = CaseOpened(case_id=case_id, report_id=report_id, region_code="140403",
                            opened_at=datetime.now(UTC), priority="high",
                            mechanisms=["county"], leader=None)
        await stack.notify.publisher.publish(topics.PROGRESS, CloudEvent.of(
            CASE_OPENED, "/test/dispatch", case_id, opened, event_id=f"opened-{case_id}"))

        progress = ProgressStore(redis)

        async def seen_opened() -> bool | None:
            return await progress.case_group(case_id) == case_id or None

        await eventually(seen_opened, timeout=30)
        late = await alert.patch(path, json={"vehicle": "晋D·99999"},
                                 headers={**filer, "Accept-Language": "en"})
        assert late.status_code == 409, late.text
        error = late.json()["error"]
        assert error["code"] == "case_group_formed" and error["field"] == "report_id"
        assert case_id in error["message"]
        assert f"/api/v1/cases/{case_id}/details" in error["message"]
        assert len(await events_of(settings, case_id, REPORT_AMENDED)) == 1  # none stored

    # Found: each hub's Cancel references the versions that hub received.
    await stack.dispatch(CASE_FOUND, case_id, outcome="found_safe",
                         found_at=datetime.now(UTC).isoformat())
    cancel_first, cancel_later = first_hub.bodies()[-1], later_hub.bodies()[-1]
    assert cancel_first["msg_type"] == cancel_later["msg_type"] == "Cancel"
    assert cancel_first["references"] == [1, 2] and cancel_later["references"] == [2]
    assert cancel_first["cap_references"].split() == [
        f"{sender},{cap_identifier(alert_id, v)},{cap_time(sent[v])}" for v in (1, 2)]
    assert cancel_later["cap_references"] == \
        f"{sender},{cap_identifier(alert_id, 2)},{cap_time(sent[2])}"
    assert "张小明" not in str(cancel_first) and PHOTO not in str(cancel_later)
    commander = stack.token(Role.commander, "140400")
    cap = await stack.http.get(f"/api/v1/alerts/{alert_id}.xml?version=2", headers=commander)
    assert "<msgType>Cancel</msgType>" in cap.text


async def test_a_report_linked_to_another_childs_case_is_refused_naming_that_case(
    settings: Settings, redis: Redis, tmp_path: Path,
) -> None:
    """Dispatch took the report for a child who already has a case (report_linked, copied to
    homeward.progress.v1): the group is formed, the 409 names the case it joined; an unlink
    gives the report a case group of its own under its id."""
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as alert:
        filer = auth(sub="op-filer")
        filed = await alert.post("/api/v1/reports", json=report_body(), headers=filer)
        assert filed.status_code == 202, filed.text
        report_id, case_id = filed.json()["report_id"], filed.json()["case_id"]
        owner = f"140403-20261130-{case_id[-6:][::-1]}"
        at = datetime.now(UTC)
        evidence = LinkEvidence(rule="name_birth_date", distance_km=2.0, hours_apart=0.2,
                                names=["张小明", "张小明"])
        linked = ReportLinked(case_id=owner, region_code="140403", at=at, actor="dispatch",
                              report_id=report_id,
                              duplicate_case_id=case_id, evidence=evidence)
        producer = EventPublisher(make_broker(settings.kafka_bootstrap, "test-dispatch"),
                                  "/test/dispatch")
        await producer.broker.start()
        try:
            await producer.publish(topics.PROGRESS, CloudEvent.of(
                CASE_REPORT_LINKED, "/test/dispatch", owner, linked, event_id=f"l-{case_id}"))
            progress = ProgressStore(redis)

            async def group_is(expected: str) -> bool | None:
                return await progress.case_group(case_id) == expected or None

            await eventually(lambda: group_is(owner), timeout=30)
            late = await alert.patch(f"/api/v1/reports/{report_id}", json={"height_cm": 121},
                                     headers=filer)
            assert late.status_code == 409, late.text
            assert late.json()["error"]["code"] == "case_group_formed"
            assert owner in late.json()["error"]["message"]
            assert case_id not in late.json()["error"]["message"]

            unlinked = ReportUnlinked(case_id=owner, region_code="140403", at=at, actor="c-1",
                                      report_id=report_id, duplicate_case_id=case_id)
            await producer.publish(topics.PROGRESS, CloudEvent.of(
                CASE_REPORT_UNLINKED, "/test/dispatch", owner, unlinked,
                event_id=f"u-{case_id}"))
            await eventually(lambda: group_is(case_id), timeout=30)
            own = await alert.patch(f"/api/v1/reports/{report_id}", json={"height_cm": 121},
                                    headers=filer)
            assert own.status_code == 409 and case_id in own.json()["error"]["message"]
        finally:
            await producer.broker.stop()
