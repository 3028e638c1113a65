"""What alert keeps of a case and for how long (issue 13 §2–3).

Photos: each uploaded photo is indexed in Redis (`alert:photo:<name>` → region, case, whether
the case's alert is public and whether the case ended). `GET /photos/{name}` serves it to a
token whose region covers the case's while the alert is restricted, to everyone only while it
is public (released and not ended), and to nobody after the purge (file and index deleted).

Outbox: rows are deleted once published and `outbox_published_grace_s` old (the idempotency
answer lives as long), and a purged case's rows at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from services.alert.adapters.outbox import Outbox
from services.alert.adapters.photos import PhotoStore
from shared.auth import Principal
from shared.events import (
    CASE_CLOSED,
    CASE_FOUND,
    CASE_PURGED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    CloudEvent,
)

PHOTO = "alert:photo:"
CASE_PHOTOS = "alert:case-photos:"


def photo_names(urls: list[Any], public_url: str) -> list[str]:
    """The names of photos this service stored, among a report's photo URLs."""
    ours = urlsplit(public_url).netloc
    names = []
    for url in urls:
        parts = urlsplit(str(url))
        if parts.netloc == ours and parts.path.startswith("/photos/"):
            names.append(parts.path.removeprefix("/photos/"))
    return names


@dataclass
class PhotoAccess:
    redis: Redis
    photos: PhotoStore

    async def uploaded(self, name: str, region: str) -> None:
        """A photo not yet in a report: seen by tokens of the uploader's region only."""
        await self.redis.set(PHOTO + name, json.dumps({"region": region, "case": None,
                                                       "released": False, "ended": False}))

    async def attach(self, case_id: str, region: str, names: list[str], released: bool) -> None:
        for name in names:
            await self.redis.set(PHOTO + name, json.dumps(
                {"region": region, "case": case_id, "released": released, "ended": False}))
        if names:
            await self.redis.sadd(CASE_PHOTOS + case_id, *names)

    async def released(self, case_id: str) -> bool:
        """Whether the case's photos are public now (released, not ended): a photo added by an
        amendment (issue 18) joins them in the same state."""
        for name in await self.redis.smembers(CASE_PHOTOS + case_id):
            raw = await self.redis.get(PHOTO + str(name))
            if raw is not None:
                state = json.loads(raw)
                return bool(state["released"]) and not state["ended"]
        return False

    async def visible(self, name: str, who: Principal | None) -> bool:
        raw = await self.redis.get(PHOTO + name)
        if raw is None:
            return False
        state = json.loads(raw)
        if state["released"] and not state["ended"]:
            return True
        return who is not None and who.can_see(state["region"])

    async def _update(self, case_id: str, **change: bool) -> None:
        for name in await self.redis.smembers(CASE_PHOTOS + case_id):
            raw = await self.redis.get(PHOTO + str(name))
            if raw is not None:
                await self.redis.set(PHOTO + str(name), json.dumps({**json.loads(raw),
                                                                    **change}))

    async def purge(self, case_id: str) -> int:
        """Delete the case's photo files and their index; idempotent. Returns files deleted."""
        names = [str(n) for n in await self.redis.smembers(
            CASE_PHOTOS + case_id)]
        deleted = 0
        for name in names:
            path = self.photos.path(name)
            if path is not None:
                path.unlink(missing_ok=True)
                deleted += 1
        if names:
            await self.redis.delete(*(PHOTO + n for n in names))
        await self.redis.delete(CASE_PHOTOS + case_id)
        return deleted

    async def on_case_event(self, event: CloudEvent) -> None:
        """Public only while released and not ended; gone at the purge."""
        case_id = event.subject
        if event.type == CASE_RELEASE_APPROVED:
            await self._update(case_id, released=True)
        elif event.type in (CASE_FOUND, CASE_CLOSED):
            await self._update(case_id, ended=True)
        elif event.type == CASE_REOPENED:
            await self._update(case_id, ended=False)
        elif event.type == CASE_PURGED:
            await self.purge(case_id)


@dataclass
class OutboxRetention:
    outbox: Outbox
    grace_s: float

    async def on_case_event(self, event: CloudEvent) -> None:
        if event.type == CASE_PURGED:
            await self.outbox.forget(event.subject)

    async def prune(self) -> int:
        return await self.outbox.prune(self.grace_s)
