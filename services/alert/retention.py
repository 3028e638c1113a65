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
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from services.alert.adapters.outbox import Outbox
from services.alert.adapters.photos import PhotoStore
from shared.auth import Principal, Role
from shared.events import (
    CASE_CLOSED,
    CASE_FOUND,
    CASE_PURGED,
    CASE_RELEASE_APPROVED,
    CASE_REOPENED,
    CASE_REPORT_LINKED,
    CASE_REPORT_UNLINKED,
    CloudEvent,
    ReportLinked,
    ReportUnlinked,
)

log = logging.getLogger(__name__)

PHOTO = "alert:photo:"
_GONE: dict[str, Any] = {}  # PhotoAccess._change: delete the entry (compared by identity)
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


def _state(raw: str | bytes) -> dict[str, Any]:
    """A photo's index entry: {"region": the uploader's, "cases": {case or record id:
    {"region", "released", "ended"}}} (an entry written before photos could be shared,
    {"region", "case", "released", "ended"}, read as one case)."""
    state = json.loads(raw)
    if "cases" not in state:
        case = state.pop("case", None)
        state["cases"] = {case: {"region": state["region"], "released": state.pop("released"),
                                 "ended": state.pop("ended")}} if case else {}
        state.pop("released", None)
        state.pop("ended", None)
    return state


# Who reads a photo of an alert not (or no longer) public, in the photo's region: those who
# work the search or take reports, never the public audiences (media and volunteers get the
# alert's photos only once it is released, as everyone does).
RESTRICTED_READERS = frozenset({Role.operator, Role.commander, Role.hub, Role.admin,
                                Role.mandated_reporter})


@dataclass
class PhotoAccess:
    """The photo index. A photo can belong to several cases (siblings of one incident filed
    with one family photo, two reports of one child): it is public while any of them is
    released and not ended, seen by tokens covering any of their regions (or the uploader's),
    and deleted when the last of them is purged. Only who can see a photo attaches it: an
    operator cannot take another region's photo into a report by its URL (issue 12)."""

    redis: Redis
    photos: PhotoStore

    async def uploaded(self, name: str, region: str) -> None:
        """A photo not yet in a report: seen by tokens of the uploader's region only."""
        await self.redis.set(PHOTO + name, json.dumps({"region": region, "cases": {}}))

    async def _change(self, name: str,
                      change: Callable[[dict[str, Any] | None], dict[str, Any] | None]
                      ) -> dict[str, Any] | None:
        """Read, change and write one photo's entry atomically (WATCH/MULTI, retried when
        another writer came between: two siblings' reports attaching one photo at once keep
        both cases). `change` returns the new entry, _GONE to delete it, or None to leave it."""
        key = PHOTO + name

        async def step(pipe: Any) -> dict[str, Any] | None:
            raw = await pipe.get(key)
            new = change(_state(raw) if raw is not None else None)
            pipe.multi()
            if new is _GONE:
                pipe.delete(key)
            elif new is not None:
                pipe.set(key, json.dumps(new))
            return new

        result: dict[str, Any] | None = await self.redis.transaction(
            step, key, value_from_callable=True)
        return result

    async def attach(self, case_id: str, region: str, names: list[str], released: bool,
                     who: Principal | None = None) -> list[str]:
        """The photos `names` join case `case_id` (of `region`; public now if `released`).
        A photo that is not in the index (not uploaded here, or purged) or that `who` cannot
        see (another region's upload or case) is left as it is. Returns the names attached."""

        def join(state: dict[str, Any] | None) -> dict[str, Any] | None:
            if state is None:
                return None
            regions = {state["region"], *(c["region"] for c in state["cases"].values())}
            if who is not None and case_id not in state["cases"] and not any(
                    who.can_see(r) for r in regions):
                return None
            mine = state["cases"].get(case_id, {"ended": False})
            state["cases"][case_id] = {"region": region, "released": released,
                                       "ended": bool(mine["ended"])}
            return state

        attached = [name for name in names if await self._change(name, join) is not None]
        for name in set(names) - set(attached):
            log.warning("photo %s not attached to %s (unknown, or not %s's to attach)", name,
                        case_id, who.sub if who else "anyone")
        if attached:
            await self.redis.sadd(CASE_PHOTOS + case_id, *attached)
        return attached

    async def released(self, case_id: str) -> bool:
        """Whether the case's photos are public now (released, not ended): a photo added by an
        amendment (issue 18) joins them in the same state."""
        for name in await self.redis.smembers(CASE_PHOTOS + case_id):
            raw = await self.redis.get(PHOTO + str(name))
            if raw is not None:
                mine = _state(raw)["cases"].get(case_id)
                if mine is not None:
                    return bool(mine["released"]) and not mine["ended"]
        return False

    async def visible(self, name: str, who: Principal | None) -> bool:
        raw = await self.redis.get(PHOTO + name)
        if raw is None:
            return False
        state = _state(raw)
        cases = state["cases"].values()
        if any(c["released"] and not c["ended"] for c in cases):
            return True
        return who is not None and who.role in RESTRICTED_READERS and any(
            who.can_see(r) for r in {state["region"], *(c["region"] for c in cases)})

    async def linked(self, linked: ReportLinked) -> None:
        """The report joined another child's case (the same child): its photos are that case's
        too, public as that case's are (its leader releases it, dispatch `POST .../release`),
        and no longer public as the report's own — a report released at intake does not make
        a restricted case's photos public (notify does not release the alert either).
        Idempotent; an unlink gives the report back what it had (`_relinquish`)."""
        own, lead = linked.duplicate_case_id, linked.case_id
        names = [str(n) for n in await self.redis.smembers(CASE_PHOTOS + own)]
        if not names:
            return
        public = await self.released(lead)

        def hold(state: dict[str, Any] | None) -> dict[str, Any] | None:
            if state is None or own not in state["cases"]:
                return None
            mine = state["cases"][own]
            if "held" not in mine:
                mine["held"] = bool(mine["released"])
            mine["released"] = False
            state["cases"].setdefault(lead, {"region": lead[:6], "released": public,
                                             "ended": False})
            return state

        held = [name for name in names if await self._change(name, hold) is not None]
        if held:
            await self.redis.sadd(CASE_PHOTOS + lead, *held)

    async def _relinquish(self, case_id: str) -> None:
        """Unlinked: the report's own search is live again, its photos as public as they were
        before the link."""
        def restore(state: dict[str, Any] | None) -> dict[str, Any] | None:
            if state is None or case_id not in state["cases"]:
                return None
            mine = state["cases"][case_id]
            if "held" in mine:
                mine["released"] = bool(mine.pop("held"))
            mine["ended"] = False
            return state

        for name in await self.redis.smembers(CASE_PHOTOS + case_id):
            await self._change(str(name), restore)

    async def _update(self, case_id: str, **change: bool) -> None:
        def update(state: dict[str, Any] | None) -> dict[str, Any] | None:
            if state is None or case_id not in state["cases"]:
                return None
            state["cases"][case_id].update(change)
            return state

        for name in await self.redis.smembers(CASE_PHOTOS + case_id):
            await self._change(str(name), update)

    async def purge(self, case_id: str) -> int:
        """The case leaves its photos; a photo no other case holds is deleted, file and index;
        idempotent. Returns files deleted."""

        def leave(state: dict[str, Any] | None) -> dict[str, Any] | None:
            if state is None:
                return _GONE
            state["cases"].pop(case_id, None)
            return state if state["cases"] else _GONE  # another child's case still shows it

        deleted = 0
        for name in [str(n) for n in await self.redis.smembers(CASE_PHOTOS + case_id)]:
            if await self._change(name, leave) is not _GONE:
                continue
            path = self.photos.path(name)
            if path is not None:
                path.unlink(missing_ok=True)
                deleted += 1
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
        elif event.type == CASE_REPORT_LINKED:
            await self.linked(ReportLinked.model_validate(event.data))
        elif event.type == CASE_REPORT_UNLINKED:  # its own live search again (issue 19)
            unlinked = ReportUnlinked.model_validate(event.data)
            await self._relinquish(unlinked.duplicate_case_id)
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
