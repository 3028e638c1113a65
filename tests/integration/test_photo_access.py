"""Who sees a case's photos, and when (services/alert/retention.py, issue 13 §3), on Redis."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.alert.adapters.photos import PhotoStore
from services.alert.retention import PhotoAccess, photo_names
from shared.auth import Principal, Role
from shared.events import (
    CASE_FOUND,
    CASE_PURGED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    CloudEvent,
)

pytestmark = pytest.mark.integration

CASE = "140403-20261122-PHOTO1"


def who(region: str, role: Role = Role.hub) -> Principal:
    org = {"org": "长治市人民医院"} if role == Role.mandated_reporter else {}
    return Principal(sub="u", role=role, region=region, exp=time.time() + 600, **org)


def event(type_: str) -> CloudEvent:
    return CloudEvent(type=type_, source="/test", subject=CASE, data={})


async def test_restricted_then_public_then_ended_then_gone(redis: Redis, tmp_path: Path) -> None:
    store = PhotoStore(tmp_path)
    access = PhotoAccess(redis, store)
    name = store.save("image/png", b"\x89PNG")
    await access.uploaded(name, "140403")
    table = [(None, False), (who("140403"), True), (who("140400"), True), (who("320000"), False),
             (who("140403", Role.operator), True), (who("140400", Role.commander), True),
             (who("140403", Role.mandated_reporter), True),
             # the public audiences only once the alert is released, as everyone
             (who("140403", Role.media), False), (who("140400", Role.volunteer), False)]
    assert [await access.visible(name, w) for w, _ in table] == [v for _, v in table]

    names = photo_names([f"http://alert.example/photos/{name}", "https://elsewhere/p.jpg"],
                        "http://alert.example")
    assert names == [name]
    await access.attach(CASE, "140403", names, released=False)
    assert not await access.visible(name, None)
    await access.on_case_event(event(CASE_RELEASE_APPROVED))
    assert await access.visible(name, None)  # public while released
    await access.on_case_event(event(CASE_FOUND))
    assert not await access.visible(name, None)  # ended: restricted again
    assert await access.visible(name, who("140403"))
    await access.on_case_event(event(CASE_REOPENED))
    assert await access.visible(name, None)
    await access.on_case_event(event(CASE_PURGED))
    assert not await access.visible(name, who("140403"))
    assert store.path(name) is None
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []
    await access.on_case_event(event(CASE_PURGED))  # idempotent


def operator(region: str) -> Principal:
    return Principal(sub=f"op-{region}", role=Role.operator, region=region,
                     exp=time.time() + 600)


async def test_only_who_can_see_a_photo_attaches_it(redis: Redis, tmp_path: Path) -> None:
    """Another region's operator naming a photo's URL in a report or an amendment does not
    take it (it was: the index was rebound to the attacker's case, and with release.public
    made public); nor does a photo this service never stored, or one purged, get an index."""
    store = PhotoStore(tmp_path)
    access = PhotoAccess(redis, store)
    name = store.save("image/png", b"\x89PNG")
    await access.uploaded(name, "110101")  # 北京 东城
    await access.attach("110101-20261122-BJ0001", "110101", [name], False, operator("110101"))
    for intruder in ("140000", "140403"):
        got = await access.attach("140403-20261122-SX0001", "140403", [name], True,
                                  operator(intruder))
        assert got == []
    assert not await access.visible(name, None)
    assert not await access.visible(name, operator("140403"))
    assert await access.visible(name, operator("110000"))
    assert await access.attach(CASE, "140403", ["never-stored.png"], True) == []
    assert await redis.get("alert:photo:never-stored.png") is None


async def test_a_photo_two_children_share_stays_while_either_search_needs_it(
        redis: Redis, tmp_path: Path) -> None:
    """Siblings of one incident filed with one family photo: the first child's found does not
    hide it from the second's public alert, nor the first's purge delete it."""
    store = PhotoStore(tmp_path)
    access = PhotoAccess(redis, store)
    name = store.save("image/png", b"\x89PNG")
    first, second = "140403-20261122-SIB001", "140403-20261122-SIB002"
    await access.uploaded(name, "140403")
    for case in (first, second):
        assert await access.attach(case, "140403", [name], True, operator("140403")) == [name]

    def on(case: str, type_: str) -> CloudEvent:
        return CloudEvent(type=type_, source="/test", subject=case, data={})

    await access.on_case_event(on(first, CASE_FOUND))
    assert await access.visible(name, None)  # the second child's alert is still public
    assert await access.released(second) and not await access.released(first)
    await access.on_case_event(on(first, CASE_PURGED))
    assert store.path(name) is not None and await access.visible(name, None)
    await access.on_case_event(on(second, CASE_FOUND))
    assert not await access.visible(name, None) and await access.visible(name, who("140403"))
    await access.on_case_event(on(second, CASE_PURGED))
    assert store.path(name) is None and not await access.visible(name, who("140403"))


async def test_an_index_entry_written_before_photos_were_shared_reads_as_one_case(
        redis: Redis, tmp_path: Path) -> None:
    store = PhotoStore(tmp_path)
    access = PhotoAccess(redis, store)
    name = store.save("image/png", b"\x89PNG")
    await redis.set(f"alert:photo:{name}", json.dumps(
        {"region": "140403", "case": CASE, "released": True, "ended": False}))
    await redis.sadd(f"alert:case-photos:{CASE}", name)
    assert await access.visible(name, None) and await access.released(CASE)
    await access.on_case_event(event(CASE_PURGED))
    assert store.path(name) is None


async def test_siblings_attached_at_the_same_moment_both_keep_the_photo(
        redis: Redis, tmp_path: Path) -> None:
    """The index is changed atomically: two reports attaching one photo at once (two operators'
    requests, two intake workers) both stay on it."""
    store = PhotoStore(tmp_path)
    access = PhotoAccess(redis, store)
    for round_ in range(20):
        name = store.save("image/png", b"\x89PNG" + bytes([round_]))
        await access.uploaded(name, "140403")
        cases = [f"140403-20261122-RACE{round_:02d}{n}" for n in "AB"]
        await asyncio.gather(*(access.attach(c, "140403", [name], n == 0, operator("140403"))
                               for n, c in enumerate(cases)))
        state = json.loads(await redis.get(f"alert:photo:{name}"))
        assert set(state["cases"]) == set(cases), round_
        await asyncio.gather(*(access.on_case_event(CloudEvent(
            type=CASE_PURGED, source="/t", subject=c, data={})) for c in cases))
        assert store.path(name) is None and await redis.get(f"alert:photo:{name}") is None


async def test_an_unlinked_report_after_the_other_childs_found_is_live_again(
        redis: Redis, tmp_path: Path) -> None:
    """A and B were linked, A was found (mirrored to B's id), then the commander unlinked B:
    B's search is its own and live, so its released photo is public again and its tip line
    open (services.alert.handlers.Progress)."""
    from services.alert.adapters.progress import ProgressStore
    from services.alert.handlers import Progress
    from shared.events import CASE_CLOSED, CASE_REPORT_UNLINKED

    store = PhotoStore(tmp_path)
    access, progress = PhotoAccess(redis, store), Progress(ProgressStore(redis))
    a, b = "140403-20261122-UNLNKA", "140403-20261122-UNLNKB"
    name = store.save("image/png", b"\x89PNG-b")
    await access.uploaded(name, "140403")
    await access.attach(b, "140403", [name], True, operator("140403"))
    for type_ in (CASE_FOUND, CASE_CLOSED):  # mirrored to the linked report's id
        await access.on_case_event(CloudEvent(type=type_, source="/t", subject=b, data={}))
    await progress.on_case_event(CloudEvent(type=CASE_CLOSED, source="/t", subject=b,
                                            data={"case_id": b, "region_code": "140403",
                                                  "actor": "c", "at": "2026-11-22T10:00:00Z"}))
    assert not await access.visible(name, None) and await ProgressStore(redis).is_closed(b)
    unlinked = CloudEvent(type=CASE_REPORT_UNLINKED, source="/t", subject=a, data={
        "case_id": a, "region_code": "140403", "actor": "c", "at": "2026-11-22T11:00:00Z",
        "report_id": f"R-{b}", "duplicate_case_id": b})
    await access.on_case_event(unlinked)
    await progress.on_case_event(unlinked)
    assert await access.visible(name, None)
    assert not await ProgressStore(redis).is_closed(b)
    assert await ProgressStore(redis).case_group(b) == b


async def test_a_released_reports_photo_linked_to_a_restricted_case_is_not_public(
        redis: Redis, tmp_path: Path) -> None:
    """B's operator released B at intake; dispatch linked B to A (the same child), whose leader
    has not released A: B's photo is A's now, public only when A is released; the unlink gives
    B back its own release. A redelivered link changes nothing."""
    from shared.events import CASE_REPORT_LINKED, CASE_REPORT_UNLINKED

    store = PhotoStore(tmp_path)
    access = PhotoAccess(redis, store)
    a, b = "320102-20261122-LINKAA", "140403-20261122-LINKBB"
    name = store.save("image/png", b"\x89PNG-linked")
    await access.uploaded(name, "140403")
    await access.attach(b, "140403", [name], True, operator("140403"))
    assert await access.visible(name, None)
    linked = CloudEvent(type=CASE_REPORT_LINKED, source="/t", subject=a, data={
        "case_id": a, "region_code": "320102", "actor": "dispatch", "at": "2026-11-22T10:00:00Z",
        "report_id": f"R-{b}", "duplicate_case_id": b,
        "evidence": {"rule": "id_number", "distance_km": 3.0, "hours_apart": 1.0,
                     "names": ["张小明", "张小明"]}})
    for _ in range(2):  # a redelivery
        await access.on_case_event(linked)
        assert not await access.visible(name, None)
    assert await access.visible(name, who("320102", Role.commander))  # A's region reads it
    await access.on_case_event(CloudEvent(type=CASE_RELEASE_APPROVED, source="/t", subject=a,
                                          data={}))
    assert await access.visible(name, None)  # A released: its photos are public
    await access.on_case_event(CloudEvent(type=CASE_FOUND, source="/t", subject=a, data={}))
    assert not await access.visible(name, None)
    await access.on_case_event(CloudEvent(type=CASE_REPORT_UNLINKED, source="/t", subject=a,
                                          data={"case_id": a, "region_code": "320102",
                                                "actor": "c", "at": "2026-11-22T11:00:00Z",
                                                "report_id": f"R-{b}",
                                                "duplicate_case_id": b}))
    assert await access.visible(name, None)  # B's own search, released as B's operator chose
