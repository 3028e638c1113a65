"""Tips in Redis beside the case document, and tips held for a case not seen yet.

- Each case's tips are their own structure (issue 12): a sorted set of tip ids by time received
  and a hash of the tips, written in the same transaction as the case (`stage`), paged by the
  API. The case document holds none of them, so a flood of tips never makes every change of
  the case re-read and rewrite a growing document. How many a case may get is capped where
  tips are accepted (the alert service: `tip_cap_per_case`), so nothing accepted is dropped
  here.
- A tip for a case id dispatch does not know yet is *parked* (issue 19, item 6): held with the
  time it was parked, attached as soon as the case appears (the report consumer asks after each
  report, a sweep re-checks every parked case id), and after `dispatch_tip_park_s` listed to
  admins as unmatched, still held. Parking is on homeward.dispatch.v1 too (`TIP_PARKED`), so a
  rebuild from the topic restores what is still parked.

Like the rest of dispatch's Redis state, every key here is rebuilt from the dispatch topic.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.dispatch.tips_domain import next_check_fire, rank_score
from shared import events as ev
from shared import pii
from shared.events import TipReceived

TIPS = "dispatch:tips:"  # + case id: sorted set, tip id -> received_at (epoch s)
TIP = "dispatch:tip:"  # + case id: hash, tip id -> the attached tip (JSON)
TRIAGE = "dispatch:tip:triage:"  # + case id: hash, tip id -> the latest verdict (JSON)
PARKED = "dispatch:parked"  # hash, tip id -> {"tip": TipReceived, "parked_at": epoch s}
PARKED_SINCE = "dispatch:parked:since"  # sorted set, tip id -> parked_at
PARKED_CASES = "dispatch:parked:cases"  # sorted set, case id -> when to look for it next
PARKED_OF = "dispatch:parked:case:"  # + case id the tip named: set of tip ids

TIPS_PARKED = Counter("homeward_dispatch_tips_parked_total",
                      "tips held because their case was not known yet")
TIPS_UNPARKED = Counter("homeward_dispatch_tips_unparked_total",
                        "held tips attached once their case appeared")
TIPS_HELD = Gauge("homeward_dispatch_tips_held", "tips held for a case not known (yet)")


class TipStore:
    def __init__(self, redis: Redis) -> None:
        self.redis: Any = redis  # redis-py's stubs type replies as unions of everything

    # --- attached tips ---------------------------------------------------------------------
    @staticmethod
    def stage(pipe: Pipeline, case_id: str, changes: list[Any]) -> None:
        """Queue on the case's transaction: the tips these changes attach, each also taken
        out of the parked tips."""
        for change in changes:
            if change.type == ev.CASE_TIP_TRIAGED and change.case_id == case_id:
                d = change.data.get("details") or {}
                pipe.hset(TRIAGE + case_id, str(d.get("tip_id")), json.dumps({
                    "verdict": d.get("verdict"), "reason": change.data.get("reason", ""),
                    "by": change.data.get("actor", ""), "at": change.data.get("at"),
                    "linked_case_id": d.get("linked_case_id"), "check_id": d.get("check_id"),
                    "check_region": d.get("check_region")}, ensure_ascii=False))
                continue
            if change.type != ev.CASE_TIP_ATTACHED or change.case_id != case_id:
                continue
            tip = dict((change.data.get("details") or {}).get("tip") or {})
            if not tip.get("tip_id"):
                continue
            tip_id = str(tip["tip_id"])
            received = str(tip.get("received_at") or change.data.get("at") or "")
            # Hub sightings rank before public tips; newest first within each (tips_domain).
            pipe.zadd(TIPS + case_id, {tip_id: rank_score(tip, _epoch(received))})
            pipe.hset(TIP + case_id, tip_id, json.dumps(tip, ensure_ascii=False))
            pipe.hdel(PARKED, tip_id)
            pipe.zrem(PARKED_SINCE, tip_id)
            pipe.srem(PARKED_OF + str(tip.get("case_id") or case_id), tip_id)

    @staticmethod
    def stage_check_timers(pipe: Pipeline, case: Any, timers: str, repeat_s: float) -> None:
        """Queue the overdue timers of the case's local checks (member `{case}|check:{id}`, as
        a task's `{case}|{task}`): set while the check and the case are open, else removed."""
        for check in case.checks:
            member = f"{case.case_id}|check:{check.check_id}"
            fire = next_check_fire(check, repeat_s) if case.is_open else None
            if fire is None:
                pipe.zrem(timers, member)
            else:
                pipe.zadd(timers, {member: fire.timestamp()})

    async def purge(self, case_id: str, named: list[str]) -> None:
        """The purge of `case_id` (issue 13): its attached tips keep their ids, times and
        places, their contact and description become the purge markers (as a rebuild from the
        topic, whose copies are sealed with the deleted key, restores them); tips still held
        under any of the case ids in `named` (the case and the reports linked into it) are
        deleted with their contacts. Idempotent."""
        raws: dict[str, str] = await self.redis.hgetall(TIP + case_id) or {}
        held: set[str] = set()
        for name in named:
            held |= {str(t) for t in await self.redis.smembers(PARKED_OF + name)}
        async with self.redis.pipeline(transaction=True) as pipe:
            for tip_id, raw in raws.items():
                pipe.hset(TIP + case_id, tip_id, json.dumps(
                    pii.redact(json.loads(raw), pii.TIP_FIELDS), ensure_ascii=False))
            if held:
                pipe.hdel(PARKED, *held)
                pipe.zrem(PARKED_SINCE, *held)
            for name in named:
                pipe.delete(PARKED_OF + name)
                pipe.zrem(PARKED_CASES, name)
            await pipe.execute()

    async def has(self, case_id: str, tip_id: str) -> bool:
        return await self.redis.zscore(TIPS + case_id, tip_id) is not None

    async def count(self, case_id: str) -> int:
        return int(await self.redis.zcard(TIPS + case_id))

    async def page(self, case_id: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """(how many tips the case has, `limit` of them from `offset`, newest first)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(TIPS + case_id)
            pipe.zrevrange(TIPS + case_id, offset, offset + limit - 1)
            total, ids = await pipe.execute()
        if not ids:
            return int(total), []
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(TIP + case_id, ids)
            pipe.hmget(TRIAGE + case_id, ids)
            raws, verdicts = await pipe.execute()
        return int(total), [_with_triage(json.loads(r), v)
                            for r, v in zip(raws, verdicts, strict=True) if r]

    async def one(self, case_id: str, tip_id: str) -> dict[str, Any] | None:
        """The attached tip with its latest verdict, or None."""
        raw = await self.redis.hget(TIP + case_id, tip_id)
        if not raw:
            return None
        return _with_triage(json.loads(raw), await self.redis.hget(TRIAGE + case_id, tip_id))

    # --- parked tips -----------------------------------------------------------------------
    async def park(self, tip: TipReceived, parked_at: float, look_at: float) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(PARKED, tip.tip_id, json.dumps(
                {"tip": tip.model_dump(mode="json"), "parked_at": parked_at},
                ensure_ascii=False))
            pipe.zadd(PARKED_SINCE, {tip.tip_id: parked_at}, nx=True)
            pipe.sadd(PARKED_OF + tip.case_id, tip.tip_id)
            pipe.zadd(PARKED_CASES, {tip.case_id: look_at})
            await pipe.execute()

    async def parked_for(self, case_id: str) -> list[TipReceived]:
        ids = sorted(await self.redis.smembers(PARKED_OF + case_id))
        if not ids:
            return []
        raws = await self.redis.hmget(PARKED, ids)
        return [TipReceived.model_validate(json.loads(r)["tip"]) for r in raws if r]

    async def cases_to_look_for(self, now: float, limit: int = 100) -> list[str]:
        ids = await self.redis.zrangebyscore(PARKED_CASES, "-inf", now, start=0, num=limit)
        return [str(i) for i in ids]

    async def look_again(self, case_id: str, at: float) -> None:
        await self.redis.zadd(PARKED_CASES, {case_id: at}, xx=True)

    async def forget_case(self, case_id: str) -> None:
        """No tip is held for `case_id` any more: stop looking for it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(PARKED_CASES, case_id)
            pipe.delete(PARKED_OF + case_id)
            await pipe.execute()

    async def held(self) -> int:
        count = int(await self.redis.zcard(PARKED_SINCE))
        TIPS_HELD.set(count)
        return count

    async def unmatched(self, parked_before: float, offset: int,
                        limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Tips held since before `parked_before` (epoch s), oldest first: (how many, a page
        of {"tip", "parked_at"})."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(PARKED_SINCE, "-inf", parked_before)
            pipe.zrangebyscore(PARKED_SINCE, "-inf", parked_before, start=offset, num=limit)
            total, ids = await pipe.execute()
        if not ids:
            return int(total), []
        raws = await self.redis.hmget(PARKED, ids)
        return int(total), [json.loads(r) for r in raws if r]


def _with_triage(tip: dict[str, Any], raw: str | None) -> dict[str, Any]:
    if raw:
        tip["triage"] = json.loads(raw)
        tip["check_id"] = tip["triage"].get("check_id") or tip.get("check_id")
    return tip


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0
