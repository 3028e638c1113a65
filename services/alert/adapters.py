"""Redis-backed state of the alert service."""

from __future__ import annotations

import json

from redis.asyncio import Redis


class ReportStatusStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def put(self, report_id: str, case_id: str, status: str) -> None:
        await self.redis.set(
            f"alert:report:{report_id}", json.dumps({"case_id": case_id, "status": status})
        )

    async def get(self, report_id: str) -> dict[str, str] | None:
        raw = await self.redis.get(f"alert:report:{report_id}")
        return json.loads(raw) if raw else None
