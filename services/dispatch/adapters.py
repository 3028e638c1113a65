"""Redis-backed derived state of dispatch (case projections, live stream, overdue timers,
duplicate index, roster availability) and the replay of homeward.dispatch.v1 that rebuilds it.

Kafka is the system of record: every key here can be dropped and rebuilt by `replay_topic`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from services.dispatch.domain import Case, Change, Task
from services.dispatch.roster import Roster, load_roster
from shared.kafka import replay_topic

__all__ = ["CaseRepository", "load_roster", "replay_topic"]

log = logging.getLogger(__name__)

CASE = "dispatch:case:"
INDEX = "dispatch:cases"
ALIAS = "dispatch:alias:"
DUP = "dispatch:dup:"
TIMERS = "dispatch:timers"
STREAM = "dispatch:stream"
AVAILABILITY = "dispatch:availability"
READY = "dispatch:ready"


def next_fire(task: Task, repeat_s: float) -> datetime | None:
    """When an open task's overdue timer goes off next: at the deadline, then every repeat."""
    if task.status != "open":
        return None
    if task.overdue_count == 0 or task.last_overdue_at is None:
        return task.due_at
    return task.last_overdue_at + timedelta(seconds=repeat_s)


class CaseRepository:
    def __init__(self, redis: Redis, repeat_s: float = 900.0, stream_maxlen: int = 100_000,
                 duplicate_window_h: float = 24.0) -> None:
        self.redis = redis
        self.repeat_s = repeat_s
        self.stream_maxlen = stream_maxlen
        self.duplicate_window_s = int(duplicate_window_h * 3600)

    # --- reading ---------------------------------------------------------------------------
    async def get(self, case_id: str) -> Case | None:
        """The case, following the link of a duplicate report's case id."""
        case = await self.get_own(case_id)
        if case is None:
            target = await self.redis.get(ALIAS + case_id)
            if target:
                case = await self.get_own(str(target))
        return case

    async def get_own(self, case_id: str) -> Case | None:
        raw = await self.redis.get(CASE + case_id)
        return Case.model_validate_json(raw) if raw else None

    async def linked_to(self, case_id: str) -> str | None:
        target = await self.redis.get(ALIAS + case_id)
        return str(target) if target else None

    async def list_ids(self, limit: int = 500) -> list[str]:
        ids = await self.redis.zrevrange(INDEX, 0, limit - 1)
        return [str(i) for i in ids]

    async def many(self, ids: list[str]) -> list[Case]:
        if not ids:
            return []
        raws = await self.redis.mget([CASE + i for i in ids])
        return [Case.model_validate_json(r) for r in raws if r]

    async def seen(self, case_id: str, keys: Iterable[str]) -> tuple[bool, list[str]]:
        """In one round trip: whether `case_id` is known (a case, or a report linked to one),
        and the case ids opened in the duplicate window under any of the hashed keys."""
        floor = time.time() - self.duplicate_window_s
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(CASE + case_id, ALIAS + case_id)
        for key in keys:
            pipe.zrangebyscore(DUP + key, floor, "+inf")
        known, *hits = await pipe.execute()
        found: list[str] = []
        for ids in hits:
            found.extend(str(i) for i in ids if str(i) not in found)
        return bool(known), found

    # --- writing: the projection and everything derived from it, in one transaction ----------
    async def save(self, case: Case, changes: list[Change], stream: bool = True) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(CASE + case.case_id, case.model_dump_json())
        pipe.zadd(INDEX, {case.case_id: case.opened_at.timestamp()})
        for change in changes:
            if stream:
                pipe.xadd(STREAM, {"type": change.type, "event_id": change.event_id,
                                   "case_id": change.case_id, "region_code": case.region_code,
                                   "data": json.dumps(change.data, ensure_ascii=False)},
                          maxlen=self.stream_maxlen, approximate=True)
        for linked in case.linked_reports:
            if linked.get("duplicate_case_id"):
                pipe.set(ALIAS + str(linked["duplicate_case_id"]), case.case_id)
        if case.lat is not None:
            for key in case.duplicate_keys:
                pipe.zadd(DUP + key, {case.case_id: case.opened_at.timestamp()})
                pipe.expire(DUP + key, self.duplicate_window_s + 3600)
        for task in case.tasks:
            member = f"{case.case_id}|{task.task_id}"
            fire = next_fire(task, self.repeat_s) if case.is_open else None
            if fire is None:
                pipe.zrem(TIMERS, member)
            else:
                pipe.zadd(TIMERS, {member: fire.timestamp()})
        await pipe.execute()

    # --- overdue timers ------------------------------------------------------------------------
    async def due_timers(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        members = await self.redis.zrangebyscore(TIMERS, "-inf", now, start=0, num=limit)
        out = []
        for m in members:
            case_id, _, task_id = str(m).partition("|")
            out.append((case_id, task_id))
        return out

    async def drop_timer(self, case_id: str, task_id: str) -> None:
        await self.redis.zrem(TIMERS, f"{case_id}|{task_id}")

    # --- roster availability ---------------------------------------------------------------
    async def save_availability(self, code: str, post: str, available: bool) -> None:
        await self.redis.hset(AVAILABILITY, f"{code}:{post}", "1" if available else "0")

    async def load_availability(self, roster: Roster) -> None:
        for key, value in (await self.redis.hgetall(AVAILABILITY)).items():
            code, _, post = str(key).partition(":")
            if post in ("head", "deputy"):
                roster.set_available(code, post, str(value) == "1")  # type: ignore[arg-type]

    async def is_empty(self) -> bool:
        """No projection built since Redis was last emptied: set only at start, after the
        rebuild, so a Redis flushed while the service runs is rebuilt at the next start."""
        return not await self.redis.exists(READY)

    async def mark_ready(self) -> None:
        await self.redis.set(READY, "1")


def decode(entry: dict[str, str]) -> dict[str, Any]:
    return {"type": entry.get("type", ""), "event_id": entry.get("event_id", ""),
            "case_id": entry.get("case_id", ""), "region_code": entry.get("region_code", ""),
            "data": json.loads(entry.get("data") or "{}")}
