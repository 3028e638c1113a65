"""The PII sweep (issue 13): a report with distinctive strings (the child's name, the reporter's
phone, the ID number, a tipster's phone, a photo) is run to found; past the purge grace (a few
seconds here) the raw bytes of every topic (DLQs included), every Redis value, the SQLite
files, the photo directory and the service logs are scanned: none of the strings is there in
clear, and the sealed copies cannot be opened (the case key is gone). After a rebuild (Redis
flushed, services restarted) no personal data comes back and the case's non-personal history
answers as before."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis
from stdnum.cn import ric

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from shared import pii, topics
from shared.auth import Role, mint_token
from shared.casekeys import CaseKeys
from shared.pii import MasterKeys
from shared.settings import Settings
from tests.helpers import WebhookSink, eventually, report_body

pytestmark = pytest.mark.e2e

ENV = {"HOMEWARD_PURGE_GRACE_S": "4", "HOMEWARD_OUTBOX_PUBLISHED_GRACE_S": "2",
       "HOMEWARD_DISPATCH_TIMER_TICK_S": "0.5"}
REGION = "140403"


def token(role: Role, region: str, hub_id: str | None = None) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(Settings(), role, region, hub_id=hub_id)}


async def topic_bytes(bootstrap: str) -> dict[str, list[bytes]]:
    """Every record (key, value, headers) of every topic, to its end now, as raw bytes."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if not t.startswith("__")]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    parts = [TopicPartition(t["topic"], p["partition"]) for t in described
             for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: dict[str, list[bytes]] = {}
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        pending = {tp for tp, end in ends.items() if end > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    raw = (r.key or b"") + b"\0" + (r.value or b"") + b"\0" + b"".join(
                        k.encode() + v for k, v in (r.headers or ()))
                    out.setdefault(tp.topic, []).append(raw)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return out


async def redis_bytes(url: str) -> dict[bytes, bytes]:
    """Every Redis key with its value(s) as raw bytes, by type (never DUMP: it compresses)."""
    redis = Redis.from_url(url)
    out: dict[bytes, bytes] = {}
    try:
        async for key in redis.scan_iter(count=1000):
            kind = (await redis.type(key)).decode()
            parts: list[Any]
            if kind == "string":
                parts = [await redis.get(key)]
            elif kind == "hash":
                parts = [x for kv in (await redis.hgetall(key)).items() for x in kv]
            elif kind == "list":
                parts = await redis.lrange(key, 0, -1)
            elif kind == "set":
                parts = list(await redis.smembers(key))
            elif kind == "zset":
                parts = await redis.zrange(key, 0, -1)
            elif kind == "stream":
                parts = [x for _, fields in await redis.xrange(key)
                         for kv in fields.items() for x in kv]
            else:
                parts = []
            out[key] = key + b"\0" + b"\0".join(p or b"" for p in parts)
    finally:
        await redis.aclose()
    return out


def file_bytes(where: Path) -> dict[str, bytes]:
    """SQLite files (with WAL), photos and service logs under the stack's data dir."""
    return {str(p): p.read_bytes() for p in where.rglob("*")
            if p.is_file() and (p.suffix in (".log", ".jpg", ".png", ".webp")
                                or ".sqlite3" in p.name)}


def found_in(secrets: dict[str, bytes], stores: dict[Any, Any]) -> list[tuple[str, str]]:
    hits = []
    for label, needle in secrets.items():
        for where, data in stores.items():
            blobs = data if isinstance(data, list) else [data]
            if any(needle in blob for blob in blobs):
                hits.append((label, str(where)))
    return hits


async def test_personal_data_is_gone_everywhere_after_the_purge(
    kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
) -> None:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    where = data_dir / "pii-sweep"
    procs = start_services(kafka.bootstrap, redis_server.url, where, ports, extra_env=ENV)
    try:
        with WebhookSink() as sink:
            await sweep(procs, where, kafka, redis_server, ports, sink)
    finally:
        for proc in procs.values():
            proc.stop()


async def sweep(procs: dict[str, ServiceProcess], where: Path, kafka: KafkaServer,
                redis_server: RedisServer, ports: dict[str, int], sink: WebhookSink) -> None:
    alert, dispatch, notify = (procs[n].url for n in ("alert", "dispatch", "notify"))
    tag = uuid.uuid4().hex[:8]
    digits = f"{int(tag, 16) % 10**8:08d}"
    name = f"隐私{tag}"
    phone = f"137{digits}"
    tipster = f"136{digits}"
    born = datetime(2015, 1, 1) + timedelta(days=int(tag, 16) % 3000)
    first17 = f"140403{born:%Y%m%d}{digits[:3]}"
    id_number = first17 + ric.calc_check_digit(first17 + "0")  # (it skips the last)
    photo_marker = f"PHOTO-{tag}".encode()
    secrets = {"name": name.encode(), "reporter phone": phone.encode(),
               "ID number": id_number.encode(), "tipster phone": tipster.encode(),
               "photo": photo_marker}
    operator, commander = token(Role.operator, REGION), token(Role.commander, "140400")
    admin, elsewhere = token(Role.admin, "140000"), token(Role.admin, "320000")

    async with httpx.AsyncClient(timeout=20) as http:
        hub_id = f"pii-{tag}"
        got = await http.post(f"{notify}/api/v1/subscribers", headers=token(Role.admin, "000000"),
                              json={"kind": "hub", "name": f"hub {tag}", "hub_id": hub_id,
                                    "location": {"lat": 36.2, "lon": 113.1},
                                    "channel": {"type": "webhook", "url": sink.url}})
        assert got.status_code == 201, got.text
        photo = await http.post(f"{alert}/api/v1/photos", headers={
            **operator, "Content-Type": "image/png"}, content=b"\x89PNG\r\n\x1a\n" + photo_marker)
        assert photo.status_code == 201, photo.text
        photo_url = photo.json()["url"]
        body = report_body(child__name=name, child__birth_date=born.date().isoformat(),
                           child__id_number=id_number, child__photo_urls=[photo_url],
                           reporter__phone=phone)
        posted = await http.post(f"{alert}/api/v1/reports", json=body, headers=operator)
        assert posted.status_code == 202, posted.text
        case_id = posted.json()["case_id"]

        async def opened() -> dict[str, Any] | None:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=commander)
            return got.json() if got.status_code == 200 and got.json()["leader"] else None

        case = await eventually(opened, timeout=60)
        assert case["child_name"] == name
        # Photos while restricted: the case's region only (issue 13 §3).
        assert (await http.get(photo_url)).status_code == 404
        assert (await http.get(photo_url, headers=elsewhere)).status_code == 404
        assert (await http.get(photo_url, headers=operator)).content.endswith(photo_marker)

        tip = await http.post(f"{alert}/api/v1/tips", json={
            "case_id": case_id, "seen_at": datetime.now(UTC).isoformat(),
            "location": {"lat": 36.2, "lon": 113.1}, "description": f"看见{name}",
            "contact": tipster})
        assert tip.status_code == 202, tip.text

        # Tips live beside the case (issue 12), paged.
        tips_url = f"{dispatch}/api/v1/cases/{case_id}/tips"

        async def tipped() -> dict[str, Any] | None:
            got = (await http.get(tips_url, headers=commander))
            return got.json() if got.status_code == 200 and got.json()["items"] else None

        assert (await eventually(tipped, timeout=30))["items"][0]["contact"] == tipster
        await eventually(lambda: _pushed(sink, case_id), timeout=60)

        # The scanners see what is there: before the purge the live state holds the name, the
        # topics hold the case, the photo directory the photo.
        assert ("name", f"b'dispatch:case:{case_id}'") in found_in(
            secrets, await redis_bytes(redis_server.url))
        assert found_in({"case": case_id.encode()}, await topic_bytes(kafka.bootstrap))
        assert ("photo", str(next((where / "photos").iterdir()))) in found_in(
            secrets, file_bytes(where))
        found = await http.post(f"{dispatch}/api/v1/cases/{case_id}/found", headers=commander,
                                json={"outcome": "found_safe", "confirm": True,
                                      "found_at": datetime.now(UTC).isoformat()})
        assert found.status_code == 200, found.text

        async def purged() -> dict[str, Any] | None:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}/retention", headers=admin)
            return got.json() if got.status_code == 200 and got.json()["purged_at"] else None

        retention = await eventually(purged, timeout=60)
        assert {s["name"] for s in retention["stores"]} >= {topics.REPORTS, topics.DISPATCH}
        assert (await http.get(f"{dispatch}/api/v1/cases/{case_id}/retention",
                               headers=elsewhere)).status_code == 404
        history = (await http.get(f"{dispatch}/api/v1/cases/{case_id}",
                                  headers=commander)).json()
        assert history["child_name"] == pii.PURGED and history["status"] == "found"
        assert "purged" in [e["action"] for e in history["timeline"]]
        # The tip stays (time, place) without its tipster or description. (The purge event is
        # committed first, then the tip store is scrubbed in the same timer run: wait for it.)
        async def tips_scrubbed() -> dict[str, Any] | None:
            got = (await http.get(tips_url, headers=commander)).json()
            item = got["items"][0] if got["items"] else {}
            return got if (item.get("contact"), item.get("description")) == ("", pii.PURGED) \
                else None

        tips = await eventually(tips_scrubbed, timeout=30)
        assert tips["total"] == 1
        assert (await http.get(photo_url, headers=operator)).status_code == 404

        # Every store, raw: nothing in clear (notify and alert react to the purge too).
        async def clean() -> bool | None:
            hits = (found_in(secrets, await topic_bytes(kafka.bootstrap))
                    + found_in(secrets, await redis_bytes(redis_server.url))
                    + found_in(secrets, file_bytes(where)))
            return None if hits else True

        try:
            await eventually(clean, timeout=60)
        except AssertionError:
            hits = (found_in(secrets, await topic_bytes(kafka.bootstrap))
                    + found_in(secrets, await redis_bytes(redis_server.url))
                    + found_in(secrets, file_bytes(where)))
            raise AssertionError(f"personal data left after the purge: {hits}") from None

        # Nothing about the case was dead-lettered (a purged key is not a poison message).
        dead = {t: r for t, r in (await topic_bytes(kafka.bootstrap)).items()
                if t.endswith(".dlq")}
        assert not found_in({"case": case_id.encode()}, dead)

        # The sealed copies cannot be opened: the case key is gone for good.
        await _key_is_gone(kafka.bootstrap, redis_server.url, case_id)

        # A rebuild (Redis flushed, services restarted): the history, no personal data.
        for proc in procs.values():
            proc.stop()
        redis = Redis.from_url(redis_server.url)
        await redis.flushall()
        await redis.aclose()
        procs.update(start_services(kafka.bootstrap, redis_server.url, where, ports, ENV))
        rebuilt = (await http.get(f"{dispatch}/api/v1/cases/{case_id}",
                                  headers=commander)).json()
        assert rebuilt == history
        assert (await http.get(tips_url, headers=commander)).json() == tips
        assert not found_in(secrets, await redis_bytes(redis_server.url))
        await _key_is_gone(kafka.bootstrap, redis_server.url, case_id)


async def _pushed(sink: WebhookSink, case_id: str) -> bool:
    return any(json.loads(r["body"]).get("case_id") == case_id for r in list(sink.requests))


async def _key_is_gone(bootstrap: str, redis_url: str, case_id: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    settings = Settings()
    keys = CaseKeys(redis, bootstrap, MasterKeys.parse(settings.pii_master_keys))
    try:
        assert await keys.get(case_id) is None
    finally:
        await keys.stop()
        await redis.aclose()
