"""Who sees a case's photos, and when (services/alert/retention.py, issue 13 §3), on Redis."""

from __future__ import annotations

import asyncio
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


def who(region: str) -> Principal:
    return Principal(sub="u", role=Role.hub, region=region, exp=time.time() + 600)


def event(type_: str) -> CloudEvent:
    return CloudEvent(type=type_, source="/test", subject=CASE, data={})


async def test_restricted_then_public_then_ended_then_gone(redis: Redis, tmp_path: Path) -> None:
    store = PhotoStore(tmp_path)
    access = PhotoAccess(redis, store)
    name = store.save("image/png", b"\x89PNG")
    await access.uploaded(name, "140403")
    table = [(None, False), (who("140403"), True), (who("140400"), True), (who("320000"), False)]
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
