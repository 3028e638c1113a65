"""The alert service in-process against the real broker and Redis: outbox → Kafka,
idempotency across restarts, jurisdiction, public tips with rate limits."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.alert.app import create_app
from services.alert.handlers import CASE_ID_DRAWS
from shared import case_ids, topics
from shared.auth import Role, mint_token
from shared.case_ids import new_case_id, new_unidentified_id
from shared.casekeys import PREFIX, CaseKeys
from shared.pii import MasterKeys
from shared.settings import Settings
from tests.helpers import eventually, read_topic, report_body, unsealed


@asynccontextmanager
async def alert_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alert") as client:
            yield client


def auth(role: Role = Role.operator, region: str = "140403", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(Settings(), role, region, **kw)}"}


async def on_topic(settings: Settings, topic: str, key: str) -> list[dict[str, Any]]:
    return [m for m in await read_topic(settings.kafka_bootstrap, topic) if m["key"] == key]


def status_of(client: httpx.AsyncClient, report_id: str, who: dict[str, str]) -> Callable[
        [], Any]:
    async def check() -> str | None:
        got = await client.get(f"/api/v1/reports/{report_id}", headers=who)
        return "published" if got.json().get("status") == "published" else None

    return check


async def test_report_is_published_with_cloudevent_headers(
    settings: Settings, tmp_path: Path
) -> None:
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as client:
        operator = auth(sub="op-42")
        response = await client.post("/api/v1/reports", json=report_body(), headers=operator)
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer["status"] == "accepted"
        await eventually(status_of(client, answer["report_id"], operator))
        ready = (await client.get("/readyz")).json()
        assert ready["checks"] == {"outbox": "ok", "kafka": "ok", "redis": "ok",
                                   "consuming": "ok"}
        assert ready["backlog"] == 0

    [message] = await eventually(lambda: on_topic(settings, topics.REPORTS, answer["case_id"]))
    headers = message["headers"]
    assert headers["ce_type"] == "homeward.report.accepted.v1"
    assert headers["ce_subject"] == answer["case_id"]
    assert headers["ce_id"] == answer["report_id"]
    assert headers["ce_specversion"] == "1.0"
    assert message["value"]["operator"] == "op-42"
    assert message["value"]["report"]["last_seen"]["region_code"] == "140403"


async def test_idempotency_key_replays_the_first_answer_even_after_restart(
    settings: Settings, tmp_path: Path
) -> None:
    local = settings.model_copy(update={"data_dir": tmp_path})
    key = {"Idempotency-Key": f"call-{uuid.uuid4()}"}
    body = report_body()
    async with alert_client(local) as client:
        first = await client.post("/api/v1/reports", json=body, headers={**auth(sub="op-1"), **key})
        again = await client.post("/api/v1/reports", json=body, headers={**auth(sub="op-1"), **key})
        assert first.status_code == again.status_code == 202
        assert again.json()["case_id"] == first.json()["case_id"]
        assert again.headers["idempotent-replayed"] == "true"
        other = await client.post("/api/v1/reports", json=report_body(child__name="王小红"),
                                  headers={**auth(sub="op-1"), **key})
        assert other.status_code == 409
        assert other.json()["error"]["field"] == "Idempotency-Key"
        # Another operator's key space is their own.
        theirs = await client.post("/api/v1/reports", json=body,
                                   headers={**auth(sub="op-2"), **key})
        assert theirs.json()["case_id"] != first.json()["case_id"]
    async with alert_client(local) as client:  # a restarted service
        after = await client.post("/api/v1/reports", json=body, headers={**auth(sub="op-1"), **key})
        assert after.json()["case_id"] == first.json()["case_id"]
        await eventually(status_of(client, first.json()["report_id"], auth(sub="op-1")))
    case_id = first.json()["case_id"]
    await eventually(lambda: on_topic(settings, topics.REPORTS, case_id))
    assert len(await on_topic(settings, topics.REPORTS, case_id)) == 1


async def test_report_status_is_hidden_outside_the_operators_region(
    settings: Settings, tmp_path: Path
) -> None:
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as client:
        response = await client.post("/api/v1/reports", json=report_body(),
                                     headers=auth(sub="op-a"))
        report_id = response.json()["report_id"]
        same_city = await client.get(f"/api/v1/reports/{report_id}",
                                     headers=auth(region="140400", sub="op-b"))
        assert same_city.status_code == 200
        elsewhere = await client.get(f"/api/v1/reports/{report_id}",
                                     headers=auth(region="320102", sub="op-c"))
        assert elsewhere.status_code == 404
        assert elsewhere.json()["error"]["field"] == "report_id"


async def test_release_with_permission_is_accepted(settings: Settings, tmp_path: Path) -> None:
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as client:
        response = await client.post("/api/v1/reports", json=report_body(release__public=True),
                                     headers=auth(permissions=["release"]))
        assert response.status_code == 202


def tip(case_id: str) -> dict[str, Any]:
    return {"case_id": case_id, "seen_at": "2026-11-22T10:00:00+08:00",
            "location": {"lat": 36.2, "lon": 113.1, "address": "长治站候车室"},
            "description": "一个穿蓝色羽绒服的男孩和一名中年男子", "contact": "13900000000"}


async def test_public_tips_are_published_and_rate_limited(
    settings: Settings, tmp_path: Path, redis: Redis
) -> None:
    local = settings.model_copy(update={"data_dir": tmp_path, "tip_limit_per_client": 3,
                                        "tip_limit_per_case": 100, "tip_window_s": 60})
    case_id = new_case_id("140403", datetime.now(UTC))  # as alert makes them (8 symbols)
    async with alert_client(local) as client:
        answers = [await client.post("/api/v1/tips", json=tip(case_id)) for _ in range(4)]
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        limited = answers[-1]
        assert 1 <= int(limited.headers["retry-after"]) <= 61
        assert limited.json()["error"]["code"] == "rate_limited"
        bad = await client.post("/api/v1/tips", json={**tip(case_id), "case_id": "x"},
                                headers={"Accept-Language": "en"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "case_id"
        published = await eventually(
            lambda: _at_least(on_topic(settings, topics.TIPS, case_id), 3))
    assert {m["headers"]["ce_type"] for m in published} == {"homeward.tip.received.v1"}
    assert {m["value"]["tip_id"] for m in published} == {a.json()["tip_id"] for a in answers[:3]}


def _unidentified_body() -> dict[str, Any]:
    return {"sex": "male", "apparent_age": {"min": 6, "max": 8}, "height_cm": 117,
            "description": "蓝色羽绒服", "circumstances": "一名男子将孩子留在急诊科后离开",
            "found": {"at": datetime.now(UTC).isoformat(), "lat": 36.19, "lon": 113.11,
                      "address": "长治市人民医院急诊科"}}


@pytest.mark.parametrize(("what", "path", "draws_at", "topic"), [
    ("report", "/api/v1/reports", (case_ids, "new_case_id"), topics.REPORTS),
    ("unidentified child", "/api/v1/unidentified-children",
     (case_ids, "new_unidentified_id"), topics.UNIDENTIFIED),
])
async def test_an_id_another_case_or_record_holds_is_drawn_again(
    settings: Settings, tmp_path: Path, redis: Redis, monkeypatch: pytest.MonkeyPatch,
    what: str, path: str, draws_at: tuple[Any, str], topic: str,
) -> None:
    """Two reports must not share an id (shared/case_ids.py): dispatch would take the second
    for a redelivery of the first, and the second key record would replace the first owner's
    on the compacted key topic. Alert claims each new id in Redis before it commits: an id
    another case or record holds is drawn again, and the holder's key record is left as it
    was."""
    now = datetime.now(UTC)
    made = new_case_id if what == "report" else new_unidentified_id
    held, fresh = made("140403", now), made("140403", now)
    keys = CaseKeys(redis, settings.kafka_bootstrap, MasterKeys.parse(settings.pii_master_keys))
    held_record = keys.fresh(held)[1].decode()
    await redis.set(PREFIX + held, held_record)
    draws = iter([held, fresh])
    monkeypatch.setattr(*draws_at, lambda region, at: next(draws))
    body = report_body() if what == "report" else {**_unidentified_body(),
                                                    "organisation": "长治市人民医院"}
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as client:
        response = await client.post(path, json=body, headers=auth())
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer.get("case_id", answer.get("record_id")) == fresh
    assert await redis.get(PREFIX + held) == held_record
    assert await redis.get(PREFIX + fresh) not in (None, held_record)
    [published] = await eventually(lambda: on_topic(settings, topic, fresh))
    assert published["headers"]["ce_subject"] == fresh
    assert await on_topic(settings, topic, held) == []
    key_records = await read_topic(settings.kafka_bootstrap, topics.CASE_KEYS)
    assert [m["key"] for m in key_records if m["key"] in (held, fresh)] == [fresh]


async def test_never_an_id_redis_says_is_held_even_after_every_draw_was(
    settings: Settings, tmp_path: Path, redis: Redis, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CASE_ID_DRAWS held draws (not chance: a Redis answering wrongly) do not refuse the
    report, nor give it a held id: one more is drawn and taken unclaimed."""
    now = datetime.now(UTC)
    held = [new_case_id("140403", now) for _ in range(CASE_ID_DRAWS)]
    for case_id in held:
        await redis.set(PREFIX + case_id, "held")
    fresh = new_case_id("140403", now)
    draws = iter([*held, fresh])
    monkeypatch.setattr(case_ids, "new_case_id", lambda region, at: next(draws))
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as client:
        response = await client.post("/api/v1/reports", json=report_body(), headers=auth())
    assert response.status_code == 202 and response.json()["case_id"] == fresh
    assert [await redis.get(PREFIX + case_id) for case_id in held] == ["held"] * len(held)


async def test_a_retried_unidentified_record_commits_its_key_once(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The record and its key record are one transaction: a retry under the same
    Idempotency-Key answers the first answer and publishes no key record for the id the
    retry drew (one that no record would ever use)."""
    now = datetime.now(UTC)
    drawn = [new_unidentified_id("140403", now), new_unidentified_id("140403", now)]
    draws = iter(drawn)
    monkeypatch.setattr(case_ids, "new_unidentified_id", lambda region, at: next(draws))
    body = {**_unidentified_body(), "organisation": "长治市人民医院"}
    retry = {**auth(), "Idempotency-Key": uuid.uuid4().hex}
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as client:
        first = await client.post("/api/v1/unidentified-children", json=body, headers=retry)
        again = await client.post("/api/v1/unidentified-children", json=body, headers=retry)
        assert first.status_code == again.status_code == 202, again.text
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        assert first.json()["record_id"] == drawn[0]
        await eventually(lambda: on_topic(settings, topics.UNIDENTIFIED, drawn[0]))
    await asyncio.sleep(1)  # the relay has published everything the outbox held
    keys = [m["key"] for m in await read_topic(settings.kafka_bootstrap, topics.CASE_KEYS)
            if m["key"] in drawn]
    assert keys == [drawn[0]]


async def test_tips_per_case_limit(settings: Settings, tmp_path: Path, redis: Redis) -> None:
    local = settings.model_copy(update={"data_dir": tmp_path, "tip_limit_per_client": 100,
                                        "tip_limit_per_case": 2})
    case_id = f"140403-20261122-{uuid.uuid4().hex[:6].upper()}"
    async with alert_client(local) as client:
        codes = [(await client.post("/api/v1/tips", json=tip(case_id))).status_code
                 for _ in range(3)]
    assert codes == [202, 202, 429]


async def _at_least(pending: Any, n: int) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = await pending
    return found if len(found) >= n else None


async def test_phones_and_id_numbers_as_typed_are_published_in_their_normal_form(
    settings: Settings, tmp_path: Path
) -> None:
    """Issue 11 §3–4 through the API onto Kafka: what the call-taker typed is accepted and
    published as E.164 + display form; the ID number folded and upper-cased."""
    typed = {"139-0000-1111": ("+8613900001111", "139 0000 1111"),
             "+86 139 0000 1111": ("+8613900001111", "139 0000 1111"),
             "0355-202-1234": ("+863552021234", "0355 202 1234"),
             "010-8888 6666 转 801": ("+861088886666", "010 8888 6666 转 801"),
             "+852 9123 4567": ("+85291234567", "+852 9123 4567")}
    cases: dict[str, str] = {}
    async with alert_client(settings.model_copy(update={"data_dir": tmp_path})) as client:
        for phone in typed:
            body = report_body(reporter__phone=phone, child__id_number="11010120190501019x")
            response = await client.post("/api/v1/reports", json=body, headers=auth())
            assert response.status_code == 202, response.text
            cases[response.json()["case_id"]] = phone

        async def published() -> dict[str, dict[str, Any]] | None:
            found = {m["key"]: m["value"]
                     for m in await read_topic(settings.kafka_bootstrap, topics.REPORTS)
                     if m["key"] in cases}
            return found if len(found) == len(cases) else None

        raw = await eventually(published, timeout=30)
    # Personal fields travel sealed with the case's key (issue 13): opened, they are normal.
    reports = {}
    for case_id, value in raw.items():
        assert "11010120190501019" not in json.dumps(value)
        assert typed[cases[case_id]][0] not in json.dumps(value)
        reports[case_id] = (await unsealed(settings, value))["report"]
    for case_id, phone in cases.items():
        reporter = reports[case_id]["reporter"]
        assert (reporter["phone"], reporter["phone_display"]) == typed[phone]
        assert reports[case_id]["child"]["id_number"] == "11010120190501019X"


async def test_hubs_pushed_counts_each_hub_once_from_batches_of_receipts(
    settings: Settings, tmp_path: Path, redis: Redis
) -> None:
    """The operator's "hubs pushed" comes from notify's receipts, read in batches: restricted
    `sent` receipts count once per hub; public, retrying and repeated receipts do not add."""
    from datetime import UTC, datetime

    from services.alert.adapters.progress import ProgressStore
    from shared.events import DELIVERY_RETRYING, DELIVERY_SENT, CloudEvent
    from shared.kafka import EventPublisher, make_broker

    settings = settings.model_copy(update={"data_dir": tmp_path})
    case_id = f"140403-20261130-{uuid.uuid4().hex[:6].upper()}"

    def receipt(kind: str, sub: str, scope: str, status: str, n: int) -> CloudEvent:
        return CloudEvent(
            id=f"{case_id}:{sub}:{status}:{n}",
            type=DELIVERY_SENT if status == "sent" else DELIVERY_RETRYING,
            source="/test", subject=case_id,
            data={"delivery_id": f"msg_{sub}_{n}", "alert_id": f"A-{case_id}",
                  "case_id": case_id, "version": 1, "subscriber_id": sub, "scope": scope,
                  "channel": "webhook", "status": status, "http_status": 204, "attempts": 1,
                  "error": "", "at": datetime.now(UTC).isoformat(), "kind": kind, "name": sub})

    sent = [receipt("hub", "HA", "restricted", "sent", 1),
            receipt("hub", "HB", "restricted", "sent", 1),
            receipt("hub", "HA", "restricted", "sent", 2),   # its Update: still one hub
            receipt("volunteer", "V1", "public", "sent", 1),
            receipt("hub", "HC", "restricted", "retrying", 1)]
    broker = make_broker(settings.kafka_bootstrap, "test")
    async with broker:
        await broker.start()
        await EventPublisher(broker, "/test").publish_many(
            [(topics.DELIVERIES, e) for e in sent])
    store = ProgressStore(redis)
    async with alert_client(settings):
        async def counted() -> int | None:
            hubs = (await store.get(case_id))["hubs_pushed"]
            return hubs if hubs >= 2 else None

        assert await eventually(counted, timeout=60) == 2
