"""The delivery ledger in Redis (issue 18 §2): one record per (alert version, recipient),
claimed before the first request and settled after it, the per-case index, and the logged
push bodies the workers send. The timers (retries, ack deadlines, widening) are
services.notify.timer_store's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from services.notify.group_commit import GroupCommit
from services.notify.ledger_rules import LEDGER_META

__all__ = ["TERMINAL", "DeliveryLedger"]


TERMINAL = {"sent", "acknowledged", "failed", "dead", "gone", "dropped"}


class DeliveryLedger:
    """One delivery per (alert version, recipient): the record is created (`pending`) before the
    first request and set to `sent` after it; a redelivered message skips what is settled and
    resends what was left `pending` with the same webhook-id, so a receiver can drop the
    duplicate."""

    def __init__(self, redis: Redis) -> None:
        self.redis: Any = redis  # redis-py's stubs type replies as unions of everything
        self._marks: GroupCommit[tuple[str, dict[str, str]]] = GroupCommit(self._write_marks)

    async def _write_marks(self, marks: list[tuple[str, dict[str, str]]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery_id, mapping in marks:
                pipe.hset(f"notify:delivery:{delivery_id}", mapping=mapping)
            await pipe.execute()

    async def claim(self, delivery_id: str, fields: dict[str, str]) -> str | None:
        """Create the record if absent; return the state it had (None when new)."""
        return (await self.claim_many({delivery_id: fields}))[delivery_id][0]

    # KEYS[1] the delivery, KEYS[2] the case's delivery set; ARGV: delivery id, then field,
    # value pairs. Returns {state, attempts} of an existing record, or {} after creating it.
    CLAIM = """
    local had = redis.call('HMGET', KEYS[1], 'state', 'attempts')
    if had[1] then return had end
    redis.call('HSET', KEYS[1], unpack(ARGV, 2))
    redis.call('SADD', KEYS[2], ARGV[1])
    return {}
    """

    async def claim_many(
        self, records: dict[str, dict[str, str]]
    ) -> dict[str, tuple[str | None, int]]:
        """The `before` record of many deliveries in one round trip (a script per delivery, so
        creating a record and finding an existing one are atomic): delivery id -> (the state
        it had, None when new; attempts made so far).

        The script goes by its digest (EVALSHA); the claims a Redis answered NOSCRIPT (it does
        not hold the script: restarted, flushed) are sent again after SCRIPT LOAD. redis-py's
        Script in a pipeline asked SCRIPT EXISTS first: one more round trip on every batch, two
        per report on the hub lane (Redis MONITOR, 2026-12-02)."""
        if not hasattr(self, "_claim"):
            self._claim = self.redis.register_script(self.CLAIM)
        now = datetime.now(UTC).isoformat()

        async def claim_batch(ids: list[str]) -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for did in ids:
                    meta = records[did]
                    # What never changes travels as one field: fewer arguments to pack.
                    pipe.evalsha(self._claim.sha, 2, f"notify:delivery:{did}",
                                 f"notify:case-deliveries:{meta.get('case_id', '')}",
                                 did, "state", "pending", "attempts", "0", "at", now, "meta",
                                 json.dumps(meta, ensure_ascii=False, separators=(",", ":")))
                return list(await pipe.execute(raise_on_error=False))

        ids = list(records)
        replies = await claim_batch(ids)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            await self.redis.script_load(self.CLAIM)
            for i, reply in zip(lost, await claim_batch([ids[i] for i in lost]), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        out: dict[str, tuple[str | None, int]] = {}
        for did, reply in zip(ids, replies, strict=True):
            out[did] = (str(reply[0]), int(reply[1] or 0)) if reply else (None, 0)
        return out

    async def restore(self, records: dict[str, dict[str, str]]) -> None:
        """Records rebuilt from the receipts, in the flat form `get` returns."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for did, record in records.items():
                meta = {k: v for k, v in record.items() if k in LEDGER_META}
                rest = {k: v for k, v in record.items() if k not in LEDGER_META}
                rest["meta"] = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
                pipe.hset(f"notify:delivery:{did}", mapping=rest)
                pipe.sadd(f"notify:case-deliveries:{meta.get('case_id', '')}", did)
            await pipe.execute()

    async def put_body(self, key: str, body: dict[str, Any]) -> None:
        """A push body, stored once per (alert version, scope) for the retries of all its
        deliveries. Kept until the case's purge deletes it (services.notify.purge), with no
        expiry of its own: a search goes on for as long as the child is missing, and a hub's
        delivery still retrying must find its body however long that is (issue 18 §4: an
        expired body dropped the delivery as `push body expired`)."""
        await self.redis.set(f"notify:body:{key}", json.dumps(body, ensure_ascii=False))

    async def get_body(self, key: str) -> dict[str, Any] | None:
        """The body, and any expiry it was stored with lifted (bodies stored before they were
        kept for the whole search had 30 days), in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(f"notify:body:{key}")
            pipe.persist(f"notify:body:{key}")
            raw, _ = await pipe.execute()
        return json.loads(raw) if raw else None

    @staticmethod
    def _flat(raw: dict[Any, Any]) -> dict[str, str]:
        out = {str(k): str(v) for k, v in raw.items() if k != "meta"}
        if raw.get("meta"):
            out = {**json.loads(raw["meta"]), **out}
        return out

    async def get(self, delivery_id: str) -> dict[str, str]:
        return self._flat(await self.redis.hgetall(f"notify:delivery:{delivery_id}"))

    async def get_many(self, delivery_ids: list[str]) -> list[dict[str, str]]:
        """The records of `delivery_ids`, in order ({} for an unknown one), one round trip."""
        if not delivery_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for did in delivery_ids:
                pipe.hgetall(f"notify:delivery:{did}")
            rows = await pipe.execute()
        return [self._flat(r) for r in rows]

    async def state(self, delivery_id: str) -> str | None:
        raw = await self.redis.hget(f"notify:delivery:{delivery_id}", "state")
        return str(raw) if raw is not None else None

    async def mark(self, delivery_id: str, state: str, **fields: str) -> None:
        mapping: dict[str, str] = {"state": state, "at": datetime.now(UTC).isoformat()}
        mapping.update(fields)
        await self._marks.add((delivery_id, mapping))

    async def of_case(self, case_id: str) -> list[dict[str, str]]:
        ids = sorted(await self.redis.smembers(f"notify:case-deliveries:{case_id}"))
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hgetall(f"notify:delivery:{i}")
            rows = await pipe.execute()
        return [{"delivery_id": str(i), **self._flat(r)}
                for i, r in zip(ids, rows, strict=True) if r]
