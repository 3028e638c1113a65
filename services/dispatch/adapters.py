"""Redis-backed derived state of dispatch (case projections, live stream, overdue timers,
duplicate index, roster availability) and the replay of homeward.dispatch.v1 that rebuilds it.

Kafka is the system of record: every key here can be dropped and rebuilt by `replay_topic`.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from services.dispatch import purge
from services.dispatch.domain import Case, Change, Task
from services.dispatch.roster import Roster, load_roster
from services.dispatch.tips import TipStore
from shared.identity_claims import IdentityClaims
from shared.kafka import replay_topic

__all__ = ["CaseRepository", "load_roster", "replay_topic"]

log = logging.getLogger(__name__)

CASE = "dispatch:case:"
INDEX = "dispatch:cases"
ALIAS = "dispatch:alias:"
CLAIM = "dispatch:child:"  # + identity key (keyed HMAC) -> the case that claimed the child
# Fields of events that are internal (identity keys, reports held for unlinking): never put on
# the commanders' live stream.
INTERNAL = ("duplicate_keys", "accepted")
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
                 duplicate_window_h: float = 24.0, purge_grace_s: float = 30 * 86400.0) -> None:
        self.redis = redis
        self.purge_grace_s = purge_grace_s
        self.repeat_s = repeat_s
        self.stream_maxlen = stream_maxlen
        self.duplicate_window_s = int(duplicate_window_h * 3600)
        self.tips = TipStore(redis)
        self.claims = IdentityClaims(redis, CLAIM, self.duplicate_window_s)

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

    async def unalias(self, case_id: str) -> None:
        await self.redis.delete(ALIAS + case_id)

    async def list_ids(self, limit: int = 500) -> list[str]:
        ids = await self.redis.zrevrange(INDEX, 0, limit - 1)
        return [str(i) for i in ids]

    async def many(self, ids: list[str]) -> list[Case]:
        if not ids:
            return []
        raws = await self.redis.mget([CASE + i for i in ids])
        return [Case.model_validate_json(r) for r in raws if r]

    async def known(self, case_id: str) -> bool:
        """Whether `case_id` is known: a case, or a report linked to one."""
        return bool(await self.redis.exists(CASE + case_id, ALIAS + case_id))

    # --- writing: the projection and everything derived from it, in one transaction ----------
    async def save(self, case: Case, changes: list[Change], stream: bool = True) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(CASE + case.case_id, case.model_dump_json())
        pipe.zadd(INDEX, {case.case_id: case.opened_at.timestamp()})
        for change in changes:
            if stream:
                pipe.xadd(STREAM, {"type": change.type, "event_id": change.event_id,
                                   "case_id": change.case_id, "region_code": case.region_code,
                                   "data": json.dumps(served(change.data),
                                                      ensure_ascii=False)},
                          maxlen=self.stream_maxlen, approximate=True)
        self.tips.stage(pipe, case.case_id, changes)
        for link in case.links:
            pipe.set(ALIAS + link.case_id, case.case_id)
        # The child's claims, where nobody holds them (after a rebuild): the live claim is
        # made atomically before the case is opened (reports.Reports.on_report_accepted).
        if case.is_open and time.time() - case.opened_at.timestamp() < self.duplicate_window_s:
            for key in case.duplicate_keys:
                pipe.set(CLAIM + key, case.case_id, nx=True, ex=self.duplicate_window_s)
        for task in case.tasks:
            member = f"{case.case_id}|{task.task_id}"
            fire = next_fire(task, self.repeat_s) if case.is_open else None
            if fire is None:
                pipe.zrem(TIMERS, member)
            else:
                pipe.zadd(TIMERS, {member: fire.timestamp()})
        self.tips.stage_check_timers(pipe, case, TIMERS, self.repeat_s)  # issue 16
        # The purge timer (issue 13): set once when the case ends, gone when it reopens.
        purge_member = f"{case.case_id}|{purge.TIMER}"
        purge_at = purge.purge_at(case, self.purge_grace_s)
        if purge_at is None:
            pipe.zrem(TIMERS, purge_member)
        else:
            pipe.zadd(TIMERS, {purge_member: purge_at.timestamp()}, nx=True)
        await pipe.execute()

    async def forget_personal(self, case: Case) -> None:
        """After the purge: the child's identity claims and the case's entries on the live
        stream (their data held names and tips) are deleted. `case` as before the purge."""
        if case.duplicate_keys:
            await self.redis.delete(*(CLAIM + key for key in case.duplicate_keys))
        start = "-"
        while True:
            entries: list[Any] = await self.redis.xrange(STREAM, min=start, max="+",
                                                         count=1000) or []
            mine = [eid for eid, fields in entries
                    if (fields or {}).get("case_id") == case.case_id]
            if mine:
                await self.redis.xdel(STREAM, *mine)
            if len(entries) < 1000:
                return
            start = "(" + str(entries[-1][0])

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

    async def move_timer(self, case_id: str, task_id: str, at: datetime) -> None:
        """The timer fires at `at` instead (set before its due time was known better)."""
        await self.redis.zadd(TIMERS, {f"{case_id}|{task_id}": at.timestamp()})

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


def served(data: dict[str, Any]) -> dict[str, Any]:
    """An event's data without its internal fields (identity keys, held reports)."""
    out = {k: v for k, v in data.items() if k not in INTERNAL}
    if isinstance(out.get("details"), dict):
        out["details"] = {k: v for k, v in out["details"].items() if k not in INTERNAL}
    return out


def decode(entry: dict[str, str]) -> dict[str, Any]:
    return {"type": entry.get("type", ""), "event_id": entry.get("event_id", ""),
            "case_id": entry.get("case_id", ""), "region_code": entry.get("region_code", ""),
            "data": json.loads(entry.get("data") or "{}")}
